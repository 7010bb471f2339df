/**
 * Audit and policy for any LISAFS backend — a JavaScript one or a host
 * directory ({@link HostBackend}) — served by a `BackendServer`.
 *
 * Both run inside the server, in Rust, before the backend sees the request:
 * - the **observer** (`onOperation`) gets one {@link OperationEvent} per
 *   backend operation, batched and delivered on Node's event loop (never a
 *   round trip per operation);
 * - the **policy** ({@link Policy}) allows or denies operations by path
 *   prefix and {@link OperationClass}, makes subtrees read-only, and caps
 *   the bytes clients may write. Denied operations answer EACCES (a deny
 *   rule, or no rule under `defaultAction: 'deny'`), EROFS (a read-only
 *   subtree) or EDQUOT (the quota), never reach the backend, and are
 *   reported to the observer with `denied: true`.
 *
 * Paths are the server's view: `/` is the mount point, components are
 * joined from the names clients walked, and renames update them. They are
 * best effort: a file reached through a hard link made outside the server
 * has the path it was reached by.
 * @packageDocumentation
 */
import { constants as osConstants } from 'node:os'
import { getSystemErrorMap } from 'node:util'

import type { NativePolicy } from '../index.js'

/**
 * What an operation does, for rules:
 * - `read`: stat, walk, walkStat, open read-only, read, getdents, readlink,
 *   statFs, fsync, flush;
 * - `write`: open for writing or with O_TRUNC, write, allocate, setStat;
 * - `create`: openCreate, mkdir, mknod, symlink, link (the new name), the
 *   destination of a rename;
 * - `delete`: unlink, the source of a rename;
 * - `xattr`: get/set/list/remove extended attributes;
 * - `socket`: connect, bindAt, listen, accept.
 */
export type OperationClass = 'read' | 'write' | 'create' | 'delete' | 'xattr' | 'socket'

/** Every {@link OperationClass}. */
export const OPERATION_CLASSES: readonly OperationClass[] = ['read', 'write', 'create', 'delete', 'xattr', 'socket']

const CLASS_BITS: Record<OperationClass, number> = { read: 1, write: 2, create: 4, delete: 8, xattr: 16, socket: 32 }

/**
 * The backend operation an event reports (the method names of
 * `ControlFdImpl` / `OpenFdImpl`; `fstat` is `OpenFdImpl.stat`).
 */
export type OperationName =
  | 'mount'
  | 'stat'
  | 'setStat'
  | 'walk'
  | 'walkStat'
  | 'open'
  | 'openCreate'
  | 'mkdir'
  | 'mknod'
  | 'symlink'
  | 'link'
  | 'statFs'
  | 'readlink'
  | 'connect'
  | 'bindAt'
  | 'unlink'
  | 'renameAt'
  | 'getXattr'
  | 'setXattr'
  | 'listXattr'
  | 'removeXattr'
  | 'fstat'
  | 'sync'
  | 'read'
  | 'write'
  | 'allocate'
  | 'flush'
  | 'getdents'
  | 'listen'
  | 'accept'

/** One backend operation, as the observer sees it. */
export interface OperationEvent {
  /** The operation. */
  op: OperationName
  /** Its class (what rules match on). */
  class: OperationClass
  /** The connection, numbered per Mount from 1. */
  connection: number
  /** The server-side path operated on (for creates, the new file's). */
  path: string
  /** The destination of `renameAt`, the new name of `link`. */
  newPath?: string
  /**
   * Operation-specific flags: open flags, the mode of creates, unlink /
   * rename / setXattr flags, the SetStat mask, the socket type, the
   * fallocate mode; 0 otherwise.
   */
  flags: number
  /** 0 on success, else the errno answered. */
  errno: number
  /** The errno's name (`'ENOENT'`) when `errno` is not 0. */
  code?: string
  /** Whether the policy refused it (the backend never ran). */
  denied: boolean
  /** Time spent in the backend, in nanoseconds (0 when denied). */
  durationNs: number
  /** Bytes transferred, for `read` and `write`. */
  bytes?: number
  /** When it ended, in milliseconds since the epoch. */
  time: number
}

/** An observer of operations (see {@link AuditLog} for a ready-made one). */
export type OperationObserver = (event: OperationEvent) => void

