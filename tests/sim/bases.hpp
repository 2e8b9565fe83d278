// Scenario bases the simulator tests build on, and helpers they share.
#pragma once

#include "kith/sim/simulation.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace kith::sim::test {

/// A feed network without faults: `nodes` nodes, each following `follows`
/// others, posting every `post_interval_s` on average for `duration_s`,
/// then up to `settle_limit_s` to converge.
inline scenario feed_base(std::uint64_t seed, std::uint32_t nodes, std::uint32_t follows,
                          double duration_s, double post_interval_s, double settle_limit_s) {
  scenario s;
  s.seed = seed;
  s.nodes = nodes;
  s.follows = follows;
  s.duration_s = duration_s;
  s.post_interval_s = post_interval_s;
  s.settle_limit_s = settle_limit_s;
  return s;
}

/// A scenario file of sim/scenarios (the build passes the directory).
inline scenario scenario_file(const std::string& name) {
  std::ifstream in(std::string(KITH_SIM_SCENARIOS) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  std::string error;
  auto s = parse_scenario(text.str(), error);
  if (!s)
    throw std::runtime_error(name + ": " + (error.empty() ? "cannot read it" : error));
  return *s;
}

/// A summary without its wall time and memory peak (the parts two runs
/// may differ in).
inline nlohmann::json without_wall(nlohmann::json j) {
  j.erase("wall_ms");
  j.erase("peak_rss_kib");
  return j;
}

} // namespace kith::sim::test
