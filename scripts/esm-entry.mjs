// Writes dist/index.mjs: the ESM entry re-exports the CommonJS build, whose
// named exports Node detects statically, so `import { connect } from 'lisafs'`
// and `require('lisafs')` load the same single copy of the addon.
import { readFileSync, writeFileSync } from 'node:fs'

const names = [...readFileSync(new URL('../dist/index.d.ts', import.meta.url), 'utf8').matchAll(/export \{([^}]*)\} from/g)]
  .filter((m) => !m[0].startsWith('export type'))
  .flatMap((m) => m[1].split(','))
  .map((n) => n.trim())
  .filter((n) => n !== '' && !n.startsWith('type '))
const body = `import cjs from './index.js'\n\nexport const { ${names.join(', ')} } = cjs\nexport default cjs\n`
writeFileSync(new URL('../dist/index.mjs', import.meta.url), body)
