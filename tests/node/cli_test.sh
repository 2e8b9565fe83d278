#!/usr/bin/env bash
# The kith CLI end to end on a throwaway data directory: init, refusal to
# overwrite, put/get/del, post/tag/feed, reindex, check, and clear errors.
set -u
kith="$1"
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
export KITH_HOME="$home"
fails=0
expect() { # expect <description> <expected rc> <command...>
  local what="$1" want="$2"; shift 2
  out="$("$@" 2>&1)"; rc=$?
  if [ "$rc" != "$want" ]; then echo "FAIL: $what (rc $rc, wanted $want): $out"; fails=$((fails+1)); fi
}
contains() { # contains <description> <needle> <command...>
  local what="$1" needle="$2"; shift 2
  out="$("$@" 2>&1)"
  case "$out" in *"$needle"*) ;; *) echo "FAIL: $what: no '$needle' in: $out"; fails=$((fails+1));; esac
}
expect "init" 0 "$kith" init
id="$("$kith" id)"
[ "${#id}" = 57 ] || { echo "FAIL: id has ${#id} characters"; fails=$((fails+1)); }
contains "second init refuses" "refusing to overwrite" "$kith" init
[ "$("$kith" id)" = "$id" ] || { echo "FAIL: identity changed"; fails=$((fails+1)); }
expect "put" 0 "$kith" put me/profile '{"name":"Ann","bio":"hi"}'
contains "get shows the document" '"name": "Ann"' "$kith" get me/profile
contains "get by full id" '"bio": "hi"' "$kith" get "$id/profile"
expect "del one property" 0 "$kith" del me/profile bio
contains "deleted property gone" '"doc": {' "$kith" get me/profile
out="$("$kith" get me/profile)"; case "$out" in *'"bio"'*) echo "FAIL: bio still there"; fails=$((fails+1));; esac
expect "post" 0 "$kith" post "hello #Cats"
expect "post" 0 "$kith" post "bye #dogs"
contains "tag finds the post" "hello #Cats" "$kith" tag cats
out="$("$kith" tag cats)"; case "$out" in *"bye #dogs"*) echo "FAIL: tag cats shows a #dogs post"; fails=$((fails+1));; esac
contains "feed lists both" "bye #dogs" "$kith" feed --limit 5
contains "reindex" "index rows" "$kith" reindex
contains "check" ": ok" "$kith" check
contains "bad json refused" "not valid JSON" "$kith" put me/x 'nope'
printf '# no one yet\n\n' > "$home/empty.txt"
contains "an empty follow list is refused" "no ids in the list" "$kith" follow --list "$home/empty.txt"
printf 'kabc host:1 extra\n' > "$home/bad.txt"
contains "a follow list line with three words is refused" "line 1" "$kith" follow --list "$home/bad.txt"
contains "a missing follow list is named" "cannot open" "$kith" follow --list "$home/nope.txt"
expect "follow needs an id or a list" 105 "$kith" follow
other="$(KITH_HOME="$home/other" "$kith" init 2>/dev/null)"
contains "foreign subject refused" "only your own documents" "$kith" put "$other/x" '{"a":1}'
expect "missing document" 3 "$kith" get me/nothing
chmod 644 "$home/identity.key"
contains "loose key permissions refused" "chmod 600" "$kith" id
chmod 600 "$home/identity.key"
contains "unknown subcommand" "" "$kith" frobnicate
[ "$fails" = 0 ] && echo "cli: all checks passed" || { echo "cli: $fails failure(s)"; exit 1; }
