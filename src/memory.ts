/**
 * {@link MemoryBackend}: a complete in-memory filesystem served over LISAFS
 * with a `BackendServer` — regular files, directories, symlinks, hard links,
 * device/FIFO/socket nodes, extended attributes, renames with
 * `RENAME_NOREPLACE` / `RENAME_EXCHANGE`, directory listings with stable
 * offsets, statfs and SetStat with a failure mask.
 *
 * Like gVisor's gofer, it trusts the client for permission checks (the
 * sandbox's kernel does them): modes and owners are stored and reported,
 * not enforced. Every method is synchronous, so each operation costs one
 * hop to Node's event loop and nothing more.
 * @packageDocumentation
 */
import { constants as osConstants } from 'node:os'

import type { Statx, StatxTimestamp } from '../index.js'
import {
  backendError,
  direntRecordSize,
  direntType,
  FileType,
  NO_ID,
  StatxMask,
  UTIME_NOW,
  UTIME_OMIT,
  type Backend,
  type ControlFdImpl,
  type CreatedFile,
  type DirentInput,
  type ErrnoName,
  type NewControl,
  type OpenFdImpl,
  type Owner,
  type SetStatRequest,
  type StatFsInput,
} from './backend.js'
import type { SetStatOutcome } from './client.js'

const { S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, S_IFSOCK, S_IFIFO, S_IFCHR, S_IFBLK } = FileType
const O_ACCMODE = 3
const O_TRUNC = 0o1000
const AT_REMOVEDIR = 0x200
const RENAME_NOREPLACE = 1
const RENAME_EXCHANGE = 2
const XATTR_CREATE = 1
const XATTR_REPLACE = 2
const NAME_MAX = 255
const XATTR_NAME_MAX = 255
const XATTR_SIZE_MAX = 65536
const TMPFS_MAGIC = 0x0102_1994n
const XATTR_NAMESPACES = ['user.', 'trusted.', 'security.', 'system.']

function fail(code: ErrnoName): never {
  throw backendError(code)
}

function errnoNumber(code: ErrnoName): number {
  return osConstants.errno[code]
}

// Wall-clock time with nanosecond steps: the epoch offset of the monotonic clock.
const clockBase = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint()

function now(): StatxTimestamp {
  const ns = clockBase + process.hrtime.bigint()
  return { sec: ns / 1_000_000_000n, nsec: Number(ns % 1_000_000_000n) }
}

/** A name as a map key (bytes preserved). */
function key(name: Uint8Array): string {
  return Buffer.from(name.buffer, name.byteOffset, name.byteLength).toString('latin1')
}

interface DirEntry {
  name: Buffer
  node: MemoryNode
  /** Stable cookie: listings resume after it. Grows with every insertion. */
  off: bigint
}

/**
 * One inode of a {@link MemoryBackend}: its attributes and, depending on its
 * type, its data, entries or symlink target. Several names may share one
 * (hard links).
 */
export class MemoryNode {
  /** Inode number. */
  readonly ino: bigint
  /** File type and permission bits. */
  mode: number
  /** Owner. */
  uid: number
  /** Group. */
  gid: number
  /** Names (and, for a directory, subdirectories' `..`) referring to it. */
  nlink: number
  /** Last access (not updated by reads: the filesystem behaves as `noatime`). */
  atime: StatxTimestamp
  /** Last content change. */
  mtime: StatxTimestamp
  /** Last attribute change. */
  ctime: StatxTimestamp
  /** Creation. */
  readonly btime: StatxTimestamp
  /** Device number (device nodes). */
  rdevMajor = 0
  /** Device number (device nodes). */
  rdevMinor = 0
  /** Extended attributes (names as latin1 strings of their bytes). */
  readonly xattrs = new Map<string, Buffer>()
  /** Regular files: the content, in a buffer of at least `size` bytes. */
  data: Buffer = Buffer.alloc(0)
  /** Regular files: size in bytes (symlinks: the target's length). */
  size = 0
  /** Symlinks: the target. */
  target: Buffer = Buffer.alloc(0)
  /** Directories: entries by name. @internal */
  readonly entries = new Map<string, DirEntry>()
  /** Directories: the next entry cookie. @internal */
  nextOff = 1n
  /** Directories: the parent (the root is its own). @internal */
  parent: MemoryNode | undefined

