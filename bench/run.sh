#!/usr/bin/env bash
# bench/run.sh: SIP load on loopback in one run (about 7 minutes): the call
# rate that sipp alone, Kamailio and Switchboard sustain, then 1,000
# concurrent Switchboard calls with RTP both ways. Figures and the exact
# command are in docs/benchmarks.md ("SIP load").
#
#   bash bench/run.sh                  # from anywhere; needs go, sipp (Debian
#                                      # sip-tester 3.6.1), kamailio, curl, ss, gawk
#   OUT=/tmp/sbload bash bench/run.sh  # keep the logs somewhere known
#   RATES="100 400" MEDIA_CALLS=200 bash bench/run.sh   # a quick look
#   RATES= MEDIA_DIRECT=0 bash bench/run.sh   # only Switchboard's media run
#   PPROF=1 bash bench/run.sh          # also save goroutine and heap profiles
#                                      # with all media calls up (serve --pprof)
#
# 1. Call rate. The same short call (bench/sipp/uac.xml: INVITE with a PCMA
#    offer, 180, 200, ACK, HOLD_MS held without RTP, BYE) at each rate of
#    RATES for STEP_SECS seconds through three paths, each to a sipp callee
#    (bench/sipp/uas.xml):
#      (a) direct: sipp caller -> sipp callee, the tools' own limit;
#      (b) kamailio: through bench/kamailio.cfg, a transaction-stateful proxy
#          (tm, sl, rr, maxfwd, textops; no media, no database);
#      (c) switchboard: the number routed to the trunk, so two dialogs, two
#          RTP sessions and a relay are set up per call.
#    A path's ladder stops at its first rate with a failed call. Switchboard
#    then holds its best rate for SUSTAIN_SECS (and the rate below if that
#    fails): its SIP transactions live 32 s after each call, so a 5 s step is
#    not its steady state. Reported per step: sipp's successful and failed
#    calls and retransmissions, the rate sipp reached, mean INVITE->200 (sipp
#    counts whole milliseconds), CPU per call of the middle box (utime+stime
#    from /proc/PID/stat of all its processes; for (a) the callee) and
#    receive-buffer drops on the SIP sockets (/proc/net/udp).
# 2. Media. MEDIA_CALLS calls set up at MEDIA_RATE calls/s; each caller sends
#    20 ms PCMA packets (the audio of /usr/share/sip-tester/g711a.pcap, made
#    raw by bench/pcapaudio, sent by sipp's rtp_stream from one thread so its
#    packet counter is exact) for MEDIA_SECS s; the callee's SDP points at
#    bench/rtpecho, which sends every packet back. First directly (the tools'
#    floor), then through a fresh Switchboard. All streams stop 8 s before
#    the calls hang up, and in that window every counter is read:
#      sent    sipp caller's "Total RTP pckts sent" (screen dump on SIGUSR2)
#      A->B    rtpecho's received count
#      B->A    rtpecho's sent count against what reached the caller's RTP
#              socket, which sipp never reads: its drops plus queued packets
#              from /proc/net/udp (queued = rx_queue / 832 bytes, the truesize
#              of one 172-byte RTP datagram on loopback)
#      kernel  drops on Switchboard's and rtpecho's sockets (/proc/net/udp)
#    Switchboard is sampled every second from /proc/PID (RSS, threads, fds,
#    CPU) and /metrics (calls, goroutines, heap in use); GODEBUG=gctrace=1
#    gives the live heap after each GC. Samples again once the calls are gone
#    and after IDLE_WAIT s plus one GC, to show the idle level is back.
#
# Everything listens on 127.0.0.1: a block of free ports above 50000 for SIP
# and the tools, RTP_PORTS_LADDER and RTP_PORTS_MEDIA for the two
# Switchboard processes. Every process is started by this script and
# stopped by its PID (trap on exit). Results: $OUT/results.md, printed as it
# goes; logs, sipp CSVs, error files and per-second samples are in $OUT.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
RATES=${RATES-"100 200 400 700 1000 1500"} # empty: no call-rate steps
STEP_SECS=${STEP_SECS:-5}
HOLD_MS=${HOLD_MS:-500}
MEDIA_CALLS=${MEDIA_CALLS:-1000}
MEDIA_RATE=${MEDIA_RATE:-250}
MEDIA_SECS=${MEDIA_SECS:-20}
RTP_PORTS_LADDER=${RTP_PORTS_LADDER:-20000-29999}
RTP_PORTS_MEDIA=${RTP_PORTS_MEDIA:-40000-47999}
SUSTAIN_SECS=${SUSTAIN_SECS:-40}
IDLE_WAIT=${IDLE_WAIT:-40}
MEDIA_DIRECT=${MEDIA_DIRECT:-1} # 0: skip the tools' own media run (the floor)
PPROF=${PPROF:-} # set: serve --pprof (needs a binary that has it); profiles saved at the media peak
OUT=${OUT:-$(mktemp -d /tmp/sb-bench.XXXXXX)}
NUMBER=+34910000000
TRUESIZE=832 # bytes of receive buffer one queued 172-byte datagram takes
HZ=$(getconf CLK_TCK)

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.md
: >"$RESULTS"

