#!/usr/bin/env node
/**
 * The `lisafs` command line: `lisafs serve` serves a directory over LISAFS on
 * a Unix socket; `ls`, `stat`, `cat`, `get`, `put`, `tree`, `rm` and `mkdir`
 * use a LISAFS server through the client and its fs-like layer. Run
 * `lisafs --help` for usage. Exit status: 0 success, 1 failure, 2 bad usage.
 * @packageDocumentation
 */
import { createReadStream, createWriteStream, lstatSync, readFileSync, statSync, unlinkSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { basename, join, posix, resolve } from 'node:path'
import { Transform, type Readable, type Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { getSystemErrorMap, parseArgs, type ParseArgsConfig } from 'node:util'

import { Server, type ServerStats } from '../index.js'
import { connect, type Client } from './client.js'
import { LisafsError } from './errors.js'
import { createFs, type LisafsDirent, type LisafsFs, type LisafsStats } from './fs.js'

// ---------------------------------------------------------------------------
// Errors and output

/** A command-line mistake: reported with the command's usage, exit 2. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message)
  }
}

/** An expected failure, reported as one line without a stack trace, exit 1. */
class CliError extends Error {}

/** An error with an errno name: LisafsError, or a Node system error. */
interface SystemError extends Error {
  code: string
  errno?: number
  syscall?: string
  path?: string
  dest?: string
}

const errnoDescriptions = new Map<string, string>()
for (const [, [code, description]] of getSystemErrorMap()) errnoDescriptions.set(code, description)

const ERRNO_NAME = /^E[A-Z0-9]+$/

/**
 * Whether `err` is an expected failure with an errno name: a LisafsError or a
 * Node system error. Its `code` is normalized to the errno name (the fs
 * layer's `ERR_FS_EISDIR` becomes `EISDIR`).
 */
function isSystemError(err: unknown): err is SystemError {
  if (!(err instanceof Error)) return false
  const e = err as Error & { code?: unknown; info?: { code?: unknown } }
  if (typeof e.code === 'string' && ERRNO_NAME.test(e.code)) return true
  const infoCode = e.info?.code
  if (typeof infoCode === 'string' && ERRNO_NAME.test(infoCode)) {
    Object.defineProperty(err, 'code', { value: infoCode, configurable: true, writable: true, enumerable: true })
    return true
  }
  return err instanceof LisafsError
}

/** `ENOENT (no such file or directory)`. */
function errnoText(code: string): string {
  const description = errnoDescriptions.get(code)
  return description === undefined ? code : `${code} (${description})`
}

/** `lisafs: <cmd>: ENOENT: <path> (no such file or directory)`. */
function failureLine(cmd: string, err: SystemError, fallbackPath?: string): string {
  const path = err.path ?? fallbackPath
  const dest = err.dest === undefined ? '' : ` -> ${err.dest}`
  const description = errnoDescriptions.get(err.code)
  return `lisafs: ${cmd}: ${err.code}: ${path ?? err.syscall ?? ''}${dest}${description === undefined ? '' : ` (${description})`}`
}

function out(text: string): void {
  process.stdout.write(text)
}

function warn(line: string): void {
  process.stderr.write(`${line}\n`)
}

function printJson(value: unknown): void {
  out(`${JSON.stringify(value, null, 2)}\n`)
}

/** Quotes a word for a POSIX shell when it needs it. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`
}

// ---------------------------------------------------------------------------
// Argument parsing

type Options = NonNullable<ParseArgsConfig['options']>
type Values = Record<string, string | boolean | Array<string | boolean> | undefined>

function parse(cmd: string, args: string[], options: Options): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true })
    return { values, positionals }
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), cmd)
  }
}

function flag(values: Values, name: string): boolean {
  return values[name] === true
}

function str(values: Values, name: string): string | undefined {
  const v = values[name]
  return typeof v === 'string' ? v : undefined
}

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const satisfies Options
const CLIENT_OPTIONS = {
  ...HELP_OPTION,
  socket: { type: 'string', short: 's' },
  json: { type: 'boolean' },
} as const satisfies Options

const DEFAULT_SOCKET = './lisafs.sock'

function socketPath(values: Values): string {
  const fromEnv = process.env['LISAFS_SOCKET']
  return str(values, 'socket') ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_SOCKET)
}

/**
 * A remote path, absolute from the served root, normalized (`a/../b` is
 * `/b`). A trailing slash is kept: as in POSIX, `link/` names the directory a
 * symlink points to, `link` the symlink itself.
 */
function remotePath(p: string): string {
  return posix.normalize(`/${p}`)
}

/** Longest Unix socket path Linux accepts (`sun_path` is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107

const TOO_LONG_HINT = `; a Unix socket path has at most ${MAX_SOCKET_PATH} bytes: use a shorter or relative path`

/** A clear ENAMETOOLONG for a socket path `bind`/`connect` would reject (the native layer says EIO). */
function checkSocketPath(path: string): void {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw Object.assign(new Error('socket path too long'), { code: 'ENAMETOOLONG', path })
  }
}

function packageVersion(): string {
  // dist/cli.js and src/cli.ts both sit one level below package.json.
  const pkg: unknown = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'))
  const version = (pkg as { version?: unknown }).version
  return typeof version === 'string' ? version : 'unknown'
}

// ---------------------------------------------------------------------------
// serve

const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const
type LogLevel = (typeof LOG_LEVELS)[number]
type LogFormat = 'text' | 'json'

/**
 * The server's log: one line per event. `json` writes one JSON object per line
 * to stdout; `text` writes info and debug lines to stdout, warnings and errors
 * to stderr.
 */
class Logger {
  constructor(
    private readonly level: LogLevel,
    private readonly format: LogFormat,
  ) {}

  enabled(level: LogLevel): boolean {
    return LOG_LEVELS.indexOf(level) <= LOG_LEVELS.indexOf(this.level)
  }

  /** Logs `event`; `always` bypasses the level (explicitly requested output such as `--stats`). */
  log(level: LogLevel, event: string, message: string, fields: Record<string, unknown> = {}, always = false): void {
    if (!always && !this.enabled(level)) return
    if (this.format === 'json') {
      out(`${JSON.stringify({ time: new Date().toISOString(), level, event, msg: message, ...fields })}\n`)
    } else if (level === 'error' || level === 'warn') {
      warn(`lisafs: serve: ${level === 'warn' ? 'warning: ' : ''}${message}`)
    } else {
      out(`${message}\n`)
    }
  }
}

function statsText(s: ServerStats): string {
  return `connections=${s.connections} controlFds=${s.controlFds} openFds=${s.openFds} boundSocketFds=${s.boundSocketFds} nodes=${s.nodes}`
}

/** Rewrites `--stats` with no number after it to `--stats=5` (parseArgs has no optional values). */
function expandStats(args: string[]): string[] {
  const result: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (arg === '--') {
      result.push(...args.slice(i))
      break
    }
    if (arg === '--stats') {
      const next = args[i + 1]
      if (next !== undefined && /^\d+(\.\d+)?$/.test(next)) {
        result.push(`--stats=${next}`)
        i++
      } else {
        result.push('--stats=5')
      }
    } else {
      result.push(arg)
    }
  }
  return result
}

