# Helpers for the multi-process node tests (sourced). The sourcing script
# sets kith (the binary) and root (a temporary directory) first.
pids=()
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
cleanup() {
  # CONT first: a test may have stopped a node with SIGSTOP.
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "${fails:-0}" != 0 ]; then
    for l in "$root"/*.log; do [ -f "$l" ] && { echo "--- $l"; tail -40 "$l"; }; done
  fi
  rm -rf "$root"
}
trap cleanup EXIT

start() { # start <name>: runs the daemon (on its previous peer port when restarted)
  local n="$1" listen="127.0.0.1:0"
  [ -s "$root/$n.peer" ] && listen="$(cat "$root/$n.peer")"
  "$kith" -d "$root/$n" run --listen "$listen" --api 127.0.0.1:0 --anti-entropy 1 \
    >>"$root/$n.log" 2>&1 &
  eval "pid_$n=$!"; pids+=("$!")
  for _ in $(seq 200); do
    if [ -s "$root/$n/api.addr" ] && [ -s "$root/$n/peer.addr" ]; then
      cp "$root/$n/peer.addr" "$root/$n.peer"; return 0
    fi
    sleep 0.05
  done
  fail "node $n did not start"; return 1
}
stop() { # stop <name>: clean shutdown
  local p; eval "p=\$pid_$1"
  kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null
}
k() { local n="$1"; shift; "$kith" -d "$root/$n" "$@"; }
addr() { cat "$root/$1/peer.addr"; }
count_posts() { # count_posts <node> <author id>: statuses of author held by node
  k "$1" feed --author "$2" --limit 1000 2>/dev/null | grep -c '"subject"'
}
wait_for() { # wait_for <description> <seconds> <command...>: until the command succeeds
  local what="$1" secs="$2"; shift 2
  local end=$((SECONDS + secs))
  until "$@"; do
    if [ $SECONDS -ge $end ]; then fail "$what (after ${secs}s)"; return 1; fi
    sleep 0.1
  done
}
has() { [ "$(count_posts "$1" "$2")" = "$3" ]; }
start_relay() { # start_relay [listen]: runs $relay on loopback; sets pid_relay and relay_at
  "$relay" run --data-dir "$root/relay" --listen "${1:-127.0.0.1:0}" --http 127.0.0.1:0 \
    >>"$root/relay.log" 2>&1 &
  pid_relay=$!; pids+=("$!")
  wait_for "the relay starts" 10 test -s "$root/relay/relay.addr" || return 1
  relay_at="$(cat "$root/relay/relay.addr")#$(cat "$root/relay/relay.id")"
}
run_node() { # run_node <name> <extra options...>: runs the daemon with the relay of start_relay
  local n="$1"; shift
  rm -f "$root/$n/api.addr"
  "$kith" -d "$root/$n" run --listen 127.0.0.1:0 --api 127.0.0.1:0 --anti-entropy 1 \
    --relay "$relay_at" "$@" >>"$root/$n.log" 2>&1 &
  eval "pid_$n=$!"; pids+=("$!")
  wait_for "$n starts" 10 test -s "$root/$n/api.addr"
}
