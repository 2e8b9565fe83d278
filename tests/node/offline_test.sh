#!/usr/bin/env bash
# Syncing without a direct connection, with real kith processes:
#  - `kith sync --stdio` at both ends of a pipe (as through ssh);
#  - `kith bundle export/import`, with and without a running daemon, and a
#    tampered bundle refused;
#  - a shared topic where two writers edit the same document while apart:
#    both values kept as siblings on both nodes, then one later write
#    resolves them everywhere.
set -u
kith="$1"
root="$(mktemp -d)"
. "$(dirname "$0")/net_lib.sh"

for n in a b c d; do k "$n" init >/dev/null 2>&1 || fail "init $n"; done
ida="$(k a id)"; idb="$(k b id)"
start a; start b

# --- a pipe -------------------------------------------------------------------
k a post "one #pipe" >/dev/null; k a post "two" >/dev/null
k b follow "$ida" 2>/dev/null || fail "b follows a (no address: only the pipe reaches a)"
mkfifo "$root/fifo"
pipe() { ( k a sync --stdio <"$root/fifo" | k b sync --stdio >"$root/fifo" ) 2>>"$root/pipe.log" & pipe_pid=$!; }
pipe
wait_for "b gets a's posts through the pipe" 10 has b "$ida" 2
k a post "three, pushed through the pipe" >/dev/null
wait_for "a new post is pushed through the pipe" 5 has b "$ida" 3
grep -q "initiator" "$root/pipe.log" && grep -q "responder" "$root/pipe.log" ||
  fail "the two pipe ends agree on one initiator and one responder"

# --- bundles ------------------------------------------------------------------
k a bundle export me "$root/a.kith" 2>/dev/null || fail "export a bundle through the daemon"
[ -s "$root/a.kith" ] || fail "the bundle file is written"
# c has no daemon: the import opens its store directly.
k c bundle import "$root/a.kith" >"$root/import.json" 2>&1 || fail "import into a stopped node"
grep -q '"new_writes": [1-9]' "$root/import.json" || fail "the import reports new writes"
has c "$ida" 3 || fail "c holds a's 3 posts from the bundle"
# An export without a daemon round-trips too: c re-exports a's feed to d.
topic_a="feed/$ida"
k c bundle export "$topic_a" "$root/c.kith" 2>/dev/null || fail "export from a stopped node"
k d bundle import "$root/c.kith" >/dev/null 2>&1 || fail "import c's re-export"
has d "$ida" 3 || fail "d holds a's posts through c's bundle"
# Tampered bundles: refused with a reason, nothing stored.
k d init --force >/dev/null 2>&1
python3 - "$root/a.kith" "$root/bad.kith" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[len(b) // 2] ^= 0x01
open(sys.argv[2], 'wb').write(b)
PY
if k d bundle import "$root/bad.kith" >"$root/bad.out" 2>&1; then fail "a tampered bundle is refused"; fi
grep -q "bundle refused" "$root/bad.out" || fail "the refusal says why: $(cat "$root/bad.out")"
head -c 300 "$root/a.kith" >"$root/short.kith"
if k d bundle import "$root/short.kith" >/dev/null 2>&1; then fail "a truncated bundle is refused"; fi
[ "$(count_posts d "$ida")" = 0 ] || fail "nothing of a refused bundle is stored"
# Through b's daemon: the import is pushed on to b's own subscribers.
k b bundle import "$root/a.kith" >/dev/null 2>&1 || fail "import through a daemon"

# --- a shared topic with concurrent edits ---------------------------------------
k a topic create plans --writer "$idb" >"$root/desc.json" 2>&1 || fail "create a shared topic"
T="$(grep -o '"topic/[0-9a-f]*"' "$root/desc.json" | head -1 | tr -d '"')"
[ -n "$T" ] || fail "the topic id is printed"
k b topic join "@$root/desc.json" >/dev/null 2>&1 || fail "b joins the shared topic"
doc="$ida/plans/trip"
# b goes offline and writes; a writes the same property meanwhile.
kill "$pipe_pid" 2>/dev/null; stop b
k b put "$doc" '{"where":"hills"}' --topic "$T" 2>/dev/null || fail "b writes while offline"
k a put "$doc" '{"where":"sea"}' --topic "$T" 2>/dev/null || fail "a writes"
start b; pipe
siblings() { k "$1" get "$doc" --topic "$T" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join(sorted(d["conflicts"].get("where", [d["doc"].get("where")]))))'; }
both() { [ "$(siblings a)" = "hills sea" ] && [ "$(siblings b)" = "hills sea" ]; }
wait_for "both concurrent values are kept as siblings on both nodes" 10 both
# A later write, made after seeing both, resolves them everywhere.
k b put "$doc" '{"where":"lake"}' --topic "$T" 2>/dev/null || fail "b resolves"
resolved() { [ "$(siblings a)" = "lake" ] && [ "$(siblings b)" = "lake" ]; }
wait_for "the later write replaces both siblings on both nodes" 10 resolved

if [ "$fails" = 0 ]; then echo "offline test: all checks passed"; fi
[ "$fails" = 0 ]
