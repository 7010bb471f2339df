/**
 * Filesystems written in TypeScript: implement {@link Backend} (and the
 * {@link ControlFdImpl} / {@link OpenFdImpl} objects it hands out) and serve
 * it over LISAFS with {@link BackendServer}.
 *
 * The interfaces mirror gVisor's `ConnectionImpl`, `ControlFDImpl`,
 * `OpenFDImpl` and `BoundSocketFDImpl`. The server core (in Rust) validates
 * every request, checks names, keeps the FD tables and takes the locks that
 * give each method its concurrency guarantee; a backend method only does the
 * filesystem work. While a method runs — including while its promise is
 * pending — the core keeps the lock of its guarantee, so for example no
 * rename happens anywhere while a `walk` is in progress:
 * - **read**: no write on this node and no rename anywhere;
 * - **write**: nothing else on this node and no rename anywhere;
 * - **global**: nothing else at all (`renameAt`).
 *
 * Every method is optional and may return a promise. A missing method
 * answers ENOSYS (EOPNOTSUPP for extended attributes; `flush` succeeds), as
 * the Rust defaults do. To fail with a given errno, throw an error whose
 * `code` is its name (`'ENOENT'`; see {@link backendError}); anything else
 * thrown, or a rejection, answers EIO and is reported on the server's
 * `'error'` event — the process never dies of a backend bug.
 *
 * Names and data are `Buffer`s: the protocol carries bytes. Names handed to
 * a backend are never empty, `.` or `..` and contain no `/`.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events'
import { closeSync } from 'node:fs'
import { constants as osConstants } from 'node:os'

import {
  NativeBackendServer,
  type BackendCallArgs,
  type BackendResult,
  type Dirent64,
  type OperationEvent as NativeEvent,
  type ServerStats,
  type SetStatArgs,
  type StatFs,
  type Statx,
  type StatxTimestamp,
} from '../index.js'
import type { SetStatOutcome } from './client.js'
import { errnoName, Policy, type OperationEvent, type OperationObserver, type PolicyOptions } from './policy.js'

/** A value, or a promise of it: every backend method may be async. */
export type Awaitable<T> = T | PromiseLike<T>

/** A 64-bit field: a bigint, or a safe-integer number. */
export type Int64 = bigint | number

/** A timestamp: statx form, a Date, or milliseconds since the epoch. */
export type TimeInput = StatxTimestamp | Date | number

/**
 * A file's attributes as a backend reports them. Only `mode` (file type and
 * permissions) is required; the rest defaults to 0 (`nlink` to 1,
 * `blksize` to 4096, `blocks` to the size in 512-byte units). A full
 * {@link Statx} is a valid `StatInput`.
 */
export interface StatInput {
  /** File type (`S_IFREG`, `S_IFDIR`...) and permission bits. */
  mode: number
  /** Inode number. */
  ino?: Int64
  /** Link count. */
  nlink?: number
  /** Owner. */
  uid?: number
  /** Group. */
  gid?: number
  /** Size in bytes. */
  size?: Int64
  /** Size in 512-byte blocks. */
  blocks?: Int64
  /** Preferred I/O size. */
  blksize?: number
  /** Last access. */
  atime?: TimeInput
  /** Last modification of the content. */
  mtime?: TimeInput
  /** Last change of the attributes. */
  ctime?: TimeInput
  /** Creation (reported only when given). */
  btime?: TimeInput
  /** Device number of a device file (major). */
  rdevMajor?: number
  /** Device number of a device file (minor). */
  rdevMinor?: number
  /** Device holding the file (major). */
  devMajor?: number
  /** Device holding the file (minor). */
  devMinor?: number
  /** `STATX_*` bits of valid fields; default: the basic stats (+ btime when given). */
  mask?: number
  /** `STATX_ATTR_*` bits. */
  attributes?: Int64
  /** Which `attributes` bits are supported. */
  attributesMask?: Int64
}

/** Filesystem statistics as a backend reports them; absent fields default (block size 4096, names up to 255 bytes, the rest 0). */
export type StatFsInput = Partial<Record<keyof StatFs, Int64>>

/** A directory entry as a backend reports it. */
export interface DirentInput {
  /** The entry's name. */
  name: Uint8Array | string
  /** A `DT_*` type ({@link DirentType}). */
  type: number
  /** Inode number (default 0). */
  ino?: Int64
  /** The entry's cookie: reading resumes after it (default: its index in the batch). */
  off?: Int64
  /** Device (major). */
  devMajor?: number
  /** Device (minor). */
  devMinor?: number
}

/** Owner of a file being created; 0xffffffff ({@link NO_ID}) means "the server's choice". */
export interface Owner {
  /** User ID. */
  uid: number
  /** Group ID. */
  gid: number
}

/** A SetStat request: the `STATX_*` bits of `mask` ({@link StatxMask}) say which fields to apply. */
export type SetStatRequest = SetStatArgs

