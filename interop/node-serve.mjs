#!/usr/bin/env node
// node-serve: the Node.js twin of `lisafs-serve --fd N`, for the Go interop
// harness (server_harness_test.go, LISAFS_INTEROP_BACKEND=memory|policy-host).
//
//   node interop/node-serve.mjs --backend memory|policy-host|host --root DIR
//        (--fd N | --socket PATH) [--readonly] [--host-uds] [--view M] [--seed DIR]
//        [--hop-report FILE]
//
// It serves the one connection on the inherited socket N with the package's
// BackendServer (the built dist/, so run `npm run build` first) and, when the
// peer hangs up, prints one JSON report line and exits 0, exactly like
// lisafs-serve. The report has lisafs-serve's fields plus:
//   backend        which backend served
//   handles        backend objects (JS control/open/socket FD objects) the
//                  server still holds: 0 proves every one was released
//   pendingCalls   backend calls never settled
//   backendErrors  errors a backend threw that were not errno errors (each
//                  one answered EIO to the client: a backend bug)
//   events, deniedEvents  what the policy-host observer saw
//
// Backends:
//   memory       a MemoryBackend; --root is ignored. The harness sets up and
//                inspects the tree through the "view" socket M (one JSON
//                request per line, one JSON answer per line), the way it
//                reads and writes the host directory of a host backend.
//   policy-host  a HostBackend of --root under a Policy that allows every
//                class on `/` (so every operation is matched against a
//                rule), denies everything under /policy-denied (EACCES) and
//                makes /policy-ro read-only (EROFS), with an observer
//                counting every operation.
//   host         a plain HostBackend of --root (no policy, no observer).
//
// With --socket PATH (for the benchmarks, bench/README.md) it listens on
// PATH instead, prints `listening PATH` once ready, serves every connection
// and exits 0 on SIGTERM or SIGINT; --seed DIR then copies DIR's tree
// (directories, regular files, symlinks) into a memory backend first, and
// --hop-report FILE (memory backend) observes every operation and, at exit,
// writes to FILE per operation the time the server thread waited on the
// JavaScript bridge (the observer's durationNs: queueing the call to Node's
// thread, the dispatcher, the backend method, and the result back).
//
// This is a test peer, not a product entry point, so it lives next to the Go
// harness rather than in the CLI.
import { readdirSync, readFileSync, readlinkSync, statSync, writeFileSync, writeSync } from 'node:fs'
import net from 'node:net'
import { createInterface } from 'node:readline'

import { BackendServer, FileType, formatEvent, HostBackend, MemoryBackend, Policy } from '../dist/index.mjs'

function usage(msg) {
  process.stderr.write(`node-serve: ${msg}\n`)
  process.stderr.write('usage: node-serve.mjs --backend memory|policy-host|host --root DIR (--fd N | --socket PATH) [--readonly] [--host-uds] [--view M] [--seed DIR] [--hop-report FILE]\n')
  process.exit(2)
}

function parseArgs(argv) {
  const a = { backend: '', root: '', fd: -1, socket: '', seed: '', hopReport: '', view: -1, readonly: false, hostUds: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const next = () => {
      const v = argv[++i]
      if (v === undefined) usage(`${arg} needs a value`)
      return v
    }
    const int = (v) => {
      if (!/^\d+$/.test(v)) usage(`${arg}: not a number: ${v}`)
      return Number(v)
    }
    switch (arg) {
      case '--backend':
        a.backend = next()
        break
      case '--root':
        a.root = next()
        break
      case '--fd':
        a.fd = int(next())
        break
      case '--socket':
        a.socket = next()
        break
      case '--seed':
        a.seed = next()
        break
      case '--hop-report':
        a.hopReport = next()
        break
      case '--view':
        a.view = int(next())
        break
      case '--readonly':
        a.readonly = true
        break
      case '--host-uds':
        a.hostUds = true
        break
      default:
        usage(`unknown argument ${arg}`)
    }
  }
  if (!['memory', 'policy-host', 'host'].includes(a.backend)) usage('--backend must be memory, policy-host or host')
  if (a.root === '') usage('--root is required')
  if ((a.fd >= 0) === (a.socket !== '')) usage('exactly one of --fd and --socket is required')
  return a
}

/** Paths the policy of the policy-host backend protects (from the mount point). */
const POLICY_DENIED = '/policy-denied'
const POLICY_READ_ONLY = '/policy-ro'

function openFdCount() {
  return readdirSync('/proc/self/fd').length
}

