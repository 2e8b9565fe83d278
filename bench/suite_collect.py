#!/usr/bin/env python3
"""Assembles the benchmark suite's JSON file (called by scripts/bench.sh).

Reads, from the suite's work directory, each workload's stdout (<name>.out:
JSON lines, or one JSON document for the simulator), its command, exit
status and wall time (<name>.meta) and the machine description (machine),
writes one JSON file and prints the table of figure vs baseline vs target.
Exit status 0 when every workload exited 0 and verified, else 1.

The layout is described in docs/benchmarks.md ("The suite: one command").
"""

import argparse
import json
import math
import os
import sys

SUITE_VERSION = 1


def read_lines(path):
    """Every JSON object printed one per line; the simulator prints one
    indented document instead, which is read whole."""
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return [], "no output"
    objs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                objs.append(json.loads(line))
            except ValueError:
                pass
    if not objs and text.strip():
        try:
            doc = json.loads(text)
            if isinstance(doc, dict):
                objs.append(doc)
        except ValueError:
            return [], "output is not JSON"
    return objs, None


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def fig(name, value, unit, baseline=None, baseline_value=None, target=None, meets=None, note=None):
    """One headline figure: what the table prints for a workload."""
    return {
        "figure": name,
        "value": num(value),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": num(baseline_value),
        "target": target,
        "meets": meets,
        "note": note,
    }


def pick(lines, **want):
    for l in lines:
        if all(l.get(k) == v for k, v in want.items()):
            return l
    return None


# --- the headline figures of each workload ------------------------------------------------

def signed_writes(lines):
    out = []
    for sync in (False, True):
        for batch in (1, 64, 1024):
            s = pick(lines, bench="signed_writes", backend="rocksdb", sync=sync, batch=batch)
            if not s:
                continue
            raw = pick(lines, bench="signed_writes", backend="rocksdb_raw", sync=sync, batch=batch) or {}
            batched = batch >= 64
            out.append(fig(
                "signed writes, RocksDB%s, batch %d" % (" + fsync" if sync else "", batch),
                s.get("writes_per_s"), "writes/s",
                "raw RocksDB WriteBatch, same rows", raw.get("writes_per_s"),
                ">= 50,000/s" if batched else None,
                s.get("meets_50k") if batched else None))
    sign = pick(lines, bench="signed_writes", backend="sign_only", batch=1)
    if sign:
        out.append(fig("signatures alone (sign_batch, 1 leaf)", sign.get("writes_per_s"), "signatures/s"))
    return out


def replication(lines):
    r = pick(lines, bench="replication") or {}
    n = r.get("n") or 0
    tcp_ms = num(r.get("tcp_baseline_ms"))
    tcp_entries = n / (tcp_ms / 1e3) if tcp_ms and n else None
    return [
        fig("replication to a new follower (n = %s)" % format(n, ","), r.get("entries_per_s"), "entries/s",
            "writer's local signed writes", r.get("local_writes_per_s"), ">= 50,000/s", r.get("meets_50k")),
        fig("  same bytes over raw loopback TCP", tcp_entries, "entries/s",
            note="%.0f MiB/s" % r["tcp_baseline_mib_per_s"] if num(r.get("tcp_baseline_mib_per_s")) else None),
        fig("wire bytes / payload bytes", r.get("wire_ratio"), "x",
            "payload (key + value)", 1.0, "<= 1.5x", r.get("meets_1_5x")),
        fig("follower CPU per entry", r.get("follower_cpu_us_per_entry"), "us"),
    ]


def anti_entropy(lines):
    out = []
    ds = sorted({l.get("d") for l in lines if l.get("bench") == "ae_round" and l.get("d") is not None})
    for d in ds:
        ndc = pick(lines, bench="ae_round", scheme="ndc", d=d) or {}
        m64 = pick(lines, bench="ae_round", scheme="dvv_merkle_65536", d=d) or {}
        m4 = pick(lines, bench="ae_round", scheme="dvv_merkle_4096", d=d) or {}
        out.append(fig("anti-entropy bytes, NDC, d = %s of n = %s" % (format(d, ","), format(ndc.get("n", 0), ",")),
                       ndc.get("bytes"), "bytes", "DVV + Merkle (65,536 leaves)", m64.get("bytes"),
                       "<= 1.5x (raw + clocks)", ndc.get("meets_1_5x"),
                       "ratio %.2f; Merkle 4,096 leaves: %s B" % (ndc["ratio_vs_raw_plus_clocks"], format(m4.get("bytes", 0), ","))
                       if num(ndc.get("ratio_vs_raw_plus_clocks")) else None))
    return out


