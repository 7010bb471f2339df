import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test, { type ExecutionContext } from 'ava'

import {
  AuditLog,
  BackendServer,
  connect,
  createFs,
  Flags,
  formatEvent,
  HostBackend,
  MemoryBackend,
  normalizePolicyPath,
  Policy,
  type Backend,
  type BackendServerOptions,
  type Client,
  type ControlFd,
  type LisafsFs,
  type OperationEvent,
} from '../src/index.js'

interface Env {
  server: BackendServer
  client: Client
  fs: LisafsFs
  root: ControlFd
  log: AuditLog
}

async function setup(t: ExecutionContext, backend: Backend | HostBackend, options: BackendServerOptions): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-policy-'))
  const log = new AuditLog()
  const server = new BackendServer(backend, { onOperation: log.onOperation, ...options })
  server.on('error', (e) => t.fail(`backend error: ${e.message}`))
  server.listen(join(dir, 's.sock'))
  let client: Client | undefined
  t.teardown(async () => {
    await client?.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  client = await connect(join(dir, 's.sock'))
  return { server, client, fs: createFs(client), root: client.mount(), log }
}

/** Waits until the observer has seen an event matching `pred`. */
async function seen(log: AuditLog, pred: (e: OperationEvent) => boolean): Promise<OperationEvent | undefined> {
  for (let i = 0; i < 200; i++) {
    const e = log.events.find(pred)
    if (e !== undefined) return e
    await new Promise((r) => setTimeout(r, 5))
  }
  return undefined
}

async function rejectsErrno(t: ExecutionContext, p: Promise<unknown>, errno: number): Promise<void> {
  const err = await t.throwsAsync(p)
  t.is((err as { errno?: number } | undefined)?.errno, -errno)
}

function populated(): MemoryBackend {
  const mem = new MemoryBackend()
  mem.mkdir('/secret')
  mem.writeFile('/secret/key', 'hunter2')
  mem.mkdir('/ro/sub')
  mem.writeFile('/ro/file', 'read me')
  mem.mkdir('/rw')
  mem.mkdir('/data/ro')
  mem.writeFile('/data/ro/f', 'deep')
  return mem
}

test('deny rules answer EACCES and the observer sees the denial', async (t) => {
  const { fs, log, root } = await setup(t, populated(), {
    policy: { rules: [{ path: '/secret', action: 'deny' }] },
  })
  await t.throwsAsync(fs.readFile('/secret/key'), { code: 'EACCES' })
  await t.throwsAsync(root.walk(['secret']), { code: 'EACCES' })
  // Listing the parent is allowed: the name is visible, its content is not.
  t.true((await fs.readdir('/')).includes('secret'))
  await t.throwsAsync(fs.stat('/secret'), { code: 'EACCES' })
  await t.throwsAsync(fs.writeFile('/secret/new', 'x'), { code: 'EACCES' })
  // The subtree cannot be moved out from under its rule, nor replaced.
  await t.throwsAsync(fs.rename('/secret', '/public'), { code: 'EACCES' })
  await t.throwsAsync(fs.rmdir('/secret'), { code: 'EACCES' })
  const denied = await seen(log, (e) => e.denied && e.op === 'walk' && e.path === '/secret')
  t.like(denied, { errno: 13, code: 'EACCES', class: 'read', durationNs: 0, connection: 1 })
  t.truthy(await seen(log, (e) => e.denied && e.op === 'renameAt' && e.path === '/secret' && e.newPath === '/public'))
  t.true(log.summary().denied >= 5)
})

test('read-only subtrees answer EROFS to every mutation, reads still work', async (t) => {
  const { fs, log, root } = await setup(t, populated(), { policy: { readOnly: ['/ro', '/data/ro'] } })
  t.is(await fs.readFile('/ro/file', 'utf8'), 'read me')
  await t.throwsAsync(fs.writeFile('/ro/file', 'x'), { code: 'EROFS' })
  await t.throwsAsync(fs.writeFile('/ro/new', 'x'), { code: 'EROFS' })
  await t.throwsAsync(fs.mkdir('/ro/d'), { code: 'EROFS' })
  await t.throwsAsync(fs.unlink('/ro/file'), { code: 'EROFS' })
  await t.throwsAsync(fs.symlink('x', '/ro/l'), { code: 'EROFS' })
  await t.throwsAsync(fs.rename('/ro/file', '/rw/file'), { code: 'EROFS' })
  await t.throwsAsync(fs.rename('/rw', '/ro/rw'), { code: 'EROFS' })
  // Moving an ancestor would carry the subtree away from its rule.
  await t.throwsAsync(fs.rename('/data', '/data2'), { code: 'EROFS' })
  const { fds } = await root.walk(['ro', 'file'])
  const [ro, file] = fds
  if (ro === undefined || file === undefined) return t.fail()
  await t.throwsAsync(file.openAt(Flags.O_RDWR), { code: 'EROFS' })
  t.like(await file.setStat({ mode: 0o600 }), { failureMask: 0x2, failureErrno: 30 })
  await t.throwsAsync(file.setXattr('user.a', 'b'), { code: 'EROFS' })
  // A hard link elsewhere would be a writable name for a read-only file.
  const rw = (await root.walk('rw')).fds[0]
  if (rw === undefined) return t.fail()
  await t.throwsAsync(rw.linkAt(file, 'alias'), { code: 'EROFS' })
  const opened = await file.openAt(Flags.O_RDONLY)
  t.is((await opened.read(4)).toString(), 'read')
  await opened.close()
  await Promise.all([ro.close(), file.close(), rw.close()])
  // Outside the subtrees everything works.
  await fs.writeFile('/rw/ok', 'fine')
  await fs.rename('/rw/ok', '/rw/ok2')
  t.truthy(await seen(log, (e) => e.denied && e.op === 'openCreate' && e.path === '/ro/new' && e.code === 'EROFS'))
  t.truthy(await seen(log, (e) => e.op === 'renameAt' && e.path === '/rw/ok' && e.newPath === '/rw/ok2' && e.errno === 0))
})

test('a write quota answers EDQUOT once exhausted', async (t) => {
  const { fs, log, server, root } = await setup(t, new MemoryBackend(), { policy: { writeQuota: 100 } })
  await fs.writeFile('/a', Buffer.alloc(60, 1))
  await rejectsErrno(t, fs.writeFile('/b', Buffer.alloc(60, 2)), 122)
  t.is(server.stats().bytesWritten, 60)
  const { control, open } = await root.openCreateAt('c', 0o644)
  t.is(await open.write(Buffer.alloc(40, 3), 0), 40)
  await rejectsErrno(t, open.write('x', 40), 122)
  await Promise.all([open.close(), control.close()])
  t.is(server.stats().bytesWritten, 100)
  const denied = await seen(log, (e) => e.op === 'write' && e.denied)
  t.like(denied, { code: 'EDQUOT', errno: 122, class: 'write', path: '/b' })
  t.truthy(await seen(log, (e) => e.op === 'write' && e.path === '/c' && e.bytes === 40))
})

test('default deny with allow rules by class', async (t) => {
  const mem = populated()
  mem.mkdir('/pub')
  const { fs } = await setup(t, mem, {
    policy: {
      defaultAction: 'deny',
      rules: [
        { path: '/', action: 'allow', classes: ['read'] },
        { path: '/pub', action: 'allow' },
        { path: '/pub/noxattr', action: 'deny', classes: ['xattr'] },
      ],
    },
  })
  await fs.writeFile('/pub/f', 'ok')
  t.is(await fs.readFile('/pub/f', 'utf8'), 'ok')
  t.is(await fs.readFile('/ro/file', 'utf8'), 'read me')
  await t.throwsAsync(fs.writeFile('/rw/f', 'no'), { code: 'EACCES' })
  await t.throwsAsync(fs.unlink('/ro/file'), { code: 'EACCES' })
  await fs.mkdir('/pub/noxattr')
  const client = fs.client
  const { fds } = await client.mount().walk(['pub', 'noxattr'])
  const target = fds[1]
  if (target === undefined) return t.fail()
  await t.throwsAsync(target.setXattr('user.x', 'y'), { code: 'EACCES' })
  await t.throwsAsync(target.listXattr(), { code: 'EACCES' })
  await Promise.all(fds.map((f) => f.close()))
})

test('paths follow renames: events of an FD opened before its directory moved', async (t) => {
  const mem = new MemoryBackend()
  mem.mkdir('/a/b')
  mem.writeFile('/a/b/f', '')
  const { fs, log, root } = await setup(t, mem, {})
  const { fds } = await root.walk(['a', 'b', 'f'])
  const f = fds[2]
  if (f === undefined) return t.fail()
  const open = await f.openAt(Flags.O_WRONLY)
  await fs.rename('/a', '/z')
  await open.write('moved', 0)
  await fs.mkdir('/x')
  const x = (await root.walk('x')).fds[0]
  const z = (await root.walk('z')).fds[0]
  if (x === undefined || z === undefined) return t.fail()
  // Exchange: both sides are renamed.
  await root.renameAt('z', root, 'x', Flags.RENAME_EXCHANGE)
  await f.stat()
  await open.close()
  await Promise.all([...fds, x, z].map((h) => h.close()))
  t.truthy(await seen(log, (e) => e.op === 'write' && e.path === '/z/b/f' && e.bytes === 5))
  t.truthy(await seen(log, (e) => e.op === 'stat' && e.path === '/x/b/f'))
  t.is(mem.readFile('/x/b/f').toString(), 'moved')
})

test('a host directory under a policy and a quota: FDs for writing are not donated', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-policy-host-'))
  mkdirSync(join(dir, 'ro'))
  writeFileSync(join(dir, 'ro', 'file'), 'host read-only')
  writeFileSync(join(dir, 'rw.txt'), 'start')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { fs, log, root, server } = await setup(t, new HostBackend({ root: dir }), {
    policy: new Policy({ readOnly: ['/ro'], writeQuota: 50 }),
  })
  t.is(await fs.readFile('/ro/file', 'utf8'), 'host read-only')
  await t.throwsAsync(fs.writeFile('/ro/file', 'x'), { code: 'EROFS' })
  await t.throwsAsync(fs.unlink('/ro/file'), { code: 'EROFS' })
  const f = (await root.walk('rw.txt')).fds[0]
  if (f === undefined) return t.fail()
  const reader = await f.openAt(Flags.O_RDONLY)
  t.is(typeof reader.hostFd, 'number', 'read-only opens still get a host FD')
  const writer = await f.openAt(Flags.O_WRONLY)
  t.is(writer.hostFd, undefined, 'writable opens go through the server under a quota')
  t.is(await writer.write(Buffer.alloc(30, 0x61), 0), 30)
  await rejectsErrno(t, writer.write(Buffer.alloc(30, 0x62), 30), 122)
  t.is(await writer.write(Buffer.alloc(20, 0x63), 30), 20)
  await Promise.all([reader.close(), writer.close(), f.close()])
  t.is(readFileSync(join(dir, 'rw.txt'), 'utf8'), 'a'.repeat(30) + 'c'.repeat(20))
  t.is(server.stats().bytesWritten, 50)
  t.truthy(await seen(log, (e) => e.op === 'write' && e.denied && e.code === 'EDQUOT' && e.path === '/rw.txt'))
  t.truthy(await seen(log, (e) => e.denied && e.code === 'EROFS' && e.path === '/ro/file'))
})