for tool in go sipp kamailio curl ss awk; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done

# ---------------------------------------------------------------- processes

PIDS=()

# spawn NAME CMD...: start CMD in the background with its output in
# $OUT/NAME.log; its PID is in $BG.
spawn() {
	local name=$1
	shift
	"$@" >"$OUT/$name.log" 2>&1 &
	BG=$!
	PIDS+=("$BG")
}

# ours PID: whether PID is still a child of this script (and not a
# recycled PID that now belongs to someone else).
ours() { [[ $(awk '$1 == "PPid:" {print $2}' "/proc/$1/status" 2>/dev/null) == "$$" ]]; }

# stop PID: SIGTERM, then SIGKILL after 5 s; reaps it.
stop() {
	local pid=$1 i
	ours "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		stop "$pid"
	done
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
out() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

# ---------------------------------------------------------------- ports

# used_ports: every local TCP or UDP port in use, one a line.
used_ports() { ss -Hantu | awk '{n = split($5, a, ":"); print a[n]}' | sort -un; }

# free_block N: the first port of N consecutive ports above 50000 that
# nothing uses now.
free_block() {
	local n=$1 used base try p ok
	used=" $(used_ports | tr '\n' ' ') "
	for try in $(seq 200); do
		base=$((50000 + (RANDOM % 190) * 50))
		ok=1
		for ((p = base; p < base + n; p++)); do
			[[ $used == *" $p "* ]] && { ok=0; break; }
		done
		((ok)) && { echo "$base"; return; }
	done
	echo "run.sh: no $n free consecutive ports above 50000" >&2
	exit 1
}

B=$(free_block 56)
P_UAC=$B           P_UAC_CP=$((B + 1))  P_UAC_MP=$((B + 2))   # sipp binds mp and mp+2
P_UAS_A=$((B + 6)) P_UAS_A_CP=$((B + 7))  P_UAS_A_MP=$((B + 8))
P_UAS_B=$((B + 12)) P_UAS_B_CP=$((B + 13)) P_UAS_B_MP=$((B + 14))
P_UAS_C=$((B + 18)) P_UAS_C_CP=$((B + 19)) P_UAS_C_MP=$((B + 20))
P_KAM=$((B + 24))
P_SB1=$((B + 26)) P_SB1_HTTP=$((B + 27))
P_SB2=$((B + 28)) P_SB2_HTTP=$((B + 29))
P_ECHO_D=$((B + 30)) P_ECHO_S=$((B + 32))
P_UAS_MD=$((B + 34)) P_UAS_MD_CP=$((B + 35)) P_UAS_MD_MP=$((B + 36))
P_UAS_MS=$((B + 40)) P_UAS_MS_CP=$((B + 41)) P_UAS_MS_MP=$((B + 42))
P_UACM=$((B + 46)) P_UACM_CP=$((B + 47)) P_UACM_MP=$((B + 48))

# ---------------------------------------------------------------- /proc

# cpu_ticks PID...: utime+stime of the processes, in clock ticks.
cpu_ticks() {
	local pid total=0 f
	for pid in "$@"; do
		f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		f=${f##*) } # fields after "(comm) "; utime and stime are 14 and 15
		read -r -a a <<<"$f"
		total=$((total + a[11] + a[12]))
	done
	echo "$total"
}

# status_kb PID FIELD: a field of /proc/PID/status (VmRSS, VmHWM: kB; Threads).
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

fds() { ls "/proc/$1/fd" | wc -l; }

# socket_inodes PID: the inodes of the process's sockets, one a line.
socket_inodes() {
	find "/proc/$1/fd" -type l -printf '%l\n' 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p'
}

# udp_drops_pid PID: drops summed over the process's UDP sockets.
udp_drops_pid() {
	awk 'NR == FNR {want[$1] = 1; next} FNR > 1 && ($10 in want) {d += $13} END {print d + 0}' \
		<(socket_inodes "$1") /proc/net/udp
}

# udp_port PORT: "drops rx_queue_bytes" of the IPv4 UDP socket bound to
# 127.0.0.1:PORT.
udp_port() {
	awk -v p="$(printf '0100007F:%04X' "$1")" '$2 == p {split($5, q, ":"); print $13, strtonum("0x" q[2]); f = 1} END {if (!f) print "0 0"}' /proc/net/udp
}

# metric URL NAME: a sample's value from /metrics (0 when absent).
metric() {
	curl -fsS --max-time 2 "$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n {v = $2} END {print v + 0}'
}

# ---------------------------------------------------------------- sipp

# csv FILE COLUMN: a column of the last line of a sipp -trace_stat file.
csv() {
	awk -F';' -v c="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == c) k = i; next} {v = $k} END {print v}' "$1"
}

# rate_achieved FILE: the mean call rate sipp reached over the 1-second
# periods in which it created calls, the first and last (partial) ones left
# out when there are more than two.
rate_achieved() {
	awk -F';' 'NR == 1 {for (i = 1; i <= NF; i++) {if ($i == "OutgoingCall(P)") o = i; if ($i == "CallRate(P)") r = i}; next}
		$o > 0 {k++; v[k] = $r}
		END {a = 1; b = k; if (k > 2) {a = 2; b = k - 1}; for (i = a; i <= b; i++) s += v[i]; if (b >= a) printf "%.0f", s / (b - a + 1); else print 0}' "$1"
}

# ms HH:MM:SS:USEC -> milliseconds with one decimal.
ms() { awk -F: '{printf "%.1f", ($1 * 3600 + $2 * 60 + $3) * 1000 + $4 / 1000}' <<<"$1"; }

# uas NAME PORT CP MP SDP_PORT: a callee that answers every call.
uas() {
	spawn "$1" sipp -sf "$BENCH/sipp/uas.xml" -i 127.0.0.1 -p "$2" -cp "$3" -mp "$4" \
		-key sdp_port "$5" -nostdin -trace_err -error_file "$OUT/$1.err"
	UAS_PID=$BG
	wait_udp "$2"
}

# wait_udp PORT: until something is bound to 127.0.0.1:PORT (10 s).
wait_udp() {
	local i
	for i in $(seq 100); do
		[[ -n $(ss -Hanu "sport = :$1") ]] && return 0
		sleep 0.1
	done
	echo "run.sh: nothing listening on udp $1 (see $OUT)" >&2
	exit 1
}

# ---------------------------------------------------------------- build

log "building into $OUT"
(cd "$ROOT" && go build -o "$OUT/switchboard" ./cmd/switchboard &&
	go build -o "$OUT/rtpecho" ./bench/rtpecho && go build -o "$OUT/pcapaudio" ./bench/pcapaudio)
"$OUT/pcapaudio" /usr/share/sip-tester/g711a.pcap >"$OUT/pcma.raw"

sb_config() { # FILE UAS_PORT
	cat >"$1" <<EOF
account: bench
defaults: { trunk: carrier }
trunks:
  carrier: { address: "sip:127.0.0.1:$2", inbound_from: ["127.0.0.1/32"] }
extensions:
  out: { destination: "+34600000003" }
numbers:
  "$NUMBER": { extension: out }
EOF
}

# switchboard NAME SIP HTTP RTP_PORTS UAS_PORT [ENV...]: starts a server
# with its own database and waits until it is ready; PID in $SB_PID.
switchboard() {
	local name=$1 sip=$2 http=$3 rtp=$4 uas=$5 i
	shift 5
	mkdir -p "$OUT/$name"
	sb_config "$OUT/$name/config.yaml" "$uas"
	spawn "$name" env "$@" "$OUT/switchboard" serve --db "sqlite:$OUT/$name/sb.db" \
		--config "$OUT/$name/config.yaml" --sip "127.0.0.1:$sip" --http "127.0.0.1:$http" \
		--rtp-ports "$rtp" --log-level warn ${PPROF:+--pprof}
	SB_PID=$BG
	for i in $(seq 100); do
		curl -fsS --max-time 1 "http://127.0.0.1:$http/readyz" >/dev/null 2>&1 && return 0
		kill -0 "$SB_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "run.sh: $name did not become ready (see $OUT/$name.log)" >&2
	exit 1
}

# ---------------------------------------------------------------- 1. rates

{
	echo "# SIP load, $(date -u +'%F %T') UTC"
	echo
	echo "- machine: $(nproc) CPU ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
	echo "- $(sipp -v 2>&1 | awk '/SIPp/ {print $1, $2; exit}'), $(kamailio -v 2>&1 | head -1), $(go version | awk '{print $3}'), switchboard $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?')"
	echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares its $(nproc) CPUs with the run)"
	echo "- short call: INVITE (PCMA offer) / 180 / 200 / ACK / ${HOLD_MS} ms / BYE / 200, no RTP; ${STEP_SECS} s per rate"
	echo
} | tee -a "$RESULTS"

out "| path | target cps | calls | ok | failed | retrans | sipp cps | INVITE→200 ms | middle CPU µs/call | SIP socket drops: middle / caller / callee |"
out "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

declare -A BEST

# step PATH HOST_PORT PIDS_FN UAS_PORT RATE SECS LABEL: one run of short
# calls at RATE for SECS seconds and its table row; fails if a call failed.
step() {
	local path=$1 dest=$2 pidsfn=$3 uasport=$4 rate=$5 secs=$6 label=$7
	local calls=$(($5 * $6)) csvf=$OUT/rate-$path-$5-$6s.csv rc=0 ok failed retrans achieved rtt c0 c1 d0 d1 u0 u1 e1= cpu drops
	c0=$(cpu_ticks $($pidsfn))
	d0=$(sip_drops "$path")
	read -r u0 _ < <(udp_port "$uasport")
	spawn "uac-$path-$rate-${secs}s" sipp -sf "$BENCH/sipp/uac.xml" -i 127.0.0.1 -p "$P_UAC" -cp "$P_UAC_CP" \
		-mp "$P_UAC_MP" -s "$NUMBER" -d "$HOLD_MS" -r "$rate" -m "$calls" -l "$((rate * 4))" \
		-recv_timeout 10000 -timeout "$((secs + 40))s" -timeout_error \
		-nostdin -trace_stat -stf "$csvf" -fd 1 -trace_err -error_file "$OUT/uac-$path-$rate-${secs}s.err" "$dest"
	# The caller's socket is gone once sipp exits: read it until then.
	while kill -0 "$BG" 2>/dev/null; do
		read -r e1 _ < <(udp_port "$P_UAC")
		sleep 0.2
	done
	wait "$BG" || rc=$?
	[[ $path == switchboard ]] && drain "http://127.0.0.1:$P_SB1_HTTP" 30
	c1=$(cpu_ticks $($pidsfn))
	d1=$(sip_drops "$path")
	read -r u1 _ < <(udp_port "$uasport")
	ok=$(csv "$csvf" 'SuccessfulCall(C)')
	failed=$(csv "$csvf" 'FailedCall(C)')
	retrans=$(csv "$csvf" 'Retransmissions(C)')
	achieved=$(rate_achieved "$csvf")
	rtt=$(ms "$(csv "$csvf" 'ResponseTime1(C)')")
	cpu=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$calls" 'BEGIN {printf "%.0f", t / hz / n * 1e6}')
	drops="$((d1 - d0)) / ${e1:-?} / $((u1 - u0))"
	[[ $path == direct ]] && drops="- / ${e1:-?} / $((u1 - u0))"
	out "| $label | $rate | $calls | $ok | $failed | $retrans | $achieved | $rtt | $cpu | $drops |"
	if ((rc != 0 || failed > 0 || ok != calls)); then
		log "$label: $failed failed at $rate cps (sipp exit $rc)"
		return 1
	fi
	return 0
}

# ladder PATH HOST_PORT PIDS_FN UAS_PORT: every rate until the first failure.
ladder() {
	local rate
	BEST[$1]=none
	for rate in $RATES; do
		step "$1" "$2" "$3" "$4" "$rate" "$STEP_SECS" "$1" || return 0
		BEST[$1]=$rate
		sleep 1
	done
}

# sip_drops PATH: receive drops on the SIP socket of the path's middle box.
sip_drops() {
	case $1 in
	direct) udp_port "$P_UAS_A" | awk '{print $1}' ;;
	kamailio) udp_port "$P_KAM" | awk '{print $1}' ;;
	switchboard) udp_port "$P_SB1" | awk '{print $1}' ;;
	esac
}

