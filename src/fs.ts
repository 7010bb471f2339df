/**
 * An fs-like layer over a LISAFS {@link Client}: `readFile`, `writeFile`,
 * `readdir`, `stat`, `mkdir`, `rm`, streams... with the signatures and
 * semantics of `node:fs/promises` where they apply.
 *
 * Paths are POSIX strings inside the mount: `/a/b` and `a/b` both name `b`
 * in `a` below the mount root. `.` and `..` are resolved lexically before
 * anything is sent (`..` above the root stays at the root, like a chroot),
 * and symlinks are followed by this client, never by the server.
 * @module
 */
import { Readable, Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'

import { Mid, type Dirent64, type Statx } from '../index.js'
import { Flags, closeHandles, type Client, type ControlFd, type OpenFd, type Walked } from './client.js'
import { LisafsError } from './errors.js'

// ---------------------------------------------------------------------------
// Public types

/** A path: a POSIX string, raw bytes (for non-UTF-8 names) or a `file:` URL. */
export type PathLike = string | Uint8Array | URL

/**
 * The `flag`s of {@link LisafsFs.writeFile} and `flags` of
 * {@link LisafsFs.createWriteStream}, as in `node:fs`:
 * `'w'`/`'w+'` create or truncate, `'wx'`/`'wx+'` create and fail with
 * EEXIST if the path exists (a symlink included), `'a'`/`'a+'` create or
 * append, `'ax'`/`'ax+'` create exclusively and append, `'r+'` write over
 * an existing file without truncating it.
 */
export type WriteFlag = 'w' | 'w+' | 'wx' | 'wx+' | 'a' | 'a+' | 'ax' | 'ax+' | 'r+'

/** Options of {@link createFs} / the {@link LisafsFs} constructor. */
export interface FsOptions {
  /**
   * Permission bits cleared from the `mode` of every file, directory and
   * node this layer creates, as the kernel does with a process umask (the
   * server applies modes verbatim). Default `0o022`.
   */
  umask?: number
}

/** Options of {@link LisafsFs.readFile}. */
export interface ReadFileOptions {
  /** Decode the content with this encoding; `null`/absent: a Buffer. */
  encoding?: BufferEncoding | null
  /** Only `'r'` (the default) is supported. */
  flag?: 'r'
  /** Aborts the read between chunks (rejects with an {@link AbortError}). */
  signal?: AbortSignal
}

/** Options of {@link LisafsFs.writeFile}. */
export interface WriteFileOptions {
  /** Encoding of string data. Default `'utf8'`. */
  encoding?: BufferEncoding | null
  /** Mode of a created file (before the umask). Default `0o666`. */
  mode?: number
  /** How to open the file. Default `'w'`. */
  flag?: WriteFlag
  /** Aborts the write between chunks (rejects with an {@link AbortError}). */
  signal?: AbortSignal
}

/** Options of {@link LisafsFs.readdir}. */
export interface ReaddirOptions {
  /** Return {@link LisafsDirent} objects instead of names. */
  withFileTypes?: boolean
}

/** Options of {@link LisafsFs.mkdir}. */
export interface MakeDirectoryOptions {
  /** Create missing parents too, and do not fail if the directory exists. */
  recursive?: boolean
  /** Mode of created directories (before the umask). Default `0o777`. */
  mode?: number
}

/** Options of {@link LisafsFs.rm}. */
export interface RmOptions {
  /** Remove directories and their contents. Default false. */
  recursive?: boolean
  /** Ignore a missing path. Default false. */
  force?: boolean
}

/** Options of {@link LisafsFs.readlink}. */
export interface ReadlinkOptions {
  /** `'buffer'` for the raw bytes, else the encoding of the string. Default `'utf8'`. */
  encoding?: BufferEncoding | 'buffer' | null
}

/** Options of {@link LisafsFs.createReadStream}. */
export interface ReadStreamOptions {
  /** First byte to read. Default 0. */
  start?: number
  /** Last byte to read, inclusive (as in `node:fs`). Default: end of file. */
  end?: number
  /** Bytes per read request (and the stream's buffer size). Default 64 KiB. */
  highWaterMark?: number
  /** Decode chunks to strings with this encoding. */
  encoding?: BufferEncoding | null
  /** Destroys the stream with an `AbortError` when aborted. */
  signal?: AbortSignal
}

/** Options of {@link LisafsFs.createWriteStream}. */
export interface WriteStreamOptions {
  /** How to open the file. Default `'w'`. */
  flags?: WriteFlag
  /** Mode of a created file (before the umask). Default `0o666`. */
  mode?: number
  /** Offset of the first write. Default 0 (the end of file for `'a'` flags). */
  start?: number
  /** The stream's buffer size. Default 16 KiB. */
  highWaterMark?: number
  /** Encoding of string chunks. Default `'utf8'`. */
  encoding?: BufferEncoding
  /** Destroys the stream with an `AbortError` when aborted. */
  signal?: AbortSignal
}

/**
 * An aborted operation, as `node:fs` reports it: `name` `'AbortError'`,
 * `code` `'ABORT_ERR'`, and the signal's reason as `cause`.
 */
export class AbortError extends Error {
  /** Always `'ABORT_ERR'`. */
  readonly code = 'ABORT_ERR'

  /**
   * @param message - defaults to Node's `'The operation was aborted'`
   * @param options - `cause`: the signal's reason
   */
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AbortError'
  }
}

const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000
const S_IFIFO = 0o010000
const S_IFSOCK = 0o140000
const S_IFCHR = 0o020000
const S_IFBLK = 0o060000

/** glibc's `makedev`: the `dev_t` Node reports for a major/minor pair. */
function makedev(major: number, minor: number): number {
  const M = BigInt(major >>> 0)
  const m = BigInt(minor >>> 0)
  return Number(((M & 0xfffff000n) << 32n) | ((M & 0xfffn) << 8n) | ((m & 0xffffff00n) << 12n) | (m & 0xffn))
}

function ms(t: { sec: bigint; nsec: number }): number {
  return Number(t.sec) * 1000 + t.nsec / 1e6
}

/**
 * File status, shaped like `fs.Stats` (numbers, not bigints; a 64-bit
 * value above 2^53 loses precision as in Node).
 */
export class LisafsStats {
  /** Device holding the file (`makedev(major, minor)`). */
  readonly dev: number
  /** Inode number. */
  readonly ino: number
  /** File type and permission bits. */
  readonly mode: number
  /** Hard links. */
  readonly nlink: number
  /** Owner. */
  readonly uid: number
  /** Group. */
  readonly gid: number
  /** Device number of a device file. */
  readonly rdev: number
  /** Size in bytes. */
  readonly size: number
  /** Preferred I/O block size. */
  readonly blksize: number
  /** 512-byte blocks allocated. */
  readonly blocks: number
  /** Last access, in ms since the epoch. */
  readonly atimeMs: number
  /** Last modification, in ms since the epoch. */
  readonly mtimeMs: number
  /** Last status change, in ms since the epoch. */
  readonly ctimeMs: number
  /** Creation, in ms since the epoch (0 when the filesystem does not say). */
  readonly birthtimeMs: number
  // Dates are built on first use, as node:fs does: most callers read a
  // size or a type, and four Date objects were a fifth of a stat's cost.
  #atime?: Date
  #mtime?: Date
  #ctime?: Date
  #birthtime?: Date

