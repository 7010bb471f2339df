import { readFileSync } from 'node:fs'

import test from 'ava'

import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  messageName,
  Mid,
  type Request,
  type Response,
} from '../index.js'
import { decodeInodes, decodeStatx, decodeStatxs } from '../src/wire.js'

interface Vector {
  name: string
  mid: number
  dir: 'request' | 'response'
  hex: string
}

interface VectorFile {
  source: string
  vectors: Vector[]
  frames: { name: string; dir: 'request' | 'response'; hex: string }[]
}

const file = JSON.parse(
  readFileSync(new URL('../interop/vectors/messages.json', import.meta.url), 'utf8'),
) as VectorFile

function vector(name: string): Buffer {
  const v = file.vectors.find((x) => x.name === name)
  if (v === undefined) throw new Error(`no vector ${name}`)
  return Buffer.from(v.hex, 'hex')
}

test('every gVisor vector decodes and re-encodes to the same bytes', (t) => {
  t.true(file.vectors.length >= 67)
  for (const v of file.vectors) {
    const bytes = Buffer.from(v.hex, 'hex')
    const out =
      v.dir === 'request'
        ? encodeRequest(decodeRequest(v.mid, bytes, true))
        : encodeResponse(decodeResponse(v.mid, bytes, true))
    t.deepEqual(out, bytes, v.name)
  }
})

test('frames captured from gVisor client decode through the addon', (t) => {
  for (const f of file.frames) {
    const frame = Buffer.from(f.hex, 'hex')
    const len = frame.readUInt32LE(0)
    const mid = frame.readUInt16LE(4)
    const payload = frame.subarray(8)
    t.is(payload.length, len, f.name)
    const msg = f.dir === 'request' ? decodeRequest(mid, payload, true) : decodeResponse(mid, payload, true)
    t.is(msg.type as string, messageName(mid) ?? '', f.name)
  }
})

test('decoded messages are typed objects with bigint 64-bit fields', (t) => {
  const walk = decodeRequest(Mid.Walk, vector('WalkReq/three-components'))
  if (walk.type !== 'Walk') return t.fail(`got ${walk.type}`)
  t.is(typeof walk.dirFd, 'bigint')
  t.deepEqual(
    walk.path.map((p) => p.toString()),
    ['usr', 'lib', 'x86_64-linux-gnu'],
  )

  const stat = decodeResponse(Mid.FStat, vector('Statx/regular-file'))
  if (stat.type !== 'FStat') return t.fail(`got ${stat.type}`)
  t.is(stat.stat.ino, 0x7fff_ffff_ffff_fff1n)
  t.is(stat.stat.size, 0x0123_4567_89acn)
  t.is(stat.stat.mode, 0o104755)
  t.deepEqual(stat.stat.mtime, { sec: 4_102_444_800n, nsec: 456_000_000 })

  const dents = decodeResponse(Mid.Getdents64, vector('Getdents64Resp/five-dirents'))
  if (dents.type !== 'Getdents64') return t.fail(`got ${dents.type}`)
  t.is(dents.dirents.length, 5)
  t.is(dents.dirents[0]?.name.toString(), '.')
  t.is(dents.dirents[0]?.type, 4)

  const err = decodeResponse(Mid.Error, vector('ErrorResp/enoent'))
  t.deepEqual(err, { type: 'Error', errno: 2 })
})

test('encode then decode keeps every value, including the 64-bit extremes', (t) => {
  const req: Request = {
    type: 'RenameAt2',
    oldDir: 0xffff_ffff_ffff_ffffn,
    newDir: 1n,
    oldName: Buffer.from('a\u00e9'),
    newName: Buffer.from([0xff, 0x00, 0x41]),
    flags: 2,
  }
  t.deepEqual(decodeRequest(Mid.RenameAt2, encodeRequest(req), true), req)

  const resp: Response = {
    type: 'Channel',
    dataOffset: -(2n ** 63n),
    dataLength: 2n ** 64n - 1n,
  }
  t.deepEqual(decodeResponse(Mid.Channel, encodeResponse(resp), true), resp)
})

