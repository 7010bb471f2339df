import { closeSync } from 'node:fs'

import {
  NativeClient,
  type Dirent64,
  type Inode,
  type StatFs,
  type Statx,
  type Timespec,
  type WalkStatus,
} from '../index.js'
import { fromNative } from './errors.js'
import { decodeInodes, decodeStatx, decodeStatxs, mapMaybe } from './wire.js'

/** A name: a string (encoded as UTF-8) or raw bytes. */
export type Name = string | Uint8Array

/** Linux `SOCK_*` types accepted by Connect and BindAt. */
export const SockType = { STREAM: 1, DGRAM: 2, SEQPACKET: 5 } as const

/** Flags of open and unlink calls (Linux values). */
export const Flags = {
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_TRUNC: 0o1000,
  AT_REMOVEDIR: 0x200,
  RENAME_NOREPLACE: 1,
  RENAME_EXCHANGE: 2,
  XATTR_CREATE: 1,
  XATTR_REPLACE: 2,
} as const

const NO_ID = 0xffff_ffff
const UTIME_OMIT = 0x3fff_fffen

function bytes(name: Name): Buffer {
  return typeof name === 'string' ? Buffer.from(name, 'utf8') : Buffer.from(name.buffer, name.byteOffset, name.byteLength)
}

function printable(name: Name): string {
  return typeof name === 'string' ? name : Buffer.from(name).toString('utf8')
}

interface Held {
  native: NativeClient
  id: bigint
  hostFd: number | undefined
}

// A handle dropped without close() is closed when it is garbage collected:
// the server would otherwise keep its FDID (and host FD) until disconnect.
const leaked = new FinalizationRegistry<Held>((held) => {
  if (held.hostFd !== undefined) {
    try {
      closeSync(held.hostFd)
    } catch {
      // Already closed by its owner.
    }
  }
  // The close may complete at once (a value) or later (a promise).
  try {
    const done = held.native.close([held.id])
    if (done instanceof Promise) done.catch(() => {})
  } catch {
    // The connection is gone: the server released the FDID already.
  }
})

/** A server-side handle (an FDID) owned by this process. */
abstract class Handle {
  /** The FDID on the connection. */
  readonly id: bigint
  /** The path this handle was reached by, for error messages (best effort). */
  readonly path: string
  /** @internal */
  protected readonly native: NativeClient
  private closed = false
  private readonly held: Held

  /** @internal */
  constructor(native: NativeClient, id: bigint, path: string, hostFd?: number) {
    this.native = native
    this.id = id
    this.path = path
    this.held = { native, id, hostFd }
    leaked.register(this, this.held, this)
  }

  /** The host FD the server donated with this handle, if any. */
  get hostFd(): number | undefined {
    return this.held.hostFd
  }

  /** Whether {@link close} was called. */
  get isClosed(): boolean {
    return this.closed
  }

  /**
   * Releases the FDID on the server (and closes a donated host FD).
   * Idempotent.
   */
  async close(): Promise<void> {
    if (!this.releaseLocal()) return
    await this.call('close', () => this.native.close([this.id]))
  }

  /**
   * Marks the handle closed and closes a donated host FD; returns whether
   * the FDID still has to be closed on the server (false if it was already).
   * @internal
   */
  releaseLocal(): boolean {
    if (this.closed) return false
    this.closed = true
    leaked.unregister(this)
    if (this.held.hostFd !== undefined) {
      closeSync(this.held.hostFd)
      this.held.hostFd = undefined
    }
    return true
  }

  /** @internal */
  get nativeClient(): NativeClient {
    return this.native
  }

  /** Closes the handle at the end of an `await using` block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** @internal */
  protected async call<T>(syscall: string, op: () => T | Promise<T>, path: string = this.path, dest?: string): Promise<T> {
    try {
      return await op()
    } catch (err) {
      throw fromNative(err, syscall, path, dest)
    }
  }

  /** @internal */
  protected child(name: Name): string {
    return this.path === '/' ? `/${printable(name)}` : `${this.path}/${printable(name)}`
  }
}

