// kith-causality-exp: the causality schemes compared on one workload and
// fault schedule (docs/experiments.md). Runs ndc, dvv and vv in turn on the
// same seeded schedule and prints a summary; with --out DIR writes
// summary.json, per-scheme CSV files and (with --plots) PNG plots.
//
//   kith-causality-exp [--seed N] [--rf 3] [--sync-ms 10000] [--loss 0.2]
//                      [--out DIR [--plots]] [--check]
//
// --check runs a tiny configuration twice per scheme and checks that the
// two runs are identical and that the end states are what each scheme
// promises; exit status 1 if not (the ctest causality_experiments_check).

#include "experiment.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#ifndef KITH_EXP_PLOT_SCRIPT
#define KITH_EXP_PLOT_SCRIPT "sim/experiments/plot_run.gp"
#endif

namespace {

using namespace kith::experiments;
using kith::causality::scheme_kind;
using kith::causality::to_string;
using json = nlohmann::ordered_json;

json to_json(const percentiles& p) {
  return {{"count", p.count}, {"never", p.never}, {"mean_ms", p.mean}, {"p50_ms", p.p50},
          {"p90_ms", p.p90},  {"p99_ms", p.p99},  {"max_ms", p.max}};
}

json to_json(const config& c) {
  return {{"seed", c.seed},
          {"rf", c.rf},
          {"keys", c.keys},
          {"zipf", c.zipf},
          {"writes_per_s", c.writes_per_s},
          {"delete_share", c.delete_share},
          {"value_bytes", c.value_bytes},
          {"duration_ms", c.duration_ms},
          {"heal_max_ms", c.heal_max_ms},
          {"sync_ms", c.sync_ms},
          {"loss", c.loss},
          {"latency_ms", c.latency_ms},
          {"jitter_ms", c.jitter_ms},
          {"sample_ms", c.sample_ms},
          {"merkle_leaves", c.merkle_leaves},
          {"merkle_fanout", c.merkle_fanout}};
}

json to_json(const scheme_result& r, std::size_t rf) {
  const double n = static_cast<double>(rf);
  const double live = static_cast<double>(r.end_live) / n;
  return {{"writes", r.writes},
          {"deletes", r.deletes},
          {"pushes_sent", r.pushes_sent},
          {"pushes_lost", r.pushes_lost},
          {"push_bytes", r.push_bytes},
          {"sync_sessions", r.sync_sessions},
          {"ae_bytes_write_phase", {{"data", r.ae_writes.data},
                                    {"key_meta", r.ae_writes.key_meta},
                                    {"sync_meta", r.ae_writes.sync_meta},
                                    {"total", r.ae_writes.total()}}},
          {"ae_bytes_whole_run", {{"data", r.ae_total.data},
                                  {"key_meta", r.ae_total.key_meta},
                                  {"sync_meta", r.ae_total.sync_meta},
                                  {"total", r.ae_total.total()}}},
          {"repair", to_json(r.repair_p)},
          {"strips", r.strips},
          {"key_strip", to_json(r.key_strip_p)},
          {"strip", to_json(r.strip_p)},
          {"converged_ms", r.converged_ms},
          {"forced_convergence", r.forced},
          {"converged_at_end", r.converged_end},
          {"end_ms", r.end_ms},
          {"end_per_replica", {{"keys", static_cast<double>(r.end_stats.keys) / n},
                               {"live_keys", live},
                               {"tombstones", static_cast<double>(r.end_stats.tombstones) / n},
                               {"key_meta_bytes", static_cast<double>(r.end_stats.key_meta_bytes) / n},
                               {"node_meta_bytes", static_cast<double>(r.end_stats.node_meta_bytes) / n},
                               {"data_bytes", static_cast<double>(r.end_stats.data_bytes) / n}}},
          {"settled_write_replicas_at_end", r.settled_at_end},
          {"trace_hash", r.trace_hash}};
}

bool write_outputs(const std::string& dir, const config& c,
                   const std::vector<scheme_result>& results, const json& summary) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  {
    std::ofstream o(dir + "/summary.json");
    o << summary.dump(2) << '\n';
    if (!o)
      return false;
  }
  // totals.csv: one row per scheme; the ae_* columns are the write phase
  // (0 .. duration_ms), the same window for every scheme.
  std::ofstream totals(dir + "/totals.csv");
  totals << "scheme,rf,sync_ms,loss,writes,ae_data,ae_key_meta,ae_sync_meta,push_bytes,"
            "repair_p50,repair_p90,repair_p99,repair_never,key_strip_p50,key_strip_p99,"
            "strip_p50,strip_p90,strip_p99,strip_never,end_keys,end_live,end_tombstones,"
            "end_key_meta_per_live,end_node_meta,converged_ms,forced\n";
  for (const auto& r : results) {
    const auto name = std::string{to_string(r.kind)};
    std::ofstream ts(dir + "/timeseries-" + name + ".csv");
    ts << "t_s,keys,live,tombstones,key_meta,node_meta,data,ae_data,ae_key_meta,ae_sync_meta,"
          "push_bytes,unrepaired,key_meta_per_live,all_meta_per_live\n";
    for (const auto& s : r.series) {
      const double live = s.live > 0 ? s.live : 1;
      ts << static_cast<double>(s.t_ms) / 1000 << ',' << s.keys << ',' << s.live << ','
         << s.tombstones << ',' << s.key_meta << ',' << s.node_meta << ',' << s.data << ','
         << s.ae.data << ',' << s.ae.key_meta << ',' << s.ae.sync_meta << ',' << s.push_bytes
         << ',' << s.unrepaired << ',' << s.key_meta / live << ','
         << (s.key_meta + s.node_meta) / live << '\n';
    }
    std::ofstream lat(dir + "/latency-" + name + ".csv");
    lat << "write,repair_ms,key_strip_ms,strip_ms,delete,t_ms,key\n";
    for (std::size_t i = 0; i < r.repair.size(); ++i)
      lat << i << ',' << r.repair[i] << ',' << r.key_strip[i] << ',' << r.strip[i] << ','
          << (r.erase[i] ? 1 : 0) << ',' << r.write_ms[i] << ',' << r.write_key[i] << '\n';
    const double n = static_cast<double>(c.rf);
    const double live = static_cast<double>(r.end_live) / n;
    totals << name << ',' << c.rf << ',' << c.sync_ms << ',' << c.loss << ',' << r.writes << ','
           << r.ae_writes.data << ',' << r.ae_writes.key_meta << ',' << r.ae_writes.sync_meta << ','
           << r.push_bytes << ',' << r.repair_p.p50 << ',' << r.repair_p.p90 << ','
           << r.repair_p.p99 << ',' << r.repair_p.never << ',' << r.key_strip_p.p50 << ','
           << r.key_strip_p.p99 << ',' << r.strip_p.p50 << ',' << r.strip_p.p90 << ','
           << r.strip_p.p99 << ',' << r.strip_p.never << ','
           << static_cast<double>(r.end_stats.keys) / n << ',' << live << ','
           << static_cast<double>(r.end_stats.tombstones) / n << ','
           << (live > 0 ? static_cast<double>(r.end_stats.key_meta_bytes) / n / live : 0) << ','
           << static_cast<double>(r.end_stats.node_meta_bytes) / n << ',' << r.converged_ms << ','
           << (r.forced ? 1 : 0) << '\n';
    if (!ts || !lat)
      return false;
  }
  return static_cast<bool>(totals);
}