  /** @internal */
  constructor(ino: bigint, mode: number, owner: Owner) {
    const t = now()
    this.ino = ino
    this.mode = mode
    this.uid = owner.uid
    this.gid = owner.gid
    this.nlink = (mode & S_IFMT) === S_IFDIR ? 2 : 1
    this.atime = t
    this.mtime = t
    this.ctime = t
    this.btime = t
  }

  /** Whether this is a directory. */
  get isDirectory(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR
  }

  /** Whether this is a regular file. */
  get isFile(): boolean {
    return (this.mode & S_IFMT) === S_IFREG
  }

  /** Whether this is a symlink. */
  get isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === S_IFLNK
  }

  /** The names in this directory, in listing order. */
  names(): string[] {
    return [...this.entries.values()].map((e) => e.name.toString('utf8'))
  }
}

/** Options of a {@link MemoryBackend}. */
export interface MemoryBackendOptions {
  /** Owner of the root and of files created without one. Default 0. */
  uid?: number
  /** Group of the root and of files created without one. Default 0. */
  gid?: number
  /** Permission bits of the root. Default 0o755. */
  rootMode?: number
  /** Most bytes of file content in total (then ENOSPC). Default 1 GiB. */
  capacity?: number
  /** Largest file (then EFBIG). Default: `capacity`. */
  maxFileSize?: number
  /** The device minor reported for every file. Default: distinct per instance. */
  devMinor?: number
}

let instances = 0

/**
 * An in-memory filesystem as a LISAFS backend:
 * `new BackendServer(new MemoryBackend()).listen(path)`.
 *
 * Host-side helpers ({@link mkdir}, {@link writeFile}, {@link readFile},
 * {@link symlink}, {@link lookup}) populate and inspect it directly.
 */
export class MemoryBackend implements Backend {
  /** The root directory. */
  readonly root: MemoryNode
  /** Bytes of file content held by linked files. */
  usedBytes = 0
  /** @internal */
  readonly capacity: number
  /** @internal */
  readonly maxFileSize: number
  /** @internal */
  readonly devMinor: number
  private readonly defaultOwner: Owner
  private lastIno = 1n

  /** @param options - see {@link MemoryBackendOptions} */
  constructor(options: MemoryBackendOptions = {}) {
    this.defaultOwner = { uid: options.uid ?? 0, gid: options.gid ?? 0 }
    this.capacity = options.capacity ?? 1 << 30
    this.maxFileSize = Math.min(options.maxFileSize ?? this.capacity, this.capacity)
    this.devMinor = options.devMinor ?? 0x4c00 + (instances++ % 256)
    this.root = new MemoryNode(1n, S_IFDIR | ((options.rootMode ?? 0o755) & 0o7777), this.defaultOwner)
    this.root.parent = this.root
  }

  /** The mount point. */
  mount(): NewControl {
    return { file: new MemoryControl(this, this.root), stat: this.statx(this.root) }
  }

  // -- internals shared by the FD classes --------------------------------------

  /** @internal */
  newNode(mode: number, owner: Owner): MemoryNode {
    this.lastIno += 1n
    return new MemoryNode(this.lastIno, mode, {
      uid: owner.uid === NO_ID ? this.defaultOwner.uid : owner.uid,
      gid: owner.gid === NO_ID ? this.defaultOwner.gid : owner.gid,
    })
  }