/**
 * Closes handles of one connection with as few Close requests as possible
 * (one per 100 FDIDs) instead of one each. Idempotent like
 * {@link Handle.close}.
 * @internal
 */
export async function closeHandles(handles: Array<ControlFd | OpenFd>): Promise<void> {
  const open = handles.filter((h) => h.releaseLocal())
  const first = open[0]
  if (first === undefined) return
  try {
    await first.nativeClient.close(open.map((h) => h.id))
  } catch (err) {
    throw fromNative(err, 'close', first.path)
  }
}

/** Attributes {@link ControlFd.setStat} can change; absent ones are left alone. */
export interface SetStatAttrs {
  /** Permission bits (and set-id, sticky). */
  mode?: number
  /** Owner. */
  uid?: number
  /** Group. */
  gid?: number
  /** File size. */
  size?: bigint | number
  /** Access time: a Date, seconds since the epoch, or `'now'`. */
  atime?: Date | number | 'now'
  /** Modification time: a Date, seconds since the epoch, or `'now'`. */
  mtime?: Date | number | 'now'
}

/** What SetStat could not change: `STATX_*` bits and one errno (0 if all worked). */
export interface SetStatOutcome {
  /** `STATX_*` bits of the requested changes that failed. */
  failureMask: number
  /** The errno of one failure, or 0. */
  failureErrno: number
}

/** Ownership of a created file; default: the server's choice. */
export interface Owner {
  /** Owner UID. */
  uid?: number
  /** Group GID. */
  gid?: number
}

function timespec(t: Date | number | 'now' | undefined): Timespec {
  if (t === undefined) return { sec: 0n, nsec: UTIME_OMIT }
  if (t === 'now') return { sec: 0n, nsec: 0x3fff_ffffn }
  const ms = t instanceof Date ? t.getTime() : t * 1000
  const sec = Math.floor(ms / 1000)
  return { sec: BigInt(sec), nsec: BigInt(Math.round((ms - sec * 1000) * 1e6)) }
}

/** The result of {@link ControlFd.walk}. */
export interface Walked {
  /** Whether every component was walked, or why the walk stopped. */
  status: WalkStatus
  /** One control FD per component walked, in order. */
  fds: ControlFd[]
}

/**
 * A handle on a position in the server's tree (a LISAFS control FD): path
 * operations happen here. Its file type is fixed when it is created.
 */
export class ControlFd extends Handle {
  /** The stat taken when this handle was created. */
  readonly initialStat: Statx

  /** @internal */
  constructor(native: NativeClient, inode: Inode, path: string) {
    super(native, inode.controlFd, path)
    this.initialStat = inode.stat
  }

  /** Whether this is a directory. */
  get isDirectory(): boolean {
    return (this.initialStat.mode & 0o170000) === 0o040000
  }

  /** Whether this is a symlink. */
  get isSymbolicLink(): boolean {
    return (this.initialStat.mode & 0o170000) === 0o120000
  }

  private wrap(inode: Inode, path: string): ControlFd {
    return new ControlFd(this.native, inode, path)
  }

  /**
   * Walks one or more components from this directory, never following a
   * symlink: the walk stops after a symlink (status `ComponentSymlink`) or at
   * a missing component (`ComponentDoesNotExist`). Each returned handle must
   * be closed.
   */
  async walk(names: Name | Name[]): Promise<Walked> {
    const list = Array.isArray(names) ? names : [names]
    const r = await this.call('walk', () => this.native.walk(this.id, list.map(bytes)))
    let path = this.path
    const fds = decodeInodes(r.inodes).map((inode, i) => {
      const name = list[i]
      path = name === undefined ? path : path === '/' ? `/${printable(name)}` : `${path}/${printable(name)}`
      return this.wrap(inode, path)
    })
    return { status: r.status, fds }
  }

  /**
   * Stats each component of a walk without creating handles. A first name of
   * `''` stats this directory itself.
   */
  walkStat(names: Name[]): Promise<Statx[]> {
    return this.call('walkStat', () => mapMaybe(this.native.walkStat(this.id, names.map(bytes)), decodeStatxs))
  }

