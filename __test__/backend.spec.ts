import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

import test, { type ExecutionContext } from 'ava'

import {
  AuditLog,
  BackendServer,
  backendError,
  connect,
  createFs,
  Flags,
  HostBackend,
  LisafsError,
  MemoryBackend,
  type Backend,
  type BackendServerOptions,
  type Client,
  type ControlFdImpl,
  type LisafsFs,
  type NewControl,
  type OpenFdImpl,
  type StatInput,
} from '../src/index.js'

const REPO = resolve(import.meta.dirname, '..')

interface Served {
  dir: string
  sock: string
  server: BackendServer
  client: Client
  fs: LisafsFs
  errors: Error[]
}

/** A server of `backend` on a fresh socket, a connected client and its fs view. */
async function serve(t: ExecutionContext, backend: Backend | HostBackend, options: BackendServerOptions = {}): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-backend-'))
  const sock = join(dir, 's.sock')
  const server = new BackendServer(backend, options)
  const errors: Error[] = []
  server.on('error', (err) => errors.push(err))
  server.listen(sock)
  let client: Client | undefined
  t.teardown(async () => {
    await client?.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  client = await connect(sock)
  return { dir, sock, server, client, fs: createFs(client), errors }
}

const DIR: StatInput = { mode: 0o040755, ino: 1n, nlink: 2 }
const FILE: StatInput = { mode: 0o100644, ino: 2n, size: 5n }

/** A root directory whose `walk` is `walk` and which has one file `f`. */
function rootWith(overrides: Partial<ControlFdImpl>, file: ControlFdImpl = { stat: () => FILE }): Backend {
  const root: ControlFdImpl = {
    stat: () => DIR,
    walk: (name) => {
      if (name.toString() === 'f') return { file, stat: FILE }
      throw backendError('ENOENT')
    },
    ...overrides,
  }
  return { mount: () => ({ file: root, stat: DIR }) }
}

/** Asserts that `p` rejects with a LisafsError of `errno` (for errnos Node has no name for). */
async function rejectsErrno(t: ExecutionContext, p: Promise<unknown>, errno: number): Promise<void> {
  const err = await t.throwsAsync(p)
  t.is((err as { errno?: number } | undefined)?.errno, -errno)
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
}

test('an error with an errno code answers that errno, and is not reported', async (t) => {
  const { client, errors } = await serve(
    t,
    rootWith({
      walk: (name) => {
        if (name.toString() === 'acc') throw backendError('EACCES')
        if (name.toString() === 'node') throw Object.assign(new Error('like node:fs'), { code: 'ENOTDIR', errno: -20 })
        throw backendError('ENOENT')
      },
      mkdir: async () => {
        await new Promise((r) => setTimeout(r, 5))
        throw backendError('EDQUOT', 'over quota')
      },
    }),
  )
  const root = client.mount()
  await t.throwsAsync(root.walk('acc'), { instanceOf: LisafsError, code: 'EACCES' })
  await t.throwsAsync(root.walk('node'), { code: 'ENOTDIR' })
  t.is((await root.walk('missing')).status, 'ComponentDoesNotExist')
  // Node has no name for EDQUOT (122): the client reports 'E122'.
  await rejectsErrno(t, root.mkdirAt('d'), 122)
  await settle()
  t.deepEqual(errors, [])
})

test('a plain throw, a non-Error throw and a rejection answer EIO and are reported on "error"', async (t) => {
  const { client, errors } = await serve(
    t,
    rootWith({
      walk: (name) => {
        if (name.toString() === 'str') throw 'a string' as unknown as Error
        throw new TypeError('backend bug')
      },
      mkdir: () => Promise.reject(new RangeError('async bug')),
      statFs: async () => {
        throw new Error('later')
      },
    }),
  )
  const root = client.mount()
  await t.throwsAsync(root.walk('x'), { code: 'EIO' })
  await t.throwsAsync(root.walk('str'), { code: 'EIO' })
  await t.throwsAsync(root.mkdirAt('d'), { code: 'EIO' })
  await t.throwsAsync(root.statFs(), { code: 'EIO' })
  await settle()
  t.deepEqual(
    errors.map((e) => e.message),
    ['backend bug', 'backend walk threw a non-error: a string', 'async bug', 'later'],
  )
  t.true(errors[0] instanceof TypeError)
  // The connection is still usable.
  t.is((await root.stat()).mode, 0o040755)
})

test('a malformed result answers EIO and reports a TypeError', async (t) => {
  const { client, errors } = await serve(
    t,
    rootWith({
      stat: () => ({ mode: 0o040755, size: -1n }),
      walk: () => ({ file: {}, stat: { mode: 0o100644, ino: 1.5 } }),
      statFs: () => ({ blocks: 2n ** 70n }),
    }),
  )
  const root = client.mount()
  await t.throwsAsync(root.stat(), { code: 'EIO' })
  await t.throwsAsync(root.walk('f'), { code: 'EIO' })
  await t.throwsAsync(root.statFs(), { code: 'EIO' })
  await settle()
  t.is(errors.length, 3)
  t.regex(errors[0]?.message ?? '', /stat\.size/)
  t.regex(errors[1]?.message ?? '', /stat\.ino/)
  t.regex(errors[2]?.message ?? '', /statFs\.blocks/)
})

test('a result the server cannot read at all answers EIO and leaks no handle', async (t) => {
  let released = 0
  const { client, errors, server } = await serve(
    t,
    rootWith({
      walk: (name) => {
        const file: ControlFdImpl = { release: () => released++ }
        if (name.toString() === 'nofile') return undefined as unknown as NewControl
        return { file, stat: { mode: 'not a number' as unknown as number } }
      },
      open: () => null as unknown as OpenFdImpl,
    }),
  )
  const root = client.mount()
  await t.throwsAsync(root.walk('f'), { code: 'EIO' })
  await t.throwsAsync(root.walk('nofile'), { code: 'EIO' })
  await t.throwsAsync(root.openAt(), { code: 'EIO' })
  await settle()
  t.is(errors.length, 3)
  t.is(released, 1)
  t.is(server.stats().handles, 1)
})

test('without an "error" listener, backend errors become warnings, not crashes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-backend-'))
  const server = new BackendServer(rootWith({ walk: () => Promise.reject(new Error('unheard')) }))
  server.listen(join(dir, 's.sock'))
  const warnings: Error[] = []
  const onWarning = (w: Error): void => {
    warnings.push(w)
  }
  process.on('warning', onWarning)
  const client = await connect(join(dir, 's.sock'))
  await t.throwsAsync(client.mount().walk('x'), { code: 'EIO' })
  await new Promise((r) => setTimeout(r, 20))
  process.off('warning', onWarning)
  await client.close()
  await server.close()
  rmSync(dir, { recursive: true, force: true })
  t.true(warnings.some((w) => /unheard/.test(w.message)))
})

