// `npm run bench`: builds what the benchmarks need, runs every part in one
// go, prints the table, and writes bench/results/latest.json and
// bench/RESULTS.md. See bench/README.md. Not a test: nothing here asserts.
//
// Environment (all optional):
//   BENCH_PARTS         rpc,rtt,floor,mem,node,rustrtt,backends (default: all)
//   BENCH_ROUNDS        rounds per measurement, median reported (default 5)
//   BENCH_ROUND_MS      one round of an RPC workload (default 600)
//   BENCH_RTT_ROUND_MS  one round of the empty RPC (default 1000)
//   BENCH_FLOOR_ROUND_MS one round of the syscall floor (default 500)
//   BENCH_RUST_RTT_ITERS calls per run of our Rust client's rtt example (default 5000)
//   BENCH_NODE_ROUND_MS one round of a Node measurement (default 600)
//   BENCH_MEM_FDS       idle control FDs to create (default 100000, capped by RLIMIT_NOFILE)
//   BENCH_QUICK=1       3 rounds of 200 ms everywhere: a smoke run, not for RESULTS.md
//   BENCH_SKIP_BUILD=1  use the binaries and dist/ as they are
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const benchDir = join(repo, 'bench')
const binDir = join(repo, 'target', 'bench')
const bins = {
  ours: join(repo, 'target', 'release', 'lisafs-serve'),
  gofer: join(binDir, 'gvisor-gofer'),
  driver: join(binDir, 'lisafs-bench'),
  rustRtt: join(repo, 'target', 'release', 'examples', 'rtt'),
}
const rustRttSource = join(repo, 'crates', 'lisafs-client', 'examples', 'rtt.rs')
const ALL_PARTS = ['rpc', 'rtt', 'floor', 'mem', 'node', 'rustrtt', 'backends']
const nodeServe = join(repo, 'interop', 'node-serve.mjs')

const env = process.env
const quick = env.BENCH_QUICK === '1'
const cfg = {
  parts: new Set((env.BENCH_PARTS ?? ALL_PARTS.join(',')).split(',').map((s) => s.trim()).filter(Boolean)),
  rounds: Number(env.BENCH_ROUNDS ?? (quick ? 3 : 5)),
  roundMs: Number(env.BENCH_ROUND_MS ?? (quick ? 200 : 600)),
  rttRoundMs: Number(env.BENCH_RTT_ROUND_MS ?? (quick ? 200 : 1000)),
  floorRoundMs: Number(env.BENCH_FLOOR_ROUND_MS ?? (quick ? 200 : 500)),
  rustRttIters: Number(env.BENCH_RUST_RTT_ITERS ?? (quick ? 2000 : 5000)),
  nodeRoundMs: Number(env.BENCH_NODE_ROUND_MS ?? (quick ? 200 : 600)),
  memFds: Number(env.BENCH_MEM_FDS ?? 100000),
}
// Hard bounds on each part's wall time (the defaults take about 4 minutes).
const GO_BUDGET_MS = 360_000
// The backends part runs in the same Go driver and adds about 2 minutes.
const BACKENDS_BUDGET_MS = 180_000
const NODE_BUDGET_MS = 120_000
const RUST_RTT_RUN_BUDGET_MS = 60_000

const TARGETS = {
  ratio: 1.5, // our server's ops/s over gVisor's fsgofer's, every workload
  channelRttUs: 1, // empty-RPC median over channels
  nodeStatRatio: 0.5, // our sequential stat latency over fs.promises.stat's
  preadGBps: 5, // 1 MiB PRead over channels
  bytesPerFd: 300, // server memory per idle control FD
}

const log = (m) => process.stderr.write(`bench: ${m}\n`)
const medianOf = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return n === 0 ? undefined : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}

// ---------------------------------------------------------------------------
// Building

