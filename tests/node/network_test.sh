#!/usr/bin/env bash
# Three real kith processes on loopback: follow, posts pushed live,
# deletes that leave no kept header, a node killed with SIGKILL and a
# follower that was offline both catching up, and garbage on the peer port
# refused without disturbing the others.
set -u
kith="$1"
root="$(mktemp -d)"
. "$(dirname "$0")/net_lib.sh"

for n in a b c; do "$kith" -d "$root/$n" init >/dev/null 2>&1 || fail "init $n"; done
ida="$(k a id)"; idb="$(k b id)"; idc="$(k c id)"
for n in a b c; do start "$n"; done

k a post "first from a #kith" >/dev/null || fail "post"
k b follow "$ida" "$(addr a)" 2>/dev/null || fail "b follows a"
k c follow "$ida" "$(addr a)" 2>/dev/null || fail "c follows a"
k c follow "$idb" "$(addr b)" 2>/dev/null || fail "c follows b"
k a follow "$idb" "$(addr b)" 2>/dev/null || fail "a follows b"
wait_for "b has a's first post" 10 has b "$ida" 1
wait_for "c has a's first post" 10 has c "$ida" 1

# A new post is pushed to every follower.
k a post "second from a" >/dev/null
k b post "hello from b @$ida" >/dev/null
wait_for "b has a's second post" 5 has b "$ida" 2
wait_for "c has a's second post" 5 has c "$ida" 2
wait_for "a has b's post" 5 has a "$idb" 1
wait_for "c has b's post" 5 has c "$idb" 1
k c tag kith | grep -q "first from a" || fail "tag index on c"
k b peers | grep -q '"state": "connected"' || fail "b reports a connected peer"

# A delete reaches every replica, then no header of it is kept anywhere.
first="$(k a feed --limit 10 | grep -o "\"$ida/statuses/[^\"]*-1\"" | head -1 | tr -d '"')"
[ -n "$first" ] || fail "find the first post's subject"
k a del "$first" 2>/dev/null || fail "delete"
wait_for "b drops the deleted post" 5 has b "$ida" 1
wait_for "c drops the deleted post" 5 has c "$ida" 1
no_headers() {
  for n in a b c; do
    api="$(cat "$root/$n/api.addr")"
    body="$(exec 3<>/dev/tcp/${api%:*}/${api#*:}; printf 'GET /v1/topics HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$api" >&3; cat <&3)"
    echo "$body" | grep -q '"kept_headers":[1-9]' && return 1
  done
  return 0
}
wait_for "no kept headers once all replicas have the delete" 15 no_headers

# SIGKILL b; a posts meanwhile; b restarts and catches up.
kill -KILL "$pid_b"; wait "$pid_b" 2>/dev/null
rm -f "$root/b/api.addr" "$root/b/peer.addr" # left behind by the kill
k a post "while b was dead" >/dev/null
start b
wait_for "restarted b catches up" 15 has b "$ida" 2

# An offline follower (stopped cleanly) catches up when it returns.
kill -TERM "$pid_c"; wait "$pid_c" 2>/dev/null
k a post "while c was away" >/dev/null
k b post "b too while c was away" >/dev/null
start c
wait_for "c catches up with a" 15 has c "$ida" 3
wait_for "c catches up with b" 15 has c "$idb" 2

# Garbage, an oversized frame and a truncated handshake on a's peer port:
# each is refused with a logged reason; a keeps serving its followers.
pa="$(addr a)"
( exec 3<>/dev/tcp/${pa%:*}/${pa#*:}; head -c 4096 /dev/urandom >&3; sleep 0.3 ) 2>/dev/null
( exec 3<>/dev/tcp/${pa%:*}/${pa#*:}; printf '\x7f\xff\xff\xff' >&3; sleep 0.3 ) 2>/dev/null
( exec 3<>/dev/tcp/${pa%:*}/${pa#*:}; printf '\x00\x00\x00\x25kith' >&3; sleep 0.2 ) 2>/dev/null
sleep 0.3
grep -q "inbound .*:" "$root/a.log" || fail "a logs why it refused the garbage"
k a status >/dev/null || fail "a still answers after garbage"
k a post "after the garbage" >/dev/null
wait_for "b still gets a's posts after the garbage" 5 has b "$ida" 4

if [ "$fails" = 0 ]; then echo "network test: all checks passed"; fi
[ "$fails" = 0 ]
