#!/usr/bin/env bash
# The project's whole test suite, as run by `npm test` (and so by .ci/run):
#   1. Rust:  cargo test --workspace (after building interop/cmd/gvisor-gofer,
#             which the client's interop tests run against)
#   2. Go:    interop tests against gVisor's own LISAFS code (cd interop && go test ./...),
#             then the live-server tests again over flipcall channels, then
#             against the Node-served backends (memory, policy-host), each
#             over the socket and over channels
#   3. Node:  ava tests in __test__/ against the built addon
# Each step must pass; a failing step stops the run with a non-zero exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() {
  printf '\n==> %s\n' "$*"
}

step "go build (interop/cmd/gvisor-gofer: gVisor's own server, for the Rust client's interop tests)"
# crates/lisafs-client/tests/gvisor_gofer.rs runs our client against this
# binary and fails (never skips) without it.
mkdir -p target
(cd interop && go build -o ../target/gvisor-gofer ./cmd/gvisor-gofer)
export LISAFS_GVISOR_GOFER="$PWD/target/gvisor-gofer"

step "cargo test --workspace"
cargo test --workspace

step "go test ./... (interop/: gVisor's own code against ours)"
# The interop tests run gVisor's client against this server binary.
cargo build -p lisafs-serve
(cd interop && LISAFS_SERVE_BIN="$PWD/../target/debug/lisafs-serve" go test -count=1 ./...)

step "go test -run TestServer (interop/, over flipcall channels)"
# The same gVisor client tests with StartChannels: requests travel over
# shared memory, as the gVisor sentry sends them.
(cd interop && LISAFS_INTEROP_CHANNELS=1 LISAFS_SERVE_BIN="$PWD/../target/debug/lisafs-serve" go test -count=1 -run 'TestServer' ./...)

require_addon() {
  if [[ ! -f index.js ]] || ! compgen -G 'lisafs.*.node' >/dev/null; then
    echo "FAIL: the native addon is not built (index.js or lisafs.*.node missing); run 'npm install' or 'npm run build' first." >&2
    exit 1
  fi
}

step "go test -run TestServer (interop/, Node-served backends: memory and policy-host)"
# The same server suite against servers written on the package's API and
# run by interop/node-serve.mjs from dist/: a MemoryBackend, and a
# HostBackend under a policy with an observer. build:ts keeps dist/ in step
# with src/ (the addon itself comes from `npm run build`).
require_addon
npm run --silent build:ts
for backend in memory policy-host; do
  for channels in 0 1; do
    echo "--- LISAFS_INTEROP_BACKEND=$backend LISAFS_INTEROP_CHANNELS=$channels"
    (cd interop && LISAFS_INTEROP_BACKEND=$backend LISAFS_INTEROP_CHANNELS=$channels go test -count=1 -run 'TestServer' ./...)
  done
done

step "ava (__test__/**/*.spec.ts)"
require_addon
npx --no-install ava

printf '\nAll test suites passed.\n'
