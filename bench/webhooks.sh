#!/usr/bin/env bash
# bench/webhooks.sh: does a failing webhook receiver cost calls? The same
# load twice, side by side in one run: RATE calls/s for SECS s of the short
# call of bench/run.sh (bench/sipp/uac.xml: INVITE, 180, 200, ACK, HOLD_MS,
# BYE; the number routed to the trunk, a sipp callee, two dialogs and a
# media relay per call) through a fresh `switchboard serve` on SQLite:
#   none  the account has no webhook;
#   fail  its webhook is bench/failhook, which answers every POST 500, so
#         every call's events are written to the outbox and retried;
#   ok    (in MODES="none fail ok") a healthy receiver, failhook -status 204.
# Reported per run: calls, failed, retransmissions, CPU per call of the
# switchboard process (utime+stime from /proc/PID/stat), the webhook
# requests failhook got, and the events the outbox holds at the end.
# Figures and the command are in docs/benchmarks.md ("Webhooks under load").
#
#   bash bench/webhooks.sh                    # 500 calls/s for 60 s, each way
#   RATE=200 SECS=10 bash bench/webhooks.sh   # a quick look
#   OUT=/tmp/sbhooks bash bench/webhooks.sh   # keep the logs somewhere known
#   MODES="fail none" bash bench/webhooks.sh  # the other order (drift on a shared VM)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
RATE=${RATE:-500}
SECS=${SECS:-60}
HOLD_MS=${HOLD_MS:-500}
MODES=${MODES:-"none fail"}
OUT=${OUT:-$(mktemp -d /tmp/sb-hooks.XXXXXX)}
NUMBER=+34910000000
HZ=$(getconf CLK_TCK)
# Ports on 127.0.0.1: SIP, HTTP, the sipp caller and callee (+1 +2 for
# their control and media), failhook; RTP of the server.
P_SB=56060 P_HTTP=56061 P_UAC=56070 P_UAS=56080 P_HOOK=56090
RTP_PORTS=30000-39999
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.md
: >"$RESULTS"

PIDS=()
spawn() { # NAME CMD...: in the background, output to $OUT/NAME.log; PID in $BG
	local name=$1
	shift
	"$@" >"$OUT/$name.log" 2>&1 &
	BG=$!
	PIDS+=("$BG")
}
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cleanup() { for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
out() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
csv() { # FILE COLUMN: the column's value in the last line of sipp's stat CSV
	awk -F';' -v col="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == col) c = i} END {print $c}' "$1"
}
metric() { curl -fsS --max-time 2 "$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

log "building into $OUT"
(cd "$ROOT" && go build -o "$OUT/switchboard" ./cmd/switchboard && go build -o "$OUT/failhook" ./bench/failhook &&
	go build -o "$OUT/outboxcount" ./bench/outboxcount)

spawn uas sipp -sf "$BENCH/sipp/uas.xml" -i 127.0.0.1 -p "$P_UAS" -cp "$((P_UAS + 1))" -mp "$((P_UAS + 2))" \
	-key sdp_port "$((P_UAS + 2))" -nostdin -trace_err -error_file "$OUT/uas.err"
sleep 1

{
	echo "# Webhooks under load, $(date -u +'%F %T') UTC"
	echo
	echo "- machine: $(nproc) CPU ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "- switchboard $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?'), $(go version | awk '{print $3}'); $RATE calls/s for $SECS s, ${HOLD_MS} ms calls"
	echo
} | tee -a "$RESULTS"
out "| webhook | calls | ok | failed | retrans | CPU µs/call | webhook POSTs | outbox at end |"
out "|---|---:|---:|---:|---:|---:|---:|---:|"

for mode in $MODES; do
	dir=$OUT/$mode
	mkdir -p "$dir"
	hook=
	if [[ $mode != none ]]; then
		hook="webhook: \"http://127.0.0.1:$P_HOOK/hook\", "
		status=500
		[[ $mode == ok ]] && status=204
		spawn "hook-$mode" "$OUT/failhook" -addr "127.0.0.1:$P_HOOK" -status "$status"
		HOOK=$BG
	fi
	cat >"$dir/config.yaml" <<YAML
account: bench
defaults: { ${hook}trunk: carrier }
trunks:
  carrier: { address: "sip:127.0.0.1:$P_UAS", inbound_from: ["127.0.0.1/32"] }
extensions:
  out: { destination: "+34600000003" }
numbers:
  "$NUMBER": { extension: out }
YAML
	spawn "sb-$mode" "$OUT/switchboard" serve --db "sqlite:$dir/sb.db" --config "$dir/config.yaml" \
		--sip "127.0.0.1:$P_SB" --http "127.0.0.1:$P_HTTP" --rtp-ports "$RTP_PORTS" --log-level warn \
		--webhook-allow-private
	SB=$BG
	for _ in $(seq 100); do
		curl -fsS --max-time 1 "http://127.0.0.1:$P_HTTP/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	c0=$(cpu_ticks "$SB")
	log "$mode: $RATE calls/s for $SECS s"
	calls=$((RATE * SECS))
	rc=0
	sipp -sf "$BENCH/sipp/uac.xml" -i 127.0.0.1 -p "$P_UAC" -cp "$((P_UAC + 1))" -mp "$((P_UAC + 2))" \
		-s "$NUMBER" -d "$HOLD_MS" -r "$RATE" -m "$calls" -l "$((RATE * 4))" -recv_timeout 10000 \
		-timeout "$((SECS + 40))s" -timeout_error -nostdin -trace_stat -stf "$dir/uac.csv" -fd 1 \
		-trace_err -error_file "$dir/uac.err" "127.0.0.1:$P_SB" >"$dir/uac.log" 2>&1 || rc=$?
	for _ in $(seq 300); do
		(($(metric "http://127.0.0.1:$P_HTTP" switchboard_calls_active) == 0)) && break
		sleep 0.1
	done
	c1=$(cpu_ticks "$SB")
	cpu=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$calls" 'BEGIN {printf "%.0f", t / hz / n * 1e6}')
	stop "$SB"
	outbox=-
	posts=-
	if [[ $mode != none ]]; then
		stop "$HOOK"
		posts=$(awk '/^requests/ {print $2}' "$OUT/hook-$mode.log")
		outbox=$("$OUT/outboxcount" "$dir/sb.db")
	fi
	out "| $mode | $calls | $(csv "$dir/uac.csv" 'SuccessfulCall(C)') | $(csv "$dir/uac.csv" 'FailedCall(C)') | $(csv "$dir/uac.csv" 'Retransmissions(C)') | $cpu | $posts | $outbox |"
	((rc == 0)) || log "$mode: sipp exited $rc (see $dir)"
	sleep 2
done
log "results in $RESULTS"
