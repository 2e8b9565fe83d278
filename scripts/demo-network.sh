#!/usr/bin/env bash
# The local demo network (the README's first command, `make demo`): one
# relay and three personal nodes as real processes on loopback, each with
# its own data directory. The nodes know each other only by id: they find
# each other's addresses through the relay, follow each other, post
# statuses with tags and mentions, and edit one shared document
# concurrently (bob offline, ann online). The script prints each node's
# converged feed and the shared document's siblings and their resolution,
# and exits 0 once everything converged (1 with the reason if not).
#
#   scripts/demo-network.sh [--build DIR] [--keep] [--dir DIR]
#     --keep   leave the network running and print each node's addresses
#     --dir    put the data directories there (default: a temp dir, removed)
set -u
build=build keep=0 dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --dir) dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
done
kith="$build/node/kith"; relay="$build/relay/kith-relay"
for b in "$kith" "$relay"; do
  [ -x "$b" ] || { echo "demo: $b is missing; run make build first" >&2; exit 2; }
done
if [ -z "$dir" ]; then root="$(mktemp -d)"; own_root=1; else root="$dir"; mkdir -p "$root"; own_root=0; fi
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ "$own_root" = 1 ] && rm -rf "$root"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: FAILED: $*" >&2; echo "demo: logs are in $root (kept)" >&2; own_root=0; exit 1; }
wait_for() { # wait_for <what> <seconds> <command...>
  local what="$1" secs="$2"; shift 2
  local end=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -ge $end ] && die "$what (waited ${secs}s)"
    sleep 0.2
  done
}
k() { local n="$1"; shift; "$kith" -d "$root/$n" "$@"; }

say "starting a relay"
"$relay" run --data-dir "$root/relay" --listen 127.0.0.1:0 --http 127.0.0.1:0 \
  >"$root/relay.log" 2>&1 &
pids+=("$!")
wait_for "the relay starts" 10 test -s "$root/relay/relay.addr"
relay_at="$(cat "$root/relay/relay.addr")#$(cat "$root/relay/relay.id")"
echo "relay at $relay_at"

names=(ann bob cat)
declare -A id
start_node() {
  local n="$1"
  rm -f "$root/$n/api.addr"
  "$kith" -d "$root/$n" run --listen 127.0.0.1:0 --api 127.0.0.1:0 --relay "$relay_at" \
    --anti-entropy 2 >>"$root/$n.log" 2>&1 &
  eval "pid_$n=$!"; pids+=("$!")
  wait_for "node $n starts" 10 test -s "$root/$n/api.addr"
}
say "starting three nodes (they know only the relay)"
for n in "${names[@]}"; do
  k "$n" init >/dev/null 2>&1 || die "init $n"
  id[$n]="$(k "$n" id)"
  start_node "$n"
  echo "$n  ${id[$n]}"
done
short() { # a display name for an id
  for n in "${names[@]}"; do [ "${id[$n]}" = "$1" ] && { echo "$n"; return; }; done
  echo "${1:0:10}"
}

say "everyone follows everyone, by id only (addresses come from the relay)"
for a in "${names[@]}"; do for b in "${names[@]}"; do
  [ "$a" = "$b" ] || k "$a" follow "${id[$b]}" 2>/dev/null || die "$a follows $b"
done; done
connected() { # connected <node>: both others connected
  [ "$(k "$1" peers 2>/dev/null | grep -c '"state": "connected"')" -ge 2 ]
}
for n in "${names[@]}"; do wait_for "$n connects to both others through relay lookups" 30 connected "$n"; done
for n in "${names[@]}"; do
  echo "$n: $(k "$n" peers | grep -o '"address": "[^"]*"' | tr '\n' ' ')"
done

say "posting"
k ann post "Hello from ann! #kith #picnic" >/dev/null
k bob post "Bob here, saying hi to @${id[ann]} #kith" >/dev/null
k cat post "Cat checking in. Saturday #picnic anyone? @${id[bob]}" >/dev/null
feed_count() { k "$1" feed --limit 100 2>/dev/null | grep -c '"subject"'; }
has_posts() { [ "$(feed_count "$1")" = "$2" ]; }
for n in "${names[@]}"; do wait_for "$n sees all three posts" 20 has_posts "$n" 3; done

say "a shared document, edited concurrently"
k ann topic create picnic --writer "${id[bob]}" --writer "${id[cat]}" >"$root/picnic.json" 2>/dev/null ||
  die "create the shared topic"
T="$(grep -o '"topic/[0-9a-f]*"' "$root/picnic.json" | head -1 | tr -d '"')"
for n in bob cat; do k "$n" topic join "@$root/picnic.json" >/dev/null 2>&1 || die "$n joins"; done
doc="${id[ann]}/picnic/plan"
k ann put "$doc" '{"where":"the park","when":"Saturday"}' --topic "$T" 2>/dev/null || die "first plan"
plan() { k "$1" get "$doc" --topic "$T" 2>/dev/null; }
where_values() { plan "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" | ".join(sorted(map(str, d["conflicts"].get("where", [d["doc"].get("where")])))))' 2>/dev/null; }
has_where() { [ "$(where_values "$1")" = "$2" ]; }
for n in bob cat; do wait_for "$n has the plan" 20 has_where "$n" "the park"; done
echo "bob goes offline and changes the place; ann changes it too meanwhile"
kill -TERM "$pid_bob"; wait "$pid_bob" 2>/dev/null
k bob put "$doc" '{"where":"the beach"}' --topic "$T" 2>/dev/null || die "bob's offline edit"
k ann put "$doc" '{"where":"the lake"}' --topic "$T" 2>/dev/null || die "ann's edit"
start_node bob
both="the beach | the lake"
for n in "${names[@]}"; do wait_for "$n keeps both edits as siblings" 30 has_where "$n" "$both"; done
for n in "${names[@]}"; do echo "$n sees where = [ $(where_values "$n") ]"; done
echo "cat, having seen both, settles it"
k cat put "$doc" '{"where":"the lake, by the beach path"}' --topic "$T" 2>/dev/null || die "cat resolves"
for n in "${names[@]}"; do
  wait_for "$n sees the resolution" 20 has_where "$n" "the lake, by the beach path"
done
for n in "${names[@]}"; do echo "$n sees where = [ $(where_values "$n") ]"; done

say "converged feeds"
for n in "${names[@]}"; do
  echo "--- $n"
  k "$n" feed --limit 10 | python3 -c '
import json, sys
names = dict(a.split("=", 1) for a in sys.argv[1:])
for p in json.load(sys.stdin):
    author = p["subject"].split("/")[0]
    text = p["doc"].get("text", "")
    for i, nm in names.items():
        text = text.replace("@" + i, "@" + nm)
    print("  %-4s %s" % (names.get(author, author[:10]), text))' \
    "${id[ann]}=ann" "${id[bob]}=bob" "${id[cat]}=cat"
done
f1="$(k ann feed --limit 10 | grep '"subject"' | sort)"
for n in bob cat; do
  [ "$(k "$n" feed --limit 10 | grep '"subject"' | sort)" = "$f1" ] || die "$n's feed differs from ann's"
done
echo; echo "demo: all three nodes converged (feeds equal, shared document resolved)"

if [ "$keep" = 1 ]; then
  say "the network keeps running (Ctrl-C stops it)"
  echo "relay  $relay_at   metrics: http://$(cat "$root/relay/http.addr")/metrics"
  for n in "${names[@]}"; do
    echo "$n    api http://$(cat "$root/$n/api.addr")   data $root/$n   (kith -d $root/$n feed)"
  done
  wait
fi
exit 0