test('malformed payloads throw ERR_LISAFS_DECODE, never crash', (t) => {
  const walk = vector('WalkReq/three-components')
  for (let cut = 0; cut < walk.length; cut++) {
    t.throws(() => decodeRequest(Mid.Walk, walk.subarray(0, cut)), { code: 'ERR_LISAFS_DECODE' }, `cut ${cut}`)
  }
  t.throws(() => decodeRequest(Mid.Error, Buffer.alloc(0)), { code: 'ERR_LISAFS_DECODE', message: /unknown message id 0/ })
  t.throws(() => decodeRequest(34, Buffer.alloc(0)), { code: 'ERR_LISAFS_DECODE' })
  // A count of 65535 names with no bytes behind it.
  t.throws(() => decodeRequest(Mid.Walk, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff])), {
    code: 'ERR_LISAFS_DECODE',
    message: /truncated array items/,
  })
  // Trailing bytes: ignored like gVisor, rejected when exact.
  const stat = Buffer.concat([encodeRequest({ type: 'FStat', fd: 3n }), Buffer.from([0xee])])
  t.deepEqual(decodeRequest(Mid.FStat, stat), { type: 'FStat', fd: 3n })
  t.throws(() => decodeRequest(Mid.FStat, stat, true), { code: 'ERR_LISAFS_DECODE', message: /trailing/ })
  t.throws(() => decodeRequest(70_000, Buffer.alloc(0)), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
})

test('values that do not fit the wire throw instead of being truncated', (t) => {
  t.throws(
    () => encodeRequest({ type: 'UnlinkAt', dirFd: 1n, flags: 0, name: Buffer.alloc(65_536, 0x61) }),
    { code: 'ERR_LISAFS_ENCODE', message: /65535/ },
  )
  t.throws(() => encodeRequest({ type: 'FStat', fd: -1n }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => encodeRequest({ type: 'FStat', fd: 2n ** 64n }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  t.throws(
    () =>
      encodeRequest({
        type: 'MkdirAt',
        common: { dirFd: 1n, uid: 0, gid: 0, mode: 0x1_0000 },
        name: Buffer.from('d'),
      }),
    { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' },
  )
})

test('Mid names match the protocol', (t) => {
  for (let mid = 0; mid <= 33; mid++) {
    const name = messageName(mid)
    t.truthy(name)
    t.is((Mid as unknown as Record<string, number>)[name ?? ''], mid)
  }
  t.is(messageName(34), null)
  t.is(messageName(2 ** 20), null)
})

test('random bytes into every decoder only ever throw ERR_LISAFS_DECODE', (t) => {
  let seed = 0x2545f491
  const rand = (): number => {
    seed ^= seed << 13
    seed ^= seed >>> 17
    seed ^= seed << 5
    return seed >>> 0
  }
  let decoded = 0
  for (let i = 0; i < 20_000; i++) {
    const bytes = Buffer.alloc(rand() % 200)
    for (let j = 0; j < bytes.length; j++) bytes[j] = rand() % 4 === 0 ? rand() & 0xff : 0
    const mid = rand() % 36
    for (const decode of [decodeRequest, decodeResponse]) {
      try {
        decode(mid, bytes)
        decoded++
      } catch (e) {
        t.is((e as { code?: string }).code, 'ERR_LISAFS_DECODE')
      }
    }
  }
  t.true(decoded > 0)
})

test("the TypeScript stat decoders (the client's fast path) agree with the Rust codec on gVisor's vectors", (t) => {
  const fstat = vector('Statx/regular-file')
  const viaRust = decodeResponse(Mid.FStat, fstat, true)
  if (viaRust.type !== 'FStat') return t.fail(`got ${viaRust.type}`)
  t.deepEqual(decodeStatx(fstat), viaRust.stat)
  t.throws(() => decodeStatx(fstat.subarray(1)), { instanceOf: RangeError })

  const ws = vector('WalkStatResp/three-stats')
  const wsRust = decodeResponse(Mid.WalkStat, ws, true)
  if (wsRust.type !== 'WalkStat') return t.fail(`got ${wsRust.type}`)
  // A u16 count, then the stats.
  t.deepEqual(decodeStatxs(ws.subarray(2)), wsRust.stats)

  const w = vector('WalkResp/success-three-inodes')
  const wRust = decodeResponse(Mid.Walk, w, true)
  if (wRust.type !== 'Walk') return t.fail(`got ${wRust.type}`)
  // A status byte and a u16 count, then the inodes.
  t.deepEqual(decodeInodes(w.subarray(3)), wRust.inodes)
  t.throws(() => decodeInodes(w.subarray(4)), { instanceOf: RangeError })
})
