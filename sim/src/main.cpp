// kith-sim: runs a scenario (TOML) on the deterministic simulator and
// prints a JSON summary (docs/simulation.md).

#include "kith/sim/simulation.hpp"

#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

int main(int argc, char** argv) {
  CLI::App app{"kith-sim: the real node code, many nodes, virtual time, one seed"};
  std::string file, out_dir;
  std::optional<std::uint64_t> seed;
  std::optional<std::uint32_t> nodes;
  app.add_option("scenario", file, "a scenario file (TOML); see docs/simulation.md")->required();
  app.add_option("--seed", seed, "override the scenario's seed");
  app.add_option("--nodes", nodes, "override the number of nodes");
  app.add_option("--out", out_dir, "also write summary.json into this directory");
  CLI11_PARSE(app, argc, argv);

  std::ifstream f(file);
  if (!f) {
    std::cerr << "kith-sim: cannot read " << file << "\n";
    return 2;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  std::string error;
  auto s = kith::sim::parse_scenario(ss.str(), error);
  if (!s) {
    std::cerr << "kith-sim: " << file << ": " << error << "\n";
    return 2;
  }
  if (seed)
    s->seed = *seed;
  if (nodes)
    s->nodes = *nodes;
  std::cerr << "kith-sim: seed " << s->seed << " (replay: kith-sim " << file << " --seed "
            << s->seed << ")\n";
  auto r = kith::sim::run(*s, [](const std::string& line) { std::cerr << "kith-sim: " << line << "\n"; });
  std::cout << r.json.dump(2) << "\n";
  if (!out_dir.empty()) {
    std::ofstream o(out_dir + "/summary.json");
    o << r.json.dump(2) << "\n";
  }
  if (!r.converged) {
    std::cerr << "kith-sim: did not converge; replay with: kith-sim " << file << " --seed " << s->seed
              << "\n";
    return 1;
  }
  return 0;
}