def relay(lines):
    p = pick(lines, bench="relay_peers") or {}
    m = pick(lines, bench="relay_rss_per_peer") or {}
    k = pick(lines, bench="relay_lookups") or {}
    c = pick(lines, bench="relay_circuit") or {}
    r = pick(lines, bench="relay_reconnect") or {}
    return [
        fig("relay: registered peers", p.get("registered", p.get("peers")), "peers",
            target=">= 20,000" if p.get("target_applies") else "(target needs 20,000)",
            meets=p.get("meets_target") if p.get("target_applies") else None),
        fig("relay: RSS per idle registered peer", m.get("bytes_per_peer"), "bytes",
            target="<= 4,096", meets=m.get("meets_target")),
        fig("relay: verified lookups", k.get("lookups_per_s"), "lookups/s",
            "pings, same clients", k.get("baseline_pings_per_s"), ">= 50,000/s", k.get("meets_target")),
        fig("relay: circuit throughput", c.get("mb_per_s"), "MB/s",
            "raw loopback TCP", c.get("baseline_tcp_mb_per_s"),
            note="relay hop work alone %.0f MB/s" % c["baseline_hop_mb_per_s"] if num(c.get("baseline_hop_mb_per_s")) else None),
        fig("relay: CPU per reconnect, every peer at once, with tickets", r.get("relay_cpu_us_per_reconnect"), "us",
            "first registration (full handshakes)", r.get("baseline_relay_cpu_us_per_registration"),
            note="%s of %s resumed" % (format(r["resumed"], ","), format(r["reconnected"], ","))
            if num(r.get("resumed")) is not None and num(r.get("reconnected")) is not None else None),
    ]


def sim(lines, extra):
    s = lines[0] if lines else {}
    wall_s = (s.get("wall_ms") or 0) / 1e3
    per = (lambda v: v / wall_s if num(v) is not None and wall_s > 0 else None)
    b = extra.get("baseline") or {}
    b_wall = (b.get("wall_ms") or 0) / 1e3
    b_rate = b.get("messages") / b_wall if num(b.get("messages")) is not None and b_wall > 0 else None
    same = b.get("trace_hash") == s.get("trace_hash") if b else None
    out = [
        fig("simulator: messages per wall second (%s nodes)" % s.get("nodes", "?"), per(s.get("messages")), "msgs/s",
            "every signature checked at every node (--no-verify-memo)", b_rate,
            note=None if same is None else ("same trace hash" if same else "TRACE HASH DIFFERS from the baseline")),
        fig("simulator: scheduler steps (actor events) per wall second", per(s.get("scheduler_steps")), "steps/s",
            note="%s workload events, %s simulated messages in %.1f s" % (format(s.get("events", 0), ","), format(s.get("messages", 0), ","), wall_s)),
        fig("simulator: simulated time / wall time", (s.get("simulated_ms") or 0) / 1e3 / wall_s if wall_s else None, "x"),
        fig("simulator: peak RSS", extra.get("peak_rss_mib"), "MiB"),
    ]
    return out


def idle_follows(lines):
    r = pick(lines, bench="replication") or {}
    peers = r.get("peers") or 0
    applies = peers >= 10000
    rss = num(r.get("rss_idle_mib"))
    return [
        fig("idle node following %s ids: RSS" % format(peers, ","), rss * 1048576 / 1e6 if rss is not None else None, "MB",
            "same node before the follows", r["rss_start_mib"] * 1048576 / 1e6 if num(r.get("rss_start_mib")) else None,
            "< 100 MB" if applies else "(target needs 10,000)", r.get("meets_100mb") if applies else None),
        fig("  growth per followed id", r.get("kib_per_peer"), "KiB"),
        fig("  idle CPU", r.get("idle_cpu_pct"), "% of a core"),
    ]


def cold_start(lines):
    r = pick(lines, bench="cold_start") or {}
    n = r.get("n") or 0
    return [
        fig("cold start: kith run -> /v1/status, %s docs, cache dropped" % format(n, ","),
            r.get("kith_ready_ms_cold"), "ms", "store::open + read, fresh process", r.get("store_open_read_ms_cold"),
            note="bare RocksDB open %.1f ms" % r["rocksdb_open_ms_cold"] if num(r.get("rocksdb_open_ms_cold")) else None),
        fig("warm start: kith run -> /v1/status", r.get("kith_ready_ms_warm"), "ms",
            "store::open + read, fresh process", r.get("store_open_read_ms_warm"),
            note="bare RocksDB open %.1f ms" % r["rocksdb_open_ms_warm"] if num(r.get("rocksdb_open_ms_warm")) else None),
        fig("  daemon RSS when it first answers", r.get("kith_rss_mib_at_ready"), "MiB"),
    ]


def channel(lines):
    r = pick(lines, bench="channel") or {}
    return [
        fig("resumed channel handshake, both ends, one core", r.get("resumed_us"), "us",
            "full handshake (signatures)", r.get("full_us"),
            note="key-exchange floor %.0f us" % r["kx_floor_us"] if num(r.get("kx_floor_us")) else None),
    ]


def sim_floor(lines):
    r = pick(lines, bench="sim-floor") or {}
    return [
        fig("sim network: frames per wall s, acked and sealed, no node code", r.get("sealed_per_s"),
            "frames/s", "one CAF message per frame", r.get("direct_per_s"),
            note="unsealed {:,.0f}, no acks {:,.0f}".format(r["network_ack_per_s"], r["network_per_s"])
            if num(r.get("network_ack_per_s")) and num(r.get("network_per_s")) else None),
    ]