/** A new position in the tree: the object that will serve it, and its stat. */
export interface NewControl {
  /** The control FD's implementation (kept until the server releases it). */
  file: ControlFdImpl
  /** Its attributes; the file type in `mode` is fixed for the FD's life. */
  stat: StatInput
}

/** What {@link ControlFdImpl.openCreate} returns: the new file and the opened FD. */
export interface CreatedFile extends NewControl {
  /** The open FD on the new file. */
  open: OpenFdImpl
}

/** What {@link ControlFdImpl.bindAt} returns. */
export interface BoundSocket extends NewControl {
  /** The bound socket's implementation. */
  socket: BoundSocketFdImpl
  /** The host socket to donate to the client; its ownership passes to the server. */
  fd: number
}

/** A connection accepted by {@link BoundSocketFdImpl.accept}. */
export interface AcceptedSocket {
  /** The connected host socket; its ownership passes to the server. */
  fd: number
  /** The peer's address (usually empty). */
  peerAddr?: Uint8Array
}

/**
 * What every FD implementation may have: called when the server no longer
 * holds the FD (the client closed it, or disconnected). Not awaited.
 */
export interface Releasable {
  /** Frees what the FD holds. */
  release?(): void
}

/**
 * A position in the tree (gVisor's `ControlFDImpl`). All methods optional;
 * the concurrency guarantee the server provides is noted on each.
 */
export interface ControlFdImpl extends Releasable {
  /** Stats the file. Guarantee: read. */
  stat?(): Awaitable<StatInput>
  /**
   * Applies the attributes `req.mask` selects; returns what failed (or
   * nothing when all worked). A throw fails every requested attribute with
   * the error's errno. Times may carry {@link UTIME_NOW} / {@link UTIME_OMIT}
   * in `nsec`. Guarantee: write.
   */
  setStat?(req: SetStatRequest): Awaitable<SetStatOutcome | void>
  /** Looks up `name` in this directory (throw ENOENT when missing). Guarantee: read. */
  walk?(name: Buffer): Awaitable<NewControl>
  /**
   * Stats each component of `path` from this directory, stopping silently
   * at a missing component or after a symlink; a first name of length 0
   * asks for this directory's own stat first. Without it the server walks
   * with {@link walk} and releases what it walked. Guarantee: read.
   */
  walkStat?(path: Buffer[]): Awaitable<StatInput[]>
  /** Opens the file; `flags` holds only `O_ACCMODE | O_TRUNC`. Guarantee: read. */
  open?(flags: number): Awaitable<OpenFdImpl>
  /** Creates the regular file `name` exclusively and opens it. Guarantee: write. */
  openCreate?(name: Buffer, mode: number, owner: Owner, flags: number): Awaitable<CreatedFile>
  /** Creates the directory `name`. Guarantee: write. */
  mkdir?(name: Buffer, mode: number, owner: Owner): Awaitable<NewControl>
  /** Creates the node `name`; `mode` carries the file type. Guarantee: write. */
  mknod?(name: Buffer, mode: number, owner: Owner, dev: { major: number; minor: number }): Awaitable<NewControl>
  /** Creates the symlink `name` to `target` (bytes, never interpreted). Guarantee: write. */
  symlink?(name: Buffer, target: Buffer, owner: Owner): Awaitable<NewControl>
  /** Hard-links this file (never a directory) as `dir/name`. Guarantee: write on `dir`, read here. */
  link?(dir: ControlFdImpl, name: Buffer): Awaitable<NewControl>
  /** Statistics of the filesystem. Guarantee: read. */
  statFs?(): Awaitable<StatFsInput>
  /** The symlink's target. Guarantee: read. */
  readlink?(): Awaitable<Uint8Array | string>
  /** Removes `name` (`flags`: AT_REMOVEDIR 0x200). Guarantee: write. */
  unlink?(name: Buffer, flags: number): Awaitable<void>
  /** Renames `oldName` here to `newName` in `newDir` (`flags`: RENAME_NOREPLACE 1, RENAME_EXCHANGE 2). Guarantee: global. */
  renameAt?(oldName: Buffer, newDir: ControlFdImpl, newName: Buffer, flags: number): Awaitable<void>
  /** Told (after the fact, not awaited) that this file or an ancestor was renamed. */
  renamed?(): void
  /** The value of extended attribute `name`; `size` is the client's buffer (0: any). Guarantee: read. */
  getXattr?(name: Buffer, size: number): Awaitable<Uint8Array | string>
  /** Sets extended attribute `name` (`flags`: XATTR_CREATE 1, XATTR_REPLACE 2). Guarantee: write. */
  setXattr?(name: Buffer, value: Buffer, flags: number): Awaitable<void>
  /** The names of the extended attributes; `size` is the client's buffer (0: any). Guarantee: read. */
  listXattr?(size: bigint): Awaitable<Array<Uint8Array | string>>
  /** Removes extended attribute `name`. Guarantee: write. */
  removeXattr?(name: Buffer): Awaitable<void>
  /**
   * Connects a new host socket of `sockType` to this socket file and
   * returns it (ownership passes to the server). Guarantee: read.
   */
  connect?(sockType: number, creds?: Owner): Awaitable<number>
  /** Creates and binds a socket at `name`. Guarantee: write. */
  bindAt?(name: Buffer, sockType: number, mode: number, owner: Owner): Awaitable<BoundSocket>
}