  /** @param s - the protocol's statx */
  constructor(s: Statx) {
    this.dev = makedev(s.devMajor, s.devMinor)
    this.ino = Number(s.ino)
    this.mode = s.mode
    this.nlink = s.nlink
    this.uid = s.uid
    this.gid = s.gid
    this.rdev = makedev(s.rdevMajor, s.rdevMinor)
    this.size = Number(s.size)
    this.blksize = s.blksize
    this.blocks = Number(s.blocks)
    this.atimeMs = ms(s.atime)
    this.mtimeMs = ms(s.mtime)
    this.ctimeMs = ms(s.ctime)
    this.birthtimeMs = ms(s.btime)
  }

  /** Last access. */
  get atime(): Date {
    return (this.#atime ??= new Date(this.atimeMs))
  }
  /** Last modification. */
  get mtime(): Date {
    return (this.#mtime ??= new Date(this.mtimeMs))
  }
  /** Last status change. */
  get ctime(): Date {
    return (this.#ctime ??= new Date(this.ctimeMs))
  }
  /** Creation. */
  get birthtime(): Date {
    return (this.#birthtime ??= new Date(this.birthtimeMs))
  }

  /** The fields and the four dates, as `JSON.stringify` of an `fs.Stats` gives. */
  toJSON(): Record<string, number | Date> {
    const fields: Record<string, number> = Object.fromEntries(Object.entries(this))
    return { ...fields, atime: this.atime, mtime: this.mtime, ctime: this.ctime, birthtime: this.birthtime }
  }

  /** Whether this is a regular file. */
  isFile(): boolean {
    return (this.mode & S_IFMT) === S_IFREG
  }
  /** Whether this is a directory. */
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR
  }
  /** Whether this is a symlink (only from {@link LisafsFs.lstat}). */
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === S_IFLNK
  }
  /** Whether this is a FIFO. */
  isFIFO(): boolean {
    return (this.mode & S_IFMT) === S_IFIFO
  }
  /** Whether this is a socket. */
  isSocket(): boolean {
    return (this.mode & S_IFMT) === S_IFSOCK
  }
  /** Whether this is a character device. */
  isCharacterDevice(): boolean {
    return (this.mode & S_IFMT) === S_IFCHR
  }
  /** Whether this is a block device. */
  isBlockDevice(): boolean {
    return (this.mode & S_IFMT) === S_IFBLK
  }
}

const DT_FIFO = 1
const DT_CHR = 2
const DT_DIR = 4
const DT_BLK = 6
const DT_REG = 8
const DT_LNK = 10
const DT_SOCK = 12

function dtFromMode(mode: number): number {
  return (mode & S_IFMT) >>> 12
}

/** A directory entry, shaped like `fs.Dirent`. */
export class LisafsDirent {
  /** The entry's name. */
  readonly name: string
  /** The directory path passed to {@link LisafsFs.readdir}, as given. */
  readonly parentPath: string
  /** The entry's `DT_*` type. */
  readonly type: number

  /**
   * @param name - the entry's name
   * @param type - a `DT_*` value
   * @param parentPath - the directory as the caller named it
   */
  constructor(name: string, type: number, parentPath: string) {
    this.name = name
    this.type = type
    this.parentPath = parentPath
  }

  /** Alias of {@link parentPath} (deprecated in Node, kept for compatibility). */
  get path(): string {
    return this.parentPath
  }
  /** Whether this is a regular file. */
  isFile(): boolean {
    return this.type === DT_REG
  }
  /** Whether this is a directory. */
  isDirectory(): boolean {
    return this.type === DT_DIR
  }
  /** Whether this is a symlink. */
  isSymbolicLink(): boolean {
    return this.type === DT_LNK
  }
  /** Whether this is a FIFO. */
  isFIFO(): boolean {
    return this.type === DT_FIFO
  }
  /** Whether this is a socket. */
  isSocket(): boolean {
    return this.type === DT_SOCK
  }
  /** Whether this is a character device. */
  isCharacterDevice(): boolean {
    return this.type === DT_CHR
  }
  /** Whether this is a block device. */
  isBlockDevice(): boolean {
    return this.type === DT_BLK
  }
}

// ---------------------------------------------------------------------------
// Errors and argument checks

const E = {
  ENOENT: 2,
  EBUSY: 16,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EIO: 5,
  ELOOP: 40,
} as const

/** Linux's `MAXSYMLINKS`: symlinks followed in one resolution. */
const MAX_SYMLINKS = 40

interface ErrCtx {
  syscall: string
  path: string
  dest?: string
}

function fail(errno: number, ctx: ErrCtx): LisafsError {
  return new LisafsError(errno, ctx.syscall, ctx.path, ctx.dest)
}

/** Re-labels a LISAFS failure with the user's operation and path. */
function relabel(err: unknown, ctx: ErrCtx): unknown {
  return err instanceof LisafsError ? fail(-err.errno, ctx) : err
}

function isErrno(err: unknown, errno: number): boolean {
  return err instanceof LisafsError && err.errno === -errno
}

function argError(ctor: TypeErrorConstructor | RangeErrorConstructor, code: string, message: string): Error {
  const err = new ctor(message)
  Object.defineProperty(err, 'code', { value: code, enumerable: true, writable: true, configurable: true })
  return err
}

/** Node's `ERR_FS_EISDIR` SystemError, as `fs.rm` throws for a directory without `recursive`. */
function fsEisdir(path: string): LisafsError {
  const err = new LisafsError(E.EISDIR, 'rm', path)
  const info = { code: 'EISDIR', message: 'is a directory', path, syscall: 'rm', errno: E.EISDIR }
  err.name = 'SystemError'
  err.message = `Path is a directory: rm returned EISDIR (is a directory) ${path}`
  Object.defineProperty(err, 'code', { value: 'ERR_FS_EISDIR', enumerable: true, writable: true, configurable: true })
  Object.defineProperty(err, 'errno', { value: E.EISDIR, enumerable: true, writable: true, configurable: true })
  Object.defineProperty(err, 'info', { value: info, enumerable: true, writable: true, configurable: true })
  Error.captureStackTrace(err, fsEisdir) // a stack headed by the new name and message
  return err
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason })
}

function checkInt(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be an integer. Received ${String(value)}`)
  }
  if (value < min) {
    throw argError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be >= ${min}. Received ${value}`)
  }
  return value
}

interface FlagSpec {
  create: boolean
  exclusive: boolean
  truncate: boolean
  append: boolean
}

const WRITE_FLAGS: Record<WriteFlag, FlagSpec> = {
  w: { create: true, exclusive: false, truncate: true, append: false },
  'w+': { create: true, exclusive: false, truncate: true, append: false },
  wx: { create: true, exclusive: true, truncate: true, append: false },
  'wx+': { create: true, exclusive: true, truncate: true, append: false },
  a: { create: true, exclusive: false, truncate: false, append: true },
  'a+': { create: true, exclusive: false, truncate: false, append: true },
  ax: { create: true, exclusive: true, truncate: false, append: true },
  'ax+': { create: true, exclusive: true, truncate: false, append: true },
  'r+': { create: false, exclusive: false, truncate: false, append: false },
}

