// Node part of `npm run bench` (run by bench/run.mjs; runnable alone):
// our TypeScript client against node:fs/promises on the same host files.
//
//   node bench/node.mjs --serve target/release/lisafs-serve [--round-ms 750] [--rounds 5]
//
// Starts lisafs-serve (--socket) on a fresh temporary tree of 64 files of
// 4 KiB, connects the built client (dist/, `npm run build`) and measures
// stat and readFile, one at a time and with 64 in flight, alternating the two
// implementations from round to round. Prints one JSON object per line on
// stdout; progress goes to stderr.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import * as fsp from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: {
    serve: { type: 'string' },
    'round-ms': { type: 'string', default: '750' },
    rounds: { type: 'string', default: '5' },
  },
})
if (!args.serve) {
  console.error('usage: node bench/node.mjs --serve PATH-TO-lisafs-serve [--round-ms N] [--rounds N]')
  process.exit(2)
}
const ROUND_MS = Number(args['round-ms'])
const ROUNDS = Number(args.rounds)
const WARMUP_MS = 100
const FILES = 64
const SIZE = 4096
const INFLIGHT = 64

const lisafs = await import(new URL('../dist/index.mjs', import.meta.url).href)
const { connect, createFs, Flags } = lisafs

const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const progress = (m) => process.stderr.write(`bench/node: ${m}\n`)
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}

// ---- the served tree and the server ----
const work = mkdtempSync(join(tmpdir(), 'lisafs-bench-node-'))
const root = join(work, 'tree')
mkdirSync(root)
const names = Array.from({ length: FILES }, (_, i) => `f-${String(i).padStart(2, '0')}`)
const content = Buffer.alloc(SIZE, 'n')
for (const n of names) writeFileSync(join(root, n), content)
const sock = join(work, 'sock')
const server = spawn(resolve(args.serve), ['--root', root, '--socket', sock], { stdio: ['ignore', 'ignore', 'pipe'] })
let serverErr = ''
server.stderr.on('data', (d) => (serverErr += d))
let cleaned = false
function cleanup() {
  if (cleaned) return
  cleaned = true
  server.kill('SIGKILL')
  rmSync(work, { recursive: true, force: true })
}
process.on('exit', cleanup)
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    cleanup()
    process.exit(1)
  })
}

async function connectWhenReady() {
  const deadline = Date.now() + 15000
  for (;;) {
    if (server.exitCode !== null) throw new Error(`lisafs-serve exited: ${serverErr}`)
    if (existsSync(sock)) {
      try {
        return await connect(sock)
      } catch (err) {
        if (Date.now() > deadline) throw err
      }
    } else if (Date.now() > deadline) {
      throw new Error(`lisafs-serve did not listen on ${sock}: ${serverErr}`)
    }
    await sleep(10)
  }
}

// ---- measurement ----
/** Runs `op(i)` from `inflight` concurrent loops for ~ms; returns µs per op (wall time / ops). */
async function measure(op, ms, inflight) {
  let ops = 0
  const t0 = performance.now()
  const deadline = t0 + ms
  async function loop(w) {
    let i = w
    while (performance.now() < deadline) {
      await op(i)
      i += inflight
      ops++
    }
  }
  await Promise.all(Array.from({ length: inflight }, (_, w) => loop(w)))
  return ((performance.now() - t0) * 1000) / ops
}

function check(buf) {
  if (buf.length !== SIZE) throw new Error(`readFile returned ${buf.length} bytes, want ${SIZE}`)
}

const client = await connectWhenReady()
try {
  const hasFs = typeof createFs === 'function'
  const lfs = hasFs ? createFs(client) : undefined
  const mount = client.mount()
  const name = (i) => names[i % FILES]
  const host = (i) => join(root, name(i))

  // Our client without the fs layer: the RPCs the fs layer would make.
  const rawStat = async (i) => {
    const [st] = await mount.walkStat([name(i)])
    if (Number(st.size) !== SIZE) throw new Error('bad size')
  }
  const rawReadFile = async (i) => {
    const { fds } = await mount.walk(name(i))
    const ctl = fds[0]
    try {
      const f = await ctl.openAt(Flags.O_RDONLY)
      try {
        check(await f.read(Number(ctl.initialStat.size), 0))
      } finally {
        await f.close()
      }
    } finally {
      await ctl.close()
    }
  }

  const ours = hasFs
    ? {
        stat: async (i) => {
          const st = await lfs.stat(`/${name(i)}`)
          if (st.size !== SIZE) throw new Error('bad size')
        },
        readFile: async (i) => check(await lfs.readFile(`/${name(i)}`)),
      }
    : { stat: rawStat, readFile: rawReadFile }
  const node = {
    stat: async (i) => {
      const st = await fsp.stat(host(i))
      if (st.size !== SIZE) throw new Error('bad size')
    },
    readFile: async (i) => check(await fsp.readFile(host(i))),
  }
  const oursImpl = hasFs ? 'lisafs fs layer (createFs)' : 'lisafs client (ControlFd)'
  emit({ part: 'node-meta', oursImpl, node: process.version, uvThreadpool: Number(process.env.UV_THREADPOOL_SIZE ?? 4) })

  const configs = [
    { op: 'stat', inflight: 1 },
    { op: 'stat', inflight: INFLIGHT },
    { op: 'readFile', inflight: 1 },
    { op: 'readFile', inflight: INFLIGHT },
  ]
  for (const c of configs) {
    progress(`${c.op}, ${c.inflight} in flight`)
    const impls = [
      ['lisafs', ours[c.op]],
      ['node:fs', node[c.op]],
    ]
    if (hasFs && c.inflight === 1) impls.push(['lisafs-client', c.op === 'stat' ? rawStat : rawReadFile])
    const results = new Map(impls.map(([k]) => [k, []]))
    for (const [, op] of impls) await measure(op, WARMUP_MS, c.inflight)
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? impls : [...impls].reverse()
      for (const [k, op] of order) results.get(k).push(await measure(op, ROUND_MS, c.inflight))
    }
    for (const [k, rounds] of results) {
      emit({ part: 'node', op: c.op, impl: k, inflight: c.inflight, unit: 'us/op', rounds, median: median(rounds) })
    }
  }
} finally {
  await client.close()
  cleanup()
}
