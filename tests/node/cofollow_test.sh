#!/usr/bin/env bash
# Co-followers: followers of a feed meet at the relay's rendezvous for that
# feed. When the author is offline, a new follower pulls the author's feed
# from another follower (verified against the author's signatures, like
# any data), gets the author's later posts once the author is back, and
# stops pulling from the other follower then.
# An author that lost its store gets its feed back from its followers.
set -u
kith="$1"
relay="$2"
root="$(mktemp -d)"
. "$(dirname "$0")/net_lib.sh"

start_relay
for n in xen fay gus; do k "$n" init >/dev/null 2>&1 || fail "init $n"; done
xen="$(k xen id)"
run_node xen
run_node fay
k xen post "xen's first" >/dev/null
k xen post "xen's second" >/dev/null
k fay follow "$xen" 2>/dev/null || fail "fay follows xen"
wait_for "fay has xen's posts" 20 has fay "$xen" 2

stop xen # the author goes offline
run_node gus
k gus follow "$xen" 2>/dev/null || fail "gus follows xen"
wait_for "gus gets xen's feed from fay while xen is offline" 30 has gus "$xen" 2
grep -q "pulling it from co-follower" "$root/gus.log" || fail "gus's log says where the feed came from"

run_node xen
k xen post "xen's third, back online" >/dev/null
wait_for "gus gets xen's new post once xen is back" 30 has gus "$xen" 3
# With xen back, the pull from fay stops.
wait_for "gus stops pulling xen's feed from fay" 30 \
  grep -q "author back in reach; stopped pulling it from" "$root/gus.log"

# Xen loses its store (same identity key, new replica): its followers give
# its feed back.
stop xen
rm -rf "$root/xen/store"
run_node xen
wait_for "xen gets its own posts back from its followers" 30 has xen "$xen" 3
grep -q "asking its followers for its own feed" "$root/xen.log" || fail "xen's log says it restores its feed"
k xen post "xen's fourth, after the restore" >/dev/null
wait_for "followers get xen's post from its new replica" 30 has gus "$xen" 4

if [ "$fails" = 0 ]; then echo "co-follower test: all checks passed"; fi
[ "$fails" = 0 ]
