#!/bin/sh
# kith-sim refuses bad arguments and scenario values before anything runs:
# exit status 2 and a message naming what was wrong (never a run that
# hangs on "--duration nan", never a cast of a number it cannot mean).
#   cli_test.sh KITH_SIM SCENARIO_DIR
set -u
sim=$1
dir=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kith-sim-cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
refused() { # expected-word, then the command's arguments
  want=$1
  shift
  timeout 20 "$sim" "$@" > /dev/null 2> "$tmp/err"
  rc=$?
  if [ "$rc" -ne 2 ] || ! grep -q -- "$want" "$tmp/err"; then
    echo "FAIL: kith-sim $* exited $rc (want 2 and a message naming $want):" >&2
    cat "$tmp/err" >&2
    fail=1
  fi
}
refused --duration "$dir/small-churn.toml" --duration nan
refused --duration "$dir/small-churn.toml" --duration inf
refused --duration "$dir/small-churn.toml" --duration -5
refused --sample-s "$dir/small-churn.toml" --sample-s 0
refused --checkpoint-s "$dir/small-churn.toml" --checkpoint-s nan
refused --nodes "$dir/small-churn.toml" --nodes 0
refused --bogus "$dir/small-churn.toml" --bogus
refused --seed "$dir/small-churn.toml" --seed -1
refused --nodes "$dir/small-churn.toml" --nodes 2.5
# Decimal, never octal: --seed 010 is seed 10 (CLI11 alone reads 8).
printf 'nodes = 3\nfollows = 1\nduration_s = 1\nsettle_limit_s = 30\n' > "$tmp/tiny.toml"
timeout 60 "$sim" "$tmp/tiny.toml" --seed 010 > /dev/null 2> "$tmp/err"
grep -q "seed 10 " "$tmp/err" || { echo "FAIL: --seed 010 was not read as seed 10:" >&2; cat "$tmp/err" >&2; fail=1; }
printf 'nodes = 3\nlatency_ms = 1e30\n' > "$tmp/bad.toml"
refused latency_ms "$tmp/bad.toml"
printf 'nodes = nan\n' > "$tmp/bad.toml"
refused nodes "$tmp/bad.toml"
refused "cannot read" "$tmp/missing.toml"
timeout 20 "$sim" --help > /dev/null 2>&1 || { echo "FAIL: kith-sim --help did not exit 0" >&2; fail=1; }
exit $fail
