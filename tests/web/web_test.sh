#!/usr/bin/env bash
# The web page in headless Chromium against two real `kith run` processes
# on loopback (tests/web/web_test.mjs does the clicking). Exit 77 (ctest:
# skipped) when Chromium or Node.js is not installed; scripts/install-deps.sh
# installs both. Screenshots go to $KITH_WEB_SCREENSHOTS (default: a
# directory in the build tree; docs/screenshots/ to refresh the README's).
set -u
kith="$1"
src="$2"
shots="${KITH_WEB_SCREENSHOTS:-$3}"
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$chromium" ] || [ ! -x "$chromium" ]; then
  echo "SKIP: chromium is not installed (scripts/install-deps.sh installs it)"
  exit 77
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "SKIP: node and npm are not installed (scripts/install-deps.sh installs them)"
  exit 77
fi
# playwright-core from web/tests/package-lock.json, into a git-ignored
# node_modules; it drives the Debian chromium and downloads no browser.
mods="$src/web/tests/node_modules"
if [ ! -f "$mods/playwright-core/package.json" ]; then
  (cd "$src/web/tests" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) ||
    { echo "FAIL: npm ci in web/tests"; exit 1; }
fi

root="$(mktemp -d)"
. "$src/tests/node/net_lib.sh" # start, k, addr, fail, cleanup (trap)

for n in a b; do
  "$kith" -d "$root/$n" init >/dev/null 2>&1 || fail "init $n"
  # The [node] web_dir key, so a build tree anywhere finds the page.
  printf '[node]\nweb_dir = "%s"\n' "$src/web" >"$root/$n/config.toml"
done
start a && start b || exit 1
ida="$(k a id)"; idb="$(k b id)"
k b follow "$ida" "$(addr a)" 2>/dev/null || fail "b follows a"

mkdir -p "$shots"
A_URL="http://$(cat "$root/a/api.addr")" B_URL="http://$(cat "$root/b/api.addr")" \
A_ID="$ida" B_ID="$idb" B_PEER="$(addr b)" SHOTS="$shots" CHROMIUM="$chromium" \
KITH_WEB_MODULES="$mods" timeout 50 node "$src/tests/web/web_test.mjs" || fail "browser test"
[ "$fails" = 0 ] && echo "web page: all checks passed (screenshots in $shots)"
exit $((fails > 0))