  /** @internal */
  statx(n: MemoryNode): Statx {
    const size = BigInt(n.size)
    return {
      mask: StatxMask.BASIC_STATS | StatxMask.BTIME,
      blksize: 4096,
      attributes: 0n,
      nlink: n.nlink,
      uid: n.uid,
      gid: n.gid,
      mode: n.mode,
      ino: n.ino,
      size,
      blocks: n.isFile ? (size + 511n) / 512n : 0n,
      attributesMask: 0n,
      atime: n.atime,
      btime: n.btime,
      ctime: n.ctime,
      mtime: n.mtime,
      rdevMajor: n.rdevMajor,
      rdevMinor: n.rdevMinor,
      devMajor: 0,
      devMinor: this.devMinor,
    }
  }

  /** Adds `name` -> `node` in `dir` (the name must be free). @internal */
  addEntry(dir: MemoryNode, name: Buffer, node: MemoryNode): void {
    dir.entries.set(key(name), { name: Buffer.from(name), node, off: dir.nextOff++ })
    if (node.isDirectory) {
      node.parent = dir
      dir.nlink++
    }
    const t = now()
    dir.mtime = t
    dir.ctime = t
  }

  /** Removes entry `k` of `dir` and drops a link of its node. @internal */
  removeEntry(dir: MemoryNode, k: string, node: MemoryNode): void {
    dir.entries.delete(k)
    const t = now()
    dir.mtime = t
    dir.ctime = t
    node.ctime = t
    if (node.isDirectory) {
      dir.nlink--
      node.nlink = 0
    } else {
      node.nlink--
    }
    if (node.nlink === 0 && node.isFile) this.usedBytes -= node.size
  }

  /** Sets a regular file's size, zero-filling growth. @internal */
  resize(n: MemoryNode, size: number): void {
    if (size > this.maxFileSize) fail('EFBIG')
    const growth = size - n.size
    if (n.nlink > 0 && growth > 0 && this.usedBytes + growth > this.capacity) fail('ENOSPC')
    if (size > n.data.length) {
      const grown = Buffer.alloc(Math.min(Math.max(size, n.data.length * 2, 64), this.maxFileSize))
      n.data.copy(grown, 0, 0, n.size)
      n.data = grown
    } else if (size < n.size) {
      n.data.fill(0, size, n.size)
    }
    if (n.nlink > 0) this.usedBytes += growth
    n.size = size
  }

  /** Validates a name for a new entry. @internal */
  checkNewName(dir: MemoryNode, name: Buffer): string {
    if (name.length > NAME_MAX) fail('ENAMETOOLONG')
    const k = key(name)
    if (dir.entries.has(k)) fail('EEXIST')
    return k
  }

  // -- host-side helpers -------------------------------------------------------

  /** The node at `path` (absolute, `/`-separated, no symlinks followed), if any. */
  lookup(path: string): MemoryNode | undefined {
    let cur: MemoryNode | undefined = this.root
    for (const c of path.split('/').filter((s) => s.length > 0)) {
      if (cur === undefined || !cur.isDirectory) return undefined
      cur = c === '..' ? cur.parent : c === '.' ? cur : cur.entries.get(key(Buffer.from(c)))?.node
    }
    return cur
  }

  private parentOf(path: string): { dir: MemoryNode; name: Buffer } {
    const parts = path.split('/').filter((s) => s.length > 0)
    const last = parts.pop()
    if (last === undefined) fail('EEXIST')
    const dir = this.lookup(parts.join('/'))
    if (dir === undefined) fail('ENOENT')
    if (!dir.isDirectory) fail('ENOTDIR')
    return { dir, name: Buffer.from(last) }
  }

  /** Creates directory `path` and its missing ancestors (like `mkdir -p`). */
  mkdir(path: string, mode = 0o755): MemoryNode {
    let cur = this.root
    for (const c of path.split('/').filter((s) => s.length > 0)) {
      const e = cur.entries.get(key(Buffer.from(c)))
      if (e !== undefined) {
        if (!e.node.isDirectory) fail('ENOTDIR')
        cur = e.node
        continue
      }
      const n = this.newNode(S_IFDIR | (mode & 0o7777), this.defaultOwner)
      this.addEntry(cur, Buffer.from(c), n)
      cur = n
    }
    return cur
  }

