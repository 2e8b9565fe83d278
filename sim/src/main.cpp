// kith-sim: runs a scenario (TOML) on the deterministic simulator and
// prints a JSON summary (docs/simulation.md).

#include "kith/sim/simulation.hpp"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#ifndef KITH_SIM_PLOT_SCRIPT
#define KITH_SIM_PLOT_SCRIPT "sim/plot.sh"
#endif

#ifdef KITH_SIM_JEMALLOC
// jemalloc reads this at start (MALLOC_CONF in the environment still
// overrides it): pages freed go back to the system at once instead of
// after 10 s. The simulated nodes free a lot after each phase (resync
// pages, handshakes), and 10,000 nodes peak about 1% lower for the same
// CPU time (docs/simulation.md, "Session 23").
extern "C" {
const char* malloc_conf = "dirty_decay_ms:0,muzzy_decay_ms:0";
}
#endif

namespace {

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f)
    return false;
  std::stringstream ss;
  ss << f.rdbuf();
  out = ss.str();
  return true;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream o(path);
  o << text;
  return static_cast<bool>(o);
}

/// A number of seconds from lo to hi. CLI's own range checks let NaN
/// through (it compares false), and "inf" or "nan" would run for ever.
CLI::Validator seconds_within(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) {
          std::ostringstream want;
          want << "needs seconds from " << lo << " to " << hi << ", not '" << text << "'";
          return want.str();
        }
        return {};
      },
      "SECONDS");
}