/// The ctest: a tiny configuration, twice per scheme.
int self_check(std::uint64_t seed) {
  int failures = 0;
  const auto expect = [&](bool ok, const std::string& what) {
    if (!ok) {
      ++failures;
      std::cerr << "CHECK FAILED (seed " << seed << "): " << what << '\n';
    }
  };
  for (double loss : {0.3, 1.0}) {
    config c;
    c.seed = seed;
    c.rf = 3;
    c.keys = 40;
    c.writes_per_s = 40;
    c.duration_ms = 5000;
    c.heal_max_ms = 60'000;
    c.sync_ms = 200;
    c.sample_ms = 100;
    c.loss = loss;
    for (auto kind : {scheme_kind::ndc, scheme_kind::dvv, scheme_kind::vv}) {
      std::ostringstream label;
      label << to_string(kind) << " loss " << loss;
      const std::string name = label.str();
      const auto a = run(c, kind);
      const auto b = run(c, kind);
      expect(a.trace_hash == b.trace_hash, name + ": same seed, same trace hash");
      expect(to_json(a, c.rf) == to_json(b, c.rf), name + ": same seed, same summary");
      expect(a.series.size() == b.series.size(), name + ": same seed, same series length");
      expect(a.writes > 50 && a.deletes > 0, name + ": the workload writes and deletes");
      expect(a.converged_end, name + ": replicas hold equal contents at the end");
      expect(!a.forced, name + ": periodic anti-entropy alone converged");
      expect(a.repair_p.never == 0, name + ": every write reached every replica");
      expect(a.end_live > 0, name + ": some keys are live at the end");
      if (kind == scheme_kind::ndc) {
        expect(a.end_stats.tombstones == 0, name + ": no tombstones after convergence");
        expect(a.end_stats.keys == a.end_live, name + ": objects in storage equal the ideal");
        expect(a.end_stats.key_meta_bytes > 0, name + ": live values keep their dots");
        expect(a.strip_p.never == 0, name + ": every write's metadata was stripped everywhere");
      } else {
        expect(a.end_stats.tombstones > 0, name + ": deletes left tombstones");
        expect(a.end_stats.keys > a.end_live, name + ": objects in storage exceed the ideal");
        expect(a.settled_at_end == 0, name + ": per-key metadata is never stripped");
      }
      std::cout << name << ": writes " << a.writes << ", repair p50 " << a.repair_p.p50
                << " ms, converged at " << a.converged_ms << " ms, trace "
                << a.trace_hash << '\n';
    }
  }
  std::cout << (failures == 0 ? "all checks passed" : "checks FAILED") << " (seed " << seed << ")\n";
  return failures == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"kith-causality-exp: causality schemes on one workload and fault schedule"};
  config c;
  std::string out_dir, schemes = "ndc,dvv,vv";
  bool plots = false, check = false;
  double sync_s = 0;
  app.add_option("--seed", c.seed, "seed of the workload and fault schedule");
  app.add_option("--rf", c.rf, "replicas in the group (2..64)")->check(CLI::Range(2, 64));
  app.add_option("--keys", c.keys, "key space")->check(CLI::PositiveNumber);
  app.add_option("--zipf", c.zipf, "key popularity exponent (0 = uniform)");
  app.add_option("--writes-per-s", c.writes_per_s, "writes per second, whole group")
      ->check(CLI::PositiveNumber);
  app.add_option("--delete-share", c.delete_share, "share of writes to live keys that delete")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--value-bytes", c.value_bytes, "bytes per value");
  app.add_option("--duration-ms", c.duration_ms, "virtual ms of writes")->check(CLI::PositiveNumber);
  app.add_option("--heal-max-ms", c.heal_max_ms, "virtual ms of anti-entropy alone afterwards, at most");
  app.add_option("--sync-ms", c.sync_ms, "each replica pulls from a random member this often")
      ->check(CLI::PositiveNumber);
  app.add_option("--sync-s", sync_s, "the same in seconds (overrides --sync-ms)");
  app.add_option("--loss", c.loss, "probability that a push to one member is lost")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--latency-ms", c.latency_ms, "one-way message latency (plus jitter)");
  app.add_option("--jitter-ms", c.jitter_ms, "uniform extra latency in [0, jitter)");
  app.add_option("--sample-ms", c.sample_ms, "virtual ms between time-series rows")
      ->check(CLI::PositiveNumber);
  app.add_option("--merkle-leaves", c.merkle_leaves, "baselines' Merkle leaves (a power of fanout)");
  app.add_option("--merkle-fanout", c.merkle_fanout, "baselines' Merkle fan-out");
  app.add_option("--schemes", schemes, "comma-separated subset of ndc,dvv,vv");
  app.add_option("--out", out_dir, "write summary.json, totals.csv, timeseries-*.csv, latency-*.csv here");
  app.add_flag("--plots", plots, "with --out: draw PNG plots with gnuplot (sim/experiments/plot_run.gp)");
  app.add_flag("--check", check, "run the self-check (tiny runs, twice each) and exit");
  CLI11_PARSE(app, argc, argv);
  if (sync_s > 0)
    c.sync_ms = static_cast<std::uint64_t>(sync_s * 1000);
  if (check)
    return self_check(c.seed);

  std::vector<scheme_kind> kinds;
  std::stringstream ss(schemes);
  for (std::string name; std::getline(ss, name, ',');) {
    const auto k = kith::causality::parse_scheme(name);
    if (!k) {
      std::cerr << "kith-causality-exp: unknown scheme '" << name << "' (ndc, dvv or vv)\n";
      return 2;
    }
    kinds.push_back(*k);
  }

  json summary;
  summary["seed"] = c.seed;
  summary["config"] = to_json(c);
  std::vector<scheme_result> results;
  for (auto k : kinds) {
    results.push_back(run(c, k));
    summary["schemes"][std::string{to_string(k)}] = to_json(results.back(), c.rf);
  }
  std::cout << summary.dump(2) << '\n';
  if (!out_dir.empty()) {
    if (!write_outputs(out_dir, c, results, summary)) {
      std::cerr << "kith-causality-exp: cannot write to " << out_dir << '\n';
      return 2;
    }
    if (plots) {
      std::string names;
      for (auto k : kinds)
        names += (names.empty() ? "" : " ") + std::string{to_string(k)};
      const std::string cmd = std::string{"gnuplot -e \"dir='"} + out_dir + "'; schemes='" + names +
                              "'\" " + KITH_EXP_PLOT_SCRIPT;
      if (std::system(cmd.c_str()) != 0) {
        std::cerr << "kith-causality-exp: plotting failed (is gnuplot installed? apt-get install gnuplot-nox)\n";
        return 2;
      }
    }
  }
  return 0;
}