test('missing methods answer ENOSYS (EOPNOTSUPP for xattrs); flush defaults to success', async (t) => {
  const file: ControlFdImpl = { stat: () => FILE, open: () => ({}) }
  const { client, errors } = await serve(t, rootWith({}, file))
  const root = client.mount()
  await t.throwsAsync(root.mkdirAt('d'), { code: 'ENOSYS' })
  await t.throwsAsync(root.openCreateAt('n', 0o644), { code: 'ENOSYS' })
  await t.throwsAsync(root.symlinkAt('s', 't'), { code: 'ENOSYS' })
  await t.throwsAsync(root.unlinkAt('f'), { code: 'ENOSYS' })
  await t.throwsAsync(root.renameAt('f', root, 'g'), { code: 'ENOSYS' })
  await t.throwsAsync(root.statFs(), { code: 'ENOSYS' })
  await t.throwsAsync(root.openAt(), { code: 'ENOSYS' })
  await rejectsErrno(t, root.getXattr('user.a'), 95)
  await rejectsErrno(t, root.setXattr('user.a', 'v'), 95)
  await rejectsErrno(t, root.listXattr(), 95)
  await rejectsErrno(t, root.removeXattr('user.a'), 95)
  t.like(await root.setStat({ mode: 0o700 }), { failureMask: 0x2, failureErrno: 38 })
  const { fds } = await root.walk('f')
  const f = fds[0]
  if (f === undefined) return t.fail()
  await t.throwsAsync(root.linkAt(f, 'l'), { code: 'ENOSYS' })
  const open = await f.openAt(Flags.O_RDWR)
  t.is(open.hostFd, undefined, 'a JS backend donates no host FD')
  await t.throwsAsync(open.read(10), { code: 'ENOSYS' })
  await t.throwsAsync(open.write('x'), { code: 'ENOSYS' })
  await t.throwsAsync(open.stat(), { code: 'ENOSYS' })
  await t.throwsAsync(open.sync(), { code: 'ENOSYS' })
  await t.throwsAsync(open.allocate(0, 10), { code: 'ENOSYS' })
  await open.flush()
  await open.close()
  await f.close()
  await settle()
  t.deepEqual(errors, [])
})