function writeFlag(flag: unknown): FlagSpec {
  const spec = typeof flag === 'string' ? WRITE_FLAGS[flag as WriteFlag] : undefined
  if (spec === undefined || !Object.hasOwn(WRITE_FLAGS, flag as string)) {
    throw argError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument 'flags' is not supported. Received ${String(flag)}`)
  }
  return spec
}

// ---------------------------------------------------------------------------
// Paths

const SLASH = 0x2f
const DOT = 0x2e

function isDot(b: Buffer): boolean {
  return b.length === 1 && b[0] === DOT
}

function isDotDot(b: Buffer): boolean {
  return b.length === 2 && b[0] === DOT && b[1] === DOT
}

function splitBytes(b: Buffer): Buffer[] {
  const out: Buffer[] = []
  let from = 0
  for (;;) {
    const at = b.indexOf(SLASH, from)
    if (at < 0) {
      out.push(b.subarray(from))
      return out
    }
    out.push(b.subarray(from, at))
    from = at + 1
  }
}

/** A user path, lexically normalized. */
interface Parsed {
  /** The path as the user gave it, for errors. */
  display: string
  /** Whether it was given as absolute. */
  absolute: boolean
  /** Components below the root, without `.`, `..` or empty ones. */
  comps: Buffer[]
  /** A trailing `/`, `/.` or `/..`: the result must be a directory. */
  dirOnly: boolean
  /** The path was `''`. */
  empty: boolean
}

function parsePath(path: unknown, argName = 'path'): Parsed {
  let raw: Buffer
  let display: string
  if (typeof path === 'string') {
    raw = Buffer.from(path, 'utf8')
    display = path
  } else if (path instanceof URL) {
    display = fileURLToPath(path)
    raw = Buffer.from(display, 'utf8')
  } else if (path instanceof Uint8Array) {
    raw = Buffer.from(path.buffer, path.byteOffset, path.byteLength)
    display = raw.toString('utf8')
  } else {
    throw argError(
      TypeError,
      'ERR_INVALID_ARG_TYPE',
      `The "${argName}" argument must be of type string or an instance of Buffer or URL. Received ${typeof path}`,
    )
  }
  if (raw.includes(0)) {
    throw argError(
      TypeError,
      'ERR_INVALID_ARG_VALUE',
      `The argument '${argName}' must be a string, Uint8Array, or URL without null bytes. Received ${JSON.stringify(display)}`,
    )
  }
  const parts = splitBytes(raw)
  const comps: Buffer[] = []
  for (const part of parts) {
    if (part.length === 0 || isDot(part)) continue
    if (isDotDot(part)) comps.pop()
    else comps.push(part)
  }
  const last = parts[parts.length - 1]
  const dirOnly = parts.length > 1 && last !== undefined && (last.length === 0 || isDot(last) || isDotDot(last))
  return { display, absolute: raw[0] === SLASH, comps, dirOnly, empty: raw.length === 0 }
}

function joinComps(comps: Buffer[], absolute: boolean): string {
  const s = comps.map((c) => c.toString('utf8')).join('/')
  return absolute ? `/${s}` : s
}

function childDisplay(parent: string, name: string): string {
  return parent.endsWith('/') ? `${parent}${name}` : `${parent}/${name}`
}

// ---------------------------------------------------------------------------
// Resolution

/** A component still to walk; `user` if it comes from the user's path. */
interface Comp {
  name: Buffer
  user: boolean
}

interface ResolveOptions {
  /** Follow a symlink in the last position. */
  follow: boolean
  /**
   * What a missing component does: `'error'` ENOENT; `'last'` stop when only
   * the last one is missing; `'any'` stop at any missing component.
   */
  missing: 'error' | 'last' | 'any'
  /** The result must be a directory (a trailing slash); implies `follow`. */
  dirOnly?: boolean
}

/**
 * The handles of a resolved path: one per component below the root (the
 * physical path, symlinks replaced by their targets), which {@link close}
 * releases. The root is the client's mount handle and is never closed.
 */
class Resolution {
  private readonly stack: ControlFd[] = []
  private readonly names: Buffer[] = []
  /** Components not found (only with `missing: 'last' | 'any'`). */
  missing: Comp[] = []

  constructor(private readonly root: ControlFd) {}

  /** The deepest handle: the resolved file, or the directory holding `missing`. */
  get current(): ControlFd {
    return this.stack[this.stack.length - 1] ?? this.root
  }

  /** The name of the deepest handle in its directory; undefined at the root. */
  get name(): Buffer | undefined {
    return this.names[this.names.length - 1]
  }

  /** Whether the result is the root itself. */
  get atRoot(): boolean {
    return this.stack.length === 0
  }

  push(fd: ControlFd, name: Buffer): void {
    this.stack.push(fd)
    this.names.push(name)
  }

  /** Removes the deepest handle; the caller owns it. */
  detach(): ControlFd | undefined {
    this.names.pop()
    return this.stack.pop()
  }

  /** Closes the deepest handle (`..`). */
  async pop(): Promise<void> {
    await this.detach()?.close()
  }

  /** Releases every handle (and `extra`) in one Close request. */
  async close(extra: OpenFd[] = []): Promise<void> {
    const fds: Array<ControlFd | OpenFd> = this.stack.splice(0).reverse()
    this.names.length = 0
    await closeHandles([...extra, ...fds])
  }
}

type Closable = { close(): Promise<void> } | undefined

/** Closes every handle, then throws the first close failure, if any. */
async function release(handles: Closable[]): Promise<void> {
  let first: { error: unknown } | undefined
  for (const h of handles) {
    try {
      await h?.close()
    } catch (error) {
      first ??= { error }
    }
  }
  if (first !== undefined) throw first.error
}

/** Closes every handle (ignoring failures), then throws `error`. */
async function releaseAfter(handles: Closable[], error: unknown): Promise<never> {
  await release(handles).catch(() => {})
  throw error
}

/** Runs `fn`, then closes `handles` whatever happened; `fn`'s failure wins. */
async function withHandles<T>(handles: Closable[], fn: () => Promise<T>): Promise<T> {
  let result: T
  try {
    result = await fn()
  } catch (error) {
    return releaseAfter(handles, error)
  }
  await release(handles)
  return result
}

// ---------------------------------------------------------------------------
// The filesystem

/**
 * An fs-like view of a LISAFS mount, with the signatures of
 * `node:fs/promises`. Build one with {@link createFs} or `new LisafsFs(client)`;
 * it holds no handle of its own (only the client's mount handle is used),
 * so there is nothing to close besides the client.
 *
 * Every intermediate handle is released before a method settles, whether it
 * succeeds, fails or is aborted; streams release theirs when they close.
 */
export class LisafsFs {
  /** The connection this view works over. */
  readonly client: Client
  private readonly umask: number
  private readonly chunk: number
  private readonly batch: number

  /**
   * @param client - a connected client; its mount handle is the root
   * @param options - see {@link FsOptions}
   */
  constructor(client: Client, options: FsOptions = {}) {
    this.client = client
    this.umask = (options.umask ?? 0o022) & 0o7777
    const max = client.maxMessageSize
    this.chunk = Math.max(4096, Math.min(1 << 20, max - 64))
    // A Walk reply carries a 152-byte inode per name and a request up to
    // 257 bytes per name: both must fit the message size.
    this.batch = Math.max(1, Math.min(256, Math.floor((max - 64) / 512)))
  }

  private get root(): ControlFd {
    return this.client.mount()
  }

  // -- resolution ------------------------------------------------------------

  /**
   * Walks `comps` from the root, following symlinks client-side (a final
   * one only with `follow`), at most 40 of them. Walks several components
   * per request; `..` from a symlink target pops the physical path.
   */
  private async resolve(comps: Buffer[], o: ResolveOptions, ctx: ErrCtx): Promise<Resolution> {
    const res = new Resolution(this.root)
    const follow = o.follow || o.dirOnly === true
    const queue: Comp[] = comps.map((name) => ({ name, user: true }))
    let links = 0
    try {
      while (queue.length > 0) {
        const head = queue[0]
        if (head !== undefined && isDotDot(head.name)) {
          queue.shift()
          await res.pop()
          continue
        }
        let n = 0
        while (n < queue.length && n < this.batch && !isDotDot((queue[n] as Comp).name)) n++
        const batch = queue.slice(0, n)
        let walked: Walked
        try {
          walked = await res.current.walk(batch.map((c) => c.name))
        } catch (err) {
          throw relabel(err, ctx)
        }
        walked.fds.forEach((fd, i) => res.push(fd, (batch[i] as Comp).name))
        queue.splice(0, walked.fds.length)
        const top = walked.fds[walked.fds.length - 1]
        if (top !== undefined && top.isSymbolicLink && (queue.length > 0 || follow)) {
          if (++links > MAX_SYMLINKS) throw fail(E.ELOOP, ctx)
          const link = res.detach() as ControlFd
          const target = await withHandles([link], () => link.readlinkAt()).catch((err: unknown) => {
            throw relabel(err, ctx)
          })
          if (target.length === 0) throw fail(E.ENOENT, ctx)
          // An absolute target restarts from the root: the mount, not the host's.
          if (target[0] === SLASH) await res.close()
          const spliced = splitBytes(target)
            .filter((c) => c.length > 0 && !isDot(c))
            .map((name) => ({ name, user: false }))
          queue.unshift(...spliced)
          continue
        }
        if (walked.status === 'ComponentDoesNotExist') {
          if (o.missing === 'any' || (o.missing === 'last' && queue.length === 1)) {
            res.missing = queue
            return res
          }
          throw fail(E.ENOENT, ctx)
        }
      }
      if (o.dirOnly === true && !res.current.isDirectory) throw fail(E.ENOTDIR, ctx)
      return res
    } catch (err) {
      await res.close().catch(() => {})
      throw err
    }
  }

  /** Resolves `p`, runs `fn` on the result and releases every handle. */
  private async withResolved<T>(
    comps: Buffer[],
    o: ResolveOptions,
    ctx: ErrCtx,
    fn: (r: Resolution) => Promise<T>,
  ): Promise<T> {
    const r = await this.resolve(comps, o, ctx)
    return withHandles([r], () => fn(r))
  }

  /** Resolves the parent of `p` (following every symlink) and runs `fn` on it and the last name. */
  private withParent<T>(p: Parsed, ctx: ErrCtx, fn: (dir: ControlFd, name: Buffer) => Promise<T>): Promise<T> {
    const name = p.comps[p.comps.length - 1] as Buffer
    return this.withResolved(p.comps.slice(0, -1), { follow: true, missing: 'error' }, ctx, (r) => fn(r.current, name))
  }

  /** One WalkStat (no handles) when no symlink needs following; else undefined. */
  private async fastStat(p: Parsed, follow: boolean): Promise<Statx | undefined> {
    if (!this.client.supports(Mid.WalkStat)) return undefined
    const names = p.comps.length === 0 ? [Buffer.alloc(0)] : p.comps
    let stats: Statx[]
    try {
      stats = await this.root.walkStat(names)
    } catch {
      return undefined // the slow path reports the error precisely
    }
    const last = stats[stats.length - 1]
    if (stats.length !== names.length || last === undefined) return undefined
    for (let i = 0; i < stats.length - 1; i++) {
      if (((stats[i] as Statx).mode & S_IFMT) !== S_IFDIR) return undefined
    }
    const type = last.mode & S_IFMT
    if (type === S_IFLNK && (follow || p.dirOnly)) return undefined
    if (p.dirOnly && type !== S_IFDIR) return undefined
    return last
  }

  private async statOf(p: Parsed, follow: boolean, ctx: ErrCtx): Promise<Statx> {
    if (p.empty) throw fail(E.ENOENT, ctx)
    const fast = await this.fastStat(p, follow)
    if (fast !== undefined) return fast
    return this.withResolved(p.comps, { follow, missing: 'error', dirOnly: p.dirOnly }, ctx, async (r) => {
      if (!r.atRoot) return r.current.initialStat
      try {
        return await r.current.stat()
      } catch (err) {
        throw relabel(err, ctx)
      }
    })
  }

  /** Opens `p` (following symlinks) for reading; only the open FD is left to close. */
  private async openRead(p: Parsed, ctx: ErrCtx): Promise<OpenFd> {
    if (p.empty) throw fail(E.ENOENT, ctx)
    return this.withResolved(p.comps, { follow: true, missing: 'error', dirOnly: p.dirOnly }, ctx, async (r) => {
      if (r.current.isDirectory) throw fail(E.EISDIR, { syscall: 'read', path: ctx.path })
      try {
        return await r.current.openAt(Flags.O_RDONLY)
      } catch (err) {
        throw relabel(err, ctx)
      }
    })
  }

  /**
   * Opens `p` for writing as `spec` says, creating it with `mode` if needed;
   * returns the open FD (the only handle left) and the size for appends.
   */
  private async openWrite(p: Parsed, spec: FlagSpec, mode: number, ctx: ErrCtx): Promise<{ file: OpenFd; size: number }> {
    if (p.empty) throw fail(E.ENOENT, ctx)
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.openWriteOnce(p, spec, mode, ctx)
      } catch (err) {
        // Created by someone else between our walk and our create: open it.
        if (attempt === 0 && !spec.exclusive && isErrno(err, E.EEXIST)) continue
        throw err
      }
    }
  }

  private openWriteOnce(p: Parsed, spec: FlagSpec, mode: number, ctx: ErrCtx): Promise<{ file: OpenFd; size: number }> {
    // O_CREAT|O_EXCL never follows a final symlink: a dangling one is EEXIST.
    const o: ResolveOptions = { follow: !spec.exclusive, missing: spec.create ? 'last' : 'error', dirOnly: p.dirOnly }
    return this.withResolved(p.comps, o, ctx, async (r) => {
      const missing = r.missing[0]
      if (missing !== undefined) {
        if (p.dirOnly) throw fail(E.EISDIR, ctx)
        let created: { control: ControlFd; open: OpenFd }
        try {
          created = await r.current.openCreateAt(missing.name, mode & ~this.umask & 0o7777, Flags.O_WRONLY)
        } catch (err) {
          throw relabel(err, ctx)
        }
        try {
          await created.control.close()
        } catch (error) {
          await releaseAfter([created.open], error)
        }
        return { file: created.open, size: 0 }
      }
      const node = r.current
      if (spec.exclusive) throw fail(E.EEXIST, ctx)
      if (node.isDirectory) throw fail(E.EISDIR, ctx)
      let file: OpenFd
      try {
        file = await node.openAt(Flags.O_WRONLY | (spec.truncate ? Flags.O_TRUNC : 0))
      } catch (err) {
        throw relabel(err, ctx)
      }
      if (!spec.append) return { file, size: 0 }
      try {
        return { file, size: Number((await file.stat()).size) }
      } catch (err) {
        return releaseAfter([file], relabel(err, ctx))
      }
    })
  }

  /** Writes all of `data` at `position`, in chunks, checking `signal` between them. */
  private async writeAll(file: OpenFd, data: Buffer, position: number, ctx: ErrCtx, signal?: AbortSignal): Promise<number> {
    let done = 0
    while (done < data.length) {
      checkAborted(signal)
      const piece = data.subarray(done, done + this.chunk)
      let n: number
      try {
        n = await file.write(piece, position + done)
      } catch (err) {
        throw relabel(err, ctx)
      }
      if (n <= 0) throw fail(E.EIO, ctx)
      done += n
    }
    return done
  }

  // -- files -----------------------------------------------------------------

  /**
   * Reads a whole file (following symlinks), in chunks of up to 1 MiB.
   * @returns a string when an encoding is given, else a Buffer
   * @throws LisafsError `syscall: 'open'` (ENOENT, ENOTDIR, ELOOP...), or
   *   EISDIR with `syscall: 'read'` for a directory; AbortError when aborted
   */
  readFile(path: PathLike, options?: (ReadFileOptions & { encoding?: null }) | null): Promise<Buffer>
  /** Reads a whole file as a string. */
  readFile(path: PathLike, options: (ReadFileOptions & { encoding: BufferEncoding }) | BufferEncoding): Promise<string>
  /** Reads a whole file as a string or a Buffer. */
  readFile(path: PathLike, options?: ReadFileOptions | BufferEncoding | null): Promise<string | Buffer>
  async readFile(path: PathLike, options?: ReadFileOptions | BufferEncoding | null): Promise<string | Buffer> {
    const opts: ReadFileOptions = typeof options === 'string' ? { encoding: options } : (options ?? {})
    if (opts.flag !== undefined && opts.flag !== 'r') {
      throw argError(TypeError, 'ERR_INVALID_ARG_VALUE', `readFile supports only the flag 'r'. Received ${String(opts.flag)}`)
    }
    const p = parsePath(path)
    const ctx: ErrCtx = { syscall: 'open', path: p.display }
    checkAborted(opts.signal)
    if (p.empty) throw fail(E.ENOENT, ctx)
    // Walk + OpenAt, one PRead sized from the walk's stat (a short read at
    // that size is the end of the file), then one Close for every handle:
    // four round trips for a small file. Files that grew, report size 0
    // (procfs) or come in pieces are read on until a read comes back empty.
    const r = await this.resolve(p.comps, { follow: true, missing: 'error', dirOnly: p.dirOnly }, ctx)
    let file: OpenFd | undefined
    const chunks: Buffer[] = []
    let total = 0
    try {
      if (r.current.isDirectory) throw fail(E.EISDIR, { syscall: 'read', path: ctx.path })
      try {
        file = await r.current.openAt(Flags.O_RDONLY)
      } catch (err) {
        throw relabel(err, ctx)
      }
      const size = Number(r.current.initialStat.size)
      // One byte more than the size so that a file that did not grow ends
      // with a short read, not with an extra empty one.
      let want = size > 0 ? Math.min(size + 1, this.chunk) : this.chunk
      for (;;) {
        checkAborted(opts.signal)
        let buf: Buffer
        try {
          buf = await file.read(want, total)
        } catch (err) {
          throw relabel(err, { syscall: 'read', path: p.display })
        }
        if (buf.length === 0) break
        chunks.push(buf)
        total += buf.length
        // A short read ends the file once the stat's size is reached; before
        // that it is only a backend that reads in pieces, so read on.
        if (buf.length < want && size > 0 && total >= size) break
        want = this.chunk
      }
    } catch (err) {
      await r.close(file === undefined ? [] : [file]).catch(() => {})
      throw err
    }
    await r.close([file])
    const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total)
    return opts.encoding != null ? data.toString(opts.encoding) : data
  }

  /**
   * Writes `data` to a file (following symlinks), in chunks of up to 1 MiB.
   * Appends (`'a'` flags) write at the size found when opening: LISAFS has
   * no `O_APPEND`, so concurrent appenders may overwrite each other.
   * @throws LisafsError `syscall: 'open'` (EEXIST for `'wx'`, EISDIR,
   *   ENOENT...); AbortError when aborted (the file keeps what was written)
   */
  async writeFile(path: PathLike, data: string | Uint8Array, options?: WriteFileOptions | BufferEncoding | null): Promise<void> {
    const opts: WriteFileOptions = typeof options === 'string' ? { encoding: options } : (options ?? {})
    const spec = writeFlag(opts.flag ?? 'w')
    const mode = opts.mode ?? 0o666
    let bytes: Buffer
    if (typeof data === 'string') bytes = Buffer.from(data, opts.encoding ?? 'utf8')
    else if (data instanceof Uint8Array) bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    else throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "data" argument must be of type string or an instance of Buffer or Uint8Array.')
    const p = parsePath(path)
    const ctx: ErrCtx = { syscall: 'open', path: p.display }
    checkAborted(opts.signal)
    const { file, size } = await this.openWrite(p, spec, mode, ctx)
    await withHandles([file], () => this.writeAll(file, bytes, size, { syscall: 'write', path: p.display }, opts.signal))
  }

  /**
   * Appends `data` to a file, creating it if needed (`writeFile` with flag `'a'`).
   */
  appendFile(path: PathLike, data: string | Uint8Array, options?: Omit<WriteFileOptions, 'flag'> | BufferEncoding | null): Promise<void> {
    const opts: WriteFileOptions = typeof options === 'string' ? { encoding: options } : { ...(options ?? {}) }
    return this.writeFile(path, data, { ...opts, flag: 'a' })
  }

  // -- metadata --------------------------------------------------------------

  /**
   * Status of the file `path` names, following symlinks.
   * @throws LisafsError `syscall: 'stat'`
   */
  async stat(path: PathLike): Promise<LisafsStats> {
    const p = parsePath(path)
    return new LisafsStats(await this.statOf(p, true, { syscall: 'stat', path: p.display }))
  }

  /**
   * Status of `path` itself: a final symlink is not followed.
   * @throws LisafsError `syscall: 'lstat'`
   */
  async lstat(path: PathLike): Promise<LisafsStats> {
    const p = parsePath(path)
    return new LisafsStats(await this.statOf(p, false, { syscall: 'lstat', path: p.display }))
  }

  /**
   * Checks that `path` exists (following symlinks). Only existence is
   * checked: permissions are the server's business and are checked when an
   * operation is attempted.
   * @throws LisafsError `syscall: 'access'`
   */
  async access(path: PathLike): Promise<void> {
    const p = parsePath(path)
    await this.statOf(p, true, { syscall: 'access', path: p.display })
  }

  /** Whether `path` exists (following symlinks); false on any LISAFS error. */
  async exists(path: PathLike): Promise<boolean> {
    try {
      await this.access(path)
      return true
    } catch (err) {
      if (err instanceof LisafsError) return false
      throw err
    }
  }

  // -- directories -----------------------------------------------------------

  /** Lists a directory handle's entries; a `DT_UNKNOWN` type is resolved by a stat. */
  private async entries(dir: ControlFd, ctx: ErrCtx): Promise<Array<{ name: Buffer; type: number }>> {
    let file: OpenFd
    try {
      file = await dir.openAt(Flags.O_RDONLY)
    } catch (err) {
      throw relabel(err, ctx)
    }
    const list: Dirent64[] = await withHandles([file], async () => {
      const out: Dirent64[] = []
      try {
        for await (const d of file.entries()) out.push(d)
      } catch (err) {
        throw relabel(err, ctx)
      }
      return out
    })
    const result: Array<{ name: Buffer; type: number }> = []
    for (const d of list) {
      let type = d.type
      if (type === 0) {
        try {
          const [s] = await dir.walkStat([d.name])
          if (s === undefined) continue // vanished
          type = dtFromMode(s.mode)
        } catch (err) {
          if (isErrno(err, E.ENOENT)) continue
          throw relabel(err, ctx)
        }
      }
      result.push({ name: d.name, type })
    }
    return result
  }

  /**
   * Lists a directory (following symlinks), without `.` and `..`, in the
   * server's order.
   * @throws LisafsError `syscall: 'scandir'` (ENOENT, ENOTDIR...)
   */
  readdir(path: PathLike, options?: (ReaddirOptions & { withFileTypes?: false }) | null): Promise<string[]>
  /** Lists a directory as {@link LisafsDirent} objects. */
  readdir(path: PathLike, options: ReaddirOptions & { withFileTypes: true }): Promise<LisafsDirent[]>
  /** Lists a directory as names or {@link LisafsDirent} objects. */
  readdir(path: PathLike, options?: ReaddirOptions | null): Promise<string[] | LisafsDirent[]>
  async readdir(path: PathLike, options?: ReaddirOptions | null): Promise<string[] | LisafsDirent[]> {
    const p = parsePath(path)
    const ctx: ErrCtx = { syscall: 'scandir', path: p.display }
    if (p.empty) throw fail(E.ENOENT, ctx)
    const list = await this.withResolved(p.comps, { follow: true, missing: 'error' }, ctx, (r) => {
      if (!r.current.isDirectory) throw fail(E.ENOTDIR, ctx)
      return this.entries(r.current, ctx)
    })
    if (options?.withFileTypes === true) {
      return list.map((e) => new LisafsDirent(e.name.toString('utf8'), e.type, p.display))
    }
    return list.map((e) => e.name.toString('utf8'))
  }

  /**
   * Creates a directory. With `recursive`, creates missing parents too
   * (following symlinks to existing directories) and returns the first
   * directory created (in the style of the given path: absolute if it was),
   * or undefined if it already existed; without, returns undefined.
   * @throws LisafsError `syscall: 'mkdir'` (EEXIST, ENOENT, ENOTDIR...)
   */
  async mkdir(path: PathLike, options?: MakeDirectoryOptions | number | null): Promise<string | undefined> {
    const opts: MakeDirectoryOptions = typeof options === 'number' ? { mode: options } : (options ?? {})
    const mode = (opts.mode ?? 0o777) & ~this.umask & 0o7777
    const p = parsePath(path)
    const ctx: ErrCtx = { syscall: 'mkdir', path: p.display }
    if (p.empty) throw fail(E.ENOENT, ctx)
    if (opts.recursive !== true) {
      if (p.comps.length === 0) throw fail(E.EEXIST, ctx)
      await this.withParent(p, ctx, async (dir, name) => {
        try {
          await (await dir.mkdirAt(name, mode)).close()
        } catch (err) {
          throw relabel(err, ctx)
        }
      })
      return undefined
    }
    return this.withResolved(p.comps, { follow: true, missing: 'any' }, ctx, async (r) => {
      if (r.missing.length === 0) {
        if (!r.current.isDirectory) throw fail(E.EEXIST, ctx)
        return undefined
      }
      // Never create through a dangling symlink (Node: ENOTDIR).
      if (r.missing.some((c) => !c.user)) throw fail(E.ENOTDIR, ctx)
      const first = p.comps.length - r.missing.length + 1
      for (const c of r.missing) {
        let fd: ControlFd
        try {
          fd = await r.current.mkdirAt(c.name, mode)
        } catch (err) {
          if (!isErrno(err, E.EEXIST)) throw relabel(err, ctx)
          // Created meanwhile: use it if it is a directory.
          const w = await r.current.walk(c.name).catch((e: unknown) => {
            throw relabel(e, ctx)
          })
          const got = w.fds[0]
          if (got === undefined || !got.isDirectory) await releaseAfter(w.fds, fail(E.EEXIST, ctx))
          fd = got as ControlFd
        }
        r.push(fd, c.name)
      }
      return joinComps(p.comps.slice(0, first), p.absolute)
    })
  }

  /**
   * Removes an empty directory (a final symlink is not followed: ENOTDIR).
   * @throws LisafsError `syscall: 'rmdir'` (ENOTEMPTY, ENOTDIR, ENOENT; EBUSY for the root)
   */
  async rmdir(path: PathLike): Promise<void> {
    const p = parsePath(path)
    const ctx: ErrCtx = { syscall: 'rmdir', path: p.display }
    if (p.empty) throw fail(E.ENOENT, ctx)
    if (p.comps.length === 0) throw fail(E.EBUSY, ctx)
    await this.withParent(p, ctx, (dir, name) => dir.unlinkAt(name, Flags.AT_REMOVEDIR).catch((err: unknown) => {
      throw relabel(err, ctx)
    }))
  }

  /**
   * Removes a file or symlink (not what it points to).
   * @throws LisafsError `syscall: 'unlink'` (EISDIR for a directory, ENOENT...)
   */
  async unlink(path: PathLike): Promise<void> {
    const p = parsePath(path)
    const ctx: ErrCtx = { syscall: 'unlink', path: p.display }
    if (p.empty) throw fail(E.ENOENT, ctx)
    if (p.comps.length === 0 || p.dirOnly) {
      // `dir/` is EISDIR, `file/` ENOTDIR, as Linux says.
      await this.withResolved(p.comps, { follow: true, missing: 'error', dirOnly: true }, ctx, async () => {
        throw fail(E.EISDIR, ctx)
      })
      return
    }
    await this.withParent(p, ctx, (dir, name) => dir.unlinkAt(name, 0).catch((err: unknown) => {
      throw relabel(err, ctx)
    }))
  }

  /** Removes `dir`'s contents, depth first; entries that vanish meanwhile are skipped. */
  private async removeContents(dir: ControlFd, display: string): Promise<void> {
    const list = await this.entries(dir, { syscall: 'scandir', path: display })
    for (const e of list) {
      const name = e.name.toString('utf8')
      const path = childDisplay(display, name)
      if (e.type === DT_DIR) {
        let w: Walked
        try {
          w = await dir.walk(e.name)
        } catch (err) {
          throw relabel(err, { syscall: 'lstat', path })
        }
        const child = w.fds[0]
        if (child === undefined) continue // gone
        await withHandles(w.fds, async () => {
          if (child.isDirectory) await this.removeContents(child, path)
        })
      }
      try {
        await dir.unlinkAt(e.name, e.type === DT_DIR ? Flags.AT_REMOVEDIR : 0)
      } catch (err) {
        if (isErrno(err, E.ENOENT)) continue
        throw relabel(err, { syscall: e.type === DT_DIR ? 'rmdir' : 'unlink', path })
      }
    }
  }

  /**
   * Removes a file, symlink or (with `recursive`) directory tree, like
   * `fs.rm`: a directory without `recursive` fails with Node's
   * `ERR_FS_EISDIR` SystemError (`errno` 21, `syscall` `'rm'`); `force`
   * ignores a missing path. A final symlink is removed, not followed. The
   * root cannot be removed (EBUSY).
   * @throws LisafsError `syscall: 'lstat'` when the path cannot be found,
   *   else the failing `'unlink'`/`'rmdir'`/`'scandir'`
   */
  async rm(path: PathLike, options?: RmOptions | null): Promise<void> {
    const opts = options ?? {}
    const p = parsePath(path)
    const ctx: ErrCtx = { syscall: 'lstat', path: p.display }
    if (p.empty) {
      if (opts.force === true) return
      throw fail(E.ENOENT, ctx)
    }
    let r: Resolution
    try {
      r = await this.resolve(p.comps, { follow: false, missing: 'error', dirOnly: p.dirOnly }, ctx)
    } catch (err) {
      if (opts.force === true && isErrno(err, E.ENOENT)) return
      throw err
    }
    await withHandles([r], async () => {
      if (r.atRoot) throw fail(E.EBUSY, { syscall: 'rm', path: p.display })
      const node = r.current
      const isDir = node.isDirectory
      if (isDir && opts.recursive !== true) throw fsEisdir(p.display)
      if (isDir) await this.removeContents(node, p.display)
      // Remove the name through its directory's handle; the node's own
      // handle (the deepest) is released first. With a trailing slash the
      // name is that of the directory a final symlink led to.
      const name = r.name as Buffer
      await (r.detach() as ControlFd).close()
      const parent = r.current
      try {
        await parent.unlinkAt(name, isDir ? Flags.AT_REMOVEDIR : 0)
      } catch (err) {
        if (opts.force === true && isErrno(err, E.ENOENT)) return
        throw relabel(err, { syscall: isDir ? 'rmdir' : 'unlink', path: p.display })
      }
    })
  }

  /**
   * Renames `oldPath` to `newPath` (final symlinks are not followed),
   * across directories too.
   * @throws LisafsError `syscall: 'rename'`, `path` oldPath, `dest` newPath
   */
  async rename(oldPath: PathLike, newPath: PathLike): Promise<void> {
    const from = parsePath(oldPath, 'oldPath')
    const to = parsePath(newPath, 'newPath')
    const ctx: ErrCtx = { syscall: 'rename', path: from.display, dest: to.display }
    if (from.empty || to.empty) throw fail(E.ENOENT, ctx)
    if (from.comps.length === 0 || to.comps.length === 0) throw fail(E.EBUSY, ctx)
    await this.withParent(from, ctx, (oldDir, oldName) =>
      this.withParent(to, ctx, (newDir, newName) =>
        oldDir.renameAt(oldName, newDir, newName).catch((err: unknown) => {
          throw relabel(err, ctx)
        }),
      ),
    )
  }

  /**
   * Creates the symlink `path` pointing at `target`, stored verbatim (it is
   * resolved when followed, inside the mount). `_type` is ignored, as on Linux.
   * @throws LisafsError `syscall: 'symlink'`, `path` target, `dest` path (like Node)
   */
  async symlink(target: string | Uint8Array, path: PathLike, _type?: string | null): Promise<void> {
    if (typeof target !== 'string' && !(target instanceof Uint8Array)) {
      throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "target" argument must be of type string or an instance of Buffer.')
    }
    const p = parsePath(path)
    const t = typeof target === 'string' ? target : Buffer.from(target).toString('utf8')
    const ctx: ErrCtx = { syscall: 'symlink', path: t, dest: p.display }
    if (p.empty || (typeof target === 'string' ? target === '' : target.byteLength === 0)) throw fail(E.ENOENT, ctx)
    if (p.comps.length === 0) throw fail(E.EEXIST, ctx)
    await this.withParent(p, ctx, async (dir, name) => {
      try {
        await (await dir.symlinkAt(name, target)).close()
      } catch (err) {
        throw relabel(err, ctx)
      }
    })
  }

  /**
   * Reads a symlink's target (the final component is not followed).
   * @returns the target as a string, or a Buffer with `encoding: 'buffer'`
   * @throws LisafsError `syscall: 'readlink'` (EINVAL if not a symlink)
   */
  readlink(path: PathLike, options?: (ReadlinkOptions & { encoding?: BufferEncoding | null }) | BufferEncoding | null): Promise<string>
  /** Reads a symlink's target as raw bytes. */
  readlink(path: PathLike, options: { encoding: 'buffer' } | 'buffer'): Promise<Buffer>
  /** Reads a symlink's target as a string or Buffer. */
  readlink(path: PathLike, options?: ReadlinkOptions | BufferEncoding | 'buffer' | null): Promise<string | Buffer>
  async readlink(path: PathLike, options?: ReadlinkOptions | BufferEncoding | 'buffer' | null): Promise<string | Buffer> {
    const encoding = (typeof options === 'string' ? options : options?.encoding) ?? 'utf8'
    const p = parsePath(path)
    const ctx: ErrCtx = { syscall: 'readlink', path: p.display }
    if (p.empty) throw fail(E.ENOENT, ctx)
    const target = await this.withResolved(p.comps, { follow: false, missing: 'error', dirOnly: p.dirOnly }, ctx, async (r) => {
      if (!r.current.isSymbolicLink) throw fail(E.EINVAL, ctx)
      try {
        return await r.current.readlinkAt()
      } catch (err) {
        throw relabel(err, ctx)
      }
    })
    return encoding === 'buffer' ? target : target.toString(encoding)
  }

  // -- streams ---------------------------------------------------------------

  /**
   * A readable stream of the file's bytes `start..end` (inclusive), read
   * one request per `_read` call (backpressure: nothing is read ahead of
   * the stream's buffer). The file is opened when the stream is constructed
   * (errors are emitted, with `syscall: 'open'`); handles are released when
   * the stream closes, including on abort or destroy.
   */
  createReadStream(path: PathLike, options?: ReadStreamOptions | BufferEncoding | null): LisafsReadStream {
    const opts: ReadStreamOptions = typeof options === 'string' ? { encoding: options } : (options ?? {})
    const p = parsePath(path)
    const start = opts.start === undefined ? 0 : checkInt(opts.start, 'start', 0)
    const end = opts.end === undefined || opts.end === Infinity ? Infinity : checkInt(opts.end, 'end', 0)
    if (start > end) {
      throw argError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "start" is out of range. It must be <= "end" (here: ${end}). Received ${start}`)
    }
    const hwm = opts.highWaterMark === undefined ? 64 * 1024 : checkInt(opts.highWaterMark, 'highWaterMark', 1)
    return new LisafsReadStream(p.display, () => this.openRead(p, { syscall: 'open', path: p.display }), {
      start,
      end,
      highWaterMark: hwm,
      encoding: opts.encoding ?? undefined,
      signal: opts.signal,
    })
  }

  /**
   * A writable stream to the file, written sequentially from `start` (the
   * end of the file for `'a'` flags) one request per chunk (`_writev`
   * coalesces buffered chunks). The file is opened when the stream is
   * constructed; `_final` releases the handle, as does destroy or abort.
   */
  createWriteStream(path: PathLike, options?: WriteStreamOptions | BufferEncoding | null): LisafsWriteStream {
    const opts: WriteStreamOptions = typeof options === 'string' ? { encoding: options } : (options ?? {})
    const p = parsePath(path)
    const spec = writeFlag(opts.flags ?? 'w')
    const mode = opts.mode ?? 0o666
    const start = opts.start === undefined ? undefined : checkInt(opts.start, 'start', 0)
    const hwm = opts.highWaterMark === undefined ? 16 * 1024 : checkInt(opts.highWaterMark, 'highWaterMark', 1)
    const ctx: ErrCtx = { syscall: 'write', path: p.display }
    return new LisafsWriteStream(
      p.display,
      async () => {
        const { file, size } = await this.openWrite(p, spec, mode, { syscall: 'open', path: p.display })
        return { file, position: start ?? (spec.append ? size : 0) }
      },
      (file, data, position) => this.writeAll(file, data, position, ctx),
      { highWaterMark: hwm, encoding: opts.encoding, signal: opts.signal },
    )
  }
}