  /** Creates or replaces the content of regular file `path` (its directory must exist). */
  writeFile(path: string, data: Uint8Array | string, mode = 0o644): MemoryNode {
    const { dir, name } = this.parentOf(path)
    const content = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data)
    let n = dir.entries.get(key(name))?.node
    if (n === undefined) {
      n = this.newNode(S_IFREG | (mode & 0o7777), this.defaultOwner)
      this.addEntry(dir, name, n)
    }
    if (!n.isFile) fail('EISDIR')
    this.resize(n, 0)
    this.resize(n, content.length)
    content.copy(n.data)
    const t = now()
    n.mtime = t
    n.ctime = t
    return n
  }

  /** The content of regular file `path`. */
  readFile(path: string): Buffer {
    const n = this.lookup(path)
    if (n === undefined) fail('ENOENT')
    if (!n.isFile) fail('EISDIR')
    return Buffer.from(n.data.subarray(0, n.size))
  }

  /** Creates symlink `path` pointing at `target`. */
  symlink(target: string, path: string): MemoryNode {
    const { dir, name } = this.parentOf(path)
    this.checkNewName(dir, name)
    const n = this.newNode(S_IFLNK | 0o777, this.defaultOwner)
    n.target = Buffer.from(target)
    n.size = n.target.length
    this.addEntry(dir, name, n)
    return n
  }
}

function isAncestorOrSelf(a: MemoryNode, d: MemoryNode): boolean {
  for (let cur: MemoryNode | undefined = d; cur !== undefined; cur = cur.parent) {
    if (cur === a) return true
    if (cur.parent === cur) return false
  }
  return false
}

function timeOf(t: { sec: bigint; nsec: bigint }, at: StatxTimestamp): StatxTimestamp | undefined {
  if (t.nsec === UTIME_OMIT) return undefined
  if (t.nsec === UTIME_NOW) return at
  if (t.nsec < 0n || t.nsec >= 1_000_000_000n) fail('EINVAL')
  return { sec: t.sec, nsec: Number(t.nsec) }
}

/** A position in a {@link MemoryBackend}'s tree. */
class MemoryControl implements ControlFdImpl {
  constructor(
    private readonly fs: MemoryBackend,
    readonly node: MemoryNode,
  ) {}

  private child(node: MemoryNode): NewControl {
    return { file: new MemoryControl(this.fs, node), stat: this.fs.statx(node) }
  }

  stat(): Statx {
    return this.fs.statx(this.node)
  }

  setStat(req: SetStatRequest): SetStatOutcome {
    const n = this.node
    let failureMask = 0
    let failureErrno = 0
    const t = now()
    let changed = false
    const attempt = (bits: number, f: () => void): void => {
      if ((req.mask & bits) === 0) return
      try {
        f()
        changed = true
      } catch (err) {
        failureMask |= bits
        const code = (err as { code?: unknown }).code
        failureErrno = typeof code === 'string' && code in osConstants.errno ? errnoNumber(code as ErrnoName) : errnoNumber('EIO')
      }
    }
    attempt(StatxMask.MODE, () => {
      // Linux has no mode for a symlink: fchmodat(AT_SYMLINK_NOFOLLOW) fails.
      if (n.isSymbolicLink) fail('EOPNOTSUPP')
      n.mode = (n.mode & S_IFMT) | (req.mode & 0o7777)
    })
    attempt(StatxMask.UID, () => {
      if (req.uid !== NO_ID) n.uid = req.uid
    })
    attempt(StatxMask.GID, () => {
      if (req.gid !== NO_ID) n.gid = req.gid
    })
    attempt(StatxMask.SIZE, () => {
      if (n.isDirectory) fail('EISDIR')
      if (!n.isFile) fail('EINVAL')
      if (req.size > BigInt(this.fs.maxFileSize)) fail('EFBIG')
      this.fs.resize(n, Number(req.size))
      n.mtime = t
    })
    attempt(StatxMask.ATIME, () => {
      const v = timeOf(req.atime, t)
      if (v !== undefined) n.atime = v
    })
    attempt(StatxMask.MTIME, () => {
      const v = timeOf(req.mtime, t)
      if (v !== undefined) n.mtime = v
    })
    if (changed) n.ctime = t
    return { failureMask, failureErrno }
  }