# drain URL SECS: until the server has no call in progress.
drain() {
	local i
	for i in $(seq $(($2 * 10))); do
		(($(metric "$1" switchboard_calls_active) == 0)) && return 0
		sleep 0.1
	done
	log "calls still active after $2 s"
}

# (a) direct
uas uas-direct "$P_UAS_A" "$P_UAS_A_CP" "$P_UAS_A_MP" "$P_UAS_A_MP"
UAS_A=$UAS_PID
pids_direct() { echo "$UAS_A"; }
log "rates: direct"
ladder direct "127.0.0.1:$P_UAS_A" pids_direct "$P_UAS_A"
stop "$UAS_A"

# (b) Kamailio
uas uas-kamailio "$P_UAS_B" "$P_UAS_B_CP" "$P_UAS_B_MP" "$P_UAS_B_MP"
UAS_B=$UAS_PID
spawn kamailio kamailio -f "$BENCH/kamailio.cfg" -DD -E -l "udp:127.0.0.1:$P_KAM" \
	-A 'UAS_IP="127.0.0.1"' -A "UAS_PORT=\"$P_UAS_B\"" -P "$OUT/kamailio.pid" -m 512 -M 16 -Y "$OUT"
KAM=$BG
wait_udp "$P_KAM"
pids_kamailio() { echo "$KAM" $(ps -o pid= --ppid "$KAM"); }
log "rates: kamailio"
ladder kamailio "127.0.0.1:$P_KAM" pids_kamailio "$P_UAS_B"
stop "$KAM"
stop "$UAS_B"

