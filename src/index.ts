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
export type { Name, SetStatAttrs, SetStatOutcome, Owner, Walked } from './client.js'
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