/** Whether something accepts connections on the Unix socket `path`. */
function isLive(path: string): Promise<boolean> {
  return new Promise((resolveLive) => {
    const socket = netConnect(path)
    socket.once('connect', () => {
      socket.destroy()
      resolveLive(true)
    })
    socket.once('error', () => resolveLive(false))
  })
}

/** Makes sure `socket` can be listened on: refuses an existing path unless `--force` and stale. */
async function prepareSocket(socket: string, force: boolean, logger: Logger): Promise<void> {
  let st
  try {
    st = lstatSync(socket)
  } catch (err) {
    if (isSystemError(err) && err.code === 'ENOENT') return
    throw err
  }
  if (!force) {
    throw new CliError(
      `lisafs: serve: ${socket} already exists (a server may be listening on it); stop that server or remove the file, or pass --force to replace a stale socket`,
    )
  }
  if (!st.isSocket()) throw new CliError(`lisafs: serve: ${socket} exists and is not a socket; refusing to remove it`)
  if (await isLive(socket)) throw new CliError(`lisafs: serve: a server is listening on ${socket}; refusing to replace it`)
  unlinkSync(socket)
  logger.log('warn', 'stale-socket', `removed stale socket ${socket}`, { socket })
}

const SERVE_OPTIONS = {
  ...HELP_OPTION,
  socket: { type: 'string', short: 's' },
  readonly: { type: 'boolean' },
  'host-uds': { type: 'boolean' },
  'host-fifo': { type: 'boolean' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  stats: { type: 'string' },
  force: { type: 'boolean' },
} as const satisfies Options

async function serve(args: string[]): Promise<number> {
  const { values, positionals } = parse('serve', expandStats(args), SERVE_OPTIONS)
  if (flag(values, 'help')) return help('serve')
  if (positionals.length > 1) throw new UsageError(`expected at most one directory, got ${positionals.length}`, 'serve')
  const level = str(values, 'log-level') ?? 'info'
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not '${level}'`, 'serve')
  }
  const format = str(values, 'log-format') ?? 'text'
  if (format !== 'text' && format !== 'json') throw new UsageError(`--log-format must be text or json, not '${format}'`, 'serve')
  const statsArg = str(values, 'stats')
  const statsSeconds = statsArg === undefined ? undefined : Number(statsArg)
  if (statsSeconds !== undefined && !(statsSeconds > 0 && Number.isFinite(statsSeconds))) {
    throw new UsageError(`--stats takes a positive number of seconds, not '${statsArg ?? ''}'`, 'serve')
  }
  const logger = new Logger(level as LogLevel, format)

  const root = resolve(positionals[0] ?? '.')
  const socket = socketPath(values)
  const options = {
    root,
    readonly: flag(values, 'readonly'),
    hostUds: flag(values, 'host-uds'),
    hostFifo: flag(values, 'host-fifo'),
  }
  let server: Server
  let path = root
  try {
    server = new Server(options)
    path = socket
    checkSocketPath(socket)
    await prepareSocket(socket, flag(values, 'force'), logger)
    server.listen(socket)
  } catch (err) {
    if (err instanceof CliError) {
      logger.log('error', 'error', err.message.replace(/^lisafs: serve: /, ''), { socket })
      return 1
    }
    if (!isSystemError(err)) throw err
    const description = errnoDescriptions.get(err.code)
    const hint = err.code === 'ENAMETOOLONG' ? TOO_LONG_HINT : ''
    logger.log('error', 'error', `${err.code}: ${path}${description === undefined ? '' : ` (${description})`}${hint}`, {
      code: err.code,
      path,
    })
    return 1
  }

  const hint = `lisafs ls --socket ${shellQuote(socket)} /`
  const mode = [options.readonly ? 'read-only' : 'read-write', options.hostUds ? 'host-uds' : '', options.hostFifo ? 'host-fifo' : '']
    .filter((s) => s !== '')
    .join(', ')
  logger.log('info', 'listening', `serving ${root} on ${socket} (${mode}); Ctrl-C to stop`, {
    socket,
    ...options,
    pid: process.pid,
    hint,
  })
  if (format === 'text' && logger.enabled('info')) out(`list it with: ${hint}\n`)

  // The server's threads are not event-loop handles: keep Node alive.
  const keepAlive = setInterval(() => {}, 1 << 30)
  // --stats logs the counters every interval; debug logs them when they change.
  let lastStats = statsText(server.stats())
  const statsTimer =
    statsSeconds !== undefined
      ? setInterval(() => {
          const s = server.stats()
          logger.log('info', 'stats', `stats: ${statsText(s)}`, { stats: s }, true)
        }, statsSeconds * 1000)
      : logger.enabled('debug')
        ? setInterval(() => {
            const s = server.stats()
            const text = statsText(s)
            if (text !== lastStats) logger.log('debug', 'stats', `stats: ${text}`, { stats: s })
            lastStats = text
          }, 1000)
        : undefined

  return new Promise<number>((resolveExit) => {
    let closing = false
    const stop = (signal: NodeJS.Signals): void => {
      if (closing) {
        logger.log('warn', 'error', `${signal} again while closing; exiting now`, { signal })
        process.exit(1)
      }
      closing = true
      clearInterval(statsTimer)
      logger.log('info', 'closing', `${signal}: closing`, { signal, stats: server.stats() })
      server.close().then(
        () => {
          const s = server.stats()
          logger.log('info', 'closed', `closed (${statsText(s)})`, { stats: s })
          clearInterval(keepAlive)
          resolveExit(0)
        },
        (err: unknown) => {
          logger.log('error', 'error', `close failed: ${err instanceof Error ? err.message : String(err)}`)
          clearInterval(keepAlive)
          resolveExit(1)
        },
      )
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
}

// ---------------------------------------------------------------------------
// Client commands

type Fs = LisafsFs
type Stats = LisafsStats

/** Connects to `socket` and runs `fn` with the fs layer; always disconnects. */
async function withFs<T>(socket: string, fn: (fs: Fs) => Promise<T>): Promise<T> {
  let client: Client
  try {
    checkSocketPath(socket)
    client = await connect(socket)
  } catch (err) {
    if (!isSystemError(err)) throw err
    const hint = err.code === 'ENAMETOOLONG' ? TOO_LONG_HINT : `; is 'lisafs serve' running there? (--socket or LISAFS_SOCKET)`
    throw new CliError(`lisafs: cannot connect to ${socket}: ${errnoText(err.code)}${hint}`)
  }
  try {
    return await fn(createFs(client))
  } finally {
    await client.close()
  }
}

/**
 * Runs `op` for each operand: an expected error is reported on stderr and the
 * next operand is tried. Resolves to the results of the operands that worked
 * and whether any failed.
 */
async function eachOperand<T>(cmd: string, operands: string[], op: (operand: string) => Promise<T>): Promise<{ results: T[]; failed: boolean }> {
  const results: T[] = []
  let failed = false
  for (const operand of operands) {
    try {
      results.push(await op(operand))
    } catch (err) {
      if (!isSystemError(err)) throw err
      warn(failureLine(cmd, err, operand))
      failed = true
    }
  }
  return { results, failed }
}

type FileType = 'file' | 'directory' | 'symlink' | 'socket' | 'fifo' | 'block-device' | 'character-device' | 'unknown'

function fileType(mode: number): FileType {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file'
    case 0o040000:
      return 'directory'
    case 0o120000:
      return 'symlink'
    case 0o140000:
      return 'socket'
    case 0o010000:
      return 'fifo'
    case 0o060000:
      return 'block-device'
    case 0o020000:
      return 'character-device'
    default:
      return 'unknown'
  }
}

const TYPE_CHAR: Record<FileType, string> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  socket: 's',
  fifo: 'p',
  'block-device': 'b',
  'character-device': 'c',
  unknown: '?',
}

/** `drwxr-xr-x`. */
function modeString(mode: number): string {
  const rwx = (bits: number, special: boolean, lower: string, upper: string): string =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? lower : upper) : bits & 1 ? 'x' : '-'}`
  return (
    TYPE_CHAR[fileType(mode)] +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's', 'S') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's', 'S') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't', 'T')
  )
}