const args = parseArgs(process.argv.slice(2))
let events = 0
let deniedEvents = 0
let backendErrors = 0

let backend
let memory
const options = { readonly: args.readonly }
if (args.backend === 'memory') {
  memory = new MemoryBackend()
  backend = memory
  if (args.seed !== '') seed(memory, args.seed, '')
  if (args.hopReport !== '') options.onOperation = hopObserver()
} else if (args.backend === 'host') {
  backend = new HostBackend({ root: args.root, hostUds: args.hostUds })
} else {
  backend = new HostBackend({ root: args.root, hostUds: args.hostUds })
  options.policy = new Policy({
    rules: [
      { path: '/', action: 'allow' },
      { path: POLICY_DENIED, action: 'deny' },
    ],
    readOnly: [POLICY_READ_ONLY],
  })
  options.onOperation = (ev) => {
    events++
    if (ev.denied) {
      deniedEvents++
      // The harness shows stderr when a test fails.
      process.stderr.write(`node-serve: denied: ${formatEvent(ev)}\n`)
    }
  }
}

let server
try {
  server = new BackendServer(backend, options)
} catch (err) {
  // lisafs-serve exits 1 when it cannot serve the root.
  process.stderr.write(`node-serve: cannot serve ${args.root}: ${err.message}\n`)
  process.exit(1)
}
server.on('error', (err) => {
  backendErrors++
  process.stderr.write(`node-serve: backend error: ${err.stack ?? err.message}\n`)
})

let view
if (args.view >= 0) {
  if (memory === undefined) usage('--view is only for --backend memory')
  view = serveView(memory, args.view)
}

if (args.socket !== '') {
  try {
    server.listen(args.socket)
  } catch (err) {
    process.stderr.write(`node-serve: cannot listen on ${args.socket}: ${err.message}\n`)
    process.exit(1)
  }
  const stop = () => {
    server.close().then(() => {
      if (args.hopReport !== '') writeFileSync(args.hopReport, `${JSON.stringify(hopSummary())}\n`)
      process.exit(0)
    })
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  writeSync(1, `listening ${args.socket}\n`)
} else {
  serveOne()
}

/** Serves the one connection on --fd and reports when it ends. */
function serveOne() {
  // Touch stdout first: its handle is created lazily and must not count as a
  // leak between the two counts.
  void process.stdout
  const before = openFdCount()
  try {
    server.attach(args.fd)
  } catch (err) {
    process.stderr.write(`node-serve: ${err.message}\n`)
    process.exit(1)
  }

  // BackendServer has no per-connection event; the connection counter drops
  // to 0 when the peer has hung up and the connection's FDs are destroyed.
  const poll = setInterval(() => {
    if (server.stats().connections !== 0) return
    clearInterval(poll)
    void finish(before)
  }, 5)
}

async function finish(before) {
  // The releases of the connection's backend objects are queued to this
  // thread before the counter drops; give the queued drain a chance to run.
  // The bound only matters when something leaked (the report then shows it).
  for (let i = 0; i < 400; i++) {
    const s = server.stats()
    if (s.handles === 0 && s.pendingCalls === 0) break
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const s = server.stats()
  // The connection's socket was closed with it (lisafs-serve counts the same).
  const after = openFdCount() + 1
  // Closing drains what is still queued for JavaScript (observer events).
  await server.close()
  const report = {
    // BackendServer does not say how a connection ended (lisafs-serve tells
    // a clean EOF from a truncated frame or an I/O error); it did end.
    end: 'closed',
    connections: s.connections,
    controlFds: s.controlFds,
    openFds: s.openFds,
    boundSocketFds: s.boundSocketFds,
    nodes: s.nodes,
    channelRequests: s.channelRequests,
    hostFdsBefore: before,
    hostFdsAfter: after,
    backend: args.backend,
    handles: s.handles,
    pendingCalls: s.pendingCalls,
    backendErrors,
    events,
    deniedEvents,
  }
  // Synchronously: the process exits right after.
  writeSync(1, `${JSON.stringify(report)}\n`)
  view?.destroy()
  process.exit(0)
}

const hopTimes = new Map()

/** An observer keeping every operation's durationNs, by operation. */
function hopObserver() {
  return (ev) => {
    let xs = hopTimes.get(ev.op)
    if (xs === undefined) hopTimes.set(ev.op, (xs = []))
    xs.push(ev.durationNs)
  }
}

/** Count, mean and percentiles (ns) of the durations per operation. */
function hopSummary() {
  const out = {}
  for (const [op, xs] of hopTimes) {
    xs.sort((a, b) => a - b)
    const at = (q) => xs[Math.min(xs.length - 1, Math.floor(xs.length * q))]
    out[op] = { n: xs.length, meanNs: xs.reduce((a, b) => a + b, 0) / xs.length, p50Ns: at(0.5), p90Ns: at(0.9), p99Ns: at(0.99) }
  }
  return out
}

/** Copies the host tree at `dir` into `fs` under `path` (for the benchmarks). */
function seed(fs, dir, path) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const host = `${dir}/${e.name}`
    const p = `${path}/${e.name}`
    if (e.isDirectory()) {
      fs.mkdir(p, statSync(host).mode)
      seed(fs, host, p)
    } else if (e.isFile()) {
      fs.writeFile(p, readFileSync(host), statSync(host).mode)
    } else if (e.isSymbolicLink()) {
      fs.symlink(readlinkSync(host), p)
    }
  }
}

