import { constants } from 'node:os'
import { getSystemErrorMap } from 'node:util'

const systemErrors = getSystemErrorMap()

// libuv's map lacks a few Linux errnos (EDQUOT, which quota policies
// return); os.constants.errno still knows their names.
const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]))

function describe(errno: number): [string, string] {
  const known = systemErrors.get(-errno)
  if (known !== undefined) return known
  const name = errnoNames.get(errno)
  if (name === 'EDQUOT') return [name, 'disk quota exceeded']
  return name === undefined ? [`E${errno}`, `errno ${errno}`] : [name, name]
}

/**
 * A failed LISAFS operation, shaped like Node's own system errors
 * (`fs.promises` rejects with the same fields): `code` is the errno name
 * (`'ENOENT'`), `errno` the negated Linux errno as in Node, `syscall` the
 * operation, and `path` the path involved when one is known.
 */
export class LisafsError extends Error {
  /** The errno name, e.g. `'ENOENT'`. */
  readonly code: string
  /** The negated errno, as Node reports it (`-2` for ENOENT). */
  readonly errno: number
  /** The operation that failed (`'walk'`, `'open'`, `'readFile'`...). */
  readonly syscall: string
  /** The path involved, when known. */
  readonly path?: string
  /** The destination path of a two-path operation, when known. */
  readonly dest?: string

  /**
   * @param errno - a positive Linux errno
   * @param syscall - the failed operation
   * @param path - the path involved, if any
   * @param dest - the second path of rename-like operations, if any
   */
  constructor(errno: number, syscall: string, path?: string, dest?: string) {
    const [code, description] = describe(errno)
    let message = `${code}: ${description}, ${syscall}`
    if (path !== undefined) message += ` '${path}'`
    if (dest !== undefined) message += ` -> '${dest}'`
    super(message)
    this.name = 'Error'
    this.code = code
    this.errno = -errno
    this.syscall = syscall
    if (path !== undefined) this.path = path
    if (dest !== undefined) this.dest = dest
  }
}

const NATIVE_ERRNO = /^LISAFS_ERRNO:(\d+):/

/**
 * Converts a rejection of the native client into a {@link LisafsError};
 * anything else (a programming error such as a RangeError) is returned as is.
 * @internal
 */
export function fromNative(err: unknown, syscall: string, path?: string, dest?: string): unknown {
  if (err instanceof Error) {
    const m = NATIVE_ERRNO.exec(err.message)
    if (m?.[1] !== undefined) return new LisafsError(Number(m[1]), syscall, path, dest)
  }
  return err
}

/** Linux errno values used by the TypeScript layer. @internal */
export const Errno = {
  ENOENT: 2,
  EBADF: 9,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ELOOP: 40,
  ENOTEMPTY: 39,
  ECANCELED: 125,
} as const
