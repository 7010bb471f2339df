// Serves a host directory over LISAFS with an audit log and a policy:
// every operation is logged, some subtrees are off limits or read-only, and
// clients may write a limited number of bytes.
//
//   node examples/audited-server.mjs [options] <dir> [socket]
//     --deny PATH        refuse everything under PATH (EACCES); repeatable
//     --readonly PATH    refuse every change under PATH (EROFS); repeatable
//     --quota BYTES      bytes clients may write in total (then EDQUOT)
//     --log FILE         append the audit log to FILE (default: stdout)
//   node examples/audited-server.mjs --demo    a demo on a temporary directory
//
// PATHs are as clients see them: `/` is the served directory. By default
// `/.git` and `/.ssh` are denied. On exit a summary per operation is printed.
// Needs the built package (`npm run build`).
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

import { AuditLog, BackendServer, HostBackend, Policy, connect, createFs, errnoName } from '../dist/index.mjs'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    deny: { type: 'string', multiple: true, default: ['/.git', '/.ssh'] },
    readonly: { type: 'string', multiple: true, default: [] },
    quota: { type: 'string' },
    log: { type: 'string' },
    demo: { type: 'boolean', default: false },
  },
})

/** Creates the audited, policy-limited server of `root`. */
function audited(root, { deny, readonly, quota, write }) {
  const policy = new Policy({
    rules: deny.map((path) => ({ path, action: 'deny' })),
    readOnly: readonly,
    writeQuota: quota,
  })
  const log = new AuditLog({ limit: 1000, write })
  const server = new BackendServer(new HostBackend({ root }), {
    policy,
    onOperation: log.onOperation,
    // Route reads and writes through the server so that the log sees them
    // (a donated host FD would bypass it).
    donateFds: false,
  })
  server.on('error', (err) => console.error('lisafs:', err))
  return { server, log }
}

function printSummary(log) {
  const s = log.summary()
  console.log(`\n${s.total} operations, ${s.failed} failed, ${s.denied} denied; ${s.bytesRead} bytes read, ${s.bytesWritten} written`)
  for (const [op, c] of Object.entries(s.byOp)) {
    console.log(`  ${op.padEnd(12)} ${String(c.count).padStart(6)}  failed ${c.failed}  denied ${c.denied}  ${(c.totalNs / 1e6).toFixed(2)} ms`)
  }
}

if (values.demo) {
  const dir = mkdtempSync(join(tmpdir(), 'audited-'))
  const root = join(dir, 'root')
  mkdirSync(join(root, '.ssh'), { recursive: true })
  mkdirSync(join(root, 'docs'))
  writeFileSync(join(root, '.ssh', 'id_ed25519'), 'PRIVATE KEY')
  writeFileSync(join(root, 'docs', 'manual.txt'), 'Read, but do not edit.\n')
  const { server, log } = audited(root, {
    deny: ['/.ssh'],
    readonly: ['/docs'],
    quota: 64,
    write: (line) => console.log('audit:', line),
  })
  const socket = join(dir, 'audited.sock')
  server.listen(socket)
  const client = await connect(socket)
  const fs = createFs(client)
  const attempt = async (what, op) => {
    try {
      const r = await op()
      console.log(`${what}: ok${r === undefined ? '' : ` ${JSON.stringify(r)}`}`)
    } catch (err) {
      // Node has no name for some errnos (EDQUOT): name it from the number.
      console.log(`${what}: ${typeof err.errno === 'number' ? errnoName(-err.errno) : err.code}`)
    }
  }
  await attempt('read docs/manual.txt', () => fs.readFile('/docs/manual.txt', 'utf8'))
  await attempt('edit docs/manual.txt', () => fs.writeFile('/docs/manual.txt', 'vandalized'))
  await attempt('read .ssh/id_ed25519', () => fs.readFile('/.ssh/id_ed25519', 'utf8'))
  await attempt('write notes.txt (40 bytes)', () => fs.writeFile('/notes.txt', 'x'.repeat(40)))
  await attempt('append 40 more bytes', () => fs.appendFile('/notes.txt', 'y'.repeat(40)))
  await client.close()
  await server.close()
  // Let the last events arrive.
  await new Promise((r) => setImmediate(r))
  printSummary(log)
  rmSync(dir, { recursive: true, force: true })
} else {
  if (positionals.length < 1) {
    console.error('usage: node examples/audited-server.mjs [--deny PATH] [--readonly PATH] [--quota BYTES] [--log FILE] <dir> [socket]')
    process.exit(2)
  }
  const root = resolve(positionals[0])
  const socket = resolve(positionals[1] ?? 'audited.sock')
  const logFile = values.log
  const write = logFile === undefined ? (line) => console.log(line) : (line) => appendFileSync(logFile, `${line}\n`)
  let server
  let log
  try {
    ;({ server, log } = audited(root, {
      deny: values.deny,
      readonly: values.readonly,
      quota: values.quota === undefined ? undefined : Number(values.quota),
      write,
    }))
    server.listen(socket)
  } catch (err) {
    console.error(`lisafs: ${err.message}`)
    process.exit(1)
  }
  console.log(`serving ${root} on ${socket}: denied ${values.deny.join(', ') || 'nothing'}; read-only ${values.readonly.join(', ') || 'nothing'}${values.quota ? `; quota ${values.quota} bytes` : ''} (Ctrl-C to stop)`)
  const stop = async () => {
    await server.close()
    printSummary(log)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