/**
 * Creates an fs-like view of `client`'s mount (same as `new LisafsFs(client, options)`).
 * @param client - a connected client
 * @param options - see {@link FsOptions}
 */
export function createFs(client: Client, options?: FsOptions): LisafsFs {
  return new LisafsFs(client, options)
}

// ---------------------------------------------------------------------------
// Streams

/** Settles after `p`, ignoring its outcome. */
function settled(p: Promise<unknown> | undefined): Promise<void> {
  return (p ?? Promise.resolve()).then(
    () => {},
    () => {},
  )
}

/**
 * The stream {@link LisafsFs.createReadStream} returns: a `Readable` of
 * Buffers (or strings with an encoding).
 */
export class LisafsReadStream extends Readable {
  /** The path as given. */
  readonly path: string
  /** Bytes read so far. */
  bytesRead = 0
  /** The first offset read. */
  readonly start: number
  /** The last offset read (inclusive); `Infinity` for the end of file. */
  readonly end: number
  private readonly opener: () => Promise<OpenFd>
  private file: OpenFd | undefined
  private pos: number
  private inflight: Promise<unknown> | undefined
  /** `_destroy` ran: a file opened afterwards is closed at once. */
  private released = false

  /**
   * @internal Use {@link LisafsFs.createReadStream}.
   */
  constructor(
    path: string,
    opener: () => Promise<OpenFd>,
    options: { start: number; end: number; highWaterMark: number; encoding: BufferEncoding | undefined; signal: AbortSignal | undefined },
  ) {
    super({ highWaterMark: options.highWaterMark, encoding: options.encoding, signal: options.signal })
    this.path = path
    this.opener = opener
    this.start = options.start
    this.end = options.end
    this.pos = options.start
  }