/** An open file (gVisor's `OpenFDImpl`); locks are those of its control FD. */
export interface OpenFdImpl extends Releasable {
  /** Stats the open file. Guarantee: read. */
  stat?(): Awaitable<StatInput>
  /** Flushes to stable storage. Guarantee: read. */
  sync?(): Awaitable<void>
  /** Up to `length` bytes at `offset`; fewer only at end of file. Guarantee: read. */
  read?(length: number, offset: bigint): Awaitable<Uint8Array>
  /** Writes `data` at `offset`; returns the bytes written. Guarantee: write. */
  write?(data: Buffer, offset: bigint): Awaitable<number>
  /** `fallocate(2)`. Guarantee: write. */
  allocate?(mode: bigint, offset: bigint, length: bigint): Awaitable<void>
  /** Close-time flush (default: nothing to do). Guarantee: read. */
  flush?(): Awaitable<void>
  /**
   * The next directory entries (without `.` and `..`) whose Linux records
   * ({@link direntRecordSize}) fit in `count` bytes; `seek0` rewinds first.
   * An empty list means end of directory. Guarantee: read.
   */
  getdents?(count: number, seek0: boolean): Awaitable<DirentInput[]>
  /** Told (not awaited) that the file or an ancestor was renamed. */
  renamed?(): void
}

/** A bound host socket (gVisor's `BoundSocketFDImpl`). */
export interface BoundSocketFdImpl extends Releasable {
  /** `listen(2)`. Guarantee: read. */
  listen?(backlog: number): Awaitable<void>
  /** Accepts one pending connection without blocking (EAGAIN when none). Guarantee: read. */
  accept?(): Awaitable<AcceptedSocket>
}

/** A mount (gVisor's `ConnectionImpl`): each client's Mount gets the root from here. */
export interface Backend {
  /** The mount point. Guarantee: read. */
  mount(): Awaitable<NewControl>
}

/** Options of a {@link HostBackend}. */
export interface HostBackendOptions {
  /** The directory to serve; clients can reach nothing outside it. */
  root: string
  /** Let clients connect to, create and accept on host Unix sockets. Default false. */
  hostUds?: boolean
  /** Let clients open host FIFOs. Default false. */
  hostFifo?: boolean
}

/**
 * A host directory as a backend: served natively (no JavaScript per
 * operation), with the observer and policy of {@link BackendServer}.
 */
export class HostBackend {
  /** The served directory. */
  readonly root: string
  /** Whether host Unix sockets are reachable. */
  readonly hostUds: boolean
  /** Whether host FIFOs may be opened. */
  readonly hostFifo: boolean

  /** @param options - see {@link HostBackendOptions} */
  constructor(options: HostBackendOptions) {
    this.root = options.root
    this.hostUds = options.hostUds ?? false
    this.hostFifo = options.hostFifo ?? false
  }
}

/** `STATX_*` mask bits. */
export const StatxMask = {
  TYPE: 0x1,
  MODE: 0x2,
  NLINK: 0x4,
  UID: 0x8,
  GID: 0x10,
  ATIME: 0x20,
  MTIME: 0x40,
  CTIME: 0x80,
  INO: 0x100,
  SIZE: 0x200,
  BLOCKS: 0x400,
  BASIC_STATS: 0x7ff,
  BTIME: 0x800,
} as const

/** File type bits of `mode`. */
export const FileType = {
  S_IFMT: 0o170000,
  S_IFSOCK: 0o140000,
  S_IFLNK: 0o120000,
  S_IFREG: 0o100000,
  S_IFBLK: 0o060000,
  S_IFDIR: 0o040000,
  S_IFCHR: 0o020000,
  S_IFIFO: 0o010000,
} as const

/** `DT_*` directory entry types. */
export const DirentType = {
  DT_UNKNOWN: 0,
  DT_FIFO: 1,
  DT_CHR: 2,
  DT_DIR: 4,
  DT_BLK: 6,
  DT_REG: 8,
  DT_LNK: 10,
  DT_SOCK: 12,
} as const

/** `timespec.nsec` of SetStat meaning "now". */
export const UTIME_NOW = 0x3fff_ffffn
/** `timespec.nsec` of SetStat meaning "leave unchanged". */
export const UTIME_OMIT = 0x3fff_fffen
/** A uid/gid meaning "not given". */
export const NO_ID = 0xffff_ffff

/** The `DT_*` type of a `mode`. */
export function direntType(mode: number): number {
  return (mode & FileType.S_IFMT) >>> 12
}

/** Bytes a Linux `dirent64` record of a `nameLength`-byte name takes (what `getdents`' `count` measures). */
export function direntRecordSize(nameLength: number): number {
  return (19 + nameLength + 1 + 7) & ~7
}

/** The errno names Node knows (`'ENOENT'`...). */
export type ErrnoName = keyof typeof osConstants.errno