test('walkStat without a walkStat method walks, stats and releases what it walked', async (t) => {
  let live = 0
  let released = 0
  const node = (stat: StatInput, children: Record<string, StatInput> = {}): NewControl => {
    live++
    const file: ControlFdImpl = {
      stat: () => stat,
      walk: (name) => {
        const child = children[name.toString()]
        if (child === undefined) throw backendError('ENOENT')
        return node(child, child.mode === DIR.mode ? { leaf: FILE } : {})
      },
      release: () => {
        live--
        released++
      },
    }
    return { file, stat }
  }
  const backend: Backend = { mount: () => node(DIR, { sub: DIR }) }
  const { client, server, fs } = await serve(t, backend)
  const stats = await client.mount().walkStat(['', 'sub', 'leaf', 'nope'])
  t.deepEqual(
    stats.map((s) => s.mode),
    [DIR.mode, DIR.mode, FILE.mode],
  )
  t.true((await fs.stat('/sub/leaf')).isFile())
  await settle()
  t.is(live, 1, 'only the mount point is still held')
  t.true(released >= 4)
  t.is(server.stats().handles, 1)
})

test('async backends work, and handles are released when clients close FDs or disconnect', async (t) => {
  const delay = (): Promise<void> => new Promise((r) => setTimeout(r, 1))
  let releases = 0
  const mk = (stat: StatInput): ControlFdImpl => ({
    stat: async () => {
      await delay()
      return stat
    },
    walk: async (name) => {
      await delay()
      if (name.toString() !== 'f') throw backendError('ENOENT')
      return { file: mk(FILE), stat: FILE }
    },
    open: async () => {
      await delay()
      const o: OpenFdImpl = {
        read: async (length, offset) => Buffer.from('hello').subarray(Number(offset), Number(offset) + length),
        release: () => releases++,
      }
      return o
    },
    release: () => releases++,
  })
  const { client, server, fs, sock } = await serve(t, { mount: async () => ({ file: mk(DIR), stat: DIR }) })
  t.is(await fs.readFile('/f', 'utf8'), 'hello')
  await settle()
  t.is(server.stats().handles, 1)
  t.is(releases, 2, 'the walked control FD and the open FD')
  // Another client that leaves without closing anything.
  const other = await connect(sock)
  const { fds } = await other.mount().walk('f')
  t.is(fds.length, 1)
  await fds[0]?.openAt()
  t.is(server.stats().handles, 4)
  await other.close()
  for (let i = 0; i < 100 && server.stats().handles !== 1; i++) await new Promise((r) => setTimeout(r, 10))
  t.is(server.stats().handles, 1)
  t.is(server.stats().connections, 1)
  t.is(client.mount().path, '/')
})

test('operationTimeoutMs fails a call that never settles with EIO', async (t) => {
  const { client } = await serve(t, rootWith({ statFs: () => new Promise<never>(() => {}) }), { operationTimeoutMs: 1000 })
  const started = Date.now()
  await t.throwsAsync(client.mount().statFs(), { code: 'EIO' })
  t.true(Date.now() - started < 5000)
  t.is((await client.mount().stat()).mode, DIR.mode)
})