/** One allow or deny rule. */
export interface PolicyRule {
  /** A server-side path prefix: `/`, `/data`, `/data/private`... (matched by whole components). */
  path: string
  /** Whether matching operations are allowed or denied (EACCES). */
  action: 'allow' | 'deny'
  /** The classes the rule covers; default: all of them. */
  classes?: readonly OperationClass[]
}

/** A policy's settings. */
export interface PolicyOptions {
  /**
   * Allow/deny rules. For an operation of class C on path P, the rule with
   * the longest path that is P or an ancestor of P and covers C decides (at
   * equal paths, deny wins); without one, `defaultAction` does.
   */
  rules?: readonly PolicyRule[]
  /** Subtrees where every mutating operation answers EROFS. */
  readOnly?: readonly string[]
  /** What happens without a matching rule. Default `'allow'`. */
  defaultAction?: 'allow' | 'deny'
  /**
   * Most bytes clients may write with PWrite over the server's life
   * (across all connections); a write that would exceed it answers EDQUOT
   * and writes nothing. With a quota, host FDs are not donated for
   * writable opens, so that every write goes through the server.
   */
  writeQuota?: number | bigint
}

/**
 * Normalizes a policy path: absolute, no `.` or `..`, no empty component,
 * no trailing slash (`/` stays `/`).
 * @throws TypeError for a relative path or one with `.` / `..`
 */
export function normalizePolicyPath(path: string): string {
  if (!path.startsWith('/')) throw new TypeError(`policy paths are absolute (from the mount point): ${JSON.stringify(path)}`)
  const parts = path.split('/').filter((c) => c.length > 0)
  if (parts.some((c) => c === '.' || c === '..')) {
    throw new TypeError(`policy paths may not contain '.' or '..': ${JSON.stringify(path)}`)
  }
  return `/${parts.join('/')}`
}

/**
 * A declarative policy: allow/deny rules by path prefix and operation
 * class, read-only subtrees and a write quota. Evaluated inside the server
 * (no JavaScript call per operation).
 *
 * Beyond the rules, renaming or removing a path that *contains* a
 * read-only subtree (EROFS) or a deny rule's subtree (EACCES) is refused,
 * so a protected subtree cannot be moved out from under its rule; and
 * hard-linking a file needs `write` on it, so a read-only file cannot gain
 * a writable name. Mount itself is never refused (a client of a
 * default-deny policy still mounts, then walks to what it may use).
 */
export class Policy {
  /** The rules, normalized. */
  readonly rules: readonly Required<PolicyRule>[]
  /** The read-only subtrees, normalized. */
  readonly readOnly: readonly string[]
  /** What happens without a matching rule. */
  readonly defaultAction: 'allow' | 'deny'
  /** The write quota in bytes, if any. */
  readonly writeQuota: number | undefined

  /**
   * @param options - see {@link PolicyOptions}
   * @throws TypeError for a bad path, class or quota
   */
  constructor(options: PolicyOptions = {}) {
    this.rules = (options.rules ?? []).map((r) => {
      if (r.action !== 'allow' && r.action !== 'deny') throw new TypeError(`rule action must be 'allow' or 'deny'`)
      const classes = r.classes ?? OPERATION_CLASSES
      for (const c of classes) {
        if (!(c in CLASS_BITS)) throw new TypeError(`unknown operation class ${JSON.stringify(c)}`)
      }
      return { path: normalizePolicyPath(r.path), action: r.action, classes: [...classes] }
    })
    this.readOnly = (options.readOnly ?? []).map(normalizePolicyPath)
    this.defaultAction = options.defaultAction ?? 'allow'
    if (options.writeQuota !== undefined) {
      const q = Number(options.writeQuota)
      if (!Number.isSafeInteger(q) || q < 0) throw new TypeError('writeQuota must be a non-negative safe integer')
      this.writeQuota = q
    } else {
      this.writeQuota = undefined
    }
  }

  /** A {@link Policy} as is, or one made from options. */
  static from(policy: Policy | PolicyOptions): Policy {
    return policy instanceof Policy ? policy : new Policy(policy)
  }

  /** The form the native server takes. @internal */
  toNative(): NativePolicy {
    const native: NativePolicy = {
      rules: this.rules.map((r) => ({
        path: r.path,
        classes: r.classes.reduce((bits, c) => bits | CLASS_BITS[c], 0),
        allow: r.action === 'allow',
      })),
      readOnly: [...this.readOnly],
      defaultDeny: this.defaultAction === 'deny',
    }
    if (this.writeQuota !== undefined) native.writeQuota = this.writeQuota
    return native
  }
}

