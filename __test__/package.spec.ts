// Packs `lisafs` and `lisafs-linux-x64-gnu` with scripts/pack.mjs, installs
// both tarballs into a fresh project with a PATH that has no Rust toolchain,
// and uses the installed CLI: `npx lisafs --version`, then serve -> ls -> cat.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

import test from 'ava'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..')
const repoPkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
  version: string
  optionalDependencies?: Record<string, string>
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a command to completion (killed after `timeout` ms); never rejects. */
function run(file: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number }): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(file, args, { cwd: opts.cwd, env: opts.env, timeout: opts.timeout ?? 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
      resolveRun({ code, stdout, stderr })
    })
  })
}

function describe(r: Run): string {
  return `exit ${String(r.code)}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`
}

function onPath(command: string, path: string): string | undefined {
  for (const dir of path.split(':')) {
    try {
      accessSync(join(dir, command), constants.X_OK)
      return join(dir, command)
    } catch {
      // not here
    }
  }
  return undefined
}

/**
 * A PATH with node and npm but no cargo or rustc: the directory of node plus
 * /usr/bin:/bin, or, if a Rust toolchain lives there too, a directory of
 * links to just node, npm, npx and sh.
 */
function toolchainFreePath(work: string): string {
  const plain = [...new Set([dirname(process.execPath), '/usr/bin', '/bin'])].join(':')
  if (onPath('cargo', plain) === undefined && onPath('rustc', plain) === undefined) return plain
  const bin = join(work, 'bin')
  mkdirSync(bin)
  symlinkSync(process.execPath, join(bin, 'node'))
  for (const tool of ['npm', 'npx', 'sh']) {
    const found = onPath(tool, plain)
    if (found !== undefined) symlinkSync(realpathSync(found), join(bin, tool))
  }
  return bin
}