/**
 * An error a backend throws to answer `code`: `throw backendError('ENOENT')`.
 * Any error whose `code` is an errno name works the same (Node's own
 * `fs` errors included).
 */
export function backendError(code: ErrnoName, message?: string): Error & { code: string; errno: number } {
  const errno = osConstants.errno[code]
  const err = new Error(message === undefined ? code : `${code}: ${message}`) as Error & { code: string; errno: number }
  err.code = code
  err.errno = -errno
  return err
}

const ERRNO_BY_NAME: Readonly<Record<string, number>> = osConstants.errno
const EIO = ERRNO_BY_NAME.EIO as number

/** The errno an error asks for, if its `code` names one. */
function errnoOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  if (typeof code !== 'string' || !Object.hasOwn(ERRNO_BY_NAME, code)) return undefined
  return ERRNO_BY_NAME[code]
}

function isThenable<T>(v: Awaitable<T>): v is PromiseLike<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
}

/** `f(v)`, after `v` settles if it is a promise. */
function then<T, U>(v: Awaitable<T>, f: (t: T) => U): Awaitable<U> {
  return isThenable(v) ? v.then(f) : f(v)
}

function int64(v: Int64 | undefined, what: string): bigint {
  if (v === undefined) return 0n
  if (typeof v === 'bigint') return v
  if (!Number.isSafeInteger(v)) throw new TypeError(`${what} must be a bigint or a safe integer`)
  return BigInt(v)
}

/** A {@link TimeInput} in statx form. */
export function toTimestamp(t: TimeInput | undefined): StatxTimestamp {
  if (t === undefined) return { sec: 0n, nsec: 0 }
  if (typeof t === 'object' && !(t instanceof Date)) return t
  const ms = t instanceof Date ? t.getTime() : t
  const sec = Math.floor(ms / 1000)
  return { sec: BigInt(sec), nsec: Math.round((ms - sec * 1000) * 1e6) }
}

/** A complete {@link Statx} from a {@link StatInput}. */
export function toStatx(s: StatInput): Statx {
  const size = int64(s.size, 'stat.size')
  return {
    mask: s.mask ?? (StatxMask.BASIC_STATS | (s.btime === undefined ? 0 : StatxMask.BTIME)),
    blksize: s.blksize ?? 4096,
    attributes: int64(s.attributes, 'stat.attributes'),
    nlink: s.nlink ?? 1,
    uid: s.uid ?? 0,
    gid: s.gid ?? 0,
    mode: s.mode,
    ino: int64(s.ino, 'stat.ino'),
    size,
    blocks: s.blocks === undefined ? (size + 511n) / 512n : int64(s.blocks, 'stat.blocks'),
    attributesMask: int64(s.attributesMask, 'stat.attributesMask'),
    atime: toTimestamp(s.atime),
    btime: toTimestamp(s.btime),
    ctime: toTimestamp(s.ctime),
    mtime: toTimestamp(s.mtime),
    rdevMajor: s.rdevMajor ?? 0,
    rdevMinor: s.rdevMinor ?? 0,
    devMajor: s.devMajor ?? 0,
    devMinor: s.devMinor ?? 0,
  }
}

function toStatFs(s: StatFsInput): StatFs {
  return {
    fsType: int64(s.fsType, 'statFs.fsType'),
    blockSize: s.blockSize === undefined ? 4096n : int64(s.blockSize, 'statFs.blockSize'),
    blocks: int64(s.blocks, 'statFs.blocks'),
    blocksFree: int64(s.blocksFree, 'statFs.blocksFree'),
    blocksAvailable: int64(s.blocksAvailable, 'statFs.blocksAvailable'),
    files: int64(s.files, 'statFs.files'),
    filesFree: int64(s.filesFree, 'statFs.filesFree'),
    nameLength: s.nameLength === undefined ? 255n : int64(s.nameLength, 'statFs.nameLength'),
  }
}

function bytes(v: Uint8Array | string): Buffer {
  if (typeof v === 'string') return Buffer.from(v, 'utf8')
  if (Buffer.isBuffer(v)) return v
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  throw new TypeError('expected a Uint8Array or a string')
}

function toDirent(d: DirentInput, index: number): Dirent64 {
  return {
    ino: int64(d.ino, 'dirent.ino'),
    devMinor: d.devMinor ?? 0,
    devMajor: d.devMajor ?? 0,
    off: d.off === undefined ? BigInt(index + 1) : int64(d.off, 'dirent.off'),
    type: d.type,
    name: bytes(d.name),
  }
}

type Entry =
  | { kind: 'control'; obj: ControlFdImpl }
  | { kind: 'open'; obj: OpenFdImpl }
  | { kind: 'bound'; obj: BoundSocketFdImpl }

function fdObject<T extends object>(o: T, op: string): T {
  if (typeof o !== 'object' || o === null) throw new TypeError(`${op} must return an object implementing the FD`)
  return o
}

function owner(a: BackendCallArgs): Owner {
  return { uid: a.uid ?? NO_ID, gid: a.gid ?? NO_ID }
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new TypeError(`internal: missing argument ${what}`)
  return v
}