  /** Stats the file. */
  stat(): Promise<Statx> {
    return this.call('stat', () => mapMaybe(this.native.fstat(this.id), decodeStatx))
  }

  /** Changes attributes; a partial failure is reported, not thrown. */
  async setStat(attrs: SetStatAttrs): Promise<SetStatOutcome> {
    let mask = 0
    if (attrs.mode !== undefined) mask |= 0x2
    if (attrs.uid !== undefined) mask |= 0x8
    if (attrs.gid !== undefined) mask |= 0x10
    if (attrs.atime !== undefined) mask |= 0x20
    if (attrs.mtime !== undefined) mask |= 0x40
    if (attrs.size !== undefined) mask |= 0x200
    return this.call('setStat', () =>
      this.native.setStat(this.id, {
        mask,
        mode: attrs.mode ?? 0,
        uid: attrs.uid ?? NO_ID,
        gid: attrs.gid ?? NO_ID,
        size: BigInt(attrs.size ?? 0),
        atime: timespec(attrs.atime),
        mtime: timespec(attrs.mtime),
      }),
    )
  }

  /** Opens the file (`flags`: `O_RDONLY`, `O_WRONLY`, `O_RDWR`, `O_TRUNC`). */
  async openAt(flags: number = Flags.O_RDONLY): Promise<OpenFd> {
    const o = await this.call('open', () => this.native.openAt(this.id, flags))
    return new OpenFd(this.native, o.openFd, this.path, flags, o.hostFd ?? undefined)
  }

  /** Creates the regular file `name` exclusively and opens it. */
  async openCreateAt(
    name: Name,
    mode: number,
    flags: number = Flags.O_RDWR,
    owner: Owner = {},
  ): Promise<{ control: ControlFd; open: OpenFd }> {
    const path = this.child(name)
    const r = await this.call(
      'open',
      () => this.native.openCreateAt(this.id, bytes(name), mode & 0o7777, owner.uid ?? NO_ID, owner.gid ?? NO_ID, flags),
      path,
    )
    return {
      control: this.wrap(r.child, path),
      open: new OpenFd(this.native, r.openFd, path, flags, r.hostFd ?? undefined),
    }
  }

  /** Creates the directory `name`. */
  async mkdirAt(name: Name, mode: number = 0o777, owner: Owner = {}): Promise<ControlFd> {
    const path = this.child(name)
    const inode = await this.call(
      'mkdir',
      () => this.native.mkdirAt(this.id, bytes(name), mode & 0o7777, owner.uid ?? NO_ID, owner.gid ?? NO_ID),
      path,
    )
    return this.wrap(inode, path)
  }

  /** Creates the node `name`; `mode` includes the file type bits. */
  async mknodAt(name: Name, mode: number, dev: { minor?: number; major?: number } = {}, owner: Owner = {}): Promise<ControlFd> {
    const path = this.child(name)
    const inode = await this.call(
      'mknod',
      () =>
        this.native.mknodAt(this.id, bytes(name), mode, owner.uid ?? NO_ID, owner.gid ?? NO_ID, dev.minor ?? 0, dev.major ?? 0),
      path,
    )
    return this.wrap(inode, path)
  }

  /** Creates the symlink `name` pointing at `target` (stored verbatim). */
  async symlinkAt(name: Name, target: Name, owner: Owner = {}): Promise<ControlFd> {
    const path = this.child(name)
    const inode = await this.call(
      'symlink',
      () => this.native.symlinkAt(this.id, bytes(name), bytes(target), owner.uid ?? NO_ID, owner.gid ?? NO_ID),
      path,
    )
    return this.wrap(inode, path)
  }

  /** Hard-links `target` (not a directory) as `name` in this directory. */
  async linkAt(target: ControlFd, name: Name): Promise<ControlFd> {
    const path = this.child(name)
    const inode = await this.call('link', () => this.native.linkAt(this.id, target.id, bytes(name)), target.path, path)
    return this.wrap(inode, path)
  }