# (c) Switchboard
uas uas-switchboard "$P_UAS_C" "$P_UAS_C_CP" "$P_UAS_C_MP" "$P_UAS_C_MP"
UAS_C=$UAS_PID
switchboard sb-ladder "$P_SB1" "$P_SB1_HTTP" "$RTP_PORTS_LADDER" "$P_UAS_C" GODEBUG=gctrace=1
SB1=$SB_PID
SB1_URL=http://127.0.0.1:$P_SB1_HTTP
SB1_IDLE="rss=$(status_kb "$SB1" VmRSS)kB heap=$(metric "$SB1_URL" go_memstats_heap_inuse_bytes) goroutines=$(metric "$SB1_URL" go_goroutines) fds=$(fds "$SB1")"
pids_switchboard() { echo "$SB1"; }
log "rates: switchboard"
ladder switchboard "127.0.0.1:$P_SB1" pids_switchboard "$P_UAS_C"
# SIP transactions live 32 s after a call (RFC 3261 timers), so a short step
# does not reach the steady state: hold the best rate for SUSTAIN_SECS.
# Tried at the best step rate, then at the rate below it if that fails.
SUSTAINED=none
if [[ ${BEST[switchboard]} != none ]] && ((SUSTAIN_SECS > 0)); then
	best=${BEST[switchboard]}
	tries=$(for r in $RATES; do if ((r <= best)); then echo "$r"; fi; done | sort -rn | head -2)
	for r in $tries; do
		sleep 5
		log "rates: switchboard sustained $r cps for ${SUSTAIN_SECS} s"
		if step switchboard "127.0.0.1:$P_SB1" pids_switchboard "$P_UAS_C" "$r" "$SUSTAIN_SECS" \
			"switchboard, ${SUSTAIN_SECS} s"; then
			SUSTAINED=$r
			break
		fi
		SUSTAINED="below $r"
	done
