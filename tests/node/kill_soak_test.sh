#!/usr/bin/env bash
# Crash soak at node level (issue 8): a writer daemon A and its follower B
# on loopback. A client posts to A through the local API in a loop and
# records every post A acknowledged (HTTP 200 and the subject it returned).
# Meanwhile A is SIGKILLed at random moments and restarted on the same data
# directory, and B is SIGKILLed while it catches up a backlog and
# restarted. After each kill the store is checked offline (`kith check`).
# At the end: every acknowledged post is on A, B holds exactly A's posts,
# both stores check clean and neither log reports an error.
#
#   kill_soak_test.sh <kith binary>
#   KITH_SOAK_SECONDS  length of the kill phase (default 20)
#   KITH_SOAK_SEED     seed of the kill schedule (default: drawn, printed)
#   KITH_SOAK_PAD      bytes of padding per post (default 8000)
# Long run (docs/security.md): KITH_SOAK_SECONDS=600 tests/node/kill_soak_test.sh build/node/kith
set -u
kith="$1"
root="$(mktemp -d)"
. "$(dirname "$0")/net_lib.sh"

secs="${KITH_SOAK_SECONDS:-20}"
seed="${KITH_SOAK_SEED:-$(( $(date +%s%N) % 1000000007 ))}"
pad_len="${KITH_SOAK_PAD:-8000}"
echo "kill soak: seed $seed, ${secs}s of kills (replay: KITH_SOAK_SEED=$seed KITH_SOAK_SECONDS=$secs)"
RANDOM=$seed
rnd_ms() { echo $(( $1 + RANDOM % ($2 - $1 + 1) )); } # rnd_ms <min> <max>
nap() { sleep "$(printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )))"; }

api_of() { cat "$root/$1/api.addr" 2>/dev/null; }
# crash <node>: SIGKILL, then an offline check of the store it left behind.
crash() {
  local n="$1" p; eval "p=\$pid_$n"
  kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null
  rm -f "$root/$n/api.addr" "$root/$n/peer.addr" # left behind by the kill
  if ! k "$n" check >"$root/$n.check" 2>&1; then
    fail "store of $n after SIGKILL does not check clean: $(cat "$root/$n.check")"
  fi
}
# feed_set <node>: "subject<TAB>text" of every post by A that node holds,
# sorted; pages through the author index (limit 10000 a page).
feed_set() {
  local n="$1" api before="" page out="$root/$1.set.tmp"
  api="$(api_of "$n")"
  : >"$out"
  while :; do
    page="$(curl -s --max-time 20 "http://$api/v1/feed?author=$ida&limit=10000${before:+&before=$before}")" || return 1
    echo "$page" | jq -r '.posts[] | "\(.subject)\t\(.doc.text)"' >>"$out" || return 1
    [ "$(echo "$page" | jq '.posts | length')" -lt 10000 ] && break
    # One ms past the last post's time: posts sharing that ms come again (deduplicated).
    before=$(( $(echo "$page" | jq '.posts[-1].doc.time') + 1 ))
  done
  sort -u "$out"
}
offline_count() { # offline_count <node>: posts by A in a stopped node's store
  k "$1" feed --author "$ida" --limit 10000 2>/dev/null | grep -c '"subject"'
}
launch() { # launch <node>: starts the daemon without waiting for it (net_lib's start waits)
  local n="$1"
  "$kith" -d "$root/$n" run --listen "$(cat "$root/$n.peer")" --api 127.0.0.1:0 --anti-entropy 1 \
    >>"$root/$n.log" 2>&1 &
  eval "pid_$n=$!"; pids+=("$!")
}

for n in a b; do "$kith" -d "$root/$n" init >/dev/null 2>&1 || fail "init $n"; done
ida="$(k a id)"
start a || exit 1
start b || exit 1
k b follow "$ida" "$(addr a)" >/dev/null 2>&1 || fail "b follows a"

