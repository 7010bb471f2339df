import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test, { type ExecutionContext } from 'ava'

import {
  BackendServer,
  connect,
  createFs,
  Flags,
  MemoryBackend,
  type Client,
  type ControlFd,
  type Dirent64,
  type LisafsFs,
  type MemoryBackendOptions,
  type Statx,
} from '../src/index.js'

interface Env {
  mem: MemoryBackend
  server: BackendServer
  client: Client
  fs: LisafsFs
  root: ControlFd
  errors: Error[]
}

async function setup(t: ExecutionContext, options: MemoryBackendOptions = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-mem-'))
  const mem = new MemoryBackend(options)
  const server = new BackendServer(mem)
  const errors: Error[] = []
  server.on('error', (e) => errors.push(e))
  server.listen(join(dir, 's.sock'))
  let client: Client | undefined
  t.teardown(async () => {
    await client?.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  client = await connect(join(dir, 's.sock'))
  return { mem, server, client, fs: createFs(client), root: client.mount(), errors }
}

/** A test with its own MemoryBackend server; checks afterwards that no backend error happened and no handle leaked. */
function memTest(title: string, fn: (t: ExecutionContext, env: Env) => Promise<void>, options?: MemoryBackendOptions): void {
  test(title, async (t) => {
    const env = await setup(t, options)
    await fn(t, env)
    for (let i = 0; i < 50 && env.server.stats().handles > 1; i++) await new Promise((r) => setTimeout(r, 5))
    t.is(env.server.stats().handles, 1, 'only the mount point is held')
    t.is(env.server.stats().openFds, 0)
    t.deepEqual(env.errors, [])
  })
}

async function rejectsErrno(t: ExecutionContext, p: Promise<unknown>, errno: number): Promise<void> {
  const err = await t.throwsAsync(p)
  t.is((err as { errno?: number } | undefined)?.errno, -errno)
}

async function walk1(dir: ControlFd, name: string): Promise<ControlFd> {
  const { fds } = await dir.walk(name)
  const fd = fds[0]
  if (fd === undefined) throw new Error(`no ${name}`)
  return fd
}

async function list(dir: ControlFd, batch = 65536): Promise<Dirent64[]> {
  const d = await dir.openAt()
  const out: Dirent64[] = []
  for await (const e of d.entries(batch)) out.push(e)
  await d.close()
  return out
}

function ns(t: { sec: bigint; nsec: number }): bigint {
  return t.sec * 1_000_000_000n + BigInt(t.nsec)
}

const S_IFMT = 0o170000

memTest('files: create, write, read, append, truncate, large content', async (t, { fs, mem }) => {
  await fs.writeFile('/hello.txt', 'héllo')
  t.is(await fs.readFile('/hello.txt', 'utf8'), 'héllo')
  t.is(mem.readFile('/hello.txt').toString(), 'héllo')
  await fs.appendFile('/hello.txt', ' world')
  t.is(await fs.readFile('/hello.txt', 'utf8'), 'héllo world')
  await fs.writeFile('/hello.txt', 'x')
  t.is((await fs.stat('/hello.txt')).size, 1)
  const big = randomBytes(3 * 1024 * 1024 + 17)
  await fs.writeFile('/big.bin', big)
  const back = await fs.readFile('/big.bin')
  t.is(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(big).digest('hex'))
  t.is((await fs.stat('/big.bin')).size, big.length)
  await t.throwsAsync(fs.writeFile('/hello.txt', 'y', { flag: 'wx' }), { code: 'EEXIST' })
  await t.throwsAsync(fs.readFile('/missing'), { code: 'ENOENT' })
  t.is(mem.usedBytes, 1 + big.length)
})

memTest('positional I/O through open FDs, sparse writes read back as zeros', async (t, { root }) => {
  const { control, open } = await root.openCreateAt('sparse', 0o600, Flags.O_RDWR)
  t.is(open.hostFd, undefined)
  t.is(await open.write('end', 10), 3)
  t.deepEqual(await open.read(100, 0), Buffer.from('\0'.repeat(10) + 'end'))
  t.deepEqual(await open.read(2, 11), Buffer.from('nd'))
  t.deepEqual(await open.read(5, 100), Buffer.alloc(0))
  t.is((await open.stat()).size, 13n)
  await open.allocate(0, 20)
  t.is((await open.stat()).size, 20n)
  await open.sync()
  await open.flush()
  await open.close()
  const again = await control.openAt(Flags.O_WRONLY | Flags.O_TRUNC)
  t.is((await control.stat()).size, 0n)
  await again.close()
  await control.close()
})

memTest('directories: mkdir, nlink, rmdir, ENOTEMPTY, EISDIR/ENOTDIR', async (t, { fs, root }) => {
  await fs.mkdir('/a/b/c', { recursive: true })
  t.is((await fs.stat('/')).nlink, 3)
  t.is((await fs.stat('/a')).nlink, 3)
  t.is((await fs.stat('/a/b/c')).nlink, 2)
  await t.throwsAsync(fs.rmdir('/a'), { code: 'ENOTEMPTY' })
  await fs.writeFile('/a/f', '')
  const a = await walk1(root, 'a')
  await t.throwsAsync(a.unlinkAt('b'), { code: 'EISDIR' })
  await t.throwsAsync(a.unlinkAt('f', Flags.AT_REMOVEDIR), { code: 'ENOTDIR' })
  await a.close()
  await fs.rm('/a', { recursive: true })
  t.false(await fs.exists('/a'))
  t.is((await fs.stat('/')).nlink, 2)
  await t.throwsAsync(root.mkdirAt('x'.repeat(256)), { code: 'ENAMETOOLONG' })
})

memTest('rename: plain, over a file, RENAME_NOREPLACE, RENAME_EXCHANGE, into itself', async (t, { fs, root, mem }) => {
  await fs.mkdir('/d1')
  await fs.mkdir('/d2')
  await fs.writeFile('/d1/a', 'A')
  await fs.writeFile('/d2/b', 'B')
  await fs.rename('/d1/a', '/d2/a')
  t.deepEqual(await fs.readdir('/d1'), [])
  t.is(await fs.readFile('/d2/a', 'utf8'), 'A')
  // Over an existing file.
  await fs.rename('/d2/a', '/d2/b')
  t.deepEqual(await fs.readdir('/d2'), ['b'])
  t.is(await fs.readFile('/d2/b', 'utf8'), 'A')
  await fs.writeFile('/d1/c', 'C')
  const d1 = await walk1(root, 'd1')
  const d2 = await walk1(root, 'd2')
  await t.throwsAsync(d1.renameAt('c', d2, 'b', Flags.RENAME_NOREPLACE), { code: 'EEXIST' })
  await d1.renameAt('c', d2, 'b', Flags.RENAME_EXCHANGE)
  t.is(await fs.readFile('/d1/c', 'utf8'), 'A')
  t.is(await fs.readFile('/d2/b', 'utf8'), 'C')
  await t.throwsAsync(d1.renameAt('c', d2, 'nope', Flags.RENAME_EXCHANGE), { code: 'ENOENT' })
  await t.throwsAsync(d1.renameAt('c', d2, 'b', Flags.RENAME_EXCHANGE | Flags.RENAME_NOREPLACE), { code: 'EINVAL' })
  // Directories: exchange across parents fixes nlink; moving into itself is EINVAL.
  await fs.mkdir('/d1/sub')
  await fs.writeFile('/d2/file', 'f')
  await d1.renameAt('sub', d2, 'file', Flags.RENAME_EXCHANGE)
  t.true((await fs.stat('/d2/file')).isDirectory())
  t.true((await fs.stat('/d1/sub')).isFile())
  t.is((await fs.stat('/d1')).nlink, 2)
  t.is((await fs.stat('/d2')).nlink, 3)
  await t.throwsAsync(root.renameAt('d2', d2, 'inside'), { code: 'EINVAL' })
  await t.throwsAsync(fs.rename('/d2', '/d1/sub'), { code: 'ENOTDIR' })
  await fs.mkdir('/d3/x', { recursive: true })
  await t.throwsAsync(fs.rename('/d2', '/d3'), { code: 'ENOTEMPTY' })
  await fs.rename('/d2', '/d3/x')
  t.is(mem.lookup('/d3/x/b')?.isFile, true)
  t.is((await fs.stat('/')).nlink, 4)
  // A handle on a moved file keeps working.
  const moved = await walk1(d1, 'c')
  await fs.rename('/d1', '/renamed')
  const o = await moved.openAt()
  t.is((await o.read(10)).toString(), 'A')
  await o.close()
  await Promise.all([moved.close(), d1.close(), d2.close()])
})

memTest('hard links share content and count links; symlinks are stored verbatim', async (t, { fs, root }) => {
  await fs.writeFile('/orig', 'shared')
  const orig = await walk1(root, 'orig')
  const link = await root.linkAt(orig, 'alias')
  t.is((await orig.stat()).nlink, 2)
  t.is((await link.stat()).ino, (await orig.stat()).ino)
  await fs.writeFile('/alias', 'changed')
  t.is(await fs.readFile('/orig', 'utf8'), 'changed')
  await t.throwsAsync(root.linkAt(orig, 'alias'), { code: 'EEXIST' })
  await fs.unlink('/orig')
  t.is((await link.stat()).nlink, 1)
  // Renaming a name onto another name of the same inode changes nothing.
  await (await root.linkAt(link, 'alias2')).close()
  await fs.rename('/alias', '/alias2')
  t.deepEqual((await fs.readdir('/')).sort(), ['alias', 'alias2'])
  await fs.unlink('/alias2')
  await fs.unlink('/alias')
  // The unlinked inode still answers through its handle, but cannot be linked again
  // (the server core refuses a deleted node before the backend sees it).
  t.is((await orig.stat()).nlink, 0)
  await t.throwsAsync(root.linkAt(orig, 'back'), { code: 'EINVAL' })
  await Promise.all([orig.close(), link.close()])

  await fs.symlink('../some/where', '/ln')
  t.is(await fs.readlink('/ln'), '../some/where')
  t.true((await fs.lstat('/ln')).isSymbolicLink())
  t.is((await fs.lstat('/ln')).size, 13)
  await fs.writeFile('/target', 'via link')
  await fs.symlink('target', '/ln2')
  t.is(await fs.readFile('/ln2', 'utf8'), 'via link')
  const stats = await root.walkStat(['ln2', 'beyond'])
  t.is(stats.length, 1, 'WalkStat stops after a symlink')
})

memTest('extended attributes: set, get, list, remove, flags and errors', async (t, { fs, root }) => {
  await fs.writeFile('/f', '')
  const f = await walk1(root, 'f')
  await f.setXattr('user.color', 'blue')
  await f.setXattr('user.size', Buffer.from([1, 2, 3]))
  t.is((await f.getXattr('user.color')).toString(), 'blue')
  t.deepEqual(await f.getXattr('user.size'), Buffer.from([1, 2, 3]))
  t.deepEqual((await f.listXattr()).sort(), ['user.color', 'user.size'])
  await t.throwsAsync(f.setXattr('user.color', 'red', Flags.XATTR_CREATE), { code: 'EEXIST' })
  await f.setXattr('user.color', 'red', Flags.XATTR_REPLACE)
  t.is((await f.getXattr('user.color')).toString(), 'red')
  await rejectsErrno(t, f.setXattr('user.none', 'x', Flags.XATTR_REPLACE), 61)
  await rejectsErrno(t, f.getXattr('user.none'), 61)
  await t.throwsAsync(f.getXattr('user.color', 1), { code: 'ERANGE' })
  await rejectsErrno(t, f.setXattr('nonamespace', 'x'), 95)
  await f.removeXattr('user.color')
  await rejectsErrno(t, f.removeXattr('user.color'), 61)
  t.deepEqual(await f.listXattr(), ['user.size'])
  await f.close()
})

memTest('getdents: stable offsets across batches and concurrent changes', async (t, { fs, root }) => {
  await fs.mkdir('/d')
  const names = Array.from({ length: 60 }, (_, i) => `file-${String(i).padStart(2, '0')}`)
  for (const n of names) await fs.writeFile(`/d/${n}`, n)
  await fs.mkdir('/d/subdir')
  await fs.symlink('x', '/d/link')
  const d = await walk1(root, 'd')
  const all = await list(d)
  t.deepEqual(
    all.map((e) => e.name.toString()),
    [...names, 'subdir', 'link'],
  )
  const offs = all.map((e) => e.off)
  t.true(offs.every((o, i) => i === 0 || o > (offs[i - 1] as bigint)), 'offsets increase')
  t.is(all.find((e) => e.name.toString() === 'subdir')?.type, 4)
  t.is(all.find((e) => e.name.toString() === 'link')?.type, 10)
  t.is(all[0]?.type, 8)
  // Small batches (a few records each) see the same entries with the same offsets.
  const small = await list(d, 128)
  t.deepEqual(
    small.map((e) => [e.name.toString(), e.off]),
    all.map((e) => [e.name.toString(), e.off]),
  )
  // Removing and adding entries mid-listing: no survivor is skipped or repeated.
  const open = await d.openAt()
  const seen: string[] = []
  let first = true
  for await (const e of open.entries(200)) {
    seen.push(e.name.toString())
    if (first) {
      first = false
      await fs.unlink('/d/file-30')
      await fs.writeFile('/d/late', '')
    }
  }
  await open.close()
  const expected = [...names.filter((n) => n !== 'file-30'), 'subdir', 'link', 'late']
  t.deepEqual(seen, expected)
  const after = await list(d)
  for (const e of after) {
    const before = all.find((b) => b.name.equals(e.name))
    if (before !== undefined) t.is(e.off, before.off, `offset of ${e.name.toString()} unchanged`)
  }
  await d.close()
})

memTest('setStat: mode, owner, size, times with UTIME_NOW / UTIME_OMIT, and the failure mask', async (t, { fs, root, client }) => {
  await fs.writeFile('/f', 'content')
  await fs.mkdir('/dir')
  const f = await walk1(root, 'f')
  const before = await f.stat()
  await new Promise((r) => setTimeout(r, 5))
  t.deepEqual(await f.setStat({ mode: 0o600, uid: 1234, gid: 5678, size: 3 }), { failureMask: 0, failureErrno: 0 })
  const s1 = await f.stat()
  t.is(s1.mode, 0o100600)
  t.is(s1.uid, 1234)
  t.is(s1.gid, 5678)
  t.is(s1.size, 3n)
  t.true(ns(s1.ctime) > ns(before.ctime), 'ctime moves')
  t.true(ns(s1.mtime) > ns(before.mtime), 'a size change moves mtime')
  t.is(await fs.readFile('/f', 'utf8'), 'con')
  await f.setStat({ size: 6 })
  t.deepEqual(await fs.readFile('/f'), Buffer.from('con\0\0\0'))

  await f.setStat({ mtime: new Date(1_000_000), atime: new Date(2_000_500) })
  const s2 = await f.stat()
  t.deepEqual(s2.mtime, { sec: 1000n, nsec: 0 })
  t.deepEqual(s2.atime, { sec: 2000n, nsec: 500_000_000 })
  // UTIME_OMIT leaves atime; UTIME_NOW sets mtime to now.
  await client.native.setStat(f.id, {
    mask: 0x20 | 0x40,
    mode: 0,
    uid: 0xffffffff,
    gid: 0xffffffff,
    size: 0n,
    atime: { sec: 0n, nsec: 0x3ffffffen },
    mtime: { sec: 0n, nsec: 0x3fffffffn },
  })
  const s3 = await f.stat()
  t.deepEqual(s3.atime, s2.atime)
  t.true(s3.mtime.sec > 1000n)
  // uid/gid of "no id" leave them alone.
  await client.native.setStat(f.id, { mask: 0x8 | 0x10, mode: 0, uid: 0xffffffff, gid: 0xffffffff, size: 0n, atime: { sec: 0n, nsec: 0n }, mtime: { sec: 0n, nsec: 0n } })
  t.is((await f.stat()).uid, 1234)
  await f.close()

  // A partial failure: the size of a directory fails with EISDIR, the mode still applies.
  const dir = await walk1(root, 'dir')
  t.deepEqual(await dir.setStat({ size: 0, mode: 0o700 }), { failureMask: 0x200, failureErrno: 21 })
  t.is((await dir.stat()).mode, 0o040700)
  await dir.close()
  // A bad nanosecond value: EINVAL for that time only.
  const r = await client.native.setStat(root.id, {
    mask: 0x40,
    mode: 0,
    uid: 0,
    gid: 0,
    size: 0n,
    atime: { sec: 0n, nsec: 0n },
    mtime: { sec: 0n, nsec: 2_000_000_000n },
  })
  t.deepEqual(r, { failureMask: 0x40, failureErrno: 22 })
})

memTest('setStat on a symlink: the mode fails with EOPNOTSUPP as on Linux, the times still apply', async (t, { root }) => {
  const link = await root.symlinkAt('ln', 'target')
  const r = await link.setStat({ mode: 0o600, mtime: new Date(5_000) })
  t.deepEqual(r, { failureMask: 0x2, failureErrno: 95 })
  const st = await link.stat()
  t.is(st.mode, 0o120777)
  t.is(st.mtime.sec, 5n)
  await link.close()
})

memTest('nodes: FIFOs, sockets and devices; statfs', async (t, { root, fs }) => {
  const fifo = await root.mknodAt('fifo', 0o010644)
  const sock = await root.mknodAt('sock', 0o140755)
  const chr = await root.mknodAt('null', 0o020666, { major: 1, minor: 3 })
  const reg = await root.mknodAt('plain', 0o644)
  t.is((await fifo.stat()).mode & S_IFMT, 0o010000)
  t.is((await sock.stat()).mode & S_IFMT, 0o140000)
  const c: Statx = await chr.stat()
  t.like(c, { rdevMajor: 1, rdevMinor: 3 })
  t.true((await fs.stat('/plain')).isFile())
  t.true((await fs.stat('/fifo')).isFIFO())
  await t.throwsAsync(fifo.openAt(), { code: 'EPERM' })
  await t.throwsAsync(sock.openAt(), { code: 'ENXIO' })
  await t.throwsAsync(root.mknodAt('d', 0o040755), { code: 'EPERM' })
  await Promise.all([fifo.close(), sock.close(), chr.close(), reg.close()])
  const types = (await list(root)).map((e) => [e.name.toString(), e.type])
  t.deepEqual(types, [
    ['fifo', 1],
    ['sock', 12],
    ['null', 2],
    ['plain', 8],
  ])
  const sf = await root.statFs()
  t.is(sf.fsType, 0x01021994n)
  t.is(sf.nameLength, 255n)
  t.is(sf.blockSize, 4096n)
})

memTest(
  'capacity: ENOSPC when full, EFBIG past the largest file',
  async (t, { fs, mem }) => {
    await fs.writeFile('/a', Buffer.alloc(6000))
    await t.throwsAsync(fs.writeFile('/b', Buffer.alloc(6000)), { code: 'ENOSPC' })
    await fs.unlink('/b').catch(() => {})
    await fs.unlink('/a')
    t.is(mem.usedBytes, 0)
    await t.throwsAsync(fs.writeFile('/c', Buffer.alloc(9000)), { code: 'EFBIG' })
  },
  { capacity: 10_000, maxFileSize: 8192 },
)

memTest('the host-side helpers and the client see the same tree', async (t, { fs, mem }) => {
  mem.mkdir('/pre/populated')
  mem.writeFile('/pre/populated/data.json', '{"ok":true}')
  mem.symlink('populated/data.json', '/pre/link')
  t.deepEqual(JSON.parse(await fs.readFile('/pre/link', 'utf8')), { ok: true })
  await fs.writeFile('/pre/from-client', 'c')
  t.deepEqual(mem.lookup('/pre')?.names(), ['populated', 'link', 'from-client'])
  t.is(mem.lookup('/pre/populated/..')?.names().length, 3)
})