function octal(mode: number): string {
  return `0${(mode & 0o7777).toString(8).padStart(3, '0')}`
}

/** The JSON form of a stat. */
function statJson(path: string, st: Stats): Record<string, unknown> {
  const mode = st.mode
  return {
    path,
    name: path === '/' ? '/' : posix.basename(path),
    type: fileType(mode),
    mode: octal(mode),
    size: st.size,
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    ino: st.ino,
    blocks: st.blocks,
    blksize: st.blksize,
    atime: st.atime.toISOString(),
    mtime: st.mtime.toISOString(),
    ctime: st.ctime.toISOString(),
    birthtime: st.birthtime.toISOString(),
  }
}

function humanTime(d: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`
}

function joinRemote(dir: string, name: string): string {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`
}

function direntType(d: LisafsDirent): FileType {
  if (d.isDirectory()) return 'directory'
  if (d.isFile()) return 'file'
  if (d.isSymbolicLink()) return 'symlink'
  if (d.isSocket()) return 'socket'
  if (d.isFIFO()) return 'fifo'
  if (d.isBlockDevice()) return 'block-device'
  if (d.isCharacterDevice()) return 'character-device'
  return 'unknown'
}

/** A directory's entries, sorted by name (byte order, as `LC_ALL=C ls`). */
async function sortedDir(fs: Fs, path: string): Promise<LisafsDirent[]> {
  const dirents = await fs.readdir(path, { withFileTypes: true })
  return dirents.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))
}