HEADLINES = {
    "signed_writes": signed_writes,
    "replication": replication,
    "anti_entropy": anti_entropy,
    "relay": relay,
    "idle_follows": idle_follows,
    "cold_start": cold_start,
    "channel": channel,
    "sim_floor": sim_floor,
}


def verified(name, rc, lines):
    """A workload verifies when it exited 0, printed something, and no line
    says otherwise (the simulator: converged, nothing resurrected)."""
    if rc != 0 or not lines:
        return False
    if name == "sim":
        s = lines[0]
        return s.get("converged") is True and s.get("resurrected", 0) == 0
    return all(l.get("verified", True) is not False for l in lines)


def fmt_value(v, unit):
    if v is None:
        return "-"
    if unit in ("x",):
        return "%.2fx" % v
    a = abs(v)
    if isinstance(v, int):
        return "{:,}".format(v) + " " + unit
    s = "{:,.0f}".format(v) if a >= 100 else ("%.1f" % v if a >= 10 else "%.2f" % v)
    return s + ("" if unit in ("x",) else " " + unit)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--quick", default="0")
    ap.add_argument("--wall", type=float, default=0)
    ap.add_argument("--workloads", nargs="+", required=True)
    a = ap.parse_args()

    machine = {}
    with open(os.path.join(a.work, "machine")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            machine[k] = v
    for k in ("nproc", "mem_total_kib"):
        if machine.get(k, "").isdigit():
            machine[k] = int(machine[k])
    machine["git_dirty"] = machine.get("git_dirty") == "true"

    doc = {
        "suite": "kith-bench",
        "version": SUITE_VERSION,
        "date_utc": machine.pop("date_utc", None),
        "quick": a.quick == "1",
        "wall_s": a.wall,
        "git_rev": machine.pop("git_rev", None),
        "git_dirty": machine.pop("git_dirty"),
        "machine": machine,
        "log": a.log,
        "workloads": {},
    }
    all_ok = True
    for name in a.workloads:
        meta_path = os.path.join(a.work, name + ".meta")
        try:
            cmd, rc, wall = open(meta_path).read().split("\n")[:3]
            rc = int(rc)
            wall = float(wall)
        except (OSError, ValueError):
            cmd, rc, wall = None, -1, None
        lines, problem = read_lines(os.path.join(a.work, name + ".out"))
        extra = {}
        if name == "sim":
            try:
                kib, _ = open(os.path.join(a.work, "sim.time")).read().split()[:2]
                extra["peak_rss_mib"] = int(kib) / 1024
            except (OSError, ValueError):
                extra["peak_rss_mib"] = None
            base, _ = read_lines(os.path.join(a.work, "sim.base.out"))
            extra["baseline"] = base[0] if base else None
        ok = verified(name, rc, lines)
        if name == "sim" and ok and extra.get("baseline") is not None:
            # The memo must not change the run: same trace as the baseline.
            ok = extra["baseline"].get("trace_hash") == lines[0].get("trace_hash")
        try:
            figures = sim(lines, extra) if name == "sim" else HEADLINES[name](lines)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            figures = []
            problem = "cannot read its figures: %s" % e
            ok = False
        all_ok = all_ok and ok
        entry = {
            "command": cmd,
            "exit_status": rc,
            "wall_s": wall,
            "verified": ok,
            "seed": next((l.get("seed") for l in lines if "seed" in l), None),
            "figures": figures,
            "lines": lines,
        }
        if extra:
            entry.update(extra)
        if problem:
            entry["problem"] = problem
        doc["workloads"][name] = entry
    doc["verified"] = all_ok

    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, a.out)

    # The table: one row per headline figure.
    rows = [("workload", "figure", "measured", "baseline (same run)", "target")]
    for name in a.workloads:
        w = doc["workloads"][name]
        status = "" if w["verified"] else " (FAILED)"
        figs = w["figures"] or [fig("no figures", None, "")]
        for i, f in enumerate(figs):
            base = "-"
            if f["baseline"]:
                base = "%s: %s" % (f["baseline"], fmt_value(f["baseline_value"], f["unit"]))
            elif f["note"]:
                base = f["note"]
            if f["baseline"] and f["note"]:
                base += "; " + f["note"]
            tgt = f["target"] or "-"
            if f["meets"] is True:
                tgt += ": met"
            elif f["meets"] is False:
                tgt += ": MISSED"
            rows.append((name + status if i == 0 else "", f["figure"], fmt_value(f["value"], f["unit"]), base, tgt))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    print()
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4])
    print()
    if doc["quick"]:
        print("quick run: sizes are too small for most targets; a MISSED here is not a finding.")
    print("wrote %s (%s workloads, %.0f s); progress log %s" % (a.out, len(a.workloads), a.wall, a.log))
    if not all_ok:
        bad = [n for n in a.workloads if not doc["workloads"][n]["verified"]]
        print("FAILED or did not verify: %s" % ", ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
