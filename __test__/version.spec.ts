import { readFileSync } from 'node:fs'

import test from 'ava'

import { version } from '../index.js'

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }

test('version() reports the package version', (t) => {
  t.is(typeof version, 'function')
  t.is(version(), pkg.version)
})