# The writer: posts to whichever A is up; an answer other than 200 (or no
# answer: A died mid-request) is not an acknowledgement.
pad="$(head -c "$pad_len" /dev/zero | tr '\0' 'x')"
writer() {
  local i=0 api code
  while [ ! -e "$root/stop" ] && [ -d "$root" ]; do
    api="$(api_of a)"
    if [ -z "$api" ]; then sleep 0.02; continue; fi
    i=$((i+1))
    echo "$i" >>"$root/attempted"
    code="$(curl -s --max-time 10 -o "$root/reply" -w '%{http_code}' -X POST "http://$api/v1/posts" \
                 -d "{\"text\":\"soak $i $pad\"}" 2>/dev/null)"
    if [ "$code" = 200 ]; then
      subj="$(jq -r '.subject // empty' "$root/reply" 2>/dev/null)"
      if [ -n "$subj" ]; then printf '%s\tsoak %s %s\n' "$subj" "$i" "$pad" >>"$root/acked"
      else echo "200 without a subject: $(head -c 300 "$root/reply")" >>"$root/writer.err"; fi
    fi
  done
}
: >"$root/acked"; : >"$root/attempted"
writer &
writer_pid=$!; pids+=("$writer_pid")

kills_a=0; kills_b=0; early=0; mid_sync=0; late=0
end=$((SECONDS + secs))
while [ $SECONDS -lt $end ] && [ "$fails" = 0 ]; do
  # A dies mid-write.
  nap "$(rnd_ms 300 2000)"
  crash a; kills_a=$((kills_a+1))
  start a || break
  # B is away while A gathers a backlog, comes back, and dies at a random
  # moment of its start and catch-up; what it had stored is counted offline.
  crash b; kills_b=$((kills_b+1))
  had_b="$(offline_count b)"
  nap "$(rnd_ms 1000 4000)"
  backlog_to="$(wc -l <"$root/acked")" # A holds at least the posts acknowledged so far
  launch b
  nap "$(rnd_ms 20 700)"
  crash b; kills_b=$((kills_b+1))
  cb="$(offline_count b)"
  if [ "$cb" -le "$had_b" ]; then early=$((early+1))
  elif [ "$cb" -lt "$backlog_to" ]; then mid_sync=$((mid_sync+1))
  else late=$((late+1)); fi
  echo "  cycle: A killed; B killed during catch-up: had $had_b, A had acknowledged $backlog_to when B came back, B stored $cb"
  start b || break
done
touch "$root/stop"; wait "$writer_pid"
[ -s "$root/writer.err" ] && fail "writer: $(head -3 "$root/writer.err")"

acked=$(wc -l <"$root/acked"); attempted=$(wc -l <"$root/attempted")
echo "kill soak: $kills_a SIGKILLs of A, $kills_b of B (restarts killed before storing any of the backlog: $early, with part of it stored: $mid_sync, after catching up: $late); $acked of $attempted posts acknowledged"
[ "$acked" -gt 0 ] || fail "no post was acknowledged"

# Every acknowledged post is on A, with its text.
sort -u "$root/acked" >"$root/acked.sorted"
feed_set a >"$root/a.set" || fail "read A's posts"
missing="$(comm -23 "$root/acked.sorted" "$root/a.set" | wc -l)"
[ "$missing" = 0 ] || fail "$missing acknowledged posts are not on A: $(comm -23 "$root/acked.sorted" "$root/a.set" | head -3 | cut -c1-120)"

# B converges to exactly A's set.
same_as_a() { feed_set b >"$root/b.set" && cmp -s "$root/a.set" "$root/b.set"; }
wait_for "B holds exactly A's posts" 30 same_as_a
echo "kill soak: A holds $(wc -l <"$root/a.set") posts (all $acked acknowledged among them), B holds $(wc -l <"$root/b.set")"

# Clean stops, then offline checks and the logs.
stop a; stop b
for n in a b; do
  k "$n" check >"$root/$n.check" 2>&1 || fail "store of $n does not check clean: $(cat "$root/$n.check")"
  if grep -Eiq ' (error|critical) |corrupt' "$root/$n.log"; then
    fail "log of $n reports errors: $(grep -Ei ' (error|critical) |corrupt' "$root/$n.log" | head -3)"
  fi
done

if [ "$fails" = 0 ]; then echo "kill soak test: all checks passed"; fi
[ "$fails" = 0 ]
