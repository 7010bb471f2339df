// Serves a directory over LISAFS on a Unix socket until Ctrl-C.
//
//   node examples/serve.mjs [dir] [socket]     (defaults: . and ./lisafs.sock)
//
// gVisor's gofer client (or any LISAFS client) can then connect to the socket.
import { resolve } from 'node:path'

import lisafs from '../index.js'

const root = resolve(process.argv[2] ?? '.')
const socket = resolve(process.argv[3] ?? 'lisafs.sock')

let server
try {
  server = new lisafs.Server({ root })
  server.listen(socket)
} catch (err) {
  console.error(`lisafs: ${err.message}`)
  process.exit(1)
}
console.log(`serving ${root} on ${socket} (Ctrl-C to stop)`)

const stop = async () => {
  await server.close()
  console.log('closed', server.stats())
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
// Keep Node alive: the server's threads are not event-loop handles.
setInterval(() => {}, 1 << 30)