// ---- the memory backend's out-of-band view ----

function statOf(fs, node) {
  const st = fs.statx(node)
  const ts = (t) => ({ sec: Number(t.sec), nsec: t.nsec })
  return {
    ino: Number(st.ino),
    mode: st.mode,
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    size: Number(st.size),
    blocks: Number(st.blocks),
    devMajor: st.devMajor,
    devMinor: st.devMinor,
    rdevMajor: st.rdevMajor,
    rdevMinor: st.rdevMinor,
    atime: ts(st.atime),
    mtime: ts(st.mtime),
    ctime: ts(st.ctime),
  }
}

function need(fs, path) {
  const n = fs.lookup(path)
  if (n === undefined) throw Object.assign(new Error(`no ${path}`), { code: 'ENOENT' })
  return n
}

/** Answers one view request; throws an error with an errno `code` to fail it. */
function viewOp(fs, req) {
  switch (req.op) {
    case 'mkdirp':
      fs.mkdir(req.path, req.mode)
      return {}
    case 'write':
      // Go's encoding/json omits an empty []byte.
      fs.writeFile(req.path, Buffer.from(req.data ?? '', 'base64'), req.mode)
      return {}
    case 'mksock': {
      // A socket node, as a listening host socket leaves one in a host directory.
      const parts = req.path.split('/')
      const name = Buffer.from(parts.pop())
      const dir = need(fs, parts.join('/'))
      fs.checkNewName(dir, name)
      fs.addEntry(dir, name, fs.newNode(FileType.S_IFSOCK | (req.mode & 0o7777), { uid: 0, gid: 0 }))
      return {}
    }
    case 'symlink':
      fs.symlink(req.target, req.path)
      return {}
    case 'lstat':
      return { stat: statOf(fs, need(fs, req.path)) }
    case 'read':
      return { data: fs.readFile(req.path).toString('base64') }
    case 'readlink': {
      const n = need(fs, req.path)
      if (!n.isSymbolicLink) throw Object.assign(new Error('not a symlink'), { code: 'EINVAL' })
      return { data: n.target.toString('base64') }
    }
    case 'setxattr':
      need(fs, req.path).xattrs.set(req.name, Buffer.from(req.value ?? '', 'base64'))
      return {}
    case 'getxattr': {
      const v = need(fs, req.path).xattrs.get(req.name)
      if (v === undefined) throw Object.assign(new Error('no xattr'), { code: 'ENODATA' })
      return { data: v.toString('base64') }
    }
    case 'statfs': {
      const s = fs.mount().file.statFs()
      return { statfs: Object.fromEntries(Object.entries(s).map(([k, v]) => [k, Number(v)])) }
    }
    default:
      throw Object.assign(new Error(`unknown view op ${String(req.op)}`), { code: 'EINVAL' })
  }
}

function serveView(fs, fd) {
  const sock = new net.Socket({ fd, readable: true, writable: true })
  // The view must not keep the process alive on its own.
  sock.unref()
  const lines = createInterface({ input: sock })
  lines.on('line', (line) => {
    let answer
    try {
      answer = { ok: true, ...viewOp(fs, JSON.parse(line)) }
    } catch (err) {
      answer = { ok: false, code: typeof err?.code === 'string' ? err.code : 'EIO', message: String(err?.message ?? err) }
    }
    sock.write(`${JSON.stringify(answer)}\n`)
  })
  sock.on('error', () => {})
  return sock
}