/// A whole number from lo to hi, written in decimal: CLI11 alone reads
/// "010" as octal (8) and "-1" as 2^64 - 1. Rewrites the text in plain
/// decimal for CLI11 to convert.
CLI::Validator whole_number_within(std::uint64_t lo, std::uint64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        const bool digits = !text.empty() && text.size() <= 20 &&
                            text.find_first_not_of("0123456789") == std::string::npos;
        errno = 0;
        const auto v = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
        if (!digits || errno == ERANGE || v < lo || v > hi)
          return "needs a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                 ", not '" + text + "'";
        text = std::to_string(v);
        return {};
      },
      "UINT");
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"kith-sim: the real node code, many nodes, virtual time, one seed"};
  std::string file, out_dir;
  std::optional<std::uint64_t> seed;
  std::optional<std::uint32_t> nodes;
  std::optional<double> duration;
  double sample_s = 10;
  bool plots = false;
  app.add_option("scenario", file, "a scenario file (TOML); see docs/simulation.md")->required();
  app.add_option("--seed", seed, "override the scenario's seed")
      ->transform(whole_number_within(0, UINT64_MAX));
  app.add_option("--nodes", nodes, "override the number of nodes")
      ->transform(whole_number_within(1, 100000));
  app.footer("Exit status: 0 when the run converged and every check held; 1 when it did not\n"
             "(the seed and the command that replays it are printed); 2 on a bad argument\n"
             "or scenario file.");
  app.add_option("--duration", duration, "override duration_s (simulated seconds of workload)")
      ->check(seconds_within(0, 1e9));
  app.add_option("--out", out_dir,
                 "write summary.json and series.csv (one row per --sample-s simulated seconds) here");
  app.add_option("--sample-s", sample_s, "simulated seconds between rows of series.csv (with --out)")
      ->check(seconds_within(0.001, 1e9));
  std::optional<double> checkpoint_s;
  app.add_option("--checkpoint-s", checkpoint_s,
                 "override checkpoint_s (simulated seconds between invariant checks; 0: none)")
      ->check(seconds_within(0, 1e9));
  bool no_memo = false;
  app.add_flag("--no-verify-memo", no_memo,
               "check every signature at every receiving node (verify_memo = false)");
  bool no_shared = false;
  app.add_flag("--no-shared-values", no_shared,
               "every node's store keeps its own copy of each value (shared_values = false)");
  bool no_resume = false;
  app.add_flag("--no-resume-tickets", no_resume,
               "every channel handshake signs and checks; none resumes (resume_tickets = false)");
  app.add_flag("--plots", plots, "with --out: draw PNG plots of series.csv with gnuplot (sim/plot.sh)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2; // --help: 0; a bad argument: 2, as for a bad scenario
  }

  std::string text;
  if (!read_file(file, text)) {
    std::cerr << "kith-sim: cannot read " << file << "\n";
    return 2;
  }
  std::string error;
  auto s = kith::sim::parse_scenario(text, error);
  if (!s) {
    std::cerr << "kith-sim: " << file << ": " << error << "\n";
    return 2;
  }
  if (seed)
    s->seed = *seed;
  if (nodes)
    s->nodes = *nodes; // 1 to 100000 (checked above)
  if (checkpoint_s)
    s->checkpoint_s = *checkpoint_s;
  if (no_memo)
    s->verify_memo = false;
  if (no_shared)
    s->shared_values = false;
  if (no_resume)
    s->resume_tickets = false;
  if (duration)
    s->duration_s = *duration;
  // Trace files named in the scenario, relative to its directory: read
  // and parsed into `into`, or a message naming the file and false.
  auto load = [&](const std::string& name, const char* what, auto parse, auto& into) {
    std::filesystem::path p(name);
    if (p.is_relative())
      p = std::filesystem::path(file).parent_path() / p;
    std::string text;
    if (!read_file(p.string(), text)) {
      std::cerr << "kith-sim: " << file << ": cannot read the " << what << " " << p.string() << "\n";
      return false;
    }
    auto parsed = parse(text, error);
    if (!parsed) {
      std::cerr << "kith-sim: " << p.string() << ": " << error << "\n";
      return false;
    }
    into = std::move(*parsed);
    return true;
  };
  if (s->churn.model == kith::sim::churn_model::kind::trace &&
      !load(s->churn.trace_file, "churn trace", kith::sim::parse_churn_trace, s->churn.trace))
    return 2;
  if (!s->jitter_samples_file.empty() &&
      !load(s->jitter_samples_file, "latency trace", kith::sim::parse_latency_samples, s->jitter_samples_ms))
    return 2;
  for (auto& l : s->links)
    if (!l.jitter_samples_file.empty() &&
        !load(l.jitter_samples_file, "latency trace", kith::sim::parse_latency_samples, l.jitter_samples_ms))
      return 2;
  if (auto e = kith::sim::check_scenario(*s)) {
    std::cerr << "kith-sim: " << file << ": " << *e << "\n";
    return 2;
  }
  if (plots && out_dir.empty()) {
    std::cerr << "kith-sim: --plots needs --out DIR\n";
    return 2;
  }
  if (plots && out_dir.find('\'') != std::string::npos) {
    std::cerr << "kith-sim: --plots: the --out directory must not contain a quote (')\n";
    return 2;
  }
  if (!out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) {
      std::cerr << "kith-sim: cannot create " << out_dir << ": " << ec.message() << "\n";
      return 2;
    }
  }
  // The command that replays this run: the seed and every override given.
  std::ostringstream replay_cmd;
  replay_cmd << "kith-sim " << file << " --seed " << s->seed;
  if (nodes)
    replay_cmd << " --nodes " << *nodes;
  if (duration)
    replay_cmd << " --duration " << *duration;
  if (checkpoint_s)
    replay_cmd << " --checkpoint-s " << *checkpoint_s;
  if (no_memo)
    replay_cmd << " --no-verify-memo";
  const std::string replay = replay_cmd.str();
  std::cerr << "kith-sim: seed " << s->seed << " (replay: " << replay << ")\n";
  kith::sim::run_options options;
  options.sample_s = out_dir.empty() ? 0 : sample_s;
  auto r = kith::sim::run(*s, [](const std::string& line) { std::cerr << "kith-sim: " << line << "\n"; },
                          options);
  std::cout << r.json.dump(2) << "\n";
  if (!out_dir.empty()) {
    if (!write_file(out_dir + "/summary.json", r.json.dump(2) + "\n") ||
        !write_file(out_dir + "/series.csv", r.series_csv) ||
        (!r.checkpoints_csv.empty() && !write_file(out_dir + "/checkpoints.csv", r.checkpoints_csv))) {
      std::cerr << "kith-sim: cannot write into " << out_dir << "\n";
      return 2;
    }
    if (plots) {
      const std::string cmd = std::string("sh '") + KITH_SIM_PLOT_SCRIPT + "' '" + out_dir + "'";
      if (std::system(cmd.c_str()) != 0)
        std::cerr << "kith-sim: plotting failed (is gnuplot installed? scripts/install-deps.sh)\n";
    }
  }
  if (!r.checkpoints_ok)
    std::cerr << "kith-sim: seed " << s->seed << ": an invariant failed "
              << r.checkpoint_failure << "; replay with: " << replay << "\n";
  if (!r.converged) {
    std::cerr << "kith-sim: seed " << s->seed << ": did not converge; replay with: " << replay << "\n";
    return 1;
  }
  return r.checkpoints_ok ? 0 : 1;
}
