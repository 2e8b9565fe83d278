#!/usr/bin/env bash
# The ctest "bench: the suite writes one JSON file": runs scripts/bench.sh
# --quick on a cheap subset into a temp file and checks the file
# (bench/suite_check.py). Also checks that a bad workload name is refused.
#   suite_test.sh BUILD_DIR
set -u -o pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:?usage: suite_test.sh BUILD_DIR}"
subset="anti_entropy,sim,cold_start"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/kith-bench-suite-test.XXXXXX")" || exit 1
trap 'rm -rf "$tmp"' EXIT

if bash "$here/../scripts/bench.sh" --build "$build" --only no_such_workload --out "$tmp/bad.json" 2>"$tmp/bad.err"; then
  echo "bench.sh accepted an unknown workload" >&2
  exit 1
fi
grep -q "unknown workload 'no_such_workload'" "$tmp/bad.err" || { echo "no clear message for an unknown workload:" >&2; cat "$tmp/bad.err" >&2; exit 1; }

bash "$here/../scripts/bench.sh" --quick --build "$build" --only "$subset" --out "$tmp/suite.json" || {
  echo "bench.sh --quick --only $subset failed; its log:" >&2
  tail -n 40 "$tmp/suite.log" >&2
  exit 1
}
python3 "$here/suite_check.py" "$tmp/suite.json" anti_entropy sim cold_start
