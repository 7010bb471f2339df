#!/usr/bin/env bash
# Builds the cargo-fuzz targets of fuzz/ and runs each one for a short,
# bounded time from its committed seeds (fuzz/seeds/<target>/). Exits
# non-zero if any target crashes, hangs, leaks or fails to build.
#
# Works on a fresh machine with only stable Rust: installs cargo-fuzz from
# crates.io if it is missing, and sets RUSTC_BOOTSTRAP=1 so that stable
# rustc accepts the -Z flags cargo-fuzz passes (see fuzz/README.md).
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 25)
#   FUZZ_TARGETS    space-separated targets (default: all of them)
#   FUZZ_SANITIZER  address (default) or none
#   CARGO_BUILD_JOBS  build parallelism, as for any cargo command
#
# New inputs found during the run go to a temporary corpus and are thrown
# away; a crashing input is saved by cargo-fuzz in fuzz/artifacts/<target>/
# and printed here as hex.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${FUZZ_SECONDS:-25}
TARGETS=${FUZZ_TARGETS:-"decode_request decode_response frames dispatch dispatch_mem"}
SANITIZER=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

build_args=(--sanitizer "$SANITIZER")

echo "== building fuzz targets (sanitizer: $SANITIZER)"
start=$SECONDS
cargo fuzz build "${build_args[@]}"
echo "== build took $((SECONDS - start)) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/lisafs-fuzz-ci.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
passed=0
for t in $TARGETS; do
    corpus="$work/corpus-$t"
    mkdir -p "$corpus" "$ROOT/fuzz/artifacts/$t"
    if [[ -d "fuzz/seeds/$t" ]]; then
        cp -r "fuzz/seeds/$t/." "$corpus/"
    fi
    log="$work/$t.log"
    touch "$work/stamp"
    echo "== fuzzing $t for ${SECS}s from $(ls "$corpus" | wc -l) seeds"
    set +e
    cargo fuzz run "${build_args[@]}" "$t" "$corpus" -- \
        -max_total_time="$SECS" \
        -timeout=10 \
        -rss_limit_mb=4096 \
        -print_final_stats=1 \
        >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" || true
    if [[ $rc -ne 0 ]]; then
        echo "!! $t FAILED (exit $rc); last lines of its log:"
        tail -n 60 "$log"
        # cargo-fuzz saves crashing inputs in fuzz/artifacts/<target>/.
        find "$ROOT/fuzz/artifacts/$t" -type f -newer "$work/stamp" | while read -r a; do
            echo "!! artifact $a:"
            od -An -tx1 -v "$a" | tr -d ' \n' | head -c 8192
            echo
        done
        failed+=("$t")
    else
        passed=$((passed + 1))
    fi
done

echo "fuzz: ${passed} passed, ${#failed[@]} failed"
if [[ ${#failed[@]} -ne 0 ]]; then
    echo "failed targets: ${failed[*]}"
    exit 1
fi
