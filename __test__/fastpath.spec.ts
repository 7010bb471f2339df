// The channel fast path of the client: calls that complete on Node's thread
// (the reply came within the poll budget) and calls handed to the worker
// thread must be indistinguishable to callers, including their errors, and
// a server whose backend runs JS on this same thread must still be served.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test, { type ExecutionContext } from 'ava'

import {
  BackendServer,
  connect,
  createFs,
  Flags,
  LisafsError,
  MemoryBackend,
  Server,
  type Client,
  type ConnectOptions,
  type Statx,
} from '../src/index.js'

const FILES = 16

function hostTree(t: ExecutionContext): { sock: string; server: Server } {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-fast-'))
  const root = join(dir, 'root')
  mkdirSync(join(root, 'sub'), { recursive: true })
  for (let i = 0; i < FILES; i++) writeFileSync(join(root, 'sub', `f${i}`), `file ${i}\n`.repeat(i + 1))
  writeFileSync(join(root, 'big'), Buffer.alloc(3 << 20, 'b'))
  const sock = join(dir, 's.sock')
  const server = new Server({ root })
  server.listen(sock)
  t.teardown(async () => {
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  return { sock, server }
}

/** What a stat says about a file, without the times reads may change. */
function shape(st: Statx): unknown {
  return { ino: st.ino, mode: st.mode, size: st.size, nlink: st.nlink, mtime: st.mtime }
}

/** One client per way of completing calls. */
const MODES: Array<[string, ConnectOptions]> = [
  ['sync first (generous budget)', { syncBudgetUs: 1000 }],
  ['always handed off (no budget)', { syncBudgetUs: 0 }],
  ['socket only', { channels: false }],
]

async function observe(client: Client): Promise<unknown> {
  const fs = createFs(client)
  const root = client.mount()
  const names = Array.from({ length: FILES }, (_, i) => `f${i}`)
  const stats = (await Promise.all(names.map((n) => root.walkStat(['sub', n])))).map((l) => l.map(shape))
  const contents = await Promise.all(names.map((n) => fs.readFile(`/sub/${n}`, 'utf8')))
  const big = await fs.readFile('/big')
  const walked = await root.walk(['sub', 'f3'])
  const [sub, f3] = walked.fds
  if (sub === undefined || f3 === undefined) throw new Error('walk came back short')
  const file = await f3.openAt(Flags.O_RDONLY)
  const head = (await file.read(4, 0)).toString()
  const fstat = shape(await file.stat())
  await file.close()
  await sub.close()
  await f3.close()
  const fsStat = await fs.stat('/sub/f1')
  return { stats, contents, bigLength: big.length, bigOk: big.every((b) => b === 0x62), head, fstat, size: fsStat.size }
}

test('results are the same whether calls complete synchronously, are handed off, or use the socket', async (t) => {
  const { sock } = hostTree(t)
  const seen: unknown[] = []
  for (const [name, options] of MODES) {
    const client = await connect(sock, options)
    try {
      t.is(client.usesChannels, options.channels !== false, name)
      seen.push(await observe(client))
    } finally {
      await client.close()
    }
  }
  t.deepEqual(seen[1], seen[0])
  t.deepEqual(seen[2], seen[0])
})

test('errors carry code, errno, syscall and path on every path', async (t) => {
  const { sock } = hostTree(t)
  for (const [name, options] of MODES) {
    const client = await connect(sock, options)
    try {
      const fs = createFs(client)
      const root = client.mount()
      const walkErr = await t.throwsAsync(root.walk(['sub', '..']))
      t.true(walkErr instanceof LisafsError, name)
      t.like(walkErr, { code: 'EINVAL', errno: -22, syscall: 'walk', path: '/' }, name)
      t.like(await t.throwsAsync(fs.stat('/sub/missing')), { code: 'ENOENT', syscall: 'stat', path: '/sub/missing' }, name)
      t.like(await t.throwsAsync(fs.readFile('/sub/missing')), { code: 'ENOENT', syscall: 'open', path: '/sub/missing' }, name)
      t.like(await t.throwsAsync(fs.readFile('/sub')), { code: 'EISDIR', path: '/sub' }, name)
      const { fds } = await root.walk('sub')
      const dir = fds[0]
      if (dir === undefined) return t.fail()
      // A directory opened for writing: the server's errno, through OpenAt.
      t.like(await t.throwsAsync(dir.openAt(Flags.O_WRONLY)), { code: 'EISDIR', syscall: 'open', path: '/sub' }, name)
      await dir.close()
    } finally {
      await client.close()
    }
  }
})

test('64 concurrent calls all complete, each with its own result', async (t) => {
  const { sock, server } = hostTree(t)
  for (const [name, options] of MODES) {
    const client = await connect(sock, options)
    try {
      const fs = createFs(client)
      const jobs = Array.from({ length: 64 }, async (_, i) => {
        const n = i % FILES
        if (i % 3 === 0) return (await fs.stat(`/sub/f${n}`)).size
        if (i % 3 === 1) return (await fs.readFile(`/sub/f${n}`)).length
        // Some calls fail, concurrently with the others.
        return fs.stat(`/sub/nope${i}`).then(
          () => -1,
          (e: unknown) => (e instanceof LisafsError && e.code === 'ENOENT' ? 0 : -2),
        )
      })
      const got = await Promise.all(jobs)
      const want = Array.from({ length: 64 }, (_, i) => (i % 3 === 2 ? 0 : `file ${i % FILES}\n`.length * ((i % FILES) + 1)))
      t.deepEqual(got, want, name)
    } finally {
      await client.close()
    }
  }
  // Every handle the fs layer opened was released (the mount point is not).
  for (let i = 0; i < 100 && server.stats().controlFds > 0; i++) await new Promise((r) => setTimeout(r, 5))
  t.is(server.stats().controlFds, 0)
})

test('a server whose backend runs on this same Node thread is served over channels', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-fast-mem-'))
  const mem = new MemoryBackend()
  const server = new BackendServer(mem)
  server.listen(join(dir, 's.sock'))
  // The budget is spent polling for a reply only this thread can produce:
  // every call must still finish, handed off to the worker.
  const client = await connect(join(dir, 's.sock'), { syncBudgetUs: 200 })
  t.teardown(async () => {
    await client.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  t.true(client.usesChannels)
  const fs = createFs(client)
  await fs.mkdir('/d')
  await Promise.all(Array.from({ length: 16 }, (_, i) => fs.writeFile(`/d/f${i}`, `mem ${i}`)))
  const sizes = await Promise.all(Array.from({ length: 64 }, (_, i) => fs.stat(`/d/f${i % 16}`).then((s) => s.size)))
  t.deepEqual(
    sizes,
    Array.from({ length: 64 }, (_, i) => `mem ${i % 16}`.length),
  )
  t.is(await fs.readFile('/d/f7', 'utf8'), 'mem 7')
  t.like(await t.throwsAsync(fs.readFile('/d/none')), { code: 'ENOENT', syscall: 'open', path: '/d/none' })
  const root = client.mount()
  t.like(await t.throwsAsync(root.walk(['d', '..'])), { code: 'EINVAL', syscall: 'walk' })
})