  /** Removes `name` (pass `Flags.AT_REMOVEDIR` for a directory). */
  unlinkAt(name: Name, flags = 0): Promise<void> {
    return this.call(flags & Flags.AT_REMOVEDIR ? 'rmdir' : 'unlink', () => this.native.unlinkAt(this.id, bytes(name), flags), this.child(name))
  }

  /** Renames `oldName` here to `newName` in `newDir` (`flags`: RENAME_*). */
  renameAt(oldName: Name, newDir: ControlFd, newName: Name, flags = 0): Promise<void> {
    return this.call(
      'rename',
      () => this.native.renameAt(this.id, bytes(oldName), newDir.id, bytes(newName), flags),
      this.child(oldName),
      newDir.child(newName),
    )
  }

  /** Reads the symlink's target. */
  readlinkAt(): Promise<Buffer> {
    return this.call('readlink', () => this.native.readlinkAt(this.id))
  }

  /** Statistics of the filesystem holding this file. */
  statFs(): Promise<StatFs> {
    return this.call('statfs', () => this.native.fstatfs(this.id))
  }

  /** Reads extended attribute `name` (whole value unless `size` is given). */
  getXattr(name: Name, size = 0): Promise<Buffer> {
    return this.call('getxattr', () => this.native.fgetXattr(this.id, bytes(name), size))
  }

  /** Sets extended attribute `name` (`flags`: XATTR_CREATE, XATTR_REPLACE). */
  setXattr(name: Name, value: Name, flags = 0): Promise<void> {
    return this.call('setxattr', () => this.native.fsetXattr(this.id, bytes(name), bytes(value), flags))
  }

  /** Lists extended attribute names. */
  async listXattr(): Promise<string[]> {
    const names = await this.call('listxattr', () => this.native.flistXattr(this.id, 0n))
    return names.map((n) => n.toString('utf8'))
  }

  /** Removes extended attribute `name`. */
  removeXattr(name: Name): Promise<void> {
    return this.call('removexattr', () => this.native.fremoveXattr(this.id, bytes(name)))
  }

  /**
   * Connects a new host socket to this socket file; returns the socket's FD,
   * which the caller owns (e.g. `new net.Socket({ fd })`).
   */
  connect(sockType: number = SockType.STREAM, creds?: { uid: number; gid: number }): Promise<number> {
    return this.call('connect', () => this.native.connectSocket(this.id, sockType, creds?.uid, creds?.gid))
  }

  /** Creates and binds a host Unix socket at `name` in this directory. */
  async bindAt(name: Name, sockType: number = SockType.STREAM, mode = 0o755, owner: Owner = {}): Promise<{ control: ControlFd; socket: BoundSocketFd }> {
    const path = this.child(name)
    const r = await this.call(
      'bind',
      () => this.native.bindAt(this.id, bytes(name), sockType, mode & 0o7777, owner.uid ?? NO_ID, owner.gid ?? NO_ID),
      path,
    )
    return { control: this.wrap(r.child, path), socket: new BoundSocketFd(this.native, r.boundSocketFd, path, r.hostFd) }
  }
}

/** An open file (a LISAFS open FD). */
export class OpenFd extends Handle {
  /** The flags it was opened with. */
  readonly flags: number

  /** @internal */
  constructor(native: NativeClient, id: bigint, path: string, flags: number, hostFd?: number) {
    super(native, id, path, hostFd)
    this.flags = flags
  }

  /** Reads up to `length` bytes at `position`; fewer only at end of file. */
  read(length: number, position: bigint | number = 0): Promise<Buffer> {
    return this.call('read', () => this.native.pread(this.id, BigInt(position), length))
  }

  /** Writes `data` at `position`; returns the bytes written. */
  async write(data: Uint8Array | string, position: bigint | number = 0): Promise<number> {
    const n = await this.call('write', () => this.native.pwrite(this.id, BigInt(position), bytes(data)))
    return Number(n)
  }

