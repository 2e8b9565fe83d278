#!/usr/bin/env python3
"""Checks a benchmark suite JSON file (scripts/bench.sh): it parses, names
the machine, and holds each expected workload with its command, exit
status 0, "verified": true and at least one headline figure with a number.

  suite_check.py FILE workload [workload...]

Exit status 0 when it does, 1 (with the reasons) when it does not."""

import json
import sys


def main(argv):
    if len(argv) < 3:
        print("usage: suite_check.py FILE workload [workload...]", file=sys.stderr)
        return 2
    path, expected = argv[1], argv[2:]
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print("%s: cannot read it as JSON: %s" % (path, e), file=sys.stderr)
        return 1
    problems = []
    for k in ("date_utc", "git_rev", "machine", "workloads"):
        if k not in doc:
            problems.append("no '%s'" % k)
    m = doc.get("machine", {})
    if not isinstance(m.get("nproc"), int) or m.get("nproc", 0) < 1:
        problems.append("machine.nproc missing")
    if not m.get("cpu_model"):
        problems.append("machine.cpu_model missing")
    w = doc.get("workloads", {})
    for name in expected:
        e = w.get(name)
        if e is None:
            problems.append("workload %s missing" % name)
            continue
        if not e.get("command"):
            problems.append("%s: no command" % name)
        if e.get("exit_status") != 0:
            problems.append("%s: exit status %s" % (name, e.get("exit_status")))
        if e.get("verified") is not True:
            problems.append("%s: not verified" % name)
        figs = [f for f in e.get("figures", []) if isinstance(f.get("value"), (int, float))]
        if not figs:
            problems.append("%s: no figure with a value" % name)
    extra = sorted(set(w) - set(expected))
    if extra:
        problems.append("unexpected workloads (not asked for): %s" % ", ".join(extra))
    if doc.get("verified") is not True:
        problems.append("the suite says it did not verify")
    for p in problems:
        print("%s: %s" % (path, p), file=sys.stderr)
    if not problems:
        print("%s: %d workloads, all verified" % (path, len(expected)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
