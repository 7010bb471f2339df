/**
 * lisafs: gVisor's LISAFS file-server protocol for Node.js.
 *
 * - {@link Server}: serve a host directory to LISAFS clients (gVisor sandboxes).
 * - {@link connect}: a client with one method per LISAFS operation.
 * - The wire codec: {@link decodeRequest}, {@link encodeResponse}, ...
 * @packageDocumentation
 */
export {
  Server,
  socketPair,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  messageName,
  Mid,
  version,
} from '../index.js'
export type {
  ServerOptions,
  ServerStats,
  Request,
  Response,
  Statx,
  StatxTimestamp,
  StatFs,
  Inode,
  Dirent64,
  Timespec,
  CreateCommon,
  WalkStatus,
} from '../index.js'
export { connect, Client, ControlFd, OpenFd, BoundSocketFd, Flags, SockType } from './client.js'
export type { Name, SetStatAttrs, SetStatOutcome, Owner, Walked, ConnectOptions } from './client.js'
export { LisafsError } from './errors.js'
export { createFs, LisafsFs, LisafsStats, LisafsDirent, LisafsReadStream, LisafsWriteStream, AbortError } from './fs.js'
export type {
  PathLike,
  WriteFlag,
  FsOptions,
  ReadFileOptions,
  WriteFileOptions,
  ReaddirOptions,
  MakeDirectoryOptions,
  RmOptions,
  ReadlinkOptions,
  ReadStreamOptions,
  WriteStreamOptions,
} from './fs.js'
export {
  BackendServer,
  HostBackend,
  backendError,
  toStatx,
  toTimestamp,
  direntType,
  direntRecordSize,
  StatxMask,
  FileType,
  DirentType,
  UTIME_NOW,
  UTIME_OMIT,
  NO_ID,
} from './backend.js'
export type {
  Backend,
  ControlFdImpl,
  OpenFdImpl,
  BoundSocketFdImpl,
  Releasable,
  NewControl,
  CreatedFile,
  BoundSocket,
  AcceptedSocket,
  StatInput,
  StatFsInput,
  DirentInput,
  Owner as BackendOwner,
  SetStatRequest,
  Awaitable,
  Int64,
  TimeInput,
  ErrnoName,
  HostBackendOptions,
  BackendServerOptions,
  BackendServerStats,
} from './backend.js'
export { MemoryBackend, MemoryNode } from './memory.js'
export type { MemoryBackendOptions } from './memory.js'
export { Policy, AuditLog, formatEvent, errnoName, normalizePolicyPath, OPERATION_CLASSES } from './policy.js'
export type {
  OperationClass,
  OperationName,
  OperationEvent,
  OperationObserver,
  PolicyRule,
  PolicyOptions,
  AuditLogOptions,
  AuditSummary,
  OperationTotals,
} from './policy.js'
