#!/usr/bin/env bash
# bench/heap.sh: Switchboard's heap during and after a sustained call rate
# (docs/benchmarks.md, "Heap held by finished SIP transactions").
#
#   OUT=/tmp/sbmem RATE=1000 SECS=40 bash bench/heap.sh
#
# sipp calls the trunk-routed number (bench/sipp/uac.xml, 500 ms calls) at
# RATE for SECS seconds; RSS, goroutines and heap in use are sampled during
# the run and every 15 s for a minute after it, and heap profiles
# (serve --pprof, after a GC) are saved in $OUT near the end of the load,
# when it ends and a minute later. Ports 51010-51042 and RTP 20000-29999
# on 127.0.0.1; every process is started here and stopped by its PID.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$ROOT/bench O=${OUT:-$(mktemp -d /tmp/sb-heap.XXXXXX)} RATE=${RATE:-1000} SECS=${SECS:-40}
mkdir -p "$O"
(cd "$ROOT" && go build -o "$O/switchboard" ./cmd/switchboard) || exit 1
cat > "$O/config.yaml" <<Y
account: bench
defaults: { trunk: carrier }
trunks:
  carrier: { address: "sip:127.0.0.1:51010", inbound_from: ["127.0.0.1/32"] }
extensions:
  out: { destination: "+34600000003" }
numbers:
  "+34910000000": { extension: out }
Y
rm -f $O/sb.db*
sipp -sf $B/sipp/uas.xml -i 127.0.0.1 -p 51010 -cp 51011 -mp 51012 -key sdp_port 51020 -nostdin >$O/uas.log 2>&1 &
UAS=$!
$O/switchboard serve --db sqlite:$O/sb.db --config "$O/config.yaml" --sip 127.0.0.1:51030 --http 127.0.0.1:51031 --rtp-ports 20000-29999 --log-level warn --pprof > $O/sb.log 2>&1 &
SB=$!
trap 'kill -TERM $SB $UAS ${UAC:-} 2>/dev/null' EXIT
for i in $(seq 100); do curl -fsS --max-time 1 http://127.0.0.1:51031/readyz >/dev/null 2>&1 && break; sleep 0.1; done
sample() { echo "$1 rss_kb=$(awk '/VmRSS/{print $2}' /proc/$SB/status) $(curl -fsS http://127.0.0.1:51031/metrics | grep -E '^go_memstats_heap_inuse_bytes|^go_goroutines' | tr '\n' ' ')"; }
sample idle
sipp -sf $B/sipp/uac.xml -i 127.0.0.1 -p 51040 -cp 51041 -mp 51042 -s +34910000000 -d 500 -r $RATE -m $((RATE * SECS)) -l $((RATE * 4)) -recv_timeout 10000 -timeout $((SECS + 40))s -timeout_error -nostdin -trace_stat -stf $O/uac.csv -fd 1 127.0.0.1:51030 > $O/uac.log 2>&1 &
UAC=$!
last=0
for t in $((SECS / 4)) $((SECS / 2)) $((SECS * 3 / 4)) $((SECS - 2)); do sleep $((t - last)); last=$t; sample "t=${t}s"; done
curl -fsS "http://127.0.0.1:51031/debug/pprof/heap?gc=1" -o $O/heap-load.pb.gz
wait $UAC; echo "sipp rc=$?"; sample "end"
curl -fsS "http://127.0.0.1:51031/debug/pprof/heap?gc=1" -o $O/heap-end.pb.gz
for w in 15 30 45 60; do sleep 15; sample "end+${w}s"; done
curl -fsS "http://127.0.0.1:51031/debug/pprof/heap?gc=1" -o $O/heap-end60.pb.gz
tail -1 $O/uac.csv | tr ';' '\n' | paste -d= <(head -1 $O/uac.csv | tr ';' '\n') - | grep -E '^(SuccessfulCall|FailedCall|Retransmissions)\(C\)'
echo "profiles: go tool pprof -top $O/switchboard $O/heap-load.pb.gz (heap-end, heap-end60)"