const systemErrors = getSystemErrorMap()
const ERRNO_NAMES = new Map<number, string>()
for (const [name, n] of Object.entries(osConstants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name)
// The Linux names, where two names share a number.
for (const name of ['EAGAIN', 'EOPNOTSUPP', 'EDEADLK'] as const) ERRNO_NAMES.set(osConstants.errno[name], name)

/** The name of a positive errno (`'ENOENT'` for 2, `'EDQUOT'` for 122). */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? systemErrors.get(-errno)?.[0] ?? `E${errno}`
}

/** One line per event: `time conn op path [-> newPath] result duration`. */
export function formatEvent(event: OperationEvent): string {
  const when = new Date(event.time).toISOString()
  const dest = event.newPath === undefined ? '' : ` -> ${event.newPath}`
  const result = event.errno === 0 ? 'ok' : `${event.denied ? 'DENIED ' : ''}${event.code ?? errnoName(event.errno)}`
  const bytes = event.bytes === undefined ? '' : ` ${event.bytes}B`
  const took = event.durationNs >= 1e6 ? `${(event.durationNs / 1e6).toFixed(2)}ms` : `${(event.durationNs / 1e3).toFixed(1)}us`
  return `${when} conn=${event.connection} ${event.op} ${event.path}${dest} ${result}${bytes} ${took}`
}

/** Per-operation counters of an {@link AuditLog}. */
export interface OperationTotals {
  /** Operations seen. */
  count: number
  /** Of which failed (including denied ones). */
  failed: number
  /** Of which the policy denied. */
  denied: number
  /** Backend time, in nanoseconds. */
  totalNs: number
}

/** What an {@link AuditLog} has seen since it was created or cleared. */
export interface AuditSummary {
  /** Operations seen. */
  total: number
  /** Operations that failed (including denied ones). */
  failed: number
  /** Operations the policy denied. */
  denied: number
  /** Bytes read with `read`. */
  bytesRead: number
  /** Bytes written with `write`. */
  bytesWritten: number
  /** Counters per operation. */
  byOp: Partial<Record<OperationName, OperationTotals>>
}

/** Options of an {@link AuditLog}. */
export interface AuditLogOptions {
  /** Events kept in memory (the oldest go first). Default 10,000; 0 keeps none. */
  limit?: number
  /** Also called with {@link formatEvent}'s line for every event (e.g. to append to a file). */
  write?: (line: string) => void
}

/**
 * A ready-made observer: keeps the latest events, counts them, and can
 * write one line per event. Pass `log.onOperation` as a server's
 * `onOperation`.
 */
export class AuditLog {
  /** The events kept, oldest first. */
  readonly events: OperationEvent[] = []
  /** The observer to hand to a server. */
  readonly onOperation: OperationObserver
  private readonly limit: number
  private totals: AuditSummary = AuditLog.empty()

  /** @param options - see {@link AuditLogOptions} */
  constructor(options: AuditLogOptions = {}) {
    this.limit = options.limit ?? 10_000
    const write = options.write
    this.onOperation = (event) => {
      this.record(event)
      if (write !== undefined) write(formatEvent(event))
    }
  }

  private static empty(): AuditSummary {
    return { total: 0, failed: 0, denied: 0, bytesRead: 0, bytesWritten: 0, byOp: {} }
  }

  private record(event: OperationEvent): void {
    if (this.limit > 0) {
      this.events.push(event)
      if (this.events.length > this.limit) this.events.splice(0, this.events.length - this.limit)
    }
    const t = this.totals
    const op = (t.byOp[event.op] ??= { count: 0, failed: 0, denied: 0, totalNs: 0 })
    t.total++
    op.count++
    op.totalNs += event.durationNs
    if (event.errno !== 0) {
      t.failed++
      op.failed++
    }
    if (event.denied) {
      t.denied++
      op.denied++
    }
    if (event.op === 'read') t.bytesRead += event.bytes ?? 0
    if (event.op === 'write') t.bytesWritten += event.bytes ?? 0
  }

  /** Events the policy denied, among those kept. */
  denied(): OperationEvent[] {
    return this.events.filter((e) => e.denied)
  }

  /** Counters since creation or the last {@link clear}. */
  summary(): AuditSummary {
    return structuredClone(this.totals)
  }

  /** Forgets every event and counter. */
  clear(): void {
    this.events.length = 0
    this.totals = AuditLog.empty()
  }
}