  /** @internal */
  override _construct(callback: (error?: Error | null) => void): void {
    // Destroyed before construction (a signal aborted up front): open nothing.
    if (this.destroyed) {
      callback()
      return
    }
    const p = this.opener().then(async (file) => {
      if (this.released) await file.close()
      else this.file = file
    })
    this.inflight = p
    p.then(
      () => {
        callback()
        this.emit('ready')
      },
      (err: Error) => callback(err),
    )
  }

  /** @internal */
  override _read(size: number): void {
    const file = this.file
    if (file === undefined) return
    const want = Math.min(size > 0 ? size : this.readableHighWaterMark, this.end - this.pos + 1)
    if (want <= 0) {
      this.push(null)
      return
    }
    const p = file.read(want, this.pos)
    this.inflight = p
    p.then(
      (buf) => {
        if (this.destroyed) return
        this.pos += buf.length
        this.bytesRead += buf.length
        this.push(buf.length === 0 ? null : buf)
      },
      (err: unknown) => this.destroy(relabel(err, { syscall: 'read', path: this.path }) as Error),
    )
  }

  /** @internal */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.released = true
    settled(this.inflight)
      .then(async () => {
        const file = this.file
        this.file = undefined
        await file?.close()
      })
      .then(
        () => callback(error),
        (closeErr: Error) => callback(error ?? closeErr),
      )
  }
}