const S_IFMT = FileType.S_IFMT

/** Options of a {@link BackendServer}. */
export interface BackendServerOptions {
  /** Refuse every mutation with EROFS. Default false. */
  readonly?: boolean
  /** Largest message either side may send (JavaScript backends). Default: the protocol's. */
  maxMessageSize?: number
  /** Most FDIDs one client may hold (then EMFILE). Default: no limit. */
  maxFds?: number
  /**
   * On {@link BackendServer.close}, how long calls still in the backend may
   * take before they are failed with EIO. Default 2000 ms.
   */
  closeGraceMs?: number
  /** Fail a backend call with EIO when it has not settled after this long. Default: no limit. */
  operationTimeoutMs?: number
  /** Called with every backend operation (see `policy.ts`). */
  onOperation?: OperationObserver
  /** Allow/deny rules, read-only subtrees and a write quota (see {@link Policy}). */
  policy?: Policy | PolicyOptions
  /**
   * Donate host FDs to clients (a {@link HostBackend}), so that they do I/O
   * on them directly. Default true, except for writable opens under a write
   * quota. I/O on donated FDs is neither observed nor checked; set false to
   * route every read and write through the server.
   */
  donateFds?: boolean
}

/** Live objects of a {@link BackendServer}. */
export interface BackendServerStats extends ServerStats {
  /** Backend objects (control, open and bound-socket FDs) the JavaScript side holds. */
  handles: number
  /** Backend calls not yet settled. */
  pendingCalls: number
  /** Observer events dropped because Node was too busy to take them. */
  droppedEvents: number
  /** Bytes written through the server (counted when observing or under a policy). */
  bytesWritten: number
  /** Requests served over flipcall channels since the server started. */
  channelRequests: number
}

/**
 * Serves a {@link Backend} (or a {@link HostBackend}) over LISAFS. Each
 * connection is served on its own thread; backend calls run on Node's
 * event loop, one hop each.
 *
 * Events: `'error'` (an error a backend threw or rejected with that was not
 * an errno error, a malformed result, an observer that threw). Without an
 * `'error'` listener they become process warnings.
 *
 * A listening or attached server keeps Node alive until {@link close}
 * (or {@link unref}).
 */
export class BackendServer extends EventEmitter {
  private readonly native: NativeBackendServer
  private readonly backend: Backend | undefined
  private readonly observer: OperationObserver | undefined
  private readonly handles = new Map<number, Entry>()
  private nextHandle = 1
  private readonly graceMs: number
  private closing: Promise<void> | undefined

  /**
   * @param backend - the filesystem: a {@link Backend}, or a {@link HostBackend}
   * @param options - see {@link BackendServerOptions}
   * @throws with the errno as `code` if a host root cannot be opened
   */
  constructor(backend: Backend | HostBackend, options: BackendServerOptions = {}) {
    super()
    this.backend = backend instanceof HostBackend ? undefined : backend
    this.observer = options.onOperation
    this.graceMs = options.closeGraceMs ?? 2000
    const policy = options.policy === undefined ? undefined : Policy.from(options.policy).toNative()
    this.native = new NativeBackendServer(
      {
        host: backend instanceof HostBackend ? { root: backend.root, hostUds: backend.hostUds, hostFifo: backend.hostFifo } : undefined,
        readonly: options.readonly,
        maxMessageSize: options.maxMessageSize,
        maxFds: options.maxFds,
        operationTimeoutMs: options.operationTimeoutMs,
        observe: options.onOperation !== undefined,
        policy,
        donateFds: options.donateFds,
      },
      (callId, op, handle, args) => this.dispatch(callId, op, handle, args),
    )
  }

  /** Listens on the Unix socket `socketPath` (which must not exist; removed on close). */
  listen(socketPath: string): this {
    this.native.listen(socketPath)
    return this
  }

  /** Serves an already connected stream socket; the server owns `fd` from now on. */
  attach(fd: number): this {
    this.native.attach(fd)
    return this
  }

  /** Lets Node exit while the server is open. */
  unref(): this {
    this.native.unref()
    return this
  }

  /** Keeps Node alive while the server is open (the default once listening). */
  ref(): this {
    this.native.ref()
    return this
  }

  /**
   * Stops accepting, disconnects every client and waits for the calls in
   * flight; calls the backend has not settled after `closeGraceMs` fail
   * with EIO (so a backend that never settles cannot hang it). Releases
   * every backend object and no longer keeps Node alive. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.native.close(this.graceMs).then(() => {
      this.drain()
      for (const entry of this.handles.values()) this.release(entry)
      this.handles.clear()
    })
    return this.closing
  }

  /** Closes the server at the end of an `await using` block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** Live connections, FDs, nodes and backend objects. */
  stats(): BackendServerStats {
    const b = this.native.bridgeStats()
    return {
      ...this.native.stats(),
      handles: this.handles.size,
      pendingCalls: b.pendingCalls,
      droppedEvents: b.droppedEvents,
      bytesWritten: b.bytesWritten,
      channelRequests: b.channelRequests,
    }
  }