fi
SB1_END=$(date +%s)
SB1_HWM=$(status_kb "$SB1" VmHWM)
stop "$UAS_C"

out ""
out "Highest rate with no failed call (${STEP_SECS} s steps): direct ${BEST[direct]}, Kamailio ${BEST[kamailio]}, Switchboard ${BEST[switchboard]} calls/s; Switchboard for ${SUSTAIN_SECS} s: $SUSTAINED calls/s."
out "Switchboard live heap after GC during the ladder (GODEBUG=gctrace=1): $(awk '/^gc [0-9]+ @/ && match($0, /[0-9]+->[0-9]+->([0-9]+) MB/, m) {v = m[1] + 0; if (v > mx) mx = v} END {printf "max %d MB", mx}' "$OUT/sb-ladder.log"); peak RSS $((SB1_HWM / 1024)) MiB"
out "Switchboard after the ladder: $(curl -fsS "$SB1_URL/metrics" | awk '/^switchboard_calls_total/ {printf "%s ", $0}')"

# ---------------------------------------------------------------- 2. media

# sample PID URL FILE: one line of the per-second samples.
sample() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date +%s.%N | cut -c1-14)" \
		"$(metric "$2" switchboard_calls_active)" "$(metric "$2" go_goroutines)" \
		"$(metric "$2" go_memstats_heap_inuse_bytes)" "$(status_kb "$1" VmRSS)" \
		"$(status_kb "$1" Threads)" "$(fds "$1")" "$(cpu_ticks "$1")" >>"$3"
}

