#!/usr/bin/env bash
# Compile time of one 20-method service: `#[rpc_runtime::service]` (ours/) against
# `#[tarpc::service]` 0.38 (tarpc/), on this machine, in one run. The two crates are standalone
# (each has its own `[workspace]`, lock file and target/) and are only built, never edited:
# the incremental case touches src/lib.rs.
#
# Usage: bench/compile-time/run.sh [RUNS [CRATE_DIR...]]
#   RUNS       default 3; each time shown is the median of RUNS
#   CRATE_DIR  default `ours tarpc`; any other standalone crate (e.g. a copy of ours/ pointing
#              at an older rpc-runtime) gets a column of its own
#
# For each crate it measures, with `cargo build` (debug):
#   clean     `cargo clean`, then a build of the crate and all its dependencies
#   crate     `cargo clean -p <crate>` (dependencies stay built), then a build
#   touch     `touch src/lib.rs`, then a build (incremental compilation)
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-3}
shift || true
if [ $# -gt 0 ]; then crates=("$@"); else crates=(ours tarpc); fi

package() { sed -n 's/^name = "\(.*\)"/\1/p' "$1/Cargo.toml" | head -1; }
title() {
    case $1 in
        ours) echo 'rpc-runtime `#[service]`' ;;
        tarpc) echo 'tarpc 0.38 `#[tarpc::service]`' ;;
        *) echo "\`$1\`" ;;
    esac
}

# Runs "$@" in crate dir $1 quietly and prints "WALL CPU": elapsed seconds, and user + system
# seconds of cargo and every process it started (less sensitive to other load on the machine).
timed() {
    local dir=$1; shift
    local TIMEFORMAT='%R %U %S' out
    out=$( { time (cd "$dir" && "$@" >/dev/null 2>&1) ; } 2>&1 ) || { echo "failed: (cd $dir && $*)" >&2; exit 1; }
    awk '{ printf "%.2f/%.2f", $1, $2 + $3 }' <<<"$out"
}

# The median of the wall times and of the CPU times in "W/C W/C ...", as "W s wall, C s CPU".
median() {
    local runs field
    runs=$(cat)
    for field in 1 2; do
        tr ' ' '\n' <<<"$runs" | grep -v '^$' | cut -d/ -f$field | sort -n \
            | awk '{ a[NR] = $1 } END { printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
        if [ "$field" = 1 ]; then printf ' s wall, '; else printf ' s CPU'; fi
    done
}

for c in "${crates[@]}"; do
    (cd "$c" && cargo fetch --locked >/dev/null 2>&1)
done

declare -A results
for ((r = 1; r <= runs; r++)); do
    for c in "${crates[@]}"; do
        pkg=$(package "$c")
        (cd "$c" && cargo clean >/dev/null 2>&1)
        results[$c,clean]+="$(timed "$c" cargo build --locked --offline) "
        (cd "$c" && cargo clean -p "$pkg" >/dev/null 2>&1)
        results[$c,crate]+="$(timed "$c" cargo build --locked --offline) "
        touch "$c/src/lib.rs"
        results[$c,touch]+="$(timed "$c" cargo build --locked --offline) "
        echo "run $r/$runs: $c done" >&2
    done
done

echo "rustc: $(rustc --version)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') x $(nproc)"
echo "runs: $runs, interleaved (medians; every run as wall/CPU seconds in parentheses)"
echo
header="| build (debug) |"
rule="| --- |"
for c in "${crates[@]}"; do
    header+=" $(title "$c") |"
    rule+=" --- |"
done
echo "$header"
echo "$rule"
for kind in clean crate touch; do
    case $kind in
        clean) label="clean, with dependencies" ;;
        crate) label="clean, service crate only" ;;
        touch) label="incremental (touch lib.rs)" ;;
    esac
    row="| $label |"
    for c in "${crates[@]}"; do
        row+=" $(echo "${results[$c,$kind]}" | median) (${results[$c,$kind]% }) |"
    done
    echo "$row"
done