  // -- the bridge -------------------------------------------------------------

  private report(err: unknown, op: string): void {
    const error = err instanceof Error ? err : new Error(`backend ${op} threw a non-error: ${String(err)}`)
    try {
      if (this.listenerCount('error') > 0) {
        this.emit('error', error)
        return
      }
    } catch (listenerError) {
      process.emitWarning(`lisafs: an 'error' listener threw: ${String(listenerError)}`, { code: 'LISAFS_BACKEND_ERROR' })
      return
    }
    process.emitWarning(`lisafs: backend ${op} failed: ${error.message}`, { code: 'LISAFS_BACKEND_ERROR' })
  }

  private dispatch(callId: number, op: string, handle: number, args: BackendCallArgs | undefined): void {
    if (op === 'drain') {
      this.drain()
      return
    }
    let out: Awaitable<BackendResult>
    try {
      out = this.invoke(op, handle, args ?? {})
    } catch (err) {
      this.failCall(callId, op, err)
      return
    }
    if (isThenable(out)) {
      out.then(
        (r) => this.complete(callId, op, r),
        (err: unknown) => this.failCall(callId, op, err),
      )
    } else {
      this.complete(callId, op, out)
    }
  }

  private complete(callId: number, op: string, result: BackendResult): void {
    try {
      this.native.complete(callId, result)
    } catch (err) {
      this.native.fail(callId, EIO)
      // A result the server could not even read: it adopted none of its
      // handles or FDs, so they are released here.
      if ((err as { code?: unknown }).code !== 'ERR_LISAFS_BACKEND_RESULT') this.disown(result)
      this.report(err, op)
    }
  }

  private disown(result: BackendResult): void {
    for (const id of [result.handle, result.open, result.socket]) {
      const entry = id === undefined ? undefined : this.handles.get(id)
      if (id === undefined || entry === undefined) continue
      this.handles.delete(id)
      this.release(entry)
    }
    if (typeof result.fd === 'number' && Number.isInteger(result.fd) && result.fd >= 0) {
      try {
        closeSync(result.fd)
      } catch {
        // Not an open descriptor: nothing to release.
      }
    }
  }

  private failCall(callId: number, op: string, err: unknown): void {
    const errno = errnoOf(err)
    try {
      if (errno !== undefined && errno !== 0) {
        this.native.fail(callId, errno)
        return
      }
      this.native.fail(callId, EIO, err instanceof Error ? err.message : undefined)
    } catch (nativeError) {
      this.report(nativeError, op)
    }
    this.report(err, op)
  }

  private drain(): void {
    let d
    try {
      d = this.native.drain()
    } catch (err) {
      this.report(err, 'drain')
      return
    }
    if (this.observer !== undefined) {
      for (const e of d.events) {
        try {
          this.observer(toEvent(e))
        } catch (err) {
          this.report(err, 'onOperation')
        }
      }
    }
    for (const id of d.renamed) {
      const entry = this.handles.get(id)
      if (entry === undefined || entry.kind === 'bound') continue
      try {
        entry.obj.renamed?.()
      } catch (err) {
        this.report(err, 'renamed')
      }
    }
    for (const id of d.releases) {
      const entry = this.handles.get(id)
      if (entry === undefined) continue
      this.handles.delete(id)
      this.release(entry)
    }
  }

  private release(entry: Entry): void {
    try {
      entry.obj.release?.()
    } catch (err) {
      this.report(err, 'release')
    }
  }

  private register(entry: Entry): number {
    const id = this.nextHandle
    this.nextHandle = id >= 0xffff_fffe ? 1 : id + 1
    this.handles.set(id, entry)
    return id
  }

  private newControl(nc: NewControl): BackendResult {
    if (typeof nc !== 'object' || nc === null || typeof nc.file !== 'object' || nc.file === null) {
      throw new TypeError('a backend must return { file, stat } for a new control FD')
    }
    const stat = toStatx(nc.stat)
    return { handle: this.register({ kind: 'control', obj: nc.file }), stat }
  }

  private entry(handle: number): Entry {
    const e = this.handles.get(handle)
    if (e === undefined) throw new Error(`internal: unknown backend handle ${handle}`)
    return e
  }

  private control(handle: number): ControlFdImpl {
    const e = this.entry(handle)
    if (e.kind !== 'control') throw new Error(`internal: handle ${handle} is not a control FD`)
    return e.obj
  }

  private open(handle: number): OpenFdImpl {
    const e = this.entry(handle)
    if (e.kind !== 'open') throw new Error(`internal: handle ${handle} is not an open FD`)
    return e.obj
  }