test('close() fails calls that never settle after the grace period', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-backend-'))
  const server = new BackendServer(rootWith({ statFs: () => new Promise<never>(() => {}) }), { closeGraceMs: 150 })
  server.listen(join(dir, 's.sock'))
  const client = await connect(join(dir, 's.sock'))
  const stuck = client.mount().statFs()
  stuck.catch(() => {})
  await new Promise((r) => setTimeout(r, 50))
  t.is(server.stats().pendingCalls, 1)
  const started = Date.now()
  await server.close()
  const took = Date.now() - started
  t.true(took >= 100 && took < 5000, `close took ${took} ms`)
  const err = await t.throwsAsync(stuck)
  t.true(err instanceof LisafsError)
  t.is(server.stats().pendingCalls, 0)
  t.is(server.stats().handles, 0)
  await server.close()
  await client.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Runs `body` (an ES module) in a child Node with tsx; resolves with its exit code, or 'timeout'. */
function runChild(body: string, timeoutMs: number): Promise<{ code: number | 'timeout'; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-child-'))
  const script = join(dir, 'child.mts')
  writeFileSync(script, body.replaceAll('@SRC@', join(REPO, 'src', 'index.ts')).replaceAll('@DIR@', dir))
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import=tsx', script], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      rmSync(dir, { recursive: true, force: true })
      done({ code: signal === 'SIGKILL' ? 'timeout' : (code ?? -1), stdout, stderr })
    })
  })
}

test('after close() the process exits by itself, even with a backend call that never settled', async (t) => {
  const r = await runChild(
    `
import { BackendServer, MemoryBackend, connect, createFs, backendError } from '@SRC@'
const mem = new MemoryBackend()
mem.writeFile('/hello', 'hi')
const backend = {
  mount() {
    const root = mem.mount()
    const file = root.file
    return { stat: root.stat, file: { stat: () => file.stat(), walk: (n) => file.walk(n), statFs: () => new Promise(() => {}) } }
  },
}
const server = new BackendServer(backend, { closeGraceMs: 100 })
server.listen('@DIR@/s.sock')
const client = await connect('@DIR@/s.sock')
const fs = createFs(client)
console.log((await fs.stat('/hello')).size)
client.mount().statFs().catch(() => console.log('stuck call failed'))
await new Promise((r) => setTimeout(r, 50))
await server.close()
await client.close()
console.log('closed')
`,
    20_000,
  )
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /2\n/)
  t.regex(r.stdout, /closed/)
})

test('a listening server keeps the process alive until closed, unless unref()ed', async (t) => {
  const alive = await runChild(
    `
import { BackendServer, MemoryBackend } from '@SRC@'
const server = new BackendServer(new MemoryBackend())
server.listen('@DIR@/s.sock')
setTimeout(() => { console.log('still alive'); void server.close() }, 300)
`,
    20_000,
  )
  t.is(alive.code, 0, alive.stderr)
  t.regex(alive.stdout, /still alive/)
  const unrefd = await runChild(
    `
import { BackendServer, MemoryBackend } from '@SRC@'
const server = new BackendServer(new MemoryBackend())
server.listen('@DIR@/s.sock')
server.unref()
process.on('exit', () => console.log('exited'))
`,
    20_000,
  )
  t.is(unrefd.code, 0, unrefd.stderr)
  t.regex(unrefd.stdout, /exited/)
})