  walk(name: Buffer): NewControl {
    if (!this.node.isDirectory) fail('ENOTDIR')
    const e = this.node.entries.get(key(name))
    if (e === undefined) fail('ENOENT')
    return this.child(e.node)
  }

  walkStat(path: Buffer[]): Statx[] {
    const out: Statx[] = []
    let cur = this.node
    let i = 0
    if (path[0]?.length === 0) {
      out.push(this.fs.statx(cur))
      i = 1
    }
    for (; i < path.length; i++) {
      if (!cur.isDirectory) fail('ENOTDIR')
      const e = cur.entries.get(key(path[i] as Buffer))
      if (e === undefined) break
      out.push(this.fs.statx(e.node))
      if (e.node.isSymbolicLink) break
      cur = e.node
    }
    return out
  }

  open(flags: number): OpenFdImpl {
    const n = this.node
    switch (n.mode & S_IFMT) {
      case S_IFDIR:
        return new MemoryOpen(this.fs, n)
      case S_IFREG:
        if ((flags & O_TRUNC) !== 0 && (flags & O_ACCMODE) !== 0 && n.size > 0) {
          this.fs.resize(n, 0)
          const t = now()
          n.mtime = t
          n.ctime = t
        }
        return new MemoryOpen(this.fs, n)
      case S_IFSOCK:
        return fail('ENXIO')
      default:
        // FIFOs and devices have no in-memory implementation.
        return fail('EPERM')
    }
  }

  openCreate(name: Buffer, mode: number, owner: Owner, flags: number): CreatedFile {
    const dir = this.node
    this.fs.checkNewName(dir, name)
    const n = this.fs.newNode(S_IFREG | (mode & 0o7777), owner)
    this.fs.addEntry(dir, name, n)
    void flags
    return { ...this.child(n), open: new MemoryOpen(this.fs, n) }
  }

  mkdir(name: Buffer, mode: number, owner: Owner): NewControl {
    this.fs.checkNewName(this.node, name)
    const n = this.fs.newNode(S_IFDIR | (mode & 0o7777), owner)
    this.fs.addEntry(this.node, name, n)
    return this.child(n)
  }

  mknod(name: Buffer, mode: number, owner: Owner, dev: { major: number; minor: number }): NewControl {
    let type = mode & S_IFMT
    if (type === 0) type = S_IFREG
    if (type === S_IFDIR) fail('EPERM')
    if (type !== S_IFREG && type !== S_IFCHR && type !== S_IFBLK && type !== S_IFIFO && type !== S_IFSOCK) fail('EINVAL')
    this.fs.checkNewName(this.node, name)
    const n = this.fs.newNode(type | (mode & 0o7777), owner)
    if (type === S_IFCHR || type === S_IFBLK) {
      n.rdevMajor = dev.major
      n.rdevMinor = dev.minor
    }
    this.fs.addEntry(this.node, name, n)
    return this.child(n)
  }

  symlink(name: Buffer, target: Buffer, owner: Owner): NewControl {
    this.fs.checkNewName(this.node, name)
    const n = this.fs.newNode(S_IFLNK | 0o777, owner)
    n.target = Buffer.from(target)
    n.size = target.length
    this.fs.addEntry(this.node, name, n)
    return this.child(n)
  }

  link(dir: ControlFdImpl, name: Buffer): NewControl {
    if (!(dir instanceof MemoryControl) || dir.fs !== this.fs) fail('EXDEV')
    const n = this.node
    if (n.isDirectory) fail('EPERM')
    if (n.nlink === 0) fail('ENOENT')
    this.fs.checkNewName(dir.node, name)
    this.fs.addEntry(dir.node, name, n)
    n.nlink++
    n.ctime = now()
    return this.child(n)
  }

