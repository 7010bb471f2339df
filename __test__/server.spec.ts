import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { decodeResponse, encodeRequest, Mid, Server, socketPair, type Request, type Response } from '../index.js'

/** One request at a time over a raw LISAFS socket, using the addon's codec. */
class RawClient {
  private buf = Buffer.alloc(0)
  private waiter: (() => void) | undefined

  constructor(private readonly sock: net.Socket) {
    sock.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk])
      this.waiter?.()
    })
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(path, () => resolve(new RawClient(sock)))
      sock.once('error', reject)
    })
  }

  private async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      await new Promise<void>((resolve) => (this.waiter = resolve))
    }
    const out = this.buf.subarray(0, n)
    this.buf = this.buf.subarray(n)
    return out
  }

  async call(req: Request, mid: number): Promise<Response> {
    const payload = encodeRequest(req)
    const header = Buffer.alloc(8)
    header.writeUInt32LE(payload.length, 0)
    header.writeUInt16LE(mid, 4)
    this.sock.write(Buffer.concat([header, payload]))
    const h = await this.read(8)
    const body = await this.read(h.readUInt32LE(0))
    return decodeResponse(h.readUInt16LE(4), body, true)
  }

  end(): Promise<void> {
    return new Promise((resolve) => {
      this.sock.once('close', () => resolve())
      this.sock.end()
    })
  }
}

function tempTree(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lisafs-server-'))
  mkdirSync(join(dir, 'root', 'sub'), { recursive: true })
  writeFileSync(join(dir, 'root', 'sub', 'hello.txt'), 'hello from the host\n')
  return dir
}

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10))
}

async function mountWalkRead(client: RawClient): Promise<string> {
  const mount = await client.call({ type: 'Mount' }, Mid.Mount)
  if (mount.type !== 'Mount') throw new Error(`mount: ${JSON.stringify(mount)}`)
  const walk = await client.call(
    { type: 'Walk', dirFd: mount.root.controlFd, path: [Buffer.from('sub'), Buffer.from('hello.txt')] },
    Mid.Walk,
  )
  if (walk.type !== 'Walk' || walk.status !== 'Success') throw new Error(`walk: ${JSON.stringify(walk)}`)
  const file = walk.inodes[1]
  if (file === undefined) throw new Error('no inode')
  const open = await client.call({ type: 'OpenAt', fd: file.controlFd, flags: 0 }, Mid.OpenAt)
  if (open.type !== 'OpenAt') throw new Error(`open: ${JSON.stringify(open)}`)
  const read = await client.call({ type: 'PRead', fd: open.openFd, offset: 0n, count: 4096 }, Mid.PRead)
  if (read.type !== 'PRead') throw new Error(`read: ${JSON.stringify(read)}`)
  return read.data.toString()
}

test('serves a host directory on a Unix socket and releases everything after', async (t) => {
  const dir = tempTree()
  const sockPath = join(dir, 'lisafs.sock')
  const server = new Server({ root: join(dir, 'root') })
  server.listen(sockPath)
  const client = await RawClient.connect(sockPath)
  t.is(await mountWalkRead(client), 'hello from the host\n')
  const s = server.stats()
  t.is(s.connections, 1)
  t.is(s.openFds, 1)
  t.true(s.controlFds >= 3)
  t.is(s.nodes, 2)
  await client.end()
  await waitFor(() => server.stats().connections === 0)
  t.deepEqual(server.stats(), { connections: 0, controlFds: 0, openFds: 0, boundSocketFds: 0, nodes: 0 })
  await server.close()
  t.false(existsSync(sockPath), 'close removes the socket file')
  await server.close()
  rmSync(dir, { recursive: true })
})