  /** Stats the open file. */
  stat(): Promise<Statx> {
    return this.call('fstat', () => mapMaybe(this.native.fstat(this.id), decodeStatx))
  }

  /** Flushes to stable storage. */
  sync(): Promise<void> {
    return this.call('fsync', () => this.native.fsync([this.id]))
  }

  /** `fallocate(2)`. */
  allocate(offset: bigint | number, length: bigint | number, mode = 0): Promise<void> {
    return this.call('fallocate', () => this.native.fallocate(this.id, BigInt(mode), BigInt(offset), BigInt(length)))
  }

  /** Flushes client-visible state (a no-op when the server does not serve it). */
  flush(): Promise<void> {
    return this.call('flush', () => this.native.flush(this.id))
  }

  /**
   * Iterates the directory's entries (without `.` and `..`), from the start.
   * The FD's position is shared: iterate one at a time.
   */
  async *entries(batchBytes = 65536): AsyncGenerator<Dirent64> {
    let count = -batchBytes
    for (;;) {
      const batch: Dirent64[] = await this.call('getdents', () => this.native.getdents64(this.id, count))
      if (batch.length === 0) return
      yield* batch
      count = batchBytes
    }
  }
}

/** A bound host socket created by {@link ControlFd.bindAt}. */
export class BoundSocketFd extends Handle {
  /** Starts listening. */
  listen(backlog = 128): Promise<void> {
    return this.call('listen', () => this.native.listen(this.id, backlog))
  }

  /**
   * Accepts a pending connection without blocking (EAGAIN if none; poll
   * {@link hostFd} for readability first). Returns the connected socket's FD,
   * owned by the caller.
   */
  async accept(): Promise<number> {
    const a = await this.call('accept', () => this.native.accept(this.id))
    return a.hostFd
  }
}

/**
 * A connection to a LISAFS server.
 *
 * When the server grants flipcall channels (see {@link ConnectOptions}),
 * frequent calls (stat, walk, open, close, small reads) usually complete on
 * Node's thread within a short bounded wait and the others on the client's
 * worker thread; methods return promises either way. Calls issued without
 * awaiting each other may then complete, and take effect, in any order,
 * as with `node:fs/promises`; awaited calls are ordered.
 */
export class Client {
  /** @internal */
  readonly native: NativeClient
  private root: ControlFd | undefined

  /** @internal */
  constructor(native: NativeClient) {
    this.native = native
  }

  /** Whether calls travel over flipcall channels (see {@link ConnectOptions}). */
  get usesChannels(): boolean {
    return this.native.usesChannels()
  }

  /** The largest payload the server accepts. */
  get maxMessageSize(): number {
    return this.native.maxMessageSize()
  }

  /** Whether the server serves message `mid` (see `Mid`). */
  supports(mid: number): boolean {
    return this.native.supports(mid)
  }

  /** The mount point's control FD (the same handle on every call). */
  mount(): ControlFd {
    this.root ??= new ControlFd(this.native, this.native.root(), '/')
    return this.root
  }

  /**
   * Disconnects. The server releases every FDID of this connection; handles
   * still open here become unusable.
   */
  async close(): Promise<void> {
    this.native.shutdown()
  }

  /** Disconnects at the end of an `await using` block. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /**
   * Use flipcall shared-memory channels when the server grants them
   * (default true). Frequent calls then usually complete without leaving
   * Node's thread; without channels every call goes over the socket.
   */
  channels?: boolean
  /**
   * How long (µs) Node's thread waits, spinning, for a channel reply before
   * handing the wait to the client's worker thread (default 50, at most
   * 1000; 0: every call is made by the worker thread).
   */
  syncBudgetUs?: number
}

/**
 * Connects to a LISAFS server on a Unix socket path, or over an already
 * connected socket FD (whose ownership passes to the client), and mounts.
 */
export async function connect(target: string | number, options: ConnectOptions = {}): Promise<Client> {
  try {
    return new Client(await NativeClient.connect(target, options))
  } catch (err) {
    throw fromNative(err, 'connect', typeof target === 'string' ? target : undefined)
  }
}
