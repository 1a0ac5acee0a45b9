#!/usr/bin/env bash
# bench/prompts.sh: concurrent calls that each hear the recording notice
# while they are recorded (issue 4: the largest N with no RTP packet late by
# more than 20 ms, target >= 300; memory per recording call < 128 KiB).
# Figures, method and the exact command are in docs/benchmarks.md
# ("Prompts while recording"); bench/promptload/main.go documents the tool.
#
#   bash bench/prompts.sh                          # ladder 100..800, about 7 minutes
#   LADDER=300 bash bench/prompts.sh               # one step
#   OUT=/tmp/pl ARGS="-keep-going -dump 5" bash bench/prompts.sh
#
# It builds switchboard and bench/promptload into $OUT and runs the ladder
# under `flock /tmp/switchboard-bench.lock` (bench/run.sh and other SIP load
# runs on this machine take the same lock, so runs never overlap). Every
# process is on 127.0.0.1; promptload starts one `switchboard serve` per
# step and stops it by its PID. Results: $OUT/results.md, per-second samples
# and Switchboard's log in $OUT/nN/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/sb-prompts.XXXXXX)}
LADDER=${LADDER:-100,200,300,400,500,600,700,800}
RATE=${RATE:-100}
HOLD=${HOLD:-20s}
ARGS=${ARGS:-}
LOCK=${LOCK:-/tmp/switchboard-bench.lock}

for tool in go flock; do
	command -v "$tool" >/dev/null || { echo "prompts.sh: $tool is required" >&2; exit 1; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
(cd "$ROOT" && go build -o "$OUT/switchboard" ./cmd/switchboard && go build -o "$OUT/promptload" ./bench/promptload)
echo "switchboard $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?'); waiting for $LOCK" >&2
# shellcheck disable=SC2086 # ARGS is a list of flags
flock "$LOCK" sh -c 'uptime >&2; exec "$@"' sh "$OUT/promptload" -switchboard "$OUT/switchboard" -out "$OUT" \
	-ladder "$LADDER" -rate "$RATE" -hold "$HOLD" $ARGS