// ls ------------------------------------------------------------------------

interface LsEntry {
  name: string
  path: string
  type: FileType
  stat?: Stats
  target?: string
}

async function listOne(fs: Fs, path: string, long: boolean): Promise<{ path: string; isDir: boolean; entries: LsEntry[] }> {
  const st = await fs.lstat(path)
  const describeEntry = async (name: string, full: string, s: Stats | undefined, type: FileType): Promise<LsEntry> => {
    const entry: LsEntry = { name, path: full, type }
    if (long) {
      entry.stat = s ?? (await fs.lstat(full))
      if (entry.type === 'symlink') entry.target = await fs.readlink(full)
    }
    return entry
  }
  if (!st.isDirectory()) {
    return { path, isDir: false, entries: [await describeEntry(posix.basename(path), path, st, fileType(st.mode))] }
  }
  const entries: LsEntry[] = []
  for (const d of await sortedDir(fs, path)) {
    entries.push(await describeEntry(d.name, joinRemote(path, d.name), undefined, direntType(d)))
  }
  return { path, isDir: true, entries }
}

/** `ls -l` lines; a non-directory operand is shown by its path, as ls(1) does. */
function longLines(entries: LsEntry[], label: (e: LsEntry) => string): string[] {
  const rows = entries.map((e) => {
    const s = e.stat
    if (s === undefined) return [label(e)]
    return [
      modeString(s.mode),
      String(s.nlink),
      String(s.uid),
      String(s.gid),
      String(s.size),
      humanTime(s.mtime),
      e.target === undefined ? label(e) : `${label(e)} -> ${e.target}`,
    ]
  })
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(0, ...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) =>
    r.length === 1
      ? (r[0] ?? '')
      : r.map((cell, i) => (i === 1 || i === 4 ? cell.padStart(widths[i] ?? 0) : i < 4 ? cell.padEnd(widths[i] ?? 0) : cell)).join(' '),
  )
}