# media NAME DEST UAS_PORT UAS_CP UAS_MP ECHO_PORT [SB_PID SB_URL]
media() {
	local name=$1 dest=$2 uport=$3 ucp=$4 ump=$5 eport=$6 sbpid=${7:-} url=${8:-}
	local echo_pid uas_pid uac_pid screen snap=0 now last inn sent e_in e_out x_drops x_q recv
	local samples=$OUT/$name.samples.tsv active_at_snap=- sb_drops=- echo_drops=? c0 c1 t0 t1 rc
	spawn "echo-$name" "$OUT/rtpecho" -listen "127.0.0.1:$eport" -stats "$OUT/$name.echo"
	echo_pid=$BG
	uas "uas-$name" "$uport" "$ucp" "$ump" "$eport"
	uas_pid=$UAS_PID
	wait_udp "$eport"
	printf 'time\tactive\tgoroutines\theap_inuse\trss_kb\tthreads\tfds\tcpu_ticks\n' >"$samples"
	[[ -n $sbpid ]] && { sample "$sbpid" "$url" "$samples"; c0=$(cpu_ticks "$sbpid"); }
	t0=$(date +%s)
	# sipp writes the screen dump and reads pcma.raw in its working directory.
	(cd "$OUT" && exec sipp -sf "$BENCH/sipp/uac_media.xml" -i 127.0.0.1 -p "$P_UACM" -cp "$P_UACM_CP" \
		-mp "$P_UACM_MP" -s "$NUMBER" -d "$((MEDIA_SECS * 1000))" -r "$MEDIA_RATE" -m "$MEDIA_CALLS" \
		-l "$((MEDIA_CALLS + 100))" -rtp_threadtasks "$MEDIA_CALLS" -recv_timeout 15000 -timeout "$((MEDIA_SECS + 60))s" -timeout_error \
		-nostdin -trace_stat -stf "$OUT/$name.csv" -fd 1 -trace_err -error_file "$OUT/$name.err" "$dest") \
		>"$OUT/uac-$name.log" 2>&1 &
	uac_pid=$!
	PIDS+=("$uac_pid")
	while kill -0 "$uac_pid" 2>/dev/null; do
		[[ -n $sbpid ]] && sample "$sbpid" "$url" "$samples"
		if ((!snap)) && [[ -s $OUT/$name.echo ]]; then
			read -r inn last < <(sed 's/[a-z_]*=//g' "$OUT/$name.echo" | awk '{print $1, $5}')
			now=$(date +%s%3N)
			# Every stream has stopped: read every counter while the calls are up.
			if ((inn > 0 && now - last > 1500 && $(date +%s) - t0 > MEDIA_SECS)); then
				snap=1
				[[ -n $sbpid ]] && { active_at_snap=$(metric "$url" switchboard_calls_active); sb_drops=$(udp_drops_pid "$sbpid"); }
				if [[ -n $sbpid && -n ${PPROF:-} ]]; then
					curl -fsS "$url/debug/pprof/goroutine?debug=1" -o "$OUT/$name.goroutines.txt" || true
					curl -fsS "$url/debug/pprof/heap?gc=1" -o "$OUT/$name.heap.pb.gz" || true
				fi
				read -r x_drops x_q < <(udp_port "$P_UACM_MP")
				read -r echo_drops _ < <(udp_port "$eport")
				cp "$OUT/$name.echo" "$OUT/$name.echo.snap"
				kill -USR2 "$uac_pid"
			fi
		fi
		sleep 1
	done
	rc=0
	wait "$uac_pid" || rc=$?
	t1=$(date +%s)
	screen=$(ls -t "$OUT"/uac_media_*_screen.log 2>/dev/null | head -1)
	sent=$(awk '/Total RTP pckts sent/ {v = $1} END {print v + 0}' "${screen:-/dev/null}")
	mv "${screen:-/dev/null}" "$OUT/$name.screen.log" 2>/dev/null || true
	read -r e_in e_out < <(sed 's/[a-z_]*=//g' "$OUT/$name.echo.snap" 2>/dev/null | awk '{print $1, $2}' || echo "0 0")
	recv=$((${x_drops:-0} + ${x_q:-0} / TRUESIZE))
	stop "$uas_pid"
	stop "$echo_pid"
	MEDIA_OK=$(csv "$OUT/$name.csv" 'SuccessfulCall(C)')
	MEDIA_FAILED=$(csv "$OUT/$name.csv" 'FailedCall(C)')
	out ""
	out "### media: $name ($MEDIA_CALLS calls at $MEDIA_RATE calls/s, RTP ${MEDIA_SECS} s each way; sipp exit $rc)"
	out ""
	out "- calls: $MEDIA_OK ok, $MEDIA_FAILED failed; calls up when counters were read: ${active_at_snap}"
	out "- packets: caller sent $sent; callee received $e_in and echoed $e_out; caller's socket received $recv (drops ${x_drops:-?} + ${x_q:-?} B queued)"
	out "- loss: A→B $(loss "$sent" "$e_in"), B→A $(loss "$e_out" "$recv"), round trip $(loss "$sent" "$recv")"
	out "- kernel drops on rtpecho's socket: $echo_drops"
	[[ -n $sbpid ]] && out "- kernel drops on Switchboard's sockets: $sb_drops"
	if [[ -n $sbpid ]]; then
		c1=$(cpu_ticks "$sbpid")
		MEDIA_CPU=$((c1 - c0))
		MEDIA_T=$((t1 - t0))
	fi
	return 0
}

