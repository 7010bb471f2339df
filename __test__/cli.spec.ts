// The `lisafs` CLI as a child process: serve in a child, then every client
// command against it, with --json output parsed.
//
// The CLI is compiled once from src/ (tsc -p tsconfig.build.json --noCheck) into a temp
// tree shaped like the package (dist/ next to links to index.js and
// package.json), so the repository's dist/ is never touched and each spawn
// is a plain `node .../dist/cli.js` (tsx would cost ~0.5 s per spawn).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createRequire } from 'node:module'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import test, { type ExecutionContext } from 'ava'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..')
const build = mkdtempSync(join(tmpdir(), 'lisafs-cli-build-'))
const cli = join(build, 'dist', 'cli.js')
const version = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version

const baseEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' }
delete baseEnv['LISAFS_SOCKET']
delete baseEnv['NODE_OPTIONS']

test.before('compile the CLI', async (t) => {
  symlinkSync(join(repo, 'index.js'), join(build, 'index.js'))
  symlinkSync(join(repo, 'package.json'), join(build, 'package.json'))
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const result = await new Promise<{ err: Error | null; stdout: string }>((resolveTsc) =>
    execFile(process.execPath, [tsc, '-p', join(repo, 'tsconfig.build.json'), '--noCheck', '--outDir', join(build, 'dist')], { cwd: repo, timeout: 60_000 }, (err, stdout) =>
      resolveTsc({ err, stdout }),
    ),
  )
  // Emit only (--noCheck): type checking is `tsc --noEmit`'s job, and a type
  // error elsewhere in src/ must not hide the CLI's behaviour here.
  if (result.err !== null) t.log(`tsc reported errors:\n${result.stdout}`)
  if (!existsSync(cli)) throw new Error(`tsc did not emit ${cli}: ${result.stdout}`)
})

test.after.always('remove the compiled CLI', () => {
  rmSync(build, { recursive: true, force: true })
})

interface Result {
  code: number | null
  stdout: string
  stderr: string
  out: Buffer
}

interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  input?: Buffer | string
  timeout?: number
}

// At most this many CLI commands run at once: on a loaded machine a burst of
// Node processes would otherwise starve each other into the timeout.
const MAX_RUNNING = 4
let running = 0
const queued: Array<() => void> = []

async function slot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_RUNNING) await new Promise<void>((r) => queued.push(r))
  running++
  try {
    return await fn()
  } finally {
    running--
    queued.shift()?.()
  }
}

/** Runs the CLI to completion; killed (and failing) after `timeout` ms. */
function lisafs(args: string[], opts: RunOptions = {}): Promise<Result> {
  return slot(() => runCli(args, opts))
}

function runCli(args: string[], opts: RunOptions): Promise<Result> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: opts.cwd ?? repo,
      env: { ...baseEnv, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`lisafs ${args.join(' ')}: no exit within ${opts.timeout ?? 60_000} ms`))
    }, opts.timeout ?? 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      const stdout = Buffer.concat(out)
      resolveRun({ code, stdout: stdout.toString(), stderr: Buffer.concat(err).toString(), out: stdout })
    })
    child.stdin.end(opts.input ?? '')
  })
}

function show(r: Result): string {
  return `exit ${String(r.code)}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`
}

/** Asserts success and returns the parsed JSON on stdout. */
function json<T>(t: ExecutionContext, r: Result): T {
  t.is(r.code, 0, show(r))
  return JSON.parse(r.stdout) as T
}