test('attach serves one end of a socketPair', async (t) => {
  const dir = tempTree()
  const server = new Server({ root: join(dir, 'root') })
  const [serverEnd, clientEnd] = socketPair()
  server.attach(serverEnd)
  const client = new RawClient(new net.Socket({ fd: clientEnd, readable: true, writable: true }))
  t.is(await mountWalkRead(client), 'hello from the host\n')
  await server.close()
  t.deepEqual(server.stats(), { connections: 0, controlFds: 0, openFds: 0, boundSocketFds: 0, nodes: 0 })
  rmSync(dir, { recursive: true })
})

test('errors are errno replies on the wire and Node-style errors in JS', async (t) => {
  const dir = tempTree()
  t.throws(() => new Server({ root: join(dir, 'missing') }), { code: 'ENOENT' })
  t.throws(() => new Server({ root: join(dir, 'root', 'sub', 'hello.txt') }), { code: 'ENOTDIR' })

  const sockPath = join(dir, 'ro.sock')
  const server = new Server({ root: join(dir, 'root'), readonly: true })
  server.listen(sockPath)
  t.throws(() => server.listen(sockPath), { code: 'EADDRINUSE' })
  const client = await RawClient.connect(sockPath)
  const mount = await client.call({ type: 'Mount' }, Mid.Mount)
  if (mount.type !== 'Mount') return t.fail()
  const mkdir = await client.call(
    { type: 'MkdirAt', common: { dirFd: mount.root.controlFd, uid: 0, gid: 0, mode: 0o755 }, name: Buffer.from('x') },
    Mid.MkdirAt,
  )
  t.deepEqual(mkdir, { type: 'Error', errno: 30 }, 'EROFS')
  const escape = await client.call({ type: 'Walk', dirFd: mount.root.controlFd, path: [Buffer.from('..')] }, Mid.Walk)
  t.deepEqual(escape, { type: 'Error', errno: 22 }, 'EINVAL for ..')
  const bad = await client.call({ type: 'FStat', fd: 999n }, Mid.FStat)
  t.deepEqual(bad, { type: 'Error', errno: 9 }, 'EBADF')
  await client.end()
  await server.close()
  t.false(existsSync(join(dir, 'root', 'x')))
  rmSync(dir, { recursive: true })
})

test('a closed server does not keep Node alive', (t) => {
  const dir = tempTree()
  const script = `
    const { Server } = require(${JSON.stringify(join(process.cwd(), 'index.js'))})
    const s = new Server({ root: ${JSON.stringify(join(dir, 'root'))} })
    s.listen(${JSON.stringify(join(dir, 'alive.sock'))})
    s.close().then(() => console.log('closed'))
  `
  const r = spawnSync(process.execPath, ['-e', script], { timeout: 20_000, encoding: 'utf8' })
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.trim(), 'closed')
  t.false(existsSync(join(dir, 'alive.sock')))
  t.is(readFileSync(join(dir, 'root', 'sub', 'hello.txt'), 'utf8'), 'hello from the host\n')
  rmSync(dir, { recursive: true })
})

test('a listening server survives garbage collection of its JS object', (t) => {
  const dir = tempTree()
  const sock = join(dir, 'gc.sock')
  const script = `
    const { Server, decodeResponse, encodeRequest } = require(${JSON.stringify(join(process.cwd(), 'index.js'))})
    const net = require('node:net')
    ;(() => { new Server({ root: ${JSON.stringify(join(dir, 'root'))} }).listen(${JSON.stringify(sock)}) })()
    global.gc()
    setTimeout(() => {
      const s = net.createConnection(${JSON.stringify(sock)}, () => {
        const h = Buffer.alloc(8); h.writeUInt16LE(1, 4)
        s.write(h)
      })
      s.on('data', (d) => { console.log(d.readUInt16LE(4) === 1 ? 'mounted' : 'error'); process.exit(0) })
      s.on('error', (e) => { console.log('failed ' + e.code); process.exit(0) })
    }, 100)
  `
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { timeout: 20_000, encoding: 'utf8' })
  t.is(r.stdout.trim(), 'mounted', r.stderr)
  rmSync(dir, { recursive: true })
})
