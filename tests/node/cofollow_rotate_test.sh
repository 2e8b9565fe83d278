#!/usr/bin/env bash
# Co-follower rotation: a follower pulls an offline author's feed from the
# first co-followers it met (in key order). When those are out of reach
# (here: frozen with SIGSTOP, so the relay still lists them), it passes them
# over and pulls from another, and gets the feed.
set -u
kith="$1"
relay="$2"
root="$(mktemp -d)"
. "$(dirname "$0")/net_lib.sh"

start_relay
names="fay hal ivy"
for n in xen $names gus jay; do k "$n" init >/dev/null 2>&1 || fail "init $n"; done
xen="$(k xen id)"
for n in xen $names gus; do run_node "$n"; done
k xen post "xen's first" >/dev/null
k xen post "xen's second" >/dev/null
for n in $names gus; do
  k "$n" follow "$xen" 2>/dev/null || fail "$n follows xen"
done
for n in $names gus; do wait_for "$n has xen's posts" 30 has "$n" "$xen" 2; done

# With xen offline, gus pulls xen's feed from the first two of fay, hal and
# ivy in key order: its log names them, which tells the order any other
# follower will choose in.
stop xen
pulls_named() { test "$(grep -c 'pulling it from co-follower' "$root/$1.log")" -ge "$2"; }
wait_for "gus pulls xen's feed from two co-followers" 40 pulls_named gus 2
first_two="$(grep -o 'pulling it from co-follower [a-z0-9]*' "$root/gus.log" | head -2 | awk '{print $5}')"
frozen=""; left=""
for n in $names; do
  id="$(k "$n" id)"
  if printf '%s\n' "$first_two" | grep -qx "${id:0:12}"; then frozen="$frozen $n"; else left="$left $n"; fi
done
[ "$(echo $frozen | wc -w)" = 2 ] || fail "gus named two of fay, hal and ivy (got '$first_two')"
stop gus

# Freeze the two that come first: their relay connections stay open, so a
# new follower still meets them, but they answer nothing.
for n in $frozen; do eval "kill -STOP \$pid_$n"; done
run_node jay
k jay follow "$xen" 2>/dev/null || fail "jay follows xen"
wait_for "jay gets xen's feed from the co-follower left (${left# })" 90 has jay "$xen" 2
grep -q "out of reach; passed over" "$root/jay.log" || fail "jay's log says it passed co-followers over"
for n in $frozen; do
  grep -q "pulling it from co-follower $(k "$n" id | cut -c1-12)" "$root/jay.log" ||
    fail "jay tried $n first (the key order gus showed)"
done
for n in $frozen; do eval "kill -CONT \$pid_$n"; done

if [ "$fails" = 0 ]; then echo "co-follower rotation test: all checks passed"; fi
[ "$fails" = 0 ]