  statFs(): StatFsInput {
    const blocks = BigInt(Math.floor(this.fs.capacity / 4096))
    const free = BigInt(Math.max(0, Math.floor((this.fs.capacity - this.fs.usedBytes) / 4096)))
    return {
      fsType: TMPFS_MAGIC,
      blockSize: 4096n,
      blocks,
      blocksFree: free,
      blocksAvailable: free,
      files: 1n << 20n,
      filesFree: 1n << 20n,
      nameLength: BigInt(NAME_MAX),
    }
  }

  readlink(): Buffer {
    if (!this.node.isSymbolicLink) fail('EINVAL')
    return this.node.target
  }

  unlink(name: Buffer, flags: number): void {
    const dir = this.node
    const k = key(name)
    const e = dir.entries.get(k)
    if (e === undefined) fail('ENOENT')
    if ((flags & AT_REMOVEDIR) !== 0) {
      if (!e.node.isDirectory) fail('ENOTDIR')
      if (e.node.entries.size > 0) fail('ENOTEMPTY')
    } else if (e.node.isDirectory) {
      fail('EISDIR')
    }
    this.fs.removeEntry(dir, k, e.node)
  }

  renameAt(oldName: Buffer, newDir: ControlFdImpl, newName: Buffer, flags: number): void {
    if (!(newDir instanceof MemoryControl) || newDir.fs !== this.fs) fail('EXDEV')
    if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) !== 0 || flags === (RENAME_NOREPLACE | RENAME_EXCHANGE)) fail('EINVAL')
    if (newName.length > NAME_MAX) fail('ENAMETOOLONG')
    const src = this.node
    const dst = newDir.node
    const oldKey = key(oldName)
    const newKey = key(newName)
    const se = src.entries.get(oldKey)
    if (se === undefined) fail('ENOENT')
    const de = dst.entries.get(newKey)
    const moving = se.node
    if (moving.isDirectory && isAncestorOrSelf(moving, dst)) fail('EINVAL')
    const t = now()
    if ((flags & RENAME_EXCHANGE) !== 0) {
      if (de === undefined) fail('ENOENT')
      const other = de.node
      if (other.isDirectory && isAncestorOrSelf(other, src)) fail('EINVAL')
      src.entries.set(oldKey, { name: se.name, node: other, off: se.off })
      dst.entries.set(newKey, { name: de.name, node: moving, off: de.off })
      if (src !== dst) {
        if (moving.isDirectory) {
          moving.parent = dst
          src.nlink--
          dst.nlink++
        }
        if (other.isDirectory) {
          other.parent = src
          dst.nlink--
          src.nlink++
        }
      }
      moving.ctime = t
      other.ctime = t
    } else {
      if (de !== undefined) {
        if ((flags & RENAME_NOREPLACE) !== 0) fail('EEXIST')
        // Two names of one inode: nothing to do (POSIX).
        if (de.node === moving) return
        if (moving.isDirectory) {
          if (!de.node.isDirectory) fail('ENOTDIR')
          if (de.node.entries.size > 0) fail('ENOTEMPTY')
        } else if (de.node.isDirectory) {
          fail('EISDIR')
        }
        this.fs.removeEntry(dst, newKey, de.node)
      }
      src.entries.delete(oldKey)
      dst.entries.set(newKey, { name: Buffer.from(newName), node: moving, off: dst.nextOff++ })
      if (moving.isDirectory && src !== dst) {
        moving.parent = dst
        src.nlink--
        dst.nlink++
      }
      moving.ctime = t
    }
    src.mtime = t
    src.ctime = t
    dst.mtime = t
    dst.ctime = t
  }

  getXattr(name: Buffer, size: number): Buffer {
    const v = this.node.xattrs.get(key(name))
    if (v === undefined) fail('ENODATA')
    if (size > 0 && v.length > size) fail('ERANGE')
    return v
  }

  setXattr(name: Buffer, value: Buffer, flags: number): void {
    const k = key(name)
    if (!XATTR_NAMESPACES.some((ns) => k.startsWith(ns) && k.length > ns.length)) fail('EOPNOTSUPP')
    if (name.length > XATTR_NAME_MAX) fail('ERANGE')
    if (value.length > XATTR_SIZE_MAX) fail('E2BIG')
    const exists = this.node.xattrs.has(k)
    if ((flags & XATTR_CREATE) !== 0 && exists) fail('EEXIST')
    if ((flags & XATTR_REPLACE) !== 0 && !exists) fail('ENODATA')
    this.node.xattrs.set(k, Buffer.from(value))
    this.node.ctime = now()
  }

  listXattr(size: bigint): Buffer[] {
    const names = [...this.node.xattrs.keys()].map((k) => Buffer.from(k, 'latin1'))
    const total = names.reduce((n, b) => n + b.length + 1, 0)
    if (size > 0n && BigInt(total) > size) fail('ERANGE')
    return names
  }

  removeXattr(name: Buffer): void {
    if (!this.node.xattrs.delete(key(name))) fail('ENODATA')
    this.node.ctime = now()
  }
}

