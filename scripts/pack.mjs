#!/usr/bin/env node
// Packs the npm packages of a release into an output directory, without
// touching the repository's own package.json or package-lock.json:
//
//   node scripts/pack.mjs [--out <dir>] [--addon <file.node>] [--json] [--no-check]
//   npm run pack:npm -- --out <dir>
//
// 1. The main package `lisafs` is staged in a temporary directory: the
//    TypeScript in src/ is compiled afresh into the staging dist/ (so the
//    tarball always matches the sources), the ESM entry is generated there,
//    the napi loader (index.js, index.d.ts) and README are copied, and the
//    manifest is rewritten:
//      - `optionalDependencies` gains every platform package of npm/*/ at the
//        same version. The repository's package.json deliberately has none:
//        an unpublished optional dependency cannot be recorded in
//        package-lock.json and breaks `npm ci`.
//      - lifecycle scripts (`prepare`, `install`, ...) are dropped: they build
//        the addon with cargo, which a consumer neither has nor needs. (npm
//        does not run `prepare` for a dependency installed from a tarball or
//        the registry anyway; `postinstall` it would run.)
//    The tarball never contains a `.node` file; the platform package does.
// 2. Each platform package npm/<platform>/ is staged with its `main` file (the
//    `.node` addon, taken from the repository root where `napi build
//    --platform` puts it, or from --addon) and packed.
//
// `npm pack --ignore-scripts` runs in the staging copies, so packing never
// triggers a build. Default output directory: target/npm-pack/. --no-check
// skips type checking (emit only), for tests that type-check separately.
// --json prints { "main": <tarball>, "platforms": [<tarball>...] }.
//
// To publish, publish the platform tarballs first, then the main one:
//   npm publish target/npm-pack/lisafs-linux-x64-gnu-<v>.tgz && npm publish target/npm-pack/lisafs-<v>.tgz
import { execFileSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const LIFECYCLE = ['preinstall', 'install', 'postinstall', 'prepublish', 'preprepare', 'prepare', 'postprepare', 'prepack', 'postpack']

class PackError extends Error {}

function fail(message) {
  throw new PackError(message)
}

let args
try {
  args = parseArgs({
    options: {
      out: { type: 'string' },
      addon: { type: 'string' },
      json: { type: 'boolean', default: false },
      'no-check': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values
} catch (err) {
  process.stderr.write(`pack: ${err.message}\nusage: node scripts/pack.mjs [--out <dir>] [--addon <file.node>] [--json] [--no-check]\n`)
  process.exit(2)
}
if (args.help) {
  process.stdout.write('usage: node scripts/pack.mjs [--out <dir>] [--addon <file.node>] [--json] [--no-check]\n')
  process.exit(0)
}

const out = resolve(args.out ?? join(repo, 'target', 'npm-pack'))
mkdirSync(out, { recursive: true })
const log = args.json ? () => {} : (line) => process.stderr.write(`${line}\n`)

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'))
const rootPkg = readJson(join(repo, 'package.json'))

/** Runs `npm pack` in `dir`; returns the tarball's path and file list. */
function npmPack(dir) {
  const stdout = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const [info] = JSON.parse(stdout)
  return { tarball: join(out, info.filename), files: info.files.map((f) => f.path) }
}

try {
  main()
} catch (err) {
  if (!(err instanceof PackError)) throw err
  process.stderr.write(`pack: ${err.message}\n`)
  process.exitCode = 1
}

function main() {
  // The platform packages, each with the addon its `main` names.
  const platforms = []
  const npmDir = join(repo, 'npm')
  for (const entry of existsSync(npmDir) ? readdirSync(npmDir, { withFileTypes: true }) : []) {
    if (!entry.isDirectory()) continue
    const dir = join(npmDir, entry.name)
    const pkg = readJson(join(dir, 'package.json'))
    if (pkg.version !== rootPkg.version) {
      fail(`${pkg.name} is at version ${pkg.version} but ${rootPkg.name} at ${rootPkg.version}; keep them in lockstep (napi version)`)
    }
    const addon = args.addon !== undefined && entry.name === 'linux-x64-gnu' ? resolve(args.addon) : join(repo, pkg.main)
    if (!existsSync(addon)) fail(`${addon} is missing: build the addon first (npm run build), or pass --addon`)
    platforms.push({ dir, pkg, addon })
  }
  if (platforms.length === 0) fail('no platform package under npm/')

  // 1. The main package.
  const staging = mkdtempSync(join(tmpdir(), 'lisafs-pack-'))
  try {
    const mainDir = join(staging, 'main')
    mkdirSync(join(mainDir, 'scripts'), { recursive: true })
    const require = createRequire(join(repo, 'package.json'))
    log(`compiling src/ into the staged dist/`)
    const check = args['no-check'] ? ['--noCheck'] : []
    try {
      execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json'), ...check, '--outDir', join(mainDir, 'dist')], {
        cwd: repo,
        stdio: ['ignore', 'inherit', 'inherit'],
      })
    } catch {
      fail('tsc failed (its errors are above)')
    }
    copyFileSync(join(repo, 'scripts', 'esm-entry.mjs'), join(mainDir, 'scripts', 'esm-entry.mjs'))
    execFileSync(process.execPath, [join(mainDir, 'scripts', 'esm-entry.mjs')], { stdio: 'inherit' })
    rmSync(join(mainDir, 'scripts'), { recursive: true })
    for (const file of ['index.js', 'index.d.ts', 'README.md', 'LICENSE', 'LICENSE.md', 'NOTICE']) {
      if (existsSync(join(repo, file))) copyFileSync(join(repo, file), join(mainDir, file))
    }

    const manifest = structuredClone(rootPkg)
    manifest.optionalDependencies = { ...manifest.optionalDependencies }
    for (const { pkg } of platforms) manifest.optionalDependencies[pkg.name] = pkg.version
    if (manifest.scripts !== undefined) {
      for (const name of LIFECYCLE) delete manifest.scripts[name]
    }
    writeFileSync(join(mainDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)

    const bins = typeof manifest.bin === 'string' ? [manifest.bin] : Object.values(manifest.bin ?? {})
    for (const bin of bins) {
      const path = join(mainDir, bin)
      if (!existsSync(path)) fail(`bin ${bin} was not built`)
      chmodSync(path, 0o755)
    }

    const packed = npmPack(mainDir)
    const natives = packed.files.filter((f) => f.endsWith('.node'))
    if (natives.length > 0) fail(`the main package must not contain the addon, but has ${natives.join(', ')}`)
    for (const bin of bins) {
      if (!packed.files.includes(bin.replace(/^\.\//, ''))) fail(`the main package lacks its bin ${bin}`)
    }
    log(`packed ${packed.tarball} (${packed.files.length} files)`)

    // 2. The platform packages.
    const platformTarballs = []
    for (const { dir, pkg, addon } of platforms) {
      const stage = join(staging, basename(dir))
      mkdirSync(stage)
      for (const file of readdirSync(dir)) {
        if (!file.endsWith('.node')) copyFileSync(join(dir, file), join(stage, file))
      }
      copyFileSync(addon, join(stage, pkg.main))
      const p = npmPack(stage)
      if (!p.files.includes(pkg.main)) fail(`${pkg.name} lacks ${pkg.main}`)
      log(`packed ${p.tarball} (${p.files.length} files)`)
      platformTarballs.push(p.tarball)
    }

    if (args.json) {
      process.stdout.write(`${JSON.stringify({ main: packed.tarball, platforms: platformTarballs }, null, 2)}\n`)
    } else {
      process.stdout.write(`${[packed.tarball, ...platformTarballs].join('\n')}\n`)
    }
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
}