test('a host directory through BackendServer: observed, paths tracked, FDs donated', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-host-'))
  mkdirSync(join(dir, 'sub'))
  writeFileSync(join(dir, 'sub', 'a.txt'), 'host data')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const log = new AuditLog()
  const { client, fs, server } = await serve(t, new HostBackend({ root: dir }), { onOperation: log.onOperation })
  t.is(await fs.readFile('/sub/a.txt', 'utf8'), 'host data')
  await fs.rename('/sub', '/moved')
  t.is(await fs.readFile('/moved/a.txt', 'utf8'), 'host data')
  const { fds } = await client.mount().walk(['moved', 'a.txt'])
  const f = fds[1]
  if (f === undefined) return t.fail()
  const open = await f.openAt(Flags.O_RDONLY)
  t.is(typeof open.hostFd, 'number', 'host FDs are still donated')
  await open.close()
  await Promise.all(fds.map((fd) => fd.close()))
  await t.throwsAsync(fs.readFile('/nope'), { code: 'ENOENT' })
  // Events are batched: they reach JavaScript within a few milliseconds.
  const render = (): string[] =>
    log.events.map((e) => `${e.op} ${e.path}${e.newPath === undefined ? '' : ` ${e.newPath}`}${e.errno ? ` ${e.code}` : ''}`)
  const expected = ['mount /', 'open /sub/a.txt', 'renameAt /sub /moved', 'open /moved/a.txt']
  for (let i = 0; i < 200 && !expected.every((e) => render().includes(e)); i++) {
    await new Promise((r) => setTimeout(r, 5))
  }
  await settle()
  const ops = render()
  t.true(ops.includes('mount /'))
  t.true(ops.includes('open /sub/a.txt'))
  t.true(ops.includes('renameAt /sub /moved'))
  t.true(ops.includes('open /moved/a.txt'))
  t.true(ops.some((o) => o.startsWith('walk /nope ENOENT') || o.startsWith('walkStat /')))
  t.true(log.events.every((e) => e.connection === 1 && e.durationNs >= 0 && e.time > 0))
  t.is(server.stats().handles, 0, 'a host backend holds no JavaScript objects')
  // The TypeScript client uses flipcall channels when the server offers
  // them, and the server counts what arrived that way.
  t.true(client.usesChannels)
  t.true(server.stats().channelRequests > 0)
})

test('a host root that cannot be opened throws with its errno', (t) => {
  t.throws(() => new BackendServer(new HostBackend({ root: join(tmpdir(), 'lisafs-no-such-dir-', String(process.pid)) })), { code: 'ENOENT' })
})

test('renames are reported to the FDs they moved (renamed(), after the fact)', async (t) => {
  const renamed: string[] = []
  const node = (name: string, stat: StatInput, children: Record<string, StatInput>): NewControl => ({
    stat,
    file: {
      stat: () => stat,
      walk: (n) => {
        const child = children[n.toString()]
        if (child === undefined) throw backendError('ENOENT')
        return node(n.toString(), child, child.mode === DIR.mode ? { f: FILE } : {})
      },
      renameAt: () => {},
      open: () => ({ renamed: () => renamed.push(`open ${name}`) }),
      renamed: () => renamed.push(name),
    },
  })
  const { client } = await serve(t, { mount: () => node('/', DIR, { a: DIR, other: FILE }) })
  const root = client.mount()
  const { fds } = await root.walk(['a', 'f'])
  const other = (await root.walk('other')).fds[0]
  const open = await fds[1]?.openAt()
  await root.renameAt('a', root, 'b')
  for (let i = 0; i < 100 && renamed.length < 3; i++) await new Promise((r) => setTimeout(r, 5))
  t.deepEqual(renamed.sort(), ['a', 'f', 'open f'])
  await open?.close()
  await Promise.all([...fds, other].map((f) => f?.close()))
})

test('readFile reads on when a backend returns a file in pieces, and stops at the stat size otherwise', async (t) => {
  const content = Buffer.from('0123456789abcdefghij')
  const reads: number[] = []
  const stat: StatInput = { ...FILE, size: BigInt(content.length) }
  const file = (piece: number): ControlFdImpl => ({
    stat: () => stat,
    open: () => ({
      read: (length: number, offset: bigint) => {
        reads.push(length)
        const at = Number(offset)
        return content.subarray(at, at + Math.min(length, piece))
      },
    }),
  })
  const withFile = (f: ControlFdImpl): Backend =>
    rootWith({
      walk: (name) => {
        if (name.toString() === 'f') return { file: f, stat }
        throw backendError('ENOENT')
      },
    })
  const pieces = await serve(t, withFile(file(3)))
  t.deepEqual(await pieces.fs.readFile('/f'), content, 'short reads before the size are not the end')
  t.true(reads.length > 1)

  reads.length = 0
  const whole = await serve(t, withFile(file(1 << 20)))
  t.deepEqual(await whole.fs.readFile('/f'), content)
  t.deepEqual(reads, [content.length + 1], 'one read of size + 1 for a file that did not grow')
})
