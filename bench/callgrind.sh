#!/usr/bin/env bash
# Instructions per call of one benchmark workload, client + server, counted by callgrind.
#
# usage: bench/callgrind.sh BIN IMPL WORKLOAD [TRANSPORT]
#   BIN        the rpc-bench binary (build it with `cargo build --release -p rpc-bench`:
#              target/release/rpc-bench)
#   IMPL       floor | ours | tarpc
#   WORKLOAD   seq (16-byte echo, one call at a time) | window (64 in flight) | vec | buf (64 KiB)
#   TRANSPORT  tcp | unix (default) | pipe | fifo
#
# Runs `BIN profile IMPL WORKLOAD N TRANSPORT` under callgrind at N = 5,000 and 10,000 calls,
# following the server child (--trace-children=yes), sums the instructions of every process of
# each run, and prints the difference divided by 5,000: set-up and shutdown cancel out. Repeat
# runs of the same binary differ by about 1-10% (how often the runtimes park and wake depends
# on timing), so compare numbers measured back to back.
set -euo pipefail
bin=$1; imp=$2; wl=$3; tr=${4:-unix}
total() {
  local n=$1 d; d=$(mktemp -d)
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$d/cg.%p" "$bin" profile "$imp" "$wl" "$n" "$tr" >/dev/null 2>"$d/log"
  local sum=0
  for f in "$d"/cg.*; do
    s=$(grep -m1 '^summary:' "$f" | awk '{print $2}'); sum=$((sum + ${s:-0}))
  done
  rm -rf "$d"; echo $sum
}
a=$(total 5000); b=$(total 10000)
echo "$imp $wl $tr: $(( (b - a) / 5000 )) instructions/call"
