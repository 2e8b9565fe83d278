#!/usr/bin/env bash
# The web page's files as `kith run` serves them (docs/web.md): the right
# types and headers, GET/HEAD only, and nothing outside the web directory:
# no '..', no symlink out, no hidden files, no directory listing. Also the
# web_dir settings: --web-dir, --no-web, `web_dir = ""` and the default
# next to the program. Plain HTTP over bash's /dev/tcp, no browser needed.
set -u
kith="$1"
src="$2"
root="$(mktemp -d)"
pids=()
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$fails" != 0 ]; then for l in "$root"/*.log; do echo "--- $l"; tail -20 "$l"; done; fi
  rm -rf "$root"
}
trap cleanup EXIT

start() { # start <name> [run options...]: a daemon; sets $api to its API address
  local n="$1"; shift
  [ -d "$root/$n" ] || "$kith" -d "$root/$n" init >/dev/null 2>&1 || fail "init $n"
  "$kith" -d "$root/$n" run --listen "" --api 127.0.0.1:0 "$@" >"$root/$n.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 200); do
    [ -s "$root/$n/api.addr" ] && { api="$(cat "$root/$n/api.addr")"; return 0; }
    sleep 0.05
  done
  fail "node $n did not start"; return 1
}
# raw <addr> <request line> [extra header lines...]: the whole response
raw() {
  local a="$1" line="$2"; shift 2
  local req="$line\r\nHost: $a\r\nConnection: close\r\n"
  for hdr in "$@"; do req+="$hdr\r\n"; done
  exec 3<>"/dev/tcp/${a%:*}/${a#*:}" || return 1
  printf '%b\r\n' "$req" >&3
  timeout 5 cat <&3
  exec 3<&-
}
status_of() { raw "$@" | head -1 | tr -d '\r' | cut -d' ' -f2; }
expect() { # expect <what> <want> <got>
  [ "$2" = "$3" ] || fail "$1: want '$2', got '$3'"
}

# A web dir with traps: a symlink to a file outside, a symlinked directory
# outside, a hidden file, a type that is not served, and a symlink that
# stays inside (allowed).
web="$root/web"
mkdir -p "$web"
(cd "$src/web" && tar --exclude=./tests -cf - .) | (cd "$web" && tar -xf -)
echo '{"secret": true}' >"$root/secret.json"
mkdir -p "$root/outside" && echo '<p>outside</p>' >"$root/outside/index.html"
ln -s "$root/secret.json" "$web/leak.json"
ln -s "$root/outside" "$web/out"
echo '{}' >"$web/.hidden.json"
echo 'text' >"$web/notes.txt"
ln -s style.css "$web/alias.css"

start a --web-dir "$web"
a="$api"

res="$(raw "$a" "GET / HTTP/1.1")"
expect "GET / status" 200 "$(echo "$res" | head -1 | tr -d '\r' | cut -d' ' -f2)"
echo "$res" | grep -qi '^content-type: text/html; charset=utf-8' || fail "GET / is text/html"
echo "$res" | grep -qi '^cache-control: no-cache' || fail "GET / has Cache-Control: no-cache"
echo "$res" | grep -qi "^content-security-policy: default-src 'none'; script-src 'self'" || fail "GET / has the CSP"
echo "$res" | grep -qi '^x-frame-options: deny' || fail "GET / refuses framing"
echo "$res" | grep -q '<script type="module" src="js/app.js">' || fail "GET / is index.html"
raw "$a" "GET /index.html HTTP/1.1" | grep -q 'js/app.js' || fail "GET /index.html"
raw "$a" "GET /js/app.js HTTP/1.1" | grep -qi '^content-type: text/javascript' || fail "app.js type"
raw "$a" "GET /style.css?v=1 HTTP/1.1" | grep -qi '^content-type: text/css' || fail "style.css type (with a query)"
raw "$a" "GET /icon.svg HTTP/1.1" | grep -qi '^content-type: image/svg+xml' || fail "icon.svg type"
expect "a symlink that stays inside" 200 "$(status_of "$a" "GET /alias.css HTTP/1.1")"
expect "percent-encoded name" 200 "$(status_of "$a" "GET /%69ndex.html HTTP/1.1")"

head_res="$(raw "$a" "HEAD / HTTP/1.1")"
expect "HEAD / status" 200 "$(echo "$head_res" | head -1 | tr -d '\r' | cut -d' ' -f2)"
len="$(echo "$head_res" | grep -i '^content-length:' | tr -d '\r' | awk '{print $2}')"
[ "${len:-0}" -gt 100 ] || fail "HEAD / carries the GET's length (got '$len')"
echo "$head_res" | grep -q '<html' && fail "HEAD / sends no body"

post_res="$(raw "$a" "POST / HTTP/1.1" "Content-Length: 0")"
expect "POST /" 405 "$(echo "$post_res" | head -1 | tr -d '\r' | cut -d' ' -f2)"
echo "$post_res" | grep -qi '^allow: GET, HEAD' || fail "POST / names GET, HEAD in Allow"
expect "PUT /index.html" 405 "$(status_of "$a" "PUT /index.html HTTP/1.1" "Content-Length: 0")"

for path in /../secret.json /%2e%2e/secret.json /js/../../secret.json /js/%2E%2E/%2e%2e/secret.json \
            /..%2fsecret.json /leak.json /out/ /out/index.html /.hidden.json /notes.txt /js/ /js \
            /nothing.html /%ff.html /index.html%00.txt "/$(printf '%s' "$root" | sed 's|^/||')/secret.json"; do
  expect "GET $path is refused" 404 "$(status_of "$a" "GET $path HTTP/1.1")"
done
raw "$a" "GET /../secret.json HTTP/1.1" | grep -q '"secret": true' && fail "the secret leaked"

# The local-only rules still hold for the page's files.
exec 3<>"/dev/tcp/${a%:*}/${a#*:}"; printf 'GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n' >&3
got="$(timeout 5 cat <&3 | head -1 | tr -d '\r' | cut -d' ' -f2)"; exec 3<&-
expect "GET / with a foreign Host" 403 "$got"
expect "GET / from another origin" 403 "$(status_of "$a" "GET / HTTP/1.1" "Origin: http://evil.example")"
expect "GET / from this origin" 200 "$(status_of "$a" "GET / HTTP/1.1" "Origin: http://$a")"
expect "the API beside the page" 200 "$(status_of "$a" "GET /v1/status HTTP/1.1")"
expect "unknown API path" 404 "$(status_of "$a" "GET /v1/nothing HTTP/1.1")"

# --no-web, web_dir = "" and the default next to the program.
start b --no-web
expect "--no-web serves no page" 404 "$(status_of "$api" "GET / HTTP/1.1")"
mkdir -p "$root/c" && "$kith" -d "$root/c" init >/dev/null 2>&1
printf '[node]\nweb_dir = ""\n' >"$root/c/config.toml"
start c
expect "web_dir = \"\" serves no page" 404 "$(status_of "$api" "GET / HTTP/1.1")"
start d
want=404
[ -f "$(dirname "$kith")/../../web/index.html" ] && want=200
expect "the default web dir next to the program" "$want" "$(status_of "$api" "GET / HTTP/1.1")"

[ "$fails" = 0 ] && echo "web static files: all checks passed"
exit $((fails > 0))
