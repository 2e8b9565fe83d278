#!/usr/bin/env bash
# Aggregator mode across real processes: a relay, an aggregator, a person
# (ann) and a stranger (sam) who do not follow each other. Ann and sam list
# themselves in the relay's directory; the aggregator finds them there,
# follows them, and answers ann's queries. Sam's mention of ann and reply
# to ann's status reach ann's notifications, thread and tag views through
# the aggregator, each verified against sam's signature; a node that is not
# an aggregator refuses queries.
set -u
kith="$1"
relay="$2"
root="$(mktemp -d)"
. "$(dirname "$0")/net_lib.sh"

start_relay
for n in agg ann sam; do k "$n" init >/dev/null 2>&1 || fail "init $n"; done
agg="$(k agg id)"; ann="$(k ann id)"; sam="$(k sam id)"
run_node agg --aggregate
run_node ann --aggregator "$agg"
run_node sam

root_post="$(k ann post "picnic on saturday? #picnic")" || fail "ann posts"
k sam post "hello @$ann, see you there #picnic" >/dev/null || fail "sam mentions ann"
k sam post "count me in (from a stranger)" --reply-to "$root_post" >/dev/null || fail "sam replies"

# The aggregator met both in the directory and follows them.
agg_has() { has agg "$1" "$2"; }
wait_for "the aggregator follows ann and holds her post" 30 agg_has "$ann" 1
wait_for "the aggregator follows sam and holds his posts" 30 agg_has "$sam" 2
k agg status | grep -q '"following": 2' || fail "the aggregator reports 2 identities followed"
[ "$(count_posts ann "$sam")" = 0 ] || fail "ann does not hold sam's feed (she does not follow him)"

via="aggregator:$agg"
notified() { # notified <reason>: a verified item from sam through the aggregator
  k ann notifications 2>/dev/null | python3 -c '
import json, sys
posts = json.load(sys.stdin)
ok = any(p.get("via") == sys.argv[1] and p.get("verified") is True and p["reason"] == sys.argv[2]
         and p["subject"].startswith(sys.argv[3] + "/") for p in posts)
sys.exit(0 if ok else 1)' "$via" "$1" "$sam"
}
wait_for "ann sees sam's mention through the aggregator" 30 notified mention
wait_for "ann sees sam's reply through the aggregator" 10 notified reply
k ann thread "$root_post" | python3 -c '
import json, sys
t = json.load(sys.stdin)
r = t["replies"]
assert len(r) == 1 and r[0]["via"] == sys.argv[1] and r[0]["doc"]["text"] == "count me in (from a stranger)", t
' "$via" || fail "ann's thread shows sam's reply from the aggregator"
[ "$(k ann tag picnic | grep -c '"subject"')" = 2 ] || fail "ann's tag view has her post and sam's"
k ann trending | python3 -c '
import json, sys
t = json.load(sys.stdin)
src = t["sources"][0]
assert src["id"] == sys.argv[1] and src["tags"][0] == {"tag": "picnic", "count": 2}, t
' "$agg" || fail "trending at the aggregator counts #picnic twice"
k agg query mentions "$ann" | grep -q '"verified": true' || fail "the aggregator answers its own query locally"

# Sam is not an aggregator: asked directly (found through the relay), he refuses.
refused() {
  k ann query mentions me --aggregator "$sam" 2>/dev/null | grep -q '"error": "this node is not an aggregator"'
}
wait_for "a node that is not an aggregator refuses queries" 20 refused

if [ "$fails" = 0 ]; then echo "aggregator test: all checks passed"; fi
[ "$fails" = 0 ]
