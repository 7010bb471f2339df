// A tiny virtual filesystem written in JavaScript and served over LISAFS:
// nothing exists on disk, every file's content is generated when it is
// opened.
//
//   node examples/virtual-tree.mjs [socket]      serve until Ctrl-C (default ./virtual.sock)
//   node examples/virtual-tree.mjs --demo        serve, read the tree with our client, exit
//
// The tree:
//   /hello.txt        a fixed greeting
//   /time.txt         the time the file was opened
//   /opens            how many times a file of this tree was opened
//   /squares/1..12    the square of the file's name
//   /about -> hello.txt
//
// Needs the built package (`npm run build`).
import { resolve } from 'node:path'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { BackendServer, DirentType, backendError, connect, createFs, direntRecordSize } from '../dist/index.mjs'

const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000
const mounted = new Date()
let opens = 0
let nextIno = 1n

/** A generated file: `generate()` runs on every open (and stat, for the size). */
function file(generate) {
  return { kind: 'file', ino: nextIno++, generate }
}
function dir(entries) {
  return { kind: 'dir', ino: nextIno++, entries }
}
function link(target) {
  return { kind: 'link', ino: nextIno++, target }
}

const squares = {}
for (let i = 1; i <= 12; i++) squares[String(i)] = file(() => `${i * i}\n`)

const tree = dir({
  'hello.txt': file(() => 'Hello from a tree that exists only in JavaScript.\n'),
  'time.txt': file(() => `${new Date().toISOString()}\n`),
  opens: file(() => `${opens}\n`),
  squares: dir(squares),
  about: link('hello.txt'),
})

function stat(node) {
  const common = { ino: node.ino, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: mounted, ctime: mounted, atime: mounted }
  switch (node.kind) {
    case 'dir':
      return { ...common, mode: S_IFDIR | 0o555, nlink: 2, size: 4096n }
    case 'link':
      return { ...common, mode: S_IFLNK | 0o777, size: BigInt(node.target.length) }
    default:
      return { ...common, mode: S_IFREG | 0o444, size: BigInt(Buffer.byteLength(node.generate())) }
  }
}

const DT = { dir: DirentType.DT_DIR, file: DirentType.DT_REG, link: DirentType.DT_LNK }

/** The control FD of a node: the methods a read-only tree needs. */
function control(node) {
  return {
    stat: () => stat(node),
    walk(name) {
      const child = node.kind === 'dir' ? node.entries[name.toString()] : undefined
      if (child === undefined) throw backendError('ENOENT')
      return { file: control(child), stat: stat(child) }
    },
    readlink: () => node.target,
    statFs: () => ({ blocks: 0n, files: nextIno }),
    open() {
      if (node.kind === 'dir') return listing(node)
      // The content is fixed at open: reads at any offset agree.
      opens++
      const content = Buffer.from(node.generate())
      return {
        stat: () => ({ ...stat(node), size: BigInt(content.length) }),
        read: (length, offset) => content.subarray(Number(offset), Number(offset) + length),
      }
    },
  }
}

/** An open directory: entries with stable offsets (their index + 1). */
function listing(node) {
  let pos = 0
  const names = Object.keys(node.entries)
  return {
    stat: () => stat(node),
    getdents(count, seek0) {
      if (seek0) pos = 0
      const out = []
      let used = 0
      while (pos < names.length) {
        const name = names[pos]
        const size = direntRecordSize(Buffer.byteLength(name))
        if (used + size > count) break
        const child = node.entries[name]
        out.push({ name, type: DT[child.kind], ino: child.ino, off: pos + 1 })
        used += size
        pos++
      }
      return out
    },
  }
}

const backend = { mount: () => ({ file: control(tree), stat: stat(tree) }) }

if (process.argv[2] === '--demo') {
  const dir = mkdtempSync(join(tmpdir(), 'virtual-tree-'))
  const socket = join(dir, 'virtual.sock')
  const server = new BackendServer(backend, { readonly: true })
  server.on('error', (err) => console.error('backend error:', err))
  server.listen(socket)
  const client = await connect(socket)
  const fs = createFs(client)
  console.log('/        ', await fs.readdir('/'))
  console.log('/squares ', await fs.readdir('/squares'))
  console.log('hello.txt', JSON.stringify(await fs.readFile('/hello.txt', 'utf8')))
  console.log('about    ', JSON.stringify(await fs.readFile('/about', 'utf8')), '(a symlink)')
  console.log('time.txt ', JSON.stringify(await fs.readFile('/time.txt', 'utf8')))
  console.log('squares/7', JSON.stringify(await fs.readFile('/squares/7', 'utf8')))
  console.log('opens    ', JSON.stringify(await fs.readFile('/opens', 'utf8')))
  await fs.writeFile('/new', 'x').catch((err) => console.log('write    ', err.code, '(served read-only)'))
  await client.close()
  await server.close()
  rmSync(dir, { recursive: true, force: true })
} else {
  const socket = resolve(process.argv[2] ?? 'virtual.sock')
  const server = new BackendServer(backend, { readonly: true })
  server.on('error', (err) => console.error('backend error:', err))
  server.listen(socket)
  console.log(`serving a virtual tree on ${socket} (Ctrl-C to stop)`)
  const stop = async () => {
    await server.close()
    console.log('closed')
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
