#!/usr/bin/env bash
# The project's whole test suite, as run by `npm test` (and so by .ci/run):
#   1. Rust:  cargo test --workspace
#   2. Go:    interop tests against gVisor's own LISAFS code (cd interop && go test ./...)
#   3. Node:  ava tests in __test__/ against the built addon
# Each step must pass; a failing step stops the run with a non-zero exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() {
  printf '\n==> %s\n' "$*"
}

step "cargo test --workspace"
cargo test --workspace

step "go test ./... (interop/: gVisor's own code against ours)"
# The interop tests run gVisor's client against this server binary.
cargo build -p lisafs-serve
(cd interop && LISAFS_SERVE_BIN="$PWD/../target/debug/lisafs-serve" go test -count=1 ./...)

step "ava (__test__/**/*.spec.ts)"
if [[ ! -f index.js ]] || ! compgen -G 'lisafs.*.node' >/dev/null; then
  echo "FAIL: the native addon is not built (index.js or lisafs.*.node missing); run 'npm install' or 'npm run build' first." >&2
  exit 1
fi
npx --no-install ava

printf '\nAll test suites passed.\n'