loss() { awk -v s="$1" -v r="$2" 'BEGIN {if (s > 0) printf "%.4f %% (%d of %d)", (s - r) * 100 / s, s - r, s; else print "n/a"}'; }

if ((MEDIA_DIRECT)); then
	log "media: direct"
	media media-direct "127.0.0.1:$P_UAS_MD" "$P_UAS_MD" "$P_UAS_MD_CP" "$P_UAS_MD_MP" "$P_ECHO_D"
fi

log "media: switchboard"
switchboard sb-media "$P_SB2" "$P_SB2_HTTP" "$RTP_PORTS_MEDIA" "$P_UAS_MS" GODEBUG=gctrace=1
SB2=$SB_PID
SB2_URL=http://127.0.0.1:$P_SB2_HTTP
sleep 2
media media-switchboard "127.0.0.1:$P_SB2" "$P_UAS_MS" "$P_UAS_MS_CP" "$P_UAS_MS_MP" "$P_ECHO_S" "$SB2" "$SB2_URL"
drain "$SB2_URL" 30
S=$OUT/media-switchboard.samples.tsv
sample "$SB2" "$SB2_URL" "$S"
AFTER=$(tail -1 "$S")
# Idle again: SIP transactions (Timer J, 32 s) gone, and at least one GC
# since the calls ended, so that heap in use is not garbage waiting for one:
# an idle Go process collects only when forced, 2 min after its last GC.
gcs() { grep -cE '^gc [0-9]+ @' "$OUT/sb-media.log" || true; }
GC0=$(gcs)
log "media: waiting ${IDLE_WAIT} s for SIP transaction timers, then for a GC (at most 150 s)"
sleep "$IDLE_WAIT"
for i in $(seq 150); do
	(($(gcs) > GC0)) && break
	sleep 1
