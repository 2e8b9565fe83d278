#!/usr/bin/env bash
# Real kith and kith-relay processes on loopback:
#  - two nodes that know each other only by id find each other through the
#    relay (no addresses given) and sync directly;
#  - two nodes that do not listen at all (reachable only through a relayed
#    circuit) still converge;
#  - the relay is killed mid-sync: the direct pair keeps syncing; after a
#    restart on the same port the circuit pair reconnects and converges;
#  - garbage on the relay's port is refused while the nodes keep syncing.
set -u
kith="$1"
relay="$2"
root="$(mktemp -d)"
. "$(dirname "$0")/net_lib.sh"

start_with_relay() { # start_with_relay <name> <listen>
  local n="$1"
  rm -f "$root/$n/api.addr"
  "$kith" -d "$root/$n" run --listen "$2" --api 127.0.0.1:0 --anti-entropy 1 \
    --relay "$relay_at" >>"$root/$n.log" 2>&1 &
  eval "pid_$n=$!"; pids+=("$!")
  wait_for "node $n starts" 10 test -s "$root/$n/api.addr"
}
connected_to() { # connected_to <node> <peer id> [address prefix]
  k "$1" peers 2>/dev/null | python3 -c '
import json, sys
peers = json.load(sys.stdin)
want, prefix = sys.argv[1], sys.argv[2]
ok = any(p["id"] == want and p["state"] == "connected" and p["address"].startswith(prefix) for p in peers)
sys.exit(0 if ok else 1)' "$2" "${3:-}"
}

start_relay
relay_addr="$(cat "$root/relay/relay.addr")"
relay_at="$relay_addr#$(cat "$root/relay/relay.id")"
for n in a b c d; do k "$n" init >/dev/null 2>&1 || fail "init $n"; done
ida="$(k a id)"; idb="$(k b id)"; idc="$(k c id)"; idd="$(k d id)"
start_with_relay a 127.0.0.1:0
start_with_relay b 127.0.0.1:0
start_with_relay c ""   # listens nowhere: reachable only through the relay
start_with_relay d ""

# Discovery through the relay only.
k a post "a's first" >/dev/null
k b follow "$ida" 2>/dev/null || fail "b follows a by id"
k a follow "$idb" 2>/dev/null || fail "a follows b by id"
wait_for "b finds a through the relay and dials it directly" 20 connected_to b "$ida" 127.0.0.1
wait_for "b has a's post" 10 has b "$ida" 1
grep -q '"announced": true' <(k a relays) || fail "a reports its record announced"

# A relayed circuit between two nodes that cannot be dialled.
k c post "c's first" >/dev/null
k d post "d's first" >/dev/null
k d follow "$idc" 2>/dev/null || fail "d follows c"
k c follow "$idd" 2>/dev/null || fail "c follows d"
wait_for "d reaches c through a circuit" 20 connected_to d "$idc" relay/
wait_for "d has c's post over the circuit" 10 has d "$idc" 1
wait_for "c has d's post over the circuit" 10 has c "$idd" 1
k c post "c's second, pushed over the circuit" >/dev/null
wait_for "a push crosses the circuit" 10 has d "$idc" 2

# Garbage on the relay's port: refused; the nodes keep syncing.
( exec 3<>/dev/tcp/${relay_addr%:*}/${relay_addr#*:}; head -c 4096 /dev/urandom >&3; sleep 0.3 ) 2>/dev/null
( exec 3<>/dev/tcp/${relay_addr%:*}/${relay_addr#*:}; printf '\x7f\xff\xff\xff' >&3; sleep 0.3 ) 2>/dev/null
k c post "c's third, after the garbage" >/dev/null
wait_for "the circuit still carries data after garbage hit the relay" 10 has d "$idc" 3

# The relay dies mid-sync: direct peers carry on; the circuit comes back
# once the relay is back on the same port.
kill -KILL "$pid_relay"; wait "$pid_relay" 2>/dev/null
k a post "a's second, relay down" >/dev/null
wait_for "direct peers sync while the relay is down" 10 has b "$ida" 2
k c post "c's fourth, relay down" >/dev/null
sleep 1
start_relay "$relay_addr"
wait_for "c and d reconnect through the restarted relay" 40 connected_to d "$idc" relay/
wait_for "d catches up with what c wrote while the relay was down" 20 has d "$idc" 4

if [ "$fails" = 0 ]; then echo "relay network test: all checks passed"; fi
[ "$fails" = 0 ]