function noStack(t: ExecutionContext, r: Result): void {
  t.notRegex(r.stderr, /\n\s+at .*[(:]\d+/, 'no stack trace for an expected error')
}

interface LogEvent {
  event: string
  level: string
  [field: string]: unknown
}

interface Served {
  dir: string
  root: string
  socket: string
  child: ChildProcess
  events: LogEvent[]
  stderr: () => string
  /** Resolves with the first event (seen or to come) matching `pred`. */
  waitFor: (pred: (e: LogEvent) => boolean, what: string, timeout?: number) => Promise<LogEvent>
  /** Resolves with the first event named `name`. */
  next: (name: string, timeout?: number) => Promise<LogEvent>
  exit: Promise<number | null>
}

/**
 * Starts `lisafs serve <root> --socket <socket> --log-format json ...extra`
 * on a fresh temp tree and waits for its `listening` event. The child and the
 * tree are removed when the test ends, whatever happens.
 */
async function serve(t: ExecutionContext, extra: string[] = [], opts: { dir?: string; args?: string[] } = {}): Promise<Served> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'lisafs-cli-'))
  const root = join(dir, 'root')
  const socket = join(dir, 's.sock')
  if (opts.dir === undefined) {
    mkdirSync(join(root, 'sub', 'deeper'), { recursive: true })
    writeFileSync(join(root, 'hello.txt'), 'hello\n')
    writeFileSync(join(root, 'sub', 'data.bin'), Buffer.from([0, 1, 2, 255, 254, 10, 13]))
    writeFileSync(join(root, 'sub', 'deeper', 'x.txt'), 'x')
    symlinkSync('hello.txt', join(root, 'link'))
  }
  const args = opts.args ?? ['serve', root, '--socket', socket, '--log-format', 'json', ...extra]
  const child = spawn(process.execPath, [cli, ...args], { cwd: dir, env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  const exit = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)))
  const events: LogEvent[] = []
  const waiters: Array<{ pred: (e: LogEvent) => boolean; resolve: (e: LogEvent) => void }> = []
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let e: LogEvent
    try {
      e = JSON.parse(line) as LogEvent
    } catch {
      e = { event: 'text', level: 'info', line }
    }
    events.push(e)
    for (const w of waiters.filter((w) => w.pred(e))) {
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve(e)
    }
  })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    if (opts.dir === undefined) rmSync(dir, { recursive: true, force: true })
  })
  const waitFor = (pred: (e: LogEvent) => boolean, what: string, timeout = 60_000): Promise<LogEvent> => {
    const seen = events.find(pred)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolveEvent, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeout} ms; stderr: ${stderr}`)), timeout)
      waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer)
          resolveEvent(e)
        },
      })
      void exit.then((code) => {
        clearTimeout(timer)
        reject(new Error(`serve exited (${String(code)}) before ${what}; stderr: ${stderr}`))
      })
    })
  }
  const next = (name: string, timeout?: number): Promise<LogEvent> => waitFor((e) => e.event === name, `'${name}' event`, timeout)
  return { dir, root, socket, child, events, stderr: () => stderr, waitFor, next, exit }
}

// ---------------------------------------------------------------------------

test('the compiled CLI keeps its shebang', (t) => {
  t.true(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n'))
})

test('--version prints the package version; --help and <cmd> --help exit 0', async (t) => {
  const v = await lisafs(['--version'])
  t.is(v.code, 0, show(v))
  t.is(v.stdout, `${version}\n`)
  const h = await lisafs(['--help'])
  t.is(h.code, 0)
  t.regex(h.stdout, /^usage: lisafs <command>/)
  for (const cmd of ['serve', 'ls', 'stat', 'cat', 'get', 'put', 'tree', 'rm', 'mkdir']) t.true(h.stdout.includes(`  ${cmd} `), cmd)
  const ls = await lisafs(['ls', '--help'])
  t.is(ls.code, 0)
  t.regex(ls.stdout, /^usage: lisafs ls \[-l\]/)
  const serveHelp = await lisafs(['help', 'serve'])
  t.is(serveHelp.code, 0)
  t.regex(serveHelp.stdout, /--force/)
})

test('bad usage: a message and the usage on stderr, exit 2', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[], /^lisafs: missing command\n[\s\S]*usage: lisafs <command>/],
    [['frobnicate'], /^lisafs: unknown command 'frobnicate'\n[\s\S]*usage: lisafs <command>/],
    [['ls', '--bogus'], /^lisafs: ls: Unknown option '--bogus'[\s\S]*\nusage: lisafs ls /],
    [['get', '/only-one'], /^lisafs: get: expected <remote> <local>\nusage: lisafs get <remote> <local>/],
    [['cat'], /^lisafs: cat: missing path\nusage: lisafs cat/],
    [['serve', '--log-format', 'xml'], /^lisafs: serve: --log-format must be text or json/],
    [['serve', '--stats', '-3'], /^lisafs: serve: /],
    [['mkdir', '-p'], /^lisafs: mkdir: missing path/],
  ]
  await Promise.all(
    cases.map(async ([args, re]) => {
      const r = await lisafs(args)
      t.is(r.code, 2, `${args.join(' ')}: ${show(r)}`)
      t.regex(r.stderr, re, args.join(' '))
      t.is(r.stdout, '', args.join(' '))
      noStack(t, r)
    }),
  )
})

test('a missing socket or a refused connection: "cannot connect", exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const missing = join(dir, 'none.sock')
  const r = await lisafs(['ls', '--socket', missing, '/'])
  t.is(r.code, 1, show(r))
  t.true(r.stderr.startsWith(`lisafs: cannot connect to ${missing}: ENOENT`), r.stderr)
  noStack(t, r)
  // The default socket is ./lisafs.sock, or $LISAFS_SOCKET.
  const dflt = await lisafs(['stat', '/'], { cwd: dir })
  t.is(dflt.code, 1)
  t.true(dflt.stderr.startsWith('lisafs: cannot connect to ./lisafs.sock: ENOENT'), dflt.stderr)
  const fromEnv = await lisafs(['cat', '/x'], { env: { LISAFS_SOCKET: missing } })
  t.true(fromEnv.stderr.startsWith(`lisafs: cannot connect to ${missing}: ENOENT`), fromEnv.stderr)
  // Not a socket: the connection is refused.
  const notSocket = join(dir, 'file')
  writeFileSync(notSocket, '')
  const refused = await lisafs(['tree', '--socket', notSocket])
  t.is(refused.code, 1)
  t.true(refused.stderr.startsWith(`lisafs: cannot connect to ${notSocket}: ECONNREFUSED`), refused.stderr)
  noStack(t, refused)
  // A path too long for a Unix socket is named as such (not the kernel's EIO/EINVAL).
  const long = join(dir, 'x'.repeat(120))
  const tooLong = await lisafs(['ls', '--socket', long])
  t.is(tooLong.code, 1)
  t.true(tooLong.stderr.startsWith(`lisafs: cannot connect to ${long}: ENAMETOOLONG`), tooLong.stderr)
})

test('ls, stat, cat and tree with --json', async (t) => {
  const s = await serve(t)
  const at = ['--socket', s.socket, '--json']

  const ls = json<Array<{ name: string; path: string; type: string }>>(t, await lisafs(['ls', ...at]))
  t.deepEqual(ls, [
    { name: 'hello.txt', path: '/hello.txt', type: 'file' },
    { name: 'link', path: '/link', type: 'symlink' },
    { name: 'sub', path: '/sub', type: 'directory' },
  ])
  const long = json<Array<{ name: string; mode: string; size: number; target?: string; mtime: string }>>(t, await lisafs(['ls', '-l', ...at, 'sub', '/link']))
  t.deepEqual(
    long.map((e) => [e.name, e.size, e.target]),
    [
      ['data.bin', 7, undefined],
      ['deeper', long[1]?.size, undefined],
      ['link', 9, 'hello.txt'],
    ],
  )
  t.regex(long[0]?.mode ?? '', /^0[0-7]{3}$/)
  t.false(Number.isNaN(Date.parse(long[0]?.mtime ?? '')))
  const text = await lisafs(['ls', '--socket', s.socket, '/sub'])
  t.is(text.stdout, 'data.bin\ndeeper\n')

  const st = json<{ path: string; type: string; size: number; mode: string; nlink: number }>(t, await lisafs(['stat', ...at, '/sub/data.bin']))
  t.like(st, { path: '/sub/data.bin', type: 'file', size: 7 })
  const lst = json<{ type: string }>(t, await lisafs(['stat', ...at, 'link']))
  t.is(lst.type, 'symlink', 'stat does not follow a symlink')
  const two = json<Array<{ type: string }>>(t, await lisafs(['stat', ...at, '/', '/sub']))
  t.deepEqual(
    two.map((x) => x.type),
    ['directory', 'directory'],
  )

  const cat = await lisafs(['cat', '--socket', s.socket, '/sub/data.bin', 'hello.txt'])
  t.is(cat.code, 0, show(cat))
  t.deepEqual(cat.out, Buffer.concat([Buffer.from([0, 1, 2, 255, 254, 10, 13]), Buffer.from('hello\n')]))
  const catJson = json<{ encoding: string; data: string }>(t, await lisafs(['cat', ...at, '/sub/data.bin']))
  t.is(catJson.encoding, 'base64')
  t.deepEqual(Buffer.from(catJson.data, 'base64'), Buffer.from([0, 1, 2, 255, 254, 10, 13]))
  t.like(json(t, await lisafs(['cat', ...at, '/link'])), { encoding: 'utf8', data: 'hello\n', size: 6 })

  interface Node {
    name: string
    type: string
    target?: string
    children?: Node[]
  }
  const tree = json<Node>(t, await lisafs(['tree', ...at]))
  const strip = (n: Node): unknown => [n.name, n.type, ...(n.target === undefined ? [] : [n.target]), ...(n.children === undefined ? [] : [n.children.map(strip)])]
  t.deepEqual(strip(tree), [
    '/',
    'directory',
    [
      ['hello.txt', 'file'],
      ['link', 'symlink', 'hello.txt'],
      ['sub', 'directory', [['data.bin', 'file'], ['deeper', 'directory', [['x.txt', 'file']]]]],
    ],
  ])
  const treeText = await lisafs(['tree', '--socket', s.socket, '/sub'])
  t.is(treeText.stdout, '/sub\n├── data.bin\n└── deeper/\n    └── x.txt\n\n1 directory, 2 files\n')

  // `dirlink` is the symlink itself, `dirlink/` the directory it points to.
  symlinkSync('sub', join(s.root, 'dirlink'))
  t.is((await lisafs(['ls', '--socket', s.socket, '/dirlink'])).stdout, '/dirlink\n')
  t.is((await lisafs(['ls', '--socket', s.socket, '/dirlink/'])).stdout, 'data.bin\ndeeper\n')
})

test('get and put stream whole files, to and from directories and stdio', async (t) => {
  const s = await serve(t)
  const at = ['--socket', s.socket, '--json']
  const big = Buffer.alloc(3 * 1024 * 1024 + 17)
  for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff
  const local = join(s.dir, 'big.bin')
  writeFileSync(local, big)

  const put = json<{ destination: string; bytes: number }>(t, await lisafs(['put', ...at, local, '/big.bin']))
  t.deepEqual(put, { source: local, destination: '/big.bin', bytes: big.length })
  t.deepEqual(readFileSync(join(s.root, 'big.bin')), big)
  t.like(json(t, await lisafs(['put', ...at, local, '/sub'])), { destination: '/sub/big.bin' })
  t.true(existsSync(join(s.root, 'sub', 'big.bin')))
  t.like(json(t, await lisafs(['put', ...at, '-', '/from-stdin.txt'], { input: 'piped\n' })), { bytes: 6 })
  t.is(readFileSync(join(s.root, 'from-stdin.txt'), 'utf8'), 'piped\n')

  const back = join(s.dir, 'back.bin')
  t.like(json(t, await lisafs(['get', ...at, '/big.bin', back])), { source: '/big.bin', destination: back, bytes: big.length })
  t.deepEqual(readFileSync(back), big)
  mkdirSync(join(s.dir, 'into'))
  t.like(json(t, await lisafs(['get', ...at, '/hello.txt', join(s.dir, 'into')])), { destination: join(s.dir, 'into', 'hello.txt') })
  t.is(readFileSync(join(s.dir, 'into', 'hello.txt'), 'utf8'), 'hello\n')
  const toStdout = await lisafs(['get', '--socket', s.socket, '/hello.txt', '-'])
  t.is(toStdout.stdout, 'hello\n')
  t.is(toStdout.stderr, '', 'no progress when stderr is not a TTY')

  const missing = await lisafs(['get', '--socket', s.socket, '/nope.bin', join(s.dir, 'nope.bin')])
  t.is(missing.code, 1)
  t.is(missing.stderr, 'lisafs: get: ENOENT: /nope.bin (no such file or directory)\n')
  t.false(existsSync(join(s.dir, 'nope.bin')), 'no local file is left behind')
  const dir = await lisafs(['get', '--socket', s.socket, '/sub', join(s.dir, 'x')])
  t.is(dir.code, 1)
  t.regex(dir.stderr, /^lisafs: get: EISDIR: \/sub/)
  const noLocal = await lisafs(['put', '--socket', s.socket, join(s.dir, 'absent'), '/x'])
  t.is(noLocal.code, 1)
  t.regex(noLocal.stderr, /^lisafs: put: ENOENT: .*absent/)
  noStack(t, noLocal)
})

test('mkdir [-p] and rm [-r] [-f], and server errors with their errno name', async (t) => {
  const s = await serve(t)
  const at = ['--socket', s.socket, '--json']
  const noParent = await lisafs(['mkdir', ...at, '/a/b/c'])
  t.is(noParent.code, 1)
  t.is(noParent.stderr, 'lisafs: mkdir: ENOENT: /a/b/c (no such file or directory)\n')
  t.deepEqual(json(t, await lisafs(['mkdir', '-p', ...at, '/a/b/c', 'a/d'])), { created: ['/a/b/c', '/a/d'] })
  t.true(existsSync(join(s.root, 'a', 'b', 'c')))
  t.deepEqual(json(t, await lisafs(['mkdir', '-p', ...at, '/a/b'])), { created: ['/a/b'] }, 'an existing directory is fine with -p')
  const exists = await lisafs(['mkdir', ...at, '/a'])
  t.is(exists.code, 1)
  t.regex(exists.stderr, /^lisafs: mkdir: EEXIST: \/a /)

  const notRecursive = await lisafs(['rm', ...at, '/a'])
  t.is(notRecursive.code, 1)
  t.regex(notRecursive.stderr, /^lisafs: rm: EISDIR: \/a/)
  noStack(t, notRecursive)
  t.deepEqual(json(t, await lisafs(['rm', '-r', ...at, '/a', '/hello.txt'])), { removed: ['/a', '/hello.txt'] })
  t.false(existsSync(join(s.root, 'a')))
  t.false(existsSync(join(s.root, 'hello.txt')))
  t.true(existsSync(join(s.root, 'sub')))

  const gone = await lisafs(['rm', ...at, '/nope'])
  t.is(gone.code, 1)
  t.is(gone.stderr, 'lisafs: rm: ENOENT: /nope (no such file or directory)\n')
  t.deepEqual(json(t, await lisafs(['rm', '-f', ...at, '/nope'])), { removed: [] })
  const root = await lisafs(['rm', '-rf', ...at, '/'])
  t.is(root.code, 1)
  t.regex(root.stderr, /^lisafs: rm: EBUSY: \//)
  t.true(existsSync(join(s.root, 'sub')))

  // Several operands: the good ones are done, the bad ones reported, exit 1.
  const partial = await lisafs(['stat', ...at, '/sub', '/nope'])
  t.is(partial.code, 1)
  t.is(partial.stderr, 'lisafs: stat: ENOENT: /nope (no such file or directory)\n')
  t.is((JSON.parse(partial.stdout) as unknown[]).length, 1)
  const cat = await lisafs(['cat', '--socket', s.socket, '/nope'])
  t.is(cat.code, 1)
  t.is(cat.stderr, 'lisafs: cat: ENOENT: /nope (no such file or directory)\n')
  const notDir = await lisafs(['ls', '--socket', s.socket, '/sub/data.bin/x'])
  t.is(notDir.code, 1)
  t.regex(notDir.stderr, /^lisafs: ls: ENOTDIR: \/sub\/data.bin\/x/)
})

test('serve --readonly refuses changes with EROFS', async (t) => {
  const s = await serve(t, ['--readonly'])
  t.like(await s.next('listening'), { readonly: true })
  const r = await lisafs(['put', '--socket', s.socket, '-', '/new.txt'], { input: 'x' })
  t.is(r.code, 1)
  t.regex(r.stderr, /^lisafs: put: EROFS: \/new.txt/)
  const m = await lisafs(['mkdir', '--socket', s.socket, '/d'])
  t.regex(m.stderr, /^lisafs: mkdir: EROFS: \/d/)
  t.is((await lisafs(['cat', '--socket', s.socket, '/hello.txt'])).stdout, 'hello\n')
})

test('serve logs JSON events, prints --stats, and SIGTERM closes it: exit 0, socket removed', async (t) => {
  const s = await serve(t, ['--stats', '1'])
  const listening = await s.next('listening')
  t.like(listening, { level: 'info', socket: s.socket, root: s.root, readonly: false, hostUds: false })
  t.is(listening['hint'], `lisafs ls --socket ${s.socket} /`)
  t.true(existsSync(s.socket))
  const stats = await s.next('stats', 30_000)
  t.deepEqual(Object.keys(stats['stats'] as object).sort(), ['boundSocketFds', 'connections', 'controlFds', 'nodes', 'openFds'])
  s.child.kill('SIGTERM')
  t.is(await s.exit, 0, s.stderr())
  t.false(existsSync(s.socket), 'socket file removed')
  const names = s.events.map((e) => e.event).filter((e) => e !== 'stats')
  t.deepEqual(names, ['listening', 'closing', 'closed'])
  t.like(s.events.find((e) => e.event === 'closing'), { signal: 'SIGTERM' })
  t.is(s.stderr(), '')
})

test('serve with no arguments serves . on ./lisafs.sock, prints how to list it, and stops on SIGINT', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'here.txt'), 'here')
  const s = await serve(t, [], { dir, args: ['serve'] })
  const first = await s.next('text')
  t.regex(String(first['line']), new RegExp(`^serving ${dir} on \\./lisafs\\.sock \\(read-write\\)`))
  await s.waitFor((e) => e['line'] === 'list it with: lisafs ls --socket ./lisafs.sock /', 'the ls hint')
  const ls = await lisafs(['ls'], { cwd: dir })
  t.is(ls.code, 0, show(ls))
  t.is(ls.stdout, 'here.txt\nlisafs.sock\n')
  s.child.kill('SIGINT')
  t.is(await s.exit, 0, s.stderr())
  t.false(existsSync(join(dir, 'lisafs.sock')))
})

test('serve refuses an existing socket path; --force replaces only a stale socket', async (t) => {
  const a = await serve(t)
  await a.next('listening')
  const again = await lisafs(['serve', a.root, '--socket', a.socket])
  t.is(again.code, 1)
  t.regex(again.stderr, /^lisafs: serve: .*s\.sock already exists .*--force/)
  noStack(t, again)
  const live = await lisafs(['serve', a.root, '--socket', a.socket, '--force'])
  t.is(live.code, 1)
  t.regex(live.stderr, /^lisafs: serve: a server is listening on .*; refusing to replace it/)
  const notSocket = join(a.dir, 'plain')
  writeFileSync(notSocket, 'keep me')
  const plain = await lisafs(['serve', a.root, '--socket', notSocket, '--force'])
  t.is(plain.code, 1)
  t.is(readFileSync(notSocket, 'utf8'), 'keep me')

  // A crashed server leaves its socket file behind: --force replaces it.
  a.child.kill('SIGKILL')
  await a.exit
  t.true(existsSync(a.socket))
  const b = await serve(t, ['--force'], { dir: a.dir })
  t.like(await b.next('stale-socket'), { level: 'warn' })
  await b.next('listening')
  t.is((await lisafs(['cat', '--socket', a.socket, '/hello.txt'])).stdout, 'hello\n')
  b.child.kill('SIGTERM')
  t.is(await b.exit, 0)
  t.false(existsSync(a.socket))
})

test('serve: a missing directory is an error event and exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const text = await lisafs(['serve', join(dir, 'absent'), '--socket', join(dir, 's.sock')])
  t.is(text.code, 1)
  t.is(text.stderr, `lisafs: serve: ENOENT: ${join(dir, 'absent')} (no such file or directory)\n`)
  const asJson = await lisafs(['serve', join(dir, 'absent'), '--socket', join(dir, 's.sock'), '--log-format', 'json'])
  t.is(asJson.code, 1)
  t.like(JSON.parse(asJson.stdout), { level: 'error', event: 'error', code: 'ENOENT' })
  t.false(existsSync(join(dir, 's.sock')))
})