done
sleep 1
sample "$SB2" "$SB2_URL" "$S"
IDLE_AFTER=$(tail -1 "$S")
ls -l "/proc/$SB2/fd" >"$OUT/sb-media.fds" 2>&1 || true
HWM=$(status_kb "$SB2" VmHWM)
# GODEBUG=gctrace=1 lines: "gc N @T s P%: ... A->B->C MB, ..." (C: heap live after marking).
LIVE=$(awk '/^gc [0-9]+ @/ && match($0, /[0-9]+->[0-9]+->([0-9]+) MB/, m) {n++; v = m[1] + 0; if (n == 1) first = v; if (v > mx) mx = v; last = v}
	END {printf "%d GCs; live heap after marking: first %s MB, max %s MB, last %s MB", n, first, mx, last}' "$OUT/sb-media.log")

# Idle (first sample), busy (median of the samples with every call up),
# after (calls gone), idle again (after IDLE_WAIT).
awk -F'\t' -v n="$MEDIA_CALLS" -v hz="$HZ" -v cpu="${MEDIA_CPU:-0}" -v secs="$MEDIA_SECS" \
	-v after="$AFTER" -v idle2="$IDLE_AFTER" -v hwm="$HWM" '
NR == 2 {g0 = $3; h0 = $4; r0 = $5; t0 = $6; f0 = $7}
NR > 2 && $2 == n {k++; g[k] = $3; h[k] = $4; r[k] = $5; t[k] = $6; f[k] = $7}
function med(a, k,   i, j, x) {for (i = 2; i <= k; i++) {x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x} return a[int((k + 1) / 2)]}
END {
	if (!k) {print "\n- no sample had all " n " calls up"; exit}
	G = med(g, k); H = med(h, k); R = med(r, k); T = med(t, k); F = med(f, k)
	split(after, a, "\t"); split(idle2, b, "\t")
	printf "\n| Switchboard | idle before | %d calls up (median of %d s) | calls ended | +idle wait |\n", n, k
	printf "|---|---:|---:|---:|---:|\n"
	printf "| goroutines | %d | %d | %d | %d |\n", g0, G, a[3], b[3]
	printf "| heap in use (MiB) | %.1f | %.1f | %.1f | %.1f |\n", h0 / 1048576, H / 1048576, a[4] / 1048576, b[4] / 1048576
	printf "| RSS (MiB) | %.1f | %.1f | %.1f | %.1f |\n", r0 / 1024, R / 1024, a[5] / 1024, b[5] / 1024
	printf "| OS threads | %d | %d | %d | %d |\n", t0, T, a[6], b[6]
	printf "| file descriptors | %d | %d | %d | %d |\n", f0, F, a[7], b[7]
	printf "\n- per active call: %.1f goroutines, %.1f KiB heap in use, %.1f KiB RSS (peak RSS %.1f MiB), %.1f fds\n", \
		(G - g0) / n, (H - h0) / 1024 / n, (R - r0) / n, hwm / 1024, (F - f0) / n
	printf "- CPU: %.2f s over the run = %.2f ms per call, i.e. %.1f %% of one core per 100 calls relaying RTP both ways\n", \
		cpu / hz, cpu / hz / n * 1000, cpu / hz / secs / n * 100 * 100
}' "$S" | tee -a "$RESULTS"
out "- Go GC (GODEBUG=gctrace=1): $LIVE"
out "- Switchboard log lines at warn or above: $(grep -cE 'level=(WARN|ERROR)' "$OUT/sb-media.log" || true) (media), $(grep -cE 'level=(WARN|ERROR)' "$OUT/sb-ladder.log" || true) (ladder)"

# The ladder server, idle since its last step.
ls -l "/proc/$SB1/fd" >"$OUT/sb-ladder.fds" 2>&1 || true
out "- ladder server: before $SB1_IDLE; $(($(date +%s) - SB1_END)) s after its last call rss=$(status_kb "$SB1" VmRSS)kB heap=$(metric "$SB1_URL" go_memstats_heap_inuse_bytes) goroutines=$(metric "$SB1_URL" go_goroutines) fds=$(fds "$SB1"); its last GC: $(grep -E '^gc [0-9]+ @' "$OUT/sb-ladder.log" | tail -1)"

out "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"

stop "$SB2"
stop "$SB1"
log "done: $RESULTS"
