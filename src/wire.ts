/**
 * Decoders for the fixed-size LISAFS structs the native client hands over
 * as wire bytes (little-endian, laid out as gVisor's `linux.Statx` and
 * `lisafs.Inode`). Stats cross the napi boundary as bytes because building
 * them as objects in Rust, one property and one BigInt at a time, cost
 * several µs per stat; a DataView read here costs a fraction of that.
 * @internal
 */

import type { Inode, Statx, StatxTimestamp } from '../index.js'

/** Size of a Statx on the wire. */
export const STATX_SIZE = 144
/** Size of an Inode on the wire: the FDID, then the Statx. */
export const INODE_SIZE = 8 + STATX_SIZE

function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
}

function timestamp(dv: DataView, at: number): StatxTimestamp {
  return { sec: dv.getBigInt64(at, true), nsec: dv.getUint32(at + 8, true) }
}

function statxAt(dv: DataView, at: number): Statx {
  return {
    mask: dv.getUint32(at, true),
    blksize: dv.getUint32(at + 4, true),
    attributes: dv.getBigUint64(at + 8, true),
    nlink: dv.getUint32(at + 16, true),
    uid: dv.getUint32(at + 20, true),
    gid: dv.getUint32(at + 24, true),
    mode: dv.getUint16(at + 28, true),
    ino: dv.getBigUint64(at + 32, true),
    size: dv.getBigUint64(at + 40, true),
    blocks: dv.getBigUint64(at + 48, true),
    attributesMask: dv.getBigUint64(at + 56, true),
    atime: timestamp(dv, at + 64),
    btime: timestamp(dv, at + 80),
    ctime: timestamp(dv, at + 96),
    mtime: timestamp(dv, at + 112),
    rdevMajor: dv.getUint32(at + 128, true),
    rdevMinor: dv.getUint32(at + 132, true),
    devMajor: dv.getUint32(at + 136, true),
    devMinor: dv.getUint32(at + 140, true),
  }
}

function checkMultiple(buf: Uint8Array, size: number, what: string): void {
  if (buf.byteLength % size !== 0) {
    throw new RangeError(`${what}: ${buf.byteLength} bytes is not a multiple of ${size}`)
  }
}

/** One Statx from its 144 wire bytes. */
export function decodeStatx(buf: Uint8Array): Statx {
  if (buf.byteLength !== STATX_SIZE) throw new RangeError(`Statx: expected ${STATX_SIZE} bytes, got ${buf.byteLength}`)
  return statxAt(view(buf), 0)
}

/** Statxs encoded back to back. */
export function decodeStatxs(buf: Uint8Array): Statx[] {
  checkMultiple(buf, STATX_SIZE, 'Statx array')
  const dv = view(buf)
  const out: Statx[] = []
  for (let at = 0; at < buf.byteLength; at += STATX_SIZE) out.push(statxAt(dv, at))
  return out
}

/** Inodes encoded back to back. */
export function decodeInodes(buf: Uint8Array): Inode[] {
  checkMultiple(buf, INODE_SIZE, 'Inode array')
  const dv = view(buf)
  const out: Inode[] = []
  for (let at = 0; at < buf.byteLength; at += INODE_SIZE) {
    out.push({ controlFd: dv.getBigUint64(at, true), stat: statxAt(dv, at + 8) })
  }
  return out
}

/**
 * Applies `f` to a value that may still be a promise, without deferring a
 * value that is already there (a fast-path call completed synchronously).
 */
export function mapMaybe<T, U>(v: T | Promise<T>, f: (t: T) => U): U | Promise<U> {
  return v instanceof Promise ? v.then(f) : f(v)
}
