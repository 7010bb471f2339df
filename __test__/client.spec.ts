import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { connect, Flags, LisafsError, Server } from '../src/index.js'

function tree(): { dir: string; root: string; sock: string; server: Server } {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-client-'))
  const root = join(dir, 'root')
  mkdirSync(join(root, 'sub'), { recursive: true })
  writeFileSync(join(root, 'sub', 'hello.txt'), 'hello\n')
  const sock = join(dir, 's.sock')
  const server = new Server({ root })
  server.listen(sock)
  return { dir, root, sock, server }
}

test('ControlFd/OpenFd round trip against our server, handles disposed', async (t) => {
  const { dir, root, sock, server } = tree()
  {
    await using client = await connect(sock)
    const rootFd = client.mount()
    t.true(rootFd.isDirectory)
    const walked = await rootFd.walk(['sub', 'hello.txt'])
    t.is(walked.status, 'Success')
    const [sub, file] = walked.fds
    if (sub === undefined || file === undefined) return t.fail()
    t.is(file.path, '/sub/hello.txt')
    {
      await using f = await file.openAt(Flags.O_RDONLY)
      t.is((await f.read(100, 0)).toString(), 'hello\n')
      t.is(typeof f.hostFd, 'number', 'regular files come with a donated host FD')
    }
    const { control, open } = await sub.openCreateAt('new.txt', 0o640)
    t.is(await open.write('written over lisafs', 0), 19)
    await open.close()
    await control.close()
    t.is(readFileSync(join(root, 'sub', 'new.txt'), 'utf8'), 'written over lisafs')
    const names: string[] = []
    await using d = await sub.openAt()
    for await (const e of d.entries()) names.push(e.name.toString())
    t.deepEqual(names.sort(), ['hello.txt', 'new.txt'])
    await sub.unlinkAt('new.txt')
    t.false(existsSync(join(root, 'sub', 'new.txt')))
    const err = await t.throwsAsync(rootFd.walk(['sub', '..']))
    t.true(err instanceof LisafsError)
    t.like(err, { code: 'EINVAL', errno: -22, syscall: 'walk', path: '/' })
    const missing = await rootFd.walk(['nope', 'x'])
    t.is(missing.status, 'ComponentDoesNotExist')
    await sub.close()
    await file.close()
  }
  await server.close()
  t.is(server.stats().controlFds, 0)
  rmSync(dir, { recursive: true })
})

test('errors carry code, errno, syscall and path', async (t) => {
  const { dir, sock, server } = tree()
  const client = await connect(sock)
  const rootFd = client.mount()
  t.like(await t.throwsAsync(rootFd.mkdirAt('sub')), { code: 'EEXIST', syscall: 'mkdir', path: '/sub' })
  const { fds } = await rootFd.walk('sub')
  await t.throwsAsync(rootFd.unlinkAt('sub'), { code: 'EISDIR' })
  await fds[0]?.close()
  await client.close()
  t.like(await t.throwsAsync(connect(join(dir, 'missing.sock'))), { code: 'ENOENT', syscall: 'connect' })
  await server.close()
  rmSync(dir, { recursive: true })
})

test('errno names Node lacks still get their Linux name', (t) => {
  const e = new LisafsError(122, 'write', '/quota')
  t.like(e, { code: 'EDQUOT', errno: -122, syscall: 'write', path: '/quota' })
  t.is(e.message, "EDQUOT: disk quota exceeded, write '/quota'")
  t.is(new LisafsError(2, 'open').code, 'ENOENT')
})
