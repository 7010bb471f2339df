#!/usr/bin/env bash
# The project's whole test suite, as run by `npm test` (and so by .ci/run):
#   1. Rust:  cargo test --workspace
#   2. Go:    interop tests against gVisor's own LISAFS code (cd interop && go test ./...)
#   3. Node:  ava tests in __test__/ against the built addon
# Each step must pass; a failing step stops the run with a non-zero exit.
# The one exception: if interop/go.mod is absent the Go step is skipped with a
# FAIL message, the remaining step still runs, and the script then exits 1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() {
  printf '\n==> %s\n' "$*"
}

go_missing=0

step "cargo test --workspace"
cargo test --workspace

step "go test ./... (interop/)"
if [[ -f interop/go.mod ]]; then
  (cd interop && go test ./...)
else
  echo "FAIL: interop/go.mod not found; SKIPPING the Go interop tests." >&2
  echo "      The byte-compatibility check against gVisor is part of the suite, so this run will fail." >&2
  go_missing=1
fi

step "ava (__test__/**/*.spec.ts)"
if [[ ! -f index.js ]] || ! compgen -G 'lisafs.*.node' >/dev/null; then
  echo "FAIL: the native addon is not built (index.js or lisafs.*.node missing); run 'npm install' or 'npm run build' first." >&2
  exit 1
fi
npx --no-install ava

if [[ $go_missing -ne 0 ]]; then
  echo "FAIL: the Go interop tests were skipped (interop/go.mod missing)." >&2
  exit 1
fi

printf '\nAll test suites passed.\n'