async function ls(args: string[]): Promise<number> {
  const { values, positionals } = parse('ls', args, { ...CLIENT_OPTIONS, long: { type: 'boolean', short: 'l' } })
  if (flag(values, 'help')) return help('ls')
  const long = flag(values, 'long')
  const json = flag(values, 'json')
  const paths = (positionals.length === 0 ? ['/'] : positionals).map(remotePath)
  return withFs(socketPath(values), async (fs) => {
    const { results, failed } = await eachOperand('ls', paths, (p) => listOne(fs, p, long))
    if (json) {
      printJson(
        results.flatMap((r) =>
          r.entries.map((e) => {
            const base = { name: e.name, path: e.path, type: e.type }
            if (e.stat === undefined) return base
            const { path: _path, name: _name, type: _type, ...rest } = statJson(e.path, e.stat)
            return { ...base, ...rest, ...(e.target === undefined ? {} : { target: e.target }) }
          }),
        ),
      )
    } else {
      const headers = results.length > 1
      results.forEach((r, i) => {
        if (headers && r.isDir) out(`${i > 0 ? '\n' : ''}${r.path}:\n`)
        const label = (e: LsEntry): string => (r.isDir ? e.name : e.path)
        const lines = long ? longLines(r.entries, label) : r.entries.map(label)
        if (lines.length > 0) out(`${lines.join('\n')}\n`)
      })
    }
    return failed ? 1 : 0
  })
}

// stat ----------------------------------------------------------------------

async function stat(args: string[]): Promise<number> {
  const { values, positionals } = parse('stat', args, CLIENT_OPTIONS)
  if (flag(values, 'help')) return help('stat')
  if (positionals.length === 0) throw new UsageError('missing path', 'stat')
  return withFs(socketPath(values), async (fs) => {
    const { results, failed } = await eachOperand('stat', positionals.map(remotePath), async (p) => statJson(p, await fs.lstat(p)))
    if (flag(values, 'json')) {
      printJson(results.length === 1 && positionals.length === 1 ? results[0] : results)
    } else {
      for (const r of results) {
        out(
          `${Object.entries(r)
            .map(([k, v]) => `${`${k}:`.padEnd(11)}${String(v)}`)
            .join('\n')}\n`,
        )
        if (results.length > 1) out('\n')
      }
    }
    return failed ? 1 : 0
  })
}

// cat -----------------------------------------------------------------------

async function cat(args: string[]): Promise<number> {
  const { values, positionals } = parse('cat', args, CLIENT_OPTIONS)
  if (flag(values, 'help')) return help('cat')
  if (positionals.length === 0) throw new UsageError('missing path', 'cat')
  const json = flag(values, 'json')
  return withFs(socketPath(values), async (fs) => {
    const { results, failed } = await eachOperand('cat', positionals.map(remotePath), async (p) => {
      if (json) {
        const data = await fs.readFile(p)
        let text: string | undefined
        try {
          text = new TextDecoder('utf-8', { fatal: true }).decode(data)
        } catch {
          text = undefined
        }
        return text === undefined
          ? { path: p, size: data.length, encoding: 'base64', data: Buffer.from(data).toString('base64') }
          : { path: p, size: data.length, encoding: 'utf8', data: text }
      }
      await pipeline(fs.createReadStream(p), process.stdout, { end: false })
      return undefined
    })
    if (json) printJson(results.length === 1 && positionals.length === 1 ? results[0] : results)
    return failed ? 1 : 0
  })
}

// get / put -----------------------------------------------------------------

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let unit = 'B'
  for (const u of units) {
    if (v < 1024) break
    v /= 1024
    unit = u
  }
  return `${v.toFixed(1)} ${unit}`
}

/** Counts bytes through a stream; draws progress on stderr when it is a TTY. */
function progress(label: string, total: number | undefined): { stream: Transform; bytes: () => number; done: () => void } {
  let bytes = 0
  let last = 0
  const tty = process.stderr.isTTY === true
  const draw = (): void => {
    const pct = total !== undefined && total > 0 ? ` ${Math.floor((bytes / total) * 100)}%` : ''
    const of = total === undefined ? '' : ` / ${formatBytes(total)}`
    process.stderr.write(`\r\x1b[2K${label} ${formatBytes(bytes)}${of}${pct}`)
  }
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback): void {
      bytes += chunk.length
      const now = Date.now()
      if (tty && now - last >= 100) {
        last = now
        draw()
      }
      callback(null, chunk)
    },
  })
  return {
    stream,
    bytes: () => bytes,
    done: () => {
      if (tty) {
        draw()
        process.stderr.write('\n')
      }
    },
  }
}