/** An open file or directory of a {@link MemoryBackend}. */
class MemoryOpen implements OpenFdImpl {
  /** Directories: the cookie of the last entry returned. */
  private pos = 0n

  constructor(
    private readonly fs: MemoryBackend,
    private readonly node: MemoryNode,
  ) {}

  stat(): Statx {
    return this.fs.statx(this.node)
  }

  sync(): void {}

  read(length: number, offset: bigint): Buffer {
    const n = this.node
    if (!n.isFile) fail('EISDIR')
    if (offset >= BigInt(n.size)) return Buffer.alloc(0)
    const off = Number(offset)
    return n.data.subarray(off, Math.min(off + length, n.size))
  }

  write(data: Buffer, offset: bigint): number {
    const n = this.node
    if (!n.isFile) fail('EINVAL')
    if (offset + BigInt(data.length) > BigInt(this.fs.maxFileSize)) fail('EFBIG')
    const off = Number(offset)
    const end = off + data.length
    if (end > n.size) this.fs.resize(n, end)
    data.copy(n.data, off)
    const t = now()
    n.mtime = t
    n.ctime = t
    return data.length
  }

  allocate(mode: bigint, offset: bigint, length: bigint): void {
    const n = this.node
    if (!n.isFile) fail('ENODEV')
    const end = offset + length
    if (end > BigInt(this.fs.maxFileSize)) fail('EFBIG')
    const FALLOC_FL_KEEP_SIZE = 1n
    const FALLOC_FL_PUNCH_HOLE = 2n
    if (mode === 0n) {
      if (end > BigInt(n.size)) this.fs.resize(n, Number(end))
    } else if (mode === FALLOC_FL_KEEP_SIZE) {
      // Nothing to reserve in memory.
    } else if (mode === (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
      const from = Number(offset)
      n.data.fill(0, Math.min(from, n.size), Math.min(Number(end), n.size))
    } else {
      fail('EOPNOTSUPP')
    }
    const t = now()
    n.mtime = t
    n.ctime = t
  }

  getdents(count: number, seek0: boolean): DirentInput[] {
    const dir = this.node
    if (!dir.isDirectory) fail('ENOTDIR')
    if (seek0) this.pos = 0n
    const out: DirentInput[] = []
    let used = 0
    let more = false
    for (const e of dir.entries.values()) {
      if (e.off <= this.pos) continue
      const size = direntRecordSize(e.name.length)
      if (used + size > count) {
        more = true
        break
      }
      used += size
      out.push({ name: e.name, type: direntType(e.node.mode), ino: e.node.ino, off: e.off, devMinor: this.fs.devMinor })
    }
    if (out.length === 0 && more) fail('EINVAL')
    const last = out[out.length - 1]
    if (last !== undefined) this.pos = BigInt(last.off ?? this.pos)
    return out
  }
}
