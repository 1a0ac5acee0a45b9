#!/usr/bin/env bash
# bench/cluster.sh: a Switchboard cluster on this machine, on loopback:
# Kamailio (deploy/kamailio/dispatcher.cfg) in front of NODES `switchboard
# serve` processes that share one PostgreSQL database and one media
# directory. It prints the addresses and runs until Ctrl-C, which stops
# what it started (by PID). deploy/README.md says what each piece does.
#
#   bash bench/cluster.sh                      # two nodes, examples/acme.yaml
#   NODES=3 bash bench/cluster.sh              # three
#   CONFIG=my.yaml bash bench/cluster.sh       # another account (applied once)
#   DB='postgres://u@host/db' bash bench/cluster.sh   # another database
#   OUT=/tmp/sbc bash bench/cluster.sh         # keep logs and data somewhere known
#
# Needs go, kamailio (Debian's package), curl, ss, and PostgreSQL. By
# default the nodes use schema "switchboard_cluster" of the test database
# postgres://postgres@127.0.0.1:5432/test (created with psql if missing).
#
# Ports: a block of free ports above 50000 (or from BASE): Kamailio's SIP
# port is the first, node i listens for SIP on BASE+i and HTTP on BASE+10+i,
# and relays RTP on 20000+1000*i up to 20999+1000*i.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODES=${NODES:-2}
CONFIG=${CONFIG:-$ROOT/examples/acme.yaml}
PGBASE=${PGBASE:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
SCHEMA=${SCHEMA:-switchboard_cluster}
DB=${DB:-$PGBASE&search_path=$SCHEMA}
IP=${IP:-127.0.0.1}
OUT=${OUT:-$(mktemp -d /tmp/sb-cluster.XXXXXX)}
LOG_LEVEL=${LOG_LEVEL:-info}
DRAIN=${DRAIN:-30s}

((NODES >= 1 && NODES <= 9)) || { echo "cluster.sh: NODES must be 1 to 9" >&2; exit 1; }
for tool in go kamailio curl ss; do
	command -v "$tool" >/dev/null || { echo "cluster.sh: $tool is required" >&2; exit 1; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

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

# ours PID: whether PID is still a child of this script.
ours() { [[ $(awk '$1 == "PPid:" {print $2}' "/proc/$1/status" 2>/dev/null) == "$$" ]]; }

# stop PID: SIGTERM (a node drains its calls), then SIGKILL after 40 s.
stop() {
	local pid=$1 i
	ours "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 400); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local i
	trap - EXIT INT TERM
	((${#PIDS[@]})) || return 0
	log "stopping ${#PIDS[@]} processes"
	# Kamailio (the last started) first, then the nodes, newest first.
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		stop "${PIDS[i]}"
	done
	log "stopped; logs in $OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- ports

used_ports() { ss -Hantu | awk '{n = split($5, a, ":"); print a[n]}' | sort -un; }

# free_block N: the first of N consecutive ports that nothing uses now.
free_block() {
	local n=$1 used base try p ok
	used=" $(used_ports | tr '\n' ' ') "
	for try in $(seq 200); do
		base=${BASE:-$((50000 + (RANDOM % 190) * 50))}
		ok=1
		for ((p = base; p < base + n; p++)); do
			[[ $used == *" $p "* ]] && { ok=0; break; }
		done
		((ok)) && { echo "$base"; return; }
		[[ -n ${BASE:-} ]] && break
	done
	echo "cluster.sh: no $n free consecutive ports${BASE:+ at $BASE}" >&2
	exit 1
}

B=$(free_block 20)
P_KAM=$B

# ---------------------------------------------------------------- PostgreSQL

if [[ $DB == postgres* ]]; then
	if command -v pg_isready >/dev/null && ! pg_isready -q -d "$PGBASE"; then
		echo "cluster.sh: PostgreSQL is not answering at $PGBASE (set DB or PGBASE)" >&2
		exit 1
	fi
	if [[ $DB == "$PGBASE&search_path=$SCHEMA" ]]; then
		command -v psql >/dev/null || { echo "cluster.sh: psql is needed to create schema $SCHEMA (or set DB)" >&2; exit 1; }
		psql -q -d "$PGBASE" -c "CREATE SCHEMA IF NOT EXISTS $SCHEMA" >/dev/null
	fi
fi

# ---------------------------------------------------------------- build

BIN=${BIN:-}
if [[ -z $BIN ]]; then
	log "building switchboard into $OUT"
	(cd "$ROOT" && go build -o "$OUT/switchboard" ./cmd/switchboard)
	BIN=$OUT/switchboard
fi

# ---------------------------------------------------------------- nodes

MEDIA=$OUT/media
mkdir -p "$MEDIA"
SECRET=${SWITCHBOARD_SECRET:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}
export SWITCHBOARD_SECRET=$SECRET # every node checks the others' digest nonces
: >"$OUT/dispatcher.list"

# node I: starts node I and waits until it is ready.
node() {
	local i=$1 name="node$1" sip=$((B + $1)) http=$((B + 10 + $1)) rtp=$((20000 + 1000 * $1)) j
	local args=(serve --db "$DB" --node-id "$name" --sip "$IP:$sip" --http "$IP:$http"
		--rtp-ports "$rtp-$((rtp + 999))" --media-dir "$MEDIA" --trusted-proxy "$IP"
		--drain-timeout "$DRAIN" --log-level "$LOG_LEVEL")
	# The first node applies the configuration; the others read it from the
	# database (and hear of later changes by LISTEN/NOTIFY).
	((i == 1)) && [[ -n $CONFIG ]] && args+=(--config "$CONFIG")
	spawn "$name" "$BIN" "${args[@]}"
	for j in $(seq 300); do
		curl -fsS --max-time 1 "http://$IP:$http/readyz" >/dev/null 2>&1 && break
		kill -0 "$BG" 2>/dev/null || { echo "cluster.sh: $name exited (see $OUT/$name.log)" >&2; tail -5 "$OUT/$name.log" >&2; exit 1; }
		((j < 300)) || { echo "cluster.sh: $name not ready after 30 s (see $OUT/$name.log)" >&2; exit 1; }
		sleep 0.1
	done
	echo "$DS_SET sip:$IP:$sip 0 0 node=$name" >>"$OUT/dispatcher.list"
	NODE_LINES+=("  $name  SIP udp+tcp $IP:$sip  HTTP http://$IP:$http  log $OUT/$name.log  (PID $BG)")
}

DS_SET=1
NODE_LINES=()
for i in $(seq "$NODES"); do
	log "starting node$i"
	node "$i"
done

# ---------------------------------------------------------------- Kamailio

log "starting kamailio"
spawn kamailio kamailio -f "$ROOT/deploy/kamailio/dispatcher.cfg" -DD -E -Y "$OUT" -P "$OUT/kamailio.pid" \
	-m 64 -M 8 -A "LISTEN=udp:$IP:$P_KAM" -A "LISTEN_TCP=tcp:$IP:$P_KAM" -A "DS_LIST=\"$OUT/dispatcher.list\"" \
	-A "DS_SET=$DS_SET" -A "DS_PING_INTERVAL=1"
KAM=$BG
for i in $(seq 100); do
	[[ -n $(ss -Hanu "sport = :$P_KAM") ]] && break
	kill -0 "$KAM" 2>/dev/null || { echo "cluster.sh: kamailio exited (see $OUT/kamailio.log)" >&2; tail -5 "$OUT/kamailio.log" >&2; exit 1; }
	sleep 0.1
done

cat <<EOF

Switchboard cluster: $NODES node(s) behind Kamailio, database $DB
  front door (SIP, UDP and TCP; phones and trunks use this)  $IP:$P_KAM   log $OUT/kamailio.log
$(printf '%s\n' "${NODE_LINES[@]}")
  dispatcher list  $OUT/dispatcher.list
  media directory  $MEDIA
  configuration    ${CONFIG:-none} (applied by node1)

Register a phone at $IP:$P_KAM; calls from a trunk reach any node through it.
Try: kill -9 a node's PID and watch Kamailio mark it inactive ($OUT/kamailio.log).
Ctrl-C stops everything.
EOF

# Until Ctrl-C. A node that ends (killed, crashed) is reported once; the
# others go on. Kamailio ending ends the cluster.
declare -A GONE
while :; do
	for pid in "${PIDS[@]}"; do
		if [[ -z ${GONE[$pid]:-} ]] && ! kill -0 "$pid" 2>/dev/null; then
			GONE[$pid]=1
			wait "$pid" 2>/dev/null && rc=0 || rc=$?
			log "process $pid ended (exit $rc)"
			[[ $pid == "$KAM" ]] && exit 1
		fi
	done
	sleep 1
done