  /** Runs one backend call; a missing method throws ENOSYS / EOPNOTSUPP. */
  private invoke(op: string, handle: number, a: BackendCallArgs): Awaitable<BackendResult> {
    const nosys = (): never => {
      throw backendError('ENOSYS')
    }
    const noxattr = (): never => {
      throw backendError('EOPNOTSUPP')
    }
    const unit = (v: Awaitable<void>): Awaitable<BackendResult> => then(v, () => ({}))
    const ctl = (v: Awaitable<NewControl>): Awaitable<BackendResult> => then(v, (nc) => this.newControl(nc))
    switch (op) {
      case 'mount': {
        const backend = this.backend
        if (backend === undefined) throw new Error('internal: mount on a host backend')
        return ctl(backend.mount())
      }
      case 'stat': {
        const f = this.control(handle)
        return f.stat ? then(f.stat(), (s) => ({ stat: toStatx(s) })) : nosys()
      }
      case 'setStat': {
        const f = this.control(handle)
        if (!f.setStat) return nosys()
        const req = need(a.setStat, 'setStat')
        return then(f.setStat(req), (r) => (r ? { failureMask: r.failureMask, failureErrno: r.failureErrno } : { failureMask: 0, failureErrno: 0 }))
      }
      case 'walk': {
        const f = this.control(handle)
        return f.walk ? ctl(f.walk(need(a.name, 'name'))) : nosys()
      }
      case 'walkStat': {
        const f = this.control(handle)
        const path = need(a.path, 'path')
        if (f.walkStat) return then(f.walkStat(path), (list) => ({ stats: list.map(toStatx) }))
        return walkStatGeneric(f, path).then((stats) => ({ stats }))
      }
      case 'open': {
        const f = this.control(handle)
        if (!f.open) return nosys()
        return then(f.open(need(a.flags, 'flags')), (o) => ({ handle: this.register({ kind: 'open', obj: fdObject(o, 'open') }) }))
      }
      case 'openCreate': {
        const f = this.control(handle)
        if (!f.openCreate) return nosys()
        return then(f.openCreate(need(a.name, 'name'), need(a.mode, 'mode'), owner(a), need(a.flags, 'flags')), (c) => {
          const r = this.newControl(c)
          r.open = this.register({ kind: 'open', obj: fdObject(c.open, 'openCreate') })
          return r
        })
      }
      case 'mkdir': {
        const f = this.control(handle)
        return f.mkdir ? ctl(f.mkdir(need(a.name, 'name'), need(a.mode, 'mode'), owner(a))) : nosys()
      }
      case 'mknod': {
        const f = this.control(handle)
        if (!f.mknod) return nosys()
        return ctl(f.mknod(need(a.name, 'name'), need(a.mode, 'mode'), owner(a), { major: a.major ?? 0, minor: a.minor ?? 0 }))
      }
      case 'symlink': {
        const f = this.control(handle)
        return f.symlink ? ctl(f.symlink(need(a.name, 'name'), need(a.target, 'target'), owner(a))) : nosys()
      }
      case 'link': {
        const f = this.control(handle)
        return f.link ? ctl(f.link(this.control(need(a.dir, 'dir')), need(a.name, 'name'))) : nosys()
      }
      case 'statFs': {
        const f = this.control(handle)
        return f.statFs ? then(f.statFs(), (s) => ({ statFs: toStatFs(s) })) : nosys()
      }
      case 'readlink': {
        const f = this.control(handle)
        return f.readlink ? then(f.readlink(), (t) => ({ data: bytes(t) })) : nosys()
      }
      case 'unlink': {
        const f = this.control(handle)
        return f.unlink ? unit(f.unlink(need(a.name, 'name'), a.flags ?? 0)) : nosys()
      }
      case 'renameAt': {
        const f = this.control(handle)
        if (!f.renameAt) return nosys()
        return unit(f.renameAt(need(a.name, 'name'), this.control(need(a.dir, 'dir')), need(a.newName, 'newName'), a.flags ?? 0))
      }
      case 'getXattr': {
        const f = this.control(handle)
        if (!f.getXattr) return noxattr()
        const size = a.count ?? 0
        return then(f.getXattr(need(a.name, 'name'), size), (v) => {
          const data = bytes(v)
          if (size > 0 && data.length > size) throw backendError('ERANGE')
          return { data }
        })
      }
      case 'setXattr': {
        const f = this.control(handle)
        return f.setXattr ? unit(f.setXattr(need(a.name, 'name'), need(a.data, 'data'), a.flags ?? 0)) : noxattr()
      }
      case 'listXattr': {
        const f = this.control(handle)
        if (!f.listXattr) return noxattr()
        const size = a.size ?? 0n
        return then(f.listXattr(size), (list) => {
          const names = list.map(bytes)
          const total = names.reduce((n, b) => n + b.length + 1, 0)
          if (size > 0n && BigInt(total) > size) throw backendError('ERANGE')
          return { names }
        })
      }
      case 'removeXattr': {
        const f = this.control(handle)
        return f.removeXattr ? unit(f.removeXattr(need(a.name, 'name'))) : noxattr()
      }
      case 'connect': {
        const f = this.control(handle)
        if (!f.connect) return nosys()
        const creds = a.uid === undefined ? undefined : owner(a)
        return then(f.connect(need(a.sockType, 'sockType'), creds), (fd) => ({ fd }))
      }
      case 'bindAt': {
        const f = this.control(handle)
        if (!f.bindAt) return nosys()
        return then(f.bindAt(need(a.name, 'name'), need(a.sockType, 'sockType'), need(a.mode, 'mode'), owner(a)), (b) => {
          const r = this.newControl(b)
          r.socket = this.register({ kind: 'bound', obj: fdObject(b.socket, 'bindAt') })
          r.fd = b.fd
          return r
        })
      }
      case 'listen': {
        const e = this.entry(handle)
        if (e.kind !== 'bound') throw new Error(`internal: handle ${handle} is not a bound socket`)
        return e.obj.listen ? unit(e.obj.listen(a.backlog ?? 0)) : nosys()
      }
      case 'accept': {
        const e = this.entry(handle)
        if (e.kind !== 'bound') throw new Error(`internal: handle ${handle} is not a bound socket`)
        if (!e.obj.accept) return nosys()
        return then(e.obj.accept(), (s) => (s.peerAddr === undefined ? { fd: s.fd } : { fd: s.fd, data: bytes(s.peerAddr) }))
      }
      case 'fstat': {
        const f = this.open(handle)
        return f.stat ? then(f.stat(), (s) => ({ stat: toStatx(s) })) : nosys()
      }
      case 'sync': {
        const f = this.open(handle)
        return f.sync ? unit(f.sync()) : nosys()
      }
      case 'read': {
        const f = this.open(handle)
        if (!f.read) return nosys()
        const length = need(a.count, 'count')
        return then(f.read(length, need(a.offset, 'offset')), (d) => {
          const data = bytes(d)
          if (data.length > length) throw new RangeError(`read returned ${data.length} bytes, more than the ${length} asked for`)
          return { data }
        })
      }
      case 'write': {
        const f = this.open(handle)
        if (!f.write) return nosys()
        const data = need(a.data, 'data')
        return then(f.write(data, need(a.offset, 'offset')), (n) => {
          if (!Number.isInteger(n) || n < 0 || n > data.length) {
            throw new RangeError(`write returned ${String(n)}, not a count between 0 and ${data.length}`)
          }
          return { count: n }
        })
      }
      case 'allocate': {
        const f = this.open(handle)
        return f.allocate ? unit(f.allocate(a.size ?? 0n, need(a.offset, 'offset'), need(a.length, 'length'))) : nosys()
      }
      case 'flush': {
        const f = this.open(handle)
        return f.flush ? unit(f.flush()) : {}
      }
      case 'getdents': {
        const f = this.open(handle)
        if (!f.getdents) return nosys()
        return then(f.getdents(need(a.count, 'count'), a.seek0 ?? false), (list) => ({ dirents: list.map(toDirent) }))
      }
      default:
        throw new Error(`internal: unknown backend operation ${op}`)
    }
  }
}

