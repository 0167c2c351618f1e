#!/usr/bin/env bash
# Runs conduit-packet's libFuzzer targets (dataplane/packet/fuzz) and prints one line per target.
#
#   bash scripts/fuzz.sh [--runs N] [--max-seconds S] [--keep] [--asan] [TARGET ...]
#
#   --runs N         executions per target (default 10,000,000: the long run)
#   --max-seconds S  stop a target after S seconds even if N is not reached (default 1800)
#   --keep           merge what the run discovered into the committed corpus
#                    (dataplane/packet/fuzz/corpus/TARGET, minimised with -merge=1)
#   --asan           build with AddressSanitizer (default: no sanitizer; the targets are safe
#                    Rust, so a sanitizer only slows them down, and panics abort either way)
#   TARGET           default: every target the fuzz crate declares
#
# A crash, a panic or a failed invariant stops with a non-zero exit and leaves the input in
# dataplane/packet/fuzz/artifacts/TARGET/. The test suite runs a short pass (--runs 200000).
set -euo pipefail
cd "$(dirname "$0")/../dataplane/packet"

runs=10000000
max_seconds=1800
keep=0
sanitizer=none
targets=()
while (($#)); do
    case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --max-seconds) max_seconds="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --asan) sanitizer=address; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
fi
# Only a stable toolchain is needed: RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz passes.
export RUSTC_BOOTSTRAP=1
((${#targets[@]})) || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build -O -s "$sanitizer" >&2

scratch=$(mktemp -d /tmp/conduit-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
printf '%-14s %12s %8s %10s %8s\n' target executions seconds exec/s corpus
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "fuzz/corpus/$t"
    log="$scratch/$t.log"
    start=$(date +%s%N)
    # New inputs go to the scratch directory (first); the committed corpus is only read.
    if ! cargo fuzz run -O -s "$sanitizer" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
        -runs="$runs" -max_total_time="$max_seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz.sh: $t FAILED (input saved under dataplane/packet/fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    elapsed_ms=$((($(date +%s%N) - start) / 1000000))
    execs=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 | awk '{print $2}')
    if ((keep)); then
        cargo fuzz run -O -s "$sanitizer" "$t" "fuzz/corpus/$t" "$scratch/$t" -- -merge=1 \
            >"$scratch/$t.merge.log" 2>&1
    fi
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    printf '%-14s %12s %8s %10s %8s\n' "$t" "$execs" "$((elapsed_ms / 1000)).$((elapsed_ms % 1000 / 100))" \
        "$((execs * 1000 / (elapsed_ms > 0 ? elapsed_ms : 1)))" "$corpus"
done