/**
 * The stream {@link LisafsFs.createWriteStream} returns: a `Writable` of
 * Buffers, Uint8Arrays or strings.
 */
export class LisafsWriteStream extends Writable {
  /** The path as given. */
  readonly path: string
  /** Bytes written so far. */
  bytesWritten = 0
  private readonly opener: () => Promise<{ file: OpenFd; position: number }>
  private readonly writer: (file: OpenFd, data: Buffer, position: number) => Promise<number>
  private file: OpenFd | undefined
  private pos = 0
  private inflight: Promise<unknown> | undefined
  /** `_destroy` ran: a file opened afterwards is closed at once. */
  private released = false

  /**
   * @internal Use {@link LisafsFs.createWriteStream}.
   */
  constructor(
    path: string,
    opener: () => Promise<{ file: OpenFd; position: number }>,
    writer: (file: OpenFd, data: Buffer, position: number) => Promise<number>,
    options: { highWaterMark: number; encoding: BufferEncoding | undefined; signal: AbortSignal | undefined },
  ) {
    super({ highWaterMark: options.highWaterMark, defaultEncoding: options.encoding ?? 'utf8', signal: options.signal, decodeStrings: true })
    this.path = path
    this.opener = opener
    this.writer = writer
  }

  /** @internal */
  override _construct(callback: (error?: Error | null) => void): void {
    // Destroyed before construction (a signal aborted up front): open nothing.
    if (this.destroyed) {
      callback()
      return
    }
    const p = this.opener().then(async ({ file, position }) => {
      if (this.released) {
        await file.close()
        return
      }
      this.file = file
      this.pos = position
    })
    this.inflight = p
    p.then(
      () => {
        callback()
        this.emit('ready')
      },
      (err: Error) => callback(err),
    )
  }

  private writeBuffer(data: Buffer, callback: (error?: Error | null) => void): void {
    const file = this.file
    if (file === undefined) {
      callback(new LisafsError(9, 'write', this.path))
      return
    }
    const p = this.writer(file, data, this.pos)
    this.inflight = p
    p.then(
      (n) => {
        this.pos += n
        this.bytesWritten += n
        callback()
      },
      (err: Error) => callback(err),
    )
  }

  /** @internal */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeBuffer(chunk, callback)
  }

  /** @internal */
  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: (error?: Error | null) => void): void {
    this.writeBuffer(Buffer.concat(chunks.map((c) => c.chunk)), callback)
  }

  private closeFile(): Promise<void> {
    const file = this.file
    this.file = undefined
    return file?.close() ?? Promise.resolve()
  }

  /** @internal */
  override _final(callback: (error?: Error | null) => void): void {
    settled(this.inflight)
      .then(() => this.closeFile())
      .then(
        () => callback(),
        (err: Error) => callback(err),
      )
  }

  /** @internal */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.released = true
    settled(this.inflight)
      .then(() => this.closeFile())
      .then(
        () => callback(error),
        (closeErr: Error) => callback(error ?? closeErr),
      )
  }
}