/** Stubs for typed `'error'` listeners. */
export interface BackendServer {
  /** A backend or observer error the server answered with EIO (or ignored). */
  on(event: 'error', listener: (err: Error) => void): this
  /** Like {@link on}, once. */
  once(event: 'error', listener: (err: Error) => void): this
  /** Removes an `'error'` listener. */
  off(event: 'error', listener: (err: Error) => void): this
}

/** WalkStat for backends without `walkStat`: walk, stat, release. */
async function walkStatGeneric(start: ControlFdImpl, path: Buffer[]): Promise<Statx[]> {
  const stats: Statx[] = []
  let names = path
  if (names[0]?.length === 0) {
    if (!start.stat) throw backendError('ENOSYS')
    stats.push(toStatx(await start.stat()))
    names = names.slice(1)
  }
  const walked: ControlFdImpl[] = []
  try {
    let cur = start
    for (const name of names) {
      if (!cur.walk) throw backendError('ENOSYS')
      let nc: NewControl
      try {
        nc = await cur.walk(name)
      } catch (err) {
        if (errnoOf(err) === ERRNO_BY_NAME.ENOENT) break
        throw err
      }
      walked.push(nc.file)
      const st = toStatx(nc.stat)
      stats.push(st)
      if ((st.mode & S_IFMT) === FileType.S_IFLNK) break
      cur = nc.file
    }
  } finally {
    for (const f of walked) f.release?.()
  }
  return stats
}

const CLASSES = new Set(['read', 'write', 'create', 'delete', 'xattr', 'socket'])

function toEvent(e: NativeEvent): OperationEvent {
  const ev: OperationEvent = {
    op: e.op as OperationEvent['op'],
    class: (CLASSES.has(e.class) ? e.class : 'read') as OperationEvent['class'],
    connection: e.connection,
    path: e.path,
    flags: e.flags,
    errno: e.errno,
    denied: e.denied,
    durationNs: e.durationNs,
    time: e.time,
  }
  if (e.newPath !== undefined && e.newPath !== null) ev.newPath = e.newPath
  if (e.bytes !== undefined && e.bytes !== null) ev.bytes = e.bytes
  if (e.errno !== 0) ev.code = errnoName(e.errno)
  return ev
}