test('Policy validates its input; AuditLog summarizes and formats', (t) => {
  t.is(normalizePolicyPath('/a//b/'), '/a/b')
  t.is(normalizePolicyPath('/'), '/')
  t.throws(() => normalizePolicyPath('relative'), { instanceOf: TypeError })
  t.throws(() => new Policy({ readOnly: ['/a/../b'] }), { instanceOf: TypeError })
  t.throws(() => new Policy({ rules: [{ path: '/', action: 'deny', classes: ['bogus' as 'read'] }] }), { instanceOf: TypeError })
  t.throws(() => new Policy({ writeQuota: -1 }), { instanceOf: TypeError })
  const p = new Policy({ rules: [{ path: '/x/', action: 'deny', classes: ['read', 'xattr'] }], writeQuota: 10n })
  t.deepEqual(p.toNative(), { rules: [{ path: '/x', classes: 1 | 16, allow: false }], readOnly: [], defaultDeny: false, writeQuota: 10 })

  const lines: string[] = []
  const log = new AuditLog({ limit: 2, write: (l) => lines.push(l) })
  const base: OperationEvent = { op: 'read', class: 'read', connection: 1, path: '/f', flags: 0, errno: 0, denied: false, durationNs: 1500, time: 0, bytes: 10 }
  log.onOperation(base)
  log.onOperation({ ...base, op: 'write', class: 'write', bytes: 4 })
  log.onOperation({ ...base, op: 'walk', errno: 13, code: 'EACCES', denied: true, durationNs: 0, bytes: undefined })
  t.is(log.events.length, 2)
  t.like(log.summary(), { total: 3, failed: 1, denied: 1, bytesRead: 10, bytesWritten: 4 })
  t.like(log.summary().byOp.walk, { count: 1, denied: 1 })
  t.is(lines[0], '1970-01-01T00:00:00.000Z conn=1 read /f ok 10B 1.5us')
  t.regex(lines[2] ?? '', /walk \/f DENIED EACCES/)
  t.is(formatEvent({ ...base, newPath: '/g', op: 'renameAt', durationNs: 2_500_000, bytes: undefined }), '1970-01-01T00:00:00.000Z conn=1 renameAt /f -> /g ok 2.50ms')
  log.clear()
  t.is(log.summary().total, 0)
})