function sh(cmd, args, opts = {}) {
  log(`$ ${cmd} ${args.join(' ')}${opts.cwd ? `   (in ${opts.cwd})` : ''}`)
  const r = spawnSync(cmd, args, { cwd: repo, stdio: ['ignore', 'inherit', 'inherit'], ...opts })
  if (r.error) throw r.error
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`)
}

function newestMtime(dir, pred) {
  let newest = 0
  if (!existsSync(dir)) return newest
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p, pred))
    else if (pred(e.name)) newest = Math.max(newest, statSync(p).mtimeMs)
  }
  return newest
}

/** Rebuilds the addon and dist/ with `npm run build` when missing or older than their sources. */
function buildNode() {
  const outs = [join(repo, 'lisafs.linux-x64-gnu.node'), join(repo, 'dist', 'index.mjs'), join(repo, 'dist', 'index.js')]
  const built = outs.every(existsSync) ? Math.min(...outs.map((p) => statSync(p).mtimeMs)) : 0
  const srcs = Math.max(
    newestMtime(join(repo, 'src'), (n) => n.endsWith('.ts')),
    ...['lisafs-node', 'lisafs-client', 'lisafs-wire', 'lisafs-transport'].map((c) =>
      newestMtime(join(repo, 'crates', c, 'src'), (n) => n.endsWith('.rs')),
    ),
  )
  if (built > 0 && built >= srcs) return 'up to date'
  try {
    sh('npm', ['run', 'build'])
    return 'rebuilt'
  } catch (err) {
    if (built > 0) {
      log(`npm run build failed (${err.message}); measuring the existing build`)
      return 'stale: npm run build failed, the previous build was measured'
    }
    throw err
  }
}

function build() {
  mkdirSync(binDir, { recursive: true })
  const t0 = Date.now()
  sh('cargo', ['build', '--release', '-p', 'lisafs-serve'])
  const interop = join(repo, 'interop')
  sh('go', ['build', '-o', bins.gofer, './cmd/gvisor-gofer'], { cwd: interop })
  sh('go', ['build', '-o', bins.driver, './cmd/lisafs-bench'], { cwd: interop })
  if (cfg.parts.has('rustrtt') && existsSync(rustRttSource)) sh('cargo', ['build', '--release', '-p', 'lisafs-client', '--example', 'rtt'])
  const node = cfg.parts.has('node') || cfg.parts.has('backends') ? buildNode() : 'not needed'
  log(`built in ${((Date.now() - t0) / 1000).toFixed(1)} s (node addon + dist: ${node})`)
  return node
}

// ---------------------------------------------------------------------------
// Running the parts

/** Runs a child that prints JSON lines on stdout; returns the parsed objects. */
function collect(cmd, args, budgetMs) {
  return new Promise((resolvePromise, reject) => {
    log(`$ ${cmd} ${args.join(' ')}`)
    const child = spawn(cmd, args, { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] })
    const out = []
    let buf = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (d) => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim()
        buf = buf.slice(i + 1)
        if (line === '') continue
        try {
          out.push(JSON.parse(line))
        } catch {
          log(`ignoring non-JSON output: ${line}`)
        }
      }
    })
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      log(`${cmd} exceeded its ${budgetMs / 1000} s budget; stopping it`)
      child.kill('SIGTERM')
      setTimeout(() => child.kill('SIGKILL'), 5000).unref()
    }, budgetMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolvePromise(out)
      else reject(new Error(`${cmd} ${timedOut ? 'timed out' : `exited with ${code ?? signal}`} (${out.length} results so far)`))
    })
  })
}

/**
 * Runs our Rust client's RTT example (crates/lisafs-client/examples/rtt.rs:
 * client and server threads in one process) `rounds` times and parses its
 * table: one row per transport with the empty-RPC and FStat median and p99.
 */
async function rustRtt() {
  if (!existsSync(bins.rustRtt)) throw new Error(`${bins.rustRtt} is not built (is ${rustRttSource} gone?)`)
  const runs = new Map()
  for (let r = 0; r < cfg.rounds; r++) {
    log(`$ ${bins.rustRtt} ${cfg.rustRttIters}   (round ${r + 1}/${cfg.rounds})`)
    const out = await new Promise((res, rej) => {
      const child = spawn(bins.rustRtt, [String(cfg.rustRttIters)], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] })
      let text = ''
      child.stdout.setEncoding('utf8').on('data', (d) => (text += d))
      const timer = setTimeout(() => child.kill('SIGKILL'), RUST_RTT_RUN_BUDGET_MS)
      child.on('error', rej)
      child.on('close', (code) => {
        clearTimeout(timer)
        code === 0 ? res(text) : rej(new Error(`rtt example exited with ${code}`))
      })
    })
    for (const line of out.split('\n')) {
      const m = /^(\S.*?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$/.exec(line)
      if (!m) continue
      const [, transport, ...nums] = m
      if (!runs.has(transport)) runs.set(transport, [])
      runs.get(transport).push(nums.map(Number))
    }
  }
  const median = medianOf
  return [...runs].map(([transport, rows]) => ({
    part: 'rustrtt',
    transport,
    unit: 'us',
    iterations: cfg.rustRttIters,
    rounds: rows,
    emptyP50: median(rows.map((r) => r[0])),
    emptyP99: median(rows.map((r) => r[1])),
    fstatP50: median(rows.map((r) => r[2])),
    fstatP99: median(rows.map((r) => r[3])),
  }))
}

// ---------------------------------------------------------------------------
// Formatting

const fmtNum = (v, digits = 0) =>
  v === undefined || v === null || Number.isNaN(v) ? '-' : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
const fmtOps = (v) => (v === undefined ? '-' : v >= 100 ? fmtNum(v) : fmtNum(v, 1))
const fmtRatio = (v) => (v === undefined ? '-' : `${v.toFixed(2)}x`)
const fmtUs = (ns) => (ns === undefined ? '-' : fmtNum(ns / 1000, ns < 10000 ? 2 : 1))
const mark = (ok) => (ok === undefined ? '-' : ok ? 'hit' : 'MISS')

const isNumeric = (c) => /^[-+±]?[\d,.]+(x|%)?$|^-$/.test(String(c))
const rightAligned = (headers, rows) => headers.map((_, i) => rows.length > 0 && rows.every((r) => isNumeric(r[i])))

function textTable(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const right = rightAligned(headers, rows)
  const line = (cells) => cells.map((c, i) => (right[i] ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i]))).join('  ').trimEnd()
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

function mdTable(headers, rows) {
  const esc = (c) => String(c).replace(/\|/g, '\\|')
  return [
    `| ${headers.map(esc).join(' | ')} |`,
    `| ${rightAligned(headers, rows).map((r) => (r ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n')
}

// ---------------------------------------------------------------------------
// Aggregation

function aggregate(results) {
  const by = (part) => results.filter((r) => r.part === part)
  const rpc = by('rpc')
  const floor = by('floor')
  const rtt = by('rtt')
  const mem = by('mem')
  const node = by('node')
  const sections = []
  const targets = []

  if (rpc.length > 0) {
    const keys = []
    for (const r of rpc) {
      const k = `${r.workload}|${r.conns}|${r.transport}`
      if (!keys.includes(k)) keys.push(k)
    }
    const rows = keys.map((k) => {
      const [workload, conns, transport] = k.split('|')
      const get = (server) => rpc.find((r) => `${r.workload}|${r.conns}|${r.transport}` === k && r.server === server)
      const ours = get('ours')
      const gv = get('gvisor')
      const ratio = ours && gv ? ours.median / gv.median : undefined
      const fl = floor.find((f) => f.workload === workload)
      const spreadOf = (rec) => (rec ? (Math.max(...rec.rounds) - Math.min(...rec.rounds)) / (2 * rec.median) : 0)
      const spread = Math.max(spreadOf(ours), spreadOf(gv))
      // Rounds alternate the servers back to back: the median of the
      // per-round ratios cancels drift that hits a whole round.
      const paired = ours && gv ? medianOf(ours.rounds.map((v, i) => v / gv.rounds[i])) : undefined
      return { workload, conns: Number(conns), transport, ours: ours?.median, gvisor: gv?.median, ratio, paired, floor: fl?.median, spread }
    })
    const headers = ['workload', 'conns', 'transport', 'ours ops/s', 'gVisor ops/s', 'ours/gVisor', 'paired', 'spread', 'host floor ops/s', `>= ${TARGETS.ratio}x`]
    const cells = rows.map((r) => [r.workload, r.conns, r.transport, fmtOps(r.ours), fmtOps(r.gvisor), fmtRatio(r.ratio), fmtRatio(r.paired), `±${Math.round(r.spread * 100)}%`, fmtOps(r.floor), mark(r.ratio === undefined ? undefined : r.ratio >= TARGETS.ratio)])
    sections.push({
      title: "gVisor's Go client -> server: operations per second (median of the rounds; higher is better)",
      headers,
      cells,
      note: 'ours/gVisor: ratio of the two medians (the target is judged on it). paired: median over rounds of the ratio within each round, where the two servers ran back to back. spread: half the range of the rounds over their median, the larger of the two servers. host floor: the same work as raw syscalls from one Go thread on the same tree (no RPC), for scale.',
    })
    const measured = rows.filter((r) => r.ratio !== undefined)
    const hits = measured.filter((r) => r.ratio >= TARGETS.ratio).length
    const worst = measured.reduce((a, r) => (a === undefined || r.ratio < a.ratio ? r : a), undefined)
    const best = measured.reduce((a, r) => (a === undefined || r.ratio > a.ratio ? r : a), undefined)
    targets.push({
      target: `our server >= ${TARGETS.ratio}x gVisor's fsgofer ops/s on every workload`,
      measured: `${hits}/${measured.length} rows; ratios ${worst ? fmtRatio(worst.ratio) : '-'} (${worst?.workload} ${worst?.conns}c ${worst?.transport}) .. ${best ? fmtRatio(best.ratio) : '-'} (${best?.workload} ${best?.conns}c ${best?.transport})`,
      hit: measured.length > 0 && hits === measured.length,
    })

    const pread = rows.filter((r) => r.workload === 'pread_1m')
    if (pread.length > 0) {
      const gb = (ops) => (ops === undefined ? undefined : (ops * 1048576) / 1e9)
      const pcells = pread.map((r) => [r.conns, r.transport, fmtNum(gb(r.ours), 2), fmtNum(gb(r.gvisor), 2), fmtNum(gb(r.floor), 2), r.transport === 'channel' ? mark(gb(r.ours) >= TARGETS.preadGBps) : '-'])
      sections.push({ title: '1 MiB PRead throughput, GB/s (from the pread_1m rows)', headers: ['conns', 'transport', 'ours GB/s', 'gVisor GB/s', 'host floor GB/s', `channel >= ${TARGETS.preadGBps} GB/s`], cells: pcells })
      const ch = pread.filter((r) => r.transport === 'channel' && r.ours !== undefined)
      if (ch.length > 0) {
        const bestCh = Math.max(...ch.map((r) => gb(r.ours)))
        targets.push({
          target: `1 MiB PRead >= ${TARGETS.preadGBps} GB/s over channels`,
          measured: ch.map((r) => `${fmtNum(gb(r.ours), 2)} GB/s (${r.conns} conn${r.conns > 1 ? 's' : ''})`).join(', '),
          hit: bestCh >= TARGETS.preadGBps,
        })
      }
    }
  }

  if (rtt.length > 0) {
    const trs = [...new Set(rtt.map((r) => r.transport))]
    const cells = trs.map((tr) => {
      const o = rtt.find((r) => r.transport === tr && r.server === 'ours')
      const g = rtt.find((r) => r.transport === tr && r.server === 'gvisor')
      return [tr, fmtUs(o?.p50), fmtUs(o?.median), fmtUs(o?.p99), fmtUs(g?.p50), fmtUs(g?.median), fmtUs(g?.p99), tr === 'channel' && o ? mark(o.p50 / 1000 <= TARGETS.channelRttUs) : '-']
    })
    sections.push({
      title: "Empty RPC (FStat on the mount's root FD), gVisor's client, one connection: microseconds per round trip",
      headers: ['transport', 'ours p50', 'ours mean', 'ours p99', 'gVisor p50', 'gVisor mean', 'gVisor p99', `channel p50 <= ${TARGETS.channelRttUs} us`],
      cells,
      note: 'p50/p99: per-call latencies within a round, median over rounds; mean: round time / calls, median over rounds.',
    })
    const ch = rtt.find((r) => r.transport === 'channel' && r.server === 'ours')
    if (ch) targets.push({ target: `channel empty-RPC median <= ${TARGETS.channelRttUs} us (gVisor's Go client -> our server, two processes)`, measured: `${fmtUs(ch.p50)} us (gVisor's fsgofer: ${fmtUs(rtt.find((r) => r.transport === 'channel' && r.server === 'gvisor')?.p50)} us)`, hit: ch.p50 / 1000 <= TARGETS.channelRttUs })
  }

  if (node.length > 0) {
    const keys = [...new Set(node.map((r) => `${r.op}|${r.inflight}`))]
    const cells = []
    for (const k of keys) {
      const [op, inflight] = k.split('|')
      const get = (impl) => node.find((r) => r.op === op && String(r.inflight) === inflight && r.impl === impl)
      const fsr = get('node:fs')
      for (const impl of ['lisafs', 'lisafs-client']) {
        const o = get(impl)
        if (!o) continue
        const ratio = fsr ? o.median / fsr.median : undefined
        const isTarget = op === 'stat' && inflight === '1' && impl === 'lisafs'
        cells.push([op, inflight, impl, fmtNum(o.median, 1), fmtNum(fsr?.median, 1), ratio === undefined ? '-' : ratio.toFixed(2), isTarget ? mark(ratio <= TARGETS.nodeStatRatio) : '-'])
      }
    }
    const meta = results.find((r) => r.part === 'node-meta')
    sections.push({
      title: 'Node: our TypeScript client vs node:fs/promises on the same files: microseconds per operation (lower is better)',
      headers: ['op', 'in flight', 'ours', 'ours us/op', 'fs.promises us/op', 'ours/fs', `seq stat <= ${TARGETS.nodeStatRatio}`],
      cells,
      note: `lisafs = ${meta?.oursImpl ?? 'our client'} over the socket to lisafs-serve; lisafs-client = the same RPCs through ControlFd/OpenFd directly. With 64 in flight, us/op is wall time / operations (inverse throughput).`,
    })
    const o = node.find((r) => r.op === 'stat' && r.inflight === 1 && r.impl === 'lisafs')
    const f = node.find((r) => r.op === 'stat' && r.inflight === 1 && r.impl === 'node:fs')
    if (o && f) targets.push({ target: `Node sequential stat <= ${TARGETS.nodeStatRatio}x fs.promises.stat latency`, measured: `${(o.median / f.median).toFixed(2)}x (${fmtNum(o.median, 1)} vs ${fmtNum(f.median, 1)} us)`, hit: o.median / f.median <= TARGETS.nodeStatRatio })
  }

  const be = by('backends')
  const beRtt = by('backends-rtt')
  const beHop = by('backends-hop')
  if (be.length > 0 || beRtt.length > 0) {
    const kinds = ['rust-host', 'node-host', 'node-policy', 'node-memory']
    const cells = []
    for (const k of [...new Set(be.map((r) => `${r.workload}|${r.transport}`))]) {
      const [workload, transport] = k.split('|')
      const get = (server) => be.find((r) => r.workload === workload && r.transport === transport && r.server === server)?.median
      const base = get('rust-host')
      const vals = kinds.map(get)
      cells.push([workload, transport, ...vals.map(fmtOps), ...vals.slice(1).map((v) => (v === undefined || !base ? '-' : fmtRatio(v / base)))])
    }
    for (const tr of [...new Set(beRtt.map((r) => r.transport))]) {
      const get = (server) => beRtt.find((r) => r.transport === tr && r.server === server)?.p50
      const vals = kinds.map(get)
      cells.push([`FStat root p50 (us)`, tr, ...vals.map(fmtUs), ...vals.slice(1).map((v) => (v === undefined || !vals[0] ? '-' : fmtRatio(v / vals[0])))])
    }
    const hop = beRtt.map((r) => r.transport).filter((tr, i, a) => a.indexOf(tr) === i).map((tr) => {
      const m = beRtt.find((r) => r.transport === tr && r.server === 'node-memory')?.p50
      const h = beRtt.find((r) => r.transport === tr && r.server === 'node-host')?.p50
      return m !== undefined && h !== undefined ? `${fmtUs(m - h)} us (${tr})` : undefined
    }).filter(Boolean)
    const inServer = [...new Set(beHop.map((r) => r.transport))].map((tr) => {
      const ops = ['stat', 'read']
        .map((op) => beHop.find((r) => r.transport === tr && r.op === op))
        .filter(Boolean)
        .map((r) => `${r.op} p50 ${fmtUs(r.p50)} / p90 ${fmtUs(r.p90)} us`)
      return `${tr}: ${ops.join(', ')}`
    })
    sections.push({
      title: "Backends: gVisor's Go client, one connection, against the host backend in lisafs-serve and against servers on the Node package (ops/s, higher is better)",
      headers: ['workload', 'transport', 'rust-host', 'node-host', 'node-policy', 'node-memory', 'node-host/rust', 'node-policy/rust', 'node-memory/rust'],
      cells,
      note: `rust-host: lisafs-serve. node-host: a HostBackend served by BackendServer in Node (the same Rust code; no JavaScript per operation). node-policy: the same under a Policy with an observer (events batched to JavaScript). node-memory: a MemoryBackend seeded with the same tree (every operation is one call into JavaScript). The FStat rows are microseconds per call; the JavaScript hop (node-memory minus node-host FStat p50): ${hop.join(', ') || '-'}; measured in the server (how long the server thread waits on the bridge for a MemoryBackend call): ${inServer.join('; ') || '-'}.`,
    })
  }

  const rr = by('rustrtt')
  if (rr.length > 0) {
    sections.push({
      title: 'Our Rust client <-> our server in one process (crates/lisafs-client/examples/rtt.rs): microseconds per round trip',
      headers: ['transport', 'empty RPC p50', 'empty RPC p99', 'FStat p50', 'FStat p99', `channel p50 <= ${TARGETS.channelRttUs} us`],
      cells: rr.map((r) => [r.transport, fmtNum(r.emptyP50, 2), fmtNum(r.emptyP99, 2), fmtNum(r.fstatP50, 2), fmtNum(r.fstatP99, 2), r.transport.startsWith('channel') ? mark(r.emptyP50 <= TARGETS.channelRttUs) : '-']),
      note: `Empty RPC: a Walk of no components (dispatch only, no syscall). Client and server are two threads of one process, ${rr[0].iterations} calls per run; the median over ${rr[0].rounds.length} runs of each run's p50/p99.`,
    })
    const best = rr.filter((r) => r.transport.startsWith('channel')).sort((a, b) => a.emptyP50 - b.emptyP50)[0]
    if (best) targets.push({ target: `channel empty-RPC median <= ${TARGETS.channelRttUs} us (our Rust client <-> our server, one process)`, measured: `${fmtNum(best.emptyP50, 2)} us (${best.transport}); ${rr.filter((r) => r !== best && r.transport.startsWith('channel')).map((r) => `${fmtNum(r.emptyP50, 2)} us (${r.transport})`).join(', ')}`, hit: best.emptyP50 <= TARGETS.channelRttUs })
  }

  if (floor.length > 0) {
    sections.push({
      title: 'The floor: raw host syscalls from one Go thread (golang.org/x/sys/unix), same tree',
      headers: ['op', 'what', 'ns/op', 'ops/s'],
      cells: floor.map((f) => [f.op, f.desc, fmtNum(1e9 / f.median), fmtOps(f.median)]),
    })
  }

  if (mem.length > 0) {
    const cells = mem.map((m) => [m.server === 'ours' ? 'ours (lisafs-serve)' : "gVisor's fsgofer", fmtNum(m.fds), fmtNum(m.rssBefore / 1048576, 1), fmtNum(m.rssAfter / 1048576, 1), fmtNum(m.bytesPerFd), m.server === 'ours' ? mark(m.bytesPerFd <= TARGETS.bytesPerFd) : '-'])
    const m0 = mem[0]
    sections.push({
      title: 'Server memory per idle control FD (VmRSS after walking N files and keeping every FD, minus before)',
      headers: ['server', 'control FDs', 'RSS before MiB', 'RSS after MiB', 'bytes/FD', `<= ${TARGETS.bytesPerFd} B`],
      cells,
      note:
        m0.fds < m0.asked
          ? `${fmtNum(m0.fds)} FDs, not ${fmtNum(m0.asked)}: each control FD holds a host FD on both servers and their RLIMIT_NOFILE is ${m0.nofileLimit} here (hard limit; raising it needs CAP_SYS_RESOURCE). The host FD's struct file is kernel memory, not in RSS.`
          : "The host FD each control FD holds is kernel memory, not in RSS.",
    })
    const o = mem.find((m) => m.server === 'ours')
    const g = mem.find((m) => m.server === 'gvisor')
    if (o) targets.push({ target: `<= ${TARGETS.bytesPerFd} bytes of server memory per idle ControlFD`, measured: `${fmtNum(o.bytesPerFd)} B (gVisor's fsgofer: ${g ? fmtNum(g.bytesPerFd) : '-'} B), ${fmtNum(o.fds)} FDs`, hit: o.bytesPerFd <= TARGETS.bytesPerFd })
  }

  return { sections, targets }
}

// ---------------------------------------------------------------------------

function machine() {
  const read = (cmd, args) => {
    const r = spawnSync(cmd, args, { cwd: repo, encoding: 'utf8' })
    return r.status === 0 ? r.stdout.trim() : undefined
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: read('uname', ['-r']),
    node: process.version,
    go: read('go', ['version']),
    rustc: read('rustc', ['--version']),
    gitRev: read('git', ['rev-parse', '--short', 'HEAD']),
  }
}

async function main() {
  const started = new Date()
  const nodeBuild = env.BENCH_SKIP_BUILD === '1' ? 'skipped' : build()
  const t0 = Date.now()
  const loadBefore = loadavg()
  if (loadBefore[0] > cpus().length) log(`warning: load average ${loadBefore[0].toFixed(1)} on ${cpus().length} CPUs: other work is running, figures will be noisy`)
  const results = []
  const errors = []
  const goParts = ['rpc', 'rtt', 'floor', 'mem', 'backends'].filter((p) => cfg.parts.has(p))
  if (goParts.length > 0) {
    try {
      results.push(
        ...(await collect(
          bins.driver,
          [
            ...['--ours', bins.ours, '--gofer', bins.gofer, '--parts', goParts.join(','), '--rounds', String(cfg.rounds), '--round-ms', String(cfg.roundMs), '--rtt-round-ms', String(cfg.rttRoundMs), '--floor-round-ms', String(cfg.floorRoundMs), '--mem-fds', String(cfg.memFds)],
            ...['--node', process.execPath, '--node-serve', nodeServe],
          ],
          GO_BUDGET_MS + (cfg.parts.has('backends') ? BACKENDS_BUDGET_MS : 0),
        )),
      )
    } catch (err) {
      errors.push(`Go driver: ${err.message}`)
      log(err.message)
    }
  }
  if (cfg.parts.has('node')) {
    try {
      results.push(...(await collect(process.execPath, [join(benchDir, 'node.mjs'), '--serve', bins.ours, '--round-ms', String(cfg.nodeRoundMs), '--rounds', String(cfg.rounds)], NODE_BUDGET_MS)))
    } catch (err) {
      errors.push(`Node part: ${err.message}`)
      log(err.message)
    }
  }
  if (cfg.parts.has('rustrtt')) {
    if (existsSync(rustRttSource)) {
      try {
        results.push(...(await rustRtt()))
      } catch (err) {
        errors.push(`Rust client RTT: ${err.message}`)
        log(err.message)
      }
    } else {
      log(`no ${rustRttSource}: our Rust client's round trip is not measured`)
    }
  }
  const loadAfter = loadavg()
  const seconds = (Date.now() - t0) / 1000
  const { sections, targets } = aggregate(results)
  const mach = machine()
  const goMeta = results.find((r) => r.part === 'meta')

  // ---- console ----
  const out = []
  out.push('')
  out.push(`lisafs benchmarks — ${started.toISOString()} — ${mach.cpus} vCPUs (${mach.cpuModel}), kernel ${mach.kernel}, ${cfg.rounds} rounds per figure, measured in ${seconds.toFixed(0)} s, load average ${loadBefore[0].toFixed(1)} before / ${loadAfter[0].toFixed(1)} after`)
  for (const s of sections) {
    out.push('', s.title, textTable(s.headers, s.cells))
    if (s.note) out.push(s.note)
  }
  out.push('', 'Targets', textTable(['target', 'measured', 'result'], targets.map((t) => [t.target, t.measured, t.hit ? 'hit' : 'MISS'])))
  if (errors.length > 0) out.push('', 'ERRORS (the figures above are incomplete):', ...errors.map((e) => `  ${e}`))
  console.log(out.join('\n'))

  // ---- files ----
  const json = {
    generatedAt: started.toISOString(),
    measuredSeconds: seconds,
    machine: mach,
    loadAverage: { before: loadBefore, after: loadAfter },
    config: { ...cfg, parts: [...cfg.parts], quick, nodeBuild, goMaxProcs: goMeta?.gomaxprocs },
    targets: { thresholds: TARGETS, results: targets },
    tables: sections,
    errors,
    results,
  }
  mkdirSync(join(benchDir, 'results'), { recursive: true })
  writeFileSync(join(benchDir, 'results', 'latest.json'), JSON.stringify(json, null, 2) + '\n')
  log('wrote bench/results/latest.json')
  if (quick || errors.length > 0 || !ALL_PARTS.every((p) => cfg.parts.has(p))) {
    log('partial or quick run: bench/RESULTS.md left as it was')
  } else {
    writeFileSync(join(benchDir, 'RESULTS.md'), resultsMarkdown(started, seconds, mach, sections, targets, nodeBuild, loadBefore, loadAfter))
    log('wrote bench/RESULTS.md')
  }
  if (errors.length > 0) process.exitCode = 1
}

function resultsMarkdown(started, seconds, mach, sections, targets, nodeBuild, loadBefore, loadAfter) {
  const md = []
  md.push('# Benchmark results')
  md.push('')
  md.push(`Generated by \`npm run bench\` (\`bench/run.mjs\`) on ${started.toISOString().slice(0, 10)} at commit \`${mach.gitRev ?? '?'}\` (working tree as it was). What each row measures and how to read it: [README.md](README.md).`)
  md.push('')
  md.push(`Machine: ${mach.cpus} vCPUs (${mach.cpuModel}), ${mach.memGiB} GiB, Linux ${mach.kernel}; ${mach.node}, ${mach.go?.replace(/^go version /, '')}, ${mach.rustc}. ${cfg.rounds} rounds per figure (RPC rounds ${cfg.roundMs} ms, empty-RPC rounds ${cfg.rttRoundMs} ms, floor rounds ${cfg.floorRoundMs} ms, Node rounds ${cfg.nodeRoundMs} ms), medians reported; ${seconds.toFixed(0)} s of measuring; 1-minute load average ${loadBefore[0].toFixed(1)} before, ${loadAfter[0].toFixed(1)} after (the machine is shared: anything above ~0.5 means other work ran alongside). Node addon/dist: ${nodeBuild}.`)
  md.push('')
  md.push('## Targets')
  md.push('')
  md.push(mdTable(['target', 'measured', 'result'], targets.map((t) => [t.target, t.measured, t.hit ? 'hit' : '**miss**'])))
  for (const s of sections) {
    md.push('', `## ${s.title}`, '', mdTable(s.headers, s.cells))
    if (s.note) md.push('', s.note)
  }
  md.push('')
  return md.join('\n')
}

main().catch((err) => {
  console.error(`bench: ${err.stack ?? err}`)
  process.exit(1)
})