async function get(args: string[]): Promise<number> {
  const { values, positionals } = parse('get', args, CLIENT_OPTIONS)
  if (flag(values, 'help')) return help('get')
  if (positionals.length !== 2) throw new UsageError('expected <remote> <local>', 'get')
  const remote = remotePath(positionals[0] as string)
  const localArg = positionals[1] as string
  return withFs(socketPath(values), async (fs) => {
    try {
      const st = await fs.stat(remote)
      if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR', path: remote })
      let local = localArg
      if (local !== '-') {
        try {
          if (statSync(local).isDirectory()) local = join(local, posix.basename(remote))
        } catch {
          // A new file.
        }
      }
      const meter = progress(posix.basename(remote), st.size)
      const sink: Writable = local === '-' ? process.stdout : createWriteStream(local)
      try {
        await pipeline(fs.createReadStream(remote), meter.stream, sink, { end: local !== '-' })
      } catch (err) {
        if (local !== '-') {
          try {
            unlinkSync(local)
          } catch {
            // Nothing to clean up.
          }
        }
        throw err
      }
      meter.done()
      if (flag(values, 'json')) printJson({ source: remote, destination: local === '-' ? '-' : resolve(local), bytes: meter.bytes() })
      return 0
    } catch (err) {
      if (!isSystemError(err)) throw err
      warn(failureLine('get', err, remote))
      return 1
    }
  })
}

/** Whether `path` itself (not a symlink's target) exists. */
async function existsRemote(fs: Fs, path: string): Promise<boolean> {
  try {
    await fs.lstat(path)
    return true
  } catch (err) {
    if (isSystemError(err) && err.code === 'ENOENT') return false
    throw err
  }
}

async function remoteIsDirectory(fs: Fs, path: string): Promise<boolean> {
  try {
    return (await fs.stat(path)).isDirectory()
  } catch (err) {
    if (isSystemError(err) && err.code === 'ENOENT') return false
    throw err
  }
}

async function put(args: string[]): Promise<number> {
  const { values, positionals } = parse('put', args, CLIENT_OPTIONS)
  if (flag(values, 'help')) return help('put')
  if (positionals.length !== 2) throw new UsageError('expected <local> <remote>', 'put')
  const local = positionals[0] as string
  const remoteArg = positionals[1] as string
  return withFs(socketPath(values), async (fs) => {
    try {
      let total: number | undefined
      let source: Readable
      if (local === '-') {
        source = process.stdin
      } else {
        const st = statSync(local)
        if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR', path: local })
        total = st.size
        source = createReadStream(local)
      }
      let remote = remotePath(remoteArg)
      if (remoteArg.endsWith('/') || (await remoteIsDirectory(fs, remote))) {
        if (local === '-') throw Object.assign(new Error('is a directory'), { code: 'EISDIR', path: remote })
        remote = joinRemote(remote, basename(local))
      }
      const meter = progress(basename(local === '-' ? remote : local), total)
      await pipeline(source, meter.stream, fs.createWriteStream(remote))
      meter.done()
      if (flag(values, 'json')) printJson({ source: local === '-' ? '-' : resolve(local), destination: remote, bytes: meter.bytes() })
      return 0
    } catch (err) {
      if (!isSystemError(err)) throw err
      warn(failureLine('put', err, remoteArg))
      return 1
    }
  })
}

// tree ----------------------------------------------------------------------

interface TreeNode {
  name: string
  path: string
  type: FileType
  target?: string
  children?: TreeNode[]
}

async function buildTree(fs: Fs, path: string, name: string, type: FileType, counts: { dirs: number; files: number }): Promise<TreeNode> {
  const node: TreeNode = { name, path, type }
  if (type === 'symlink') node.target = await fs.readlink(path)
  if (type !== 'directory') {
    counts.files++
    return node
  }
  counts.dirs++
  node.children = []
  for (const d of await sortedDir(fs, path)) {
    node.children.push(await buildTree(fs, joinRemote(path, d.name), d.name, direntType(d), counts))
  }
  return node
}

function treeLines(node: TreeNode, prefix: string, lines: string[]): void {
  const children = node.children ?? []
  children.forEach((child, i) => {
    const last = i === children.length - 1
    const label = child.target === undefined ? child.name : `${child.name} -> ${child.target}`
    lines.push(`${prefix}${last ? '└── ' : '├── '}${label}${child.type === 'directory' ? '/' : ''}`)
    treeLines(child, `${prefix}${last ? '    ' : '│   '}`, lines)
  })
}