test('the packed packages install from tarballs without Rust, and the installed CLI serves, lists and reads', async (t) => {
  t.timeout(180_000)
  t.is(
    repoPkg.optionalDependencies?.['lisafs-linux-x64-gnu'],
    undefined,
    'the repository package.json must not list the unpublished platform package (npm ci could not lock it); pack.mjs adds it',
  )
  const started = Date.now()
  const work = mkdtempSync(join(tmpdir(), 'lisafs-package-'))
  const children: ChildProcess[] = []
  t.teardown(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    rmSync(work, { recursive: true, force: true })
  })

  // 1. Pack (compiles src/ into a staging copy; never runs a build). Type
  //    checking is `tsc --noEmit`'s job, so emit only.
  const packed = await run(process.execPath, [join(repo, 'scripts', 'pack.mjs'), '--out', join(work, 'tarballs'), '--json', '--no-check'], {
    cwd: repo,
    timeout: 60_000,
  })
  t.is(packed.code, 0, describe(packed))
  const { main, platforms } = JSON.parse(packed.stdout) as { main: string; platforms: string[] }
  const platform = platforms.find((p) => p.includes('lisafs-linux-x64-gnu'))
  if (platform === undefined) return t.fail(`no linux-x64-gnu tarball in ${packed.stdout}`)

  const listing = spawnSync('tar', ['-tvzf', main], { encoding: 'utf8' })
  t.is(listing.status, 0, listing.stderr)
  t.notRegex(listing.stdout, /\.node$/m, 'the main package must not carry the addon')
  t.regex(listing.stdout, /^-rwxr-xr-x .* package\/dist\/cli\.js$/m, 'the bin is packed executable')
  t.regex(listing.stdout, / package\/index\.js$/m)
  t.regex(listing.stdout, / package\/dist\/index\.mjs$/m)
  const manifest = JSON.parse(spawnSync('tar', ['-xzOf', main, 'package/package.json'], { encoding: 'utf8' }).stdout) as {
    bin?: Record<string, string>
    optionalDependencies?: Record<string, string>
    scripts?: Record<string, string>
  }
  t.deepEqual(manifest.bin, { lisafs: 'dist/cli.js' })
  t.is(manifest.optionalDependencies?.['lisafs-linux-x64-gnu'], repoPkg.version)
  t.is(manifest.scripts?.['prepare'], undefined, 'no build on install')
  const platformListing = spawnSync('tar', ['-tzf', platform], { encoding: 'utf8' }).stdout
  t.regex(platformListing, /^package\/lisafs\.linux-x64-gnu\.node$/m)

  // 2. A fresh project, no Rust on PATH, npm offline with an empty cache.
  const path = toolchainFreePath(work)
  const project = join(work, 'project')
  mkdirSync(project)
  writeFileSync(join(work, 'npmrc'), '')
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(npm_|NODE_OPTIONS$|NODE_PATH$|NAPI_RS_|LISAFS_SOCKET$)/i.test(key)) env[key] = value
  }
  Object.assign(env, {
    PATH: path,
    npm_config_userconfig: join(work, 'npmrc'),
    npm_config_cache: join(work, 'npm-cache'),
    npm_config_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
  })
  const npm = onPath('npm', path)
  const npx = onPath('npx', path)
  if (npm === undefined || npx === undefined) return t.fail(`npm/npx not found on ${path}`)
  const cargo = spawnSync('sh', ['-c', 'command -v cargo || command -v rustc'], { env, encoding: 'utf8' })
  t.not(cargo.status, 0, `cargo must not be on the test PATH (${path}): ${cargo.stdout}`)

  const init = await run(npm, ['init', '-y'], { cwd: project, env })
  t.is(init.code, 0, describe(init))
  // Both tarballs in one command: the main package's optional dependency on
  // lisafs-linux-x64-gnu@<version> is satisfied by the local tarball, offline.
  const install = await run(npm, ['install', '--no-audit', '--no-fund', '--offline', platform, main], { cwd: project, env, timeout: 60_000 })
  t.is(install.code, 0, describe(install))
  t.true(existsSync(join(project, 'node_modules', 'lisafs-linux-x64-gnu', 'lisafs.linux-x64-gnu.node')))
  t.false(existsSync(join(project, 'node_modules', 'lisafs', 'lisafs.linux-x64-gnu.node')))
  t.false(existsSync(join(project, 'node_modules', 'lisafs', 'target')), 'nothing was built')

  // 3. The installed CLI.
  const version = await run(npx, ['lisafs', '--version'], { cwd: project, env })
  t.is(version.code, 0, describe(version))
  t.is(version.stdout.trim(), repoPkg.version)

  // The loader found the addon in node_modules/lisafs-linux-x64-gnu.
  const loaded = await run(
    'node',
    ['-e', "const l = require('lisafs'); console.log(JSON.stringify({ v: l.version(), addons: Object.keys(require.cache).filter((k) => k.endsWith('.node')) }))"],
    { cwd: project, env: { ...env, PATH: path } },
  )
  t.is(loaded.code, 0, describe(loaded))
  const { v, addons } = JSON.parse(loaded.stdout) as { v: string; addons: string[] }
  t.is(v, repoPkg.version)
  t.deepEqual(addons, [realpathSync(join(project, 'node_modules', 'lisafs-linux-x64-gnu', 'lisafs.linux-x64-gnu.node'))])

  const served = join(work, 'served')
  mkdirSync(join(served, 'sub'), { recursive: true })
  writeFileSync(join(served, 'hello.txt'), 'hello from a packed lisafs\n')
  const socket = join(work, 's.sock')
  // Through the bin link itself: its shebang and mode make it runnable.
  const server = spawn(join(project, 'node_modules', '.bin', 'lisafs'), ['serve', served, '--socket', socket, '--log-format', 'json'], {
    cwd: project,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(server)
  let serverErr = ''
  server.stderr?.on('data', (d: Buffer) => (serverErr += d.toString()))
  const events: Array<{ event: string }> = []
  const listening = new Promise<void>((resolveListening, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening event within 15 s; stderr: ${serverErr}`)), 15_000)
    const lines = createInterface({ input: server.stdout! })
    lines.on('line', (line) => {
      const e = JSON.parse(line) as { event: string }
      events.push(e)
      if (e.event === 'listening') {
        clearTimeout(timer)
        resolveListening()
      }
    })
    server.once('exit', (code) => reject(new Error(`serve exited with ${String(code)}: ${serverErr}`)))
  })
  await listening

  const ls = await run(npx, ['lisafs', 'ls', '--socket', socket, '--json', '/'], { cwd: project, env })
  t.is(ls.code, 0, describe(ls))
  const entries = JSON.parse(ls.stdout) as Array<{ name: string; type: string }>
  t.deepEqual(
    entries.map((e) => [e.name, e.type]).sort(),
    [
      ['hello.txt', 'file'],
      ['sub', 'directory'],
    ],
  )
  const cat = await run(npx, ['lisafs', 'cat', '--socket', socket, '/hello.txt'], { cwd: project, env })
  t.is(cat.code, 0, describe(cat))
  t.is(cat.stdout, 'hello from a packed lisafs\n')

  const exited = new Promise<number | null>((resolveExit) => server.once('exit', (code) => resolveExit(code)))
  server.kill('SIGTERM')
  t.is(await exited, 0, serverErr)
  t.false(existsSync(socket), 'the socket file is removed on close')
  t.deepEqual(
    events.map((e) => e.event),
    ['listening', 'closing', 'closed'],
  )
  t.log(`pack + install + round trip: ${((Date.now() - started) / 1000).toFixed(1)} s`)
})

test('npm does not run `prepare` of a dependency installed from a tarball (pack.mjs drops it anyway)', async (t) => {
  t.timeout(120_000)
  const work = mkdtempSync(join(tmpdir(), 'lisafs-prepare-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value
  Object.assign(env, { npm_config_cache: join(work, 'npm-cache'), npm_config_offline: 'true', npm_config_update_notifier: 'false' })
  const pkg = join(work, 'dep')
  mkdirSync(pkg)
  const marker = join(work, 'PREPARE_RAN')
  writeFileSync(
    join(pkg, 'package.json'),
    JSON.stringify({ name: 'prepare-probe', version: '1.0.0', main: 'index.js', scripts: { prepare: `node -e "require('fs').writeFileSync('${marker}', '')"` } }),
  )
  writeFileSync(join(pkg, 'index.js'), 'module.exports = 1\n')
  // The probe works: run directly, prepare leaves its marker.
  const direct = await run('npm', ['run', 'prepare'], { cwd: pkg, env })
  t.is(direct.code, 0, describe(direct))
  t.true(existsSync(marker), 'the prepare probe writes its marker')
  rmSync(marker)
  const packed = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], { cwd: pkg, env })
  t.is(packed.code, 0, describe(packed))
  const project = join(work, 'project')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), '{"name":"probe-project","version":"1.0.0"}\n')
  const install = await run('npm', ['install', '--no-audit', '--no-fund', '--offline', join(work, 'prepare-probe-1.0.0.tgz')], { cwd: project, env })
  t.is(install.code, 0, describe(install))
  t.true(existsSync(join(project, 'node_modules', 'prepare-probe', 'index.js')))
  t.false(existsSync(marker), 'prepare ran for a tarball dependency')
})