async function tree(args: string[]): Promise<number> {
  const { values, positionals } = parse('tree', args, CLIENT_OPTIONS)
  if (flag(values, 'help')) return help('tree')
  const paths = (positionals.length === 0 ? ['/'] : positionals).map(remotePath)
  return withFs(socketPath(values), async (fs) => {
    const counts = { dirs: 0, files: 0 }
    const { results, failed } = await eachOperand('tree', paths, async (p) => {
      const st = await fs.lstat(p)
      return buildTree(fs, p, p === '/' ? '/' : posix.basename(p), fileType(st.mode), counts)
    })
    if (flag(values, 'json')) {
      printJson(results.length === 1 && paths.length === 1 ? results[0] : results)
    } else {
      for (const root of results) {
        const lines = [root.path]
        treeLines(root, '', lines)
        out(`${lines.join('\n')}\n`)
      }
      // The roots themselves are not counted, as tree(1) does.
      const dirs = counts.dirs - results.filter((r) => r.type === 'directory').length
      const files = counts.files - results.filter((r) => r.type !== 'directory').length
      out(`\n${dirs} director${dirs === 1 ? 'y' : 'ies'}, ${files} file${files === 1 ? '' : 's'}\n`)
    }
    return failed ? 1 : 0
  })
}

// rm / mkdir ----------------------------------------------------------------

async function rm(args: string[]): Promise<number> {
  const { values, positionals } = parse('rm', args, {
    ...CLIENT_OPTIONS,
    recursive: { type: 'boolean', short: 'r' },
    force: { type: 'boolean', short: 'f' },
  })
  if (flag(values, 'help')) return help('rm')
  if (positionals.length === 0) throw new UsageError('missing path', 'rm')
  const recursive = flag(values, 'recursive')
  const force = flag(values, 'force')
  return withFs(socketPath(values), async (fs) => {
    const { results, failed } = await eachOperand('rm', positionals.map(remotePath), async (p) => {
      if (force && !(await existsRemote(fs, p))) return undefined
      await fs.rm(p, { recursive, force })
      return p
    })
    if (flag(values, 'json')) printJson({ removed: results.filter((r) => r !== undefined) })
    return failed ? 1 : 0
  })
}

async function mkdir(args: string[]): Promise<number> {
  const { values, positionals } = parse('mkdir', args, { ...CLIENT_OPTIONS, parents: { type: 'boolean', short: 'p' } })
  if (flag(values, 'help')) return help('mkdir')
  if (positionals.length === 0) throw new UsageError('missing path', 'mkdir')
  const recursive = flag(values, 'parents')
  return withFs(socketPath(values), async (fs) => {
    const { results, failed } = await eachOperand('mkdir', positionals.map(remotePath), async (p) => {
      await fs.mkdir(p, { recursive })
      return p
    })
    if (flag(values, 'json')) printJson({ created: results })
    return failed ? 1 : 0
  })
}

// ---------------------------------------------------------------------------
// Help and dispatch

const CLIENT_HELP = `  -s, --socket <path>  the server's socket (default: $LISAFS_SOCKET, else ./lisafs.sock)
      --json           print the result as JSON
  -h, --help           show this help`

interface CommandSpec {
  synopsis: string
  summary: string
  details: string
  run: (args: string[]) => Promise<number>
}

const COMMANDS: Record<string, CommandSpec> = {
  serve: {
    synopsis: 'serve [dir] [options]',
    summary: 'serve a directory over LISAFS on a Unix socket',
    details: `Serves <dir> (default: the current directory) until SIGINT or SIGTERM, then
closes cleanly: clients are disconnected and the socket file is removed.

options:
  -s, --socket <path>    the socket to listen on (default: $LISAFS_SOCKET, else ./lisafs.sock)
      --readonly         refuse every change with EROFS
      --host-uds         let clients connect to and create host Unix sockets
      --host-fifo        let clients open host FIFOs
      --log-level <lvl>  error, warn, info (default) or debug
      --log-format <f>   text (default) or json: one JSON object per line on stdout
                         (events: listening, stats, closing, closed, error)
      --stats [seconds]  log the server's live counters every few seconds (default 5)
      --force            replace a stale socket file left by a crashed server
                         (never a live socket, never a file that is not a socket)
  -h, --help             show this help

Log levels: error and warn show failures only; info (default) adds the
lifecycle events; debug also logs the counters whenever they change. --stats
output is shown at every level. Text logs go to stdout (warnings and errors to
stderr); JSON logs all go to stdout.

If the socket path already exists, serve refuses to start (exit 1) rather than
remove a socket another server may be listening on; pass --force to remove it
when nothing accepts connections on it.`,
    run: serve,
  },
  ls: {
    synopsis: 'ls [-l] [path...]',
    summary: 'list directories (default /)',
    details: `options:
  -l, --long           long format: mode, links, owner, group, size, mtime
${CLIENT_HELP}

--json prints one array of entries ({ name, path, type, ... }) for all paths.`,
    run: ls,
  },
  stat: {
    synopsis: 'stat <path...>',
    summary: 'show file attributes (symlinks are not followed)',
    details: `options:
${CLIENT_HELP}

--json prints an object, or an array of objects for several paths.`,
    run: stat,
  },
  cat: {
    synopsis: 'cat <path...>',
    summary: 'write files to stdout',
    details: `options:
${CLIENT_HELP}

--json prints { path, size, encoding, data } (encoding utf8 or base64), or an
array of them for several paths.`,
    run: cat,
  },
  get: {
    synopsis: 'get <remote> <local>',
    summary: 'download a file (<local> may be a directory, or - for stdout)',
    details: `Progress is shown on stderr when it is a terminal.

options:
${CLIENT_HELP}`,
    run: get,
  },
  put: {
    synopsis: 'put <local> <remote>',
    summary: 'upload a file (<remote> may be a directory; <local> may be - for stdin)',
    details: `Progress is shown on stderr when it is a terminal.

options:
${CLIENT_HELP}`,
    run: put,
  },
  tree: {
    synopsis: 'tree [path...]',
    summary: 'list directories recursively (default /)',
    details: `Symlinks are shown, never followed.

options:
${CLIENT_HELP}

--json prints { name, path, type, children }, or an array for several paths.`,
    run: tree,
  },
  rm: {
    synopsis: 'rm [-r] [-f] <path...>',
    summary: 'remove files, or directories with -r',
    details: `options:
  -r, --recursive      remove directories and their contents
  -f, --force          ignore missing paths
${CLIENT_HELP}`,
    run: rm,
  },
  mkdir: {
    synopsis: 'mkdir [-p] <path...>',
    summary: 'create directories',
    details: `options:
  -p, --parents        create missing parents; an existing directory is not an error
${CLIENT_HELP}`,
    run: mkdir,
  },
}

function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.synopsis.length))
  return `usage: lisafs <command> [options]

Serve a directory over LISAFS (gVisor's gofer protocol), or use a LISAFS
server from the command line.

commands:
${Object.values(COMMANDS)
  .map((c) => `  ${c.synopsis.padEnd(width)}  ${c.summary}`)
  .join('\n')}

  lisafs --version     print the version
  lisafs --help        show this help; lisafs <command> --help for a command

Remote paths are absolute from the served root ("a/b" means "/a/b").
Exit status: 0 success, 1 failure, 2 bad usage.
`
}

function commandUsage(name: string): string {
  const spec = COMMANDS[name]
  return spec === undefined ? usage() : `usage: lisafs ${spec.synopsis}\n\n${spec.summary}.\n\n${spec.details}\n`
}

function help(name?: string): number {
  out(name === undefined ? usage() : commandUsage(name))
  return 0
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined) throw new UsageError('missing command')
  if (first === '--version' || first === '-V' || first === 'version') {
    out(`${packageVersion()}\n`)
    return 0
  }
  if (first === '--help' || first === '-h') return help()
  if (first === 'help') {
    if (rest[0] !== undefined && COMMANDS[rest[0]] === undefined) throw new UsageError(`unknown command '${rest[0]}'`)
    return help(rest[0])
  }
  if (first.startsWith('-')) throw new UsageError(`unknown option '${first}' (options come after the command)`)
  const spec = COMMANDS[first]
  if (spec === undefined) throw new UsageError(`unknown command '${first}'`)
  return spec.run(rest)
}

// A closed stdout (`lisafs cat f | head`) ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      const spec = err.command === undefined ? undefined : COMMANDS[err.command]
      if (spec === undefined) {
        warn(`lisafs: ${err.message}\n`)
        process.stderr.write(usage())
      } else {
        warn(`lisafs: ${err.command}: ${err.message}`)
        warn(`usage: lisafs ${spec.synopsis}`)
        warn(`Run 'lisafs ${err.command} --help' for details.`)
      }
      process.exitCode = 2
    } else if (err instanceof CliError) {
      warn(err.message)
      process.exitCode = 1
    } else if (isSystemError(err)) {
      warn(failureLine(process.argv[2] ?? 'lisafs', err))
      process.exitCode = 1
    } else {
      // A bug, not an expected failure: keep the stack.
      warn(`lisafs: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
      process.exitCode = 1
    }
  },
)
