#pragma once

// The deterministic simulator: many real nodes (the same actors as the
// daemon) and optionally a relay (the same relay core) in one process, on
// CAF's testing scheduler with virtual time, over actors::sim_network.
// One seed drives every random choice; the same seed and build give the
// same trace hash. docs/simulation.md describes scenarios and outputs.
//
// This is the first slice of issue 6: a feed workload, on/off churn with
// exponential or Weibull session and downtime lengths, convergence
// checking (and checks for resurrected deletes and lost posts), jitter and
// connection resets, crash-restart without store loss, and a JSON summary.
// Clogging, one-way partitions, store loss, trace replay, the key-value
// workload, CSV series and plots are not built yet.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kith::sim {

struct churn_model {
  enum class kind { none, exponential, weibull } model = kind::none;
  double mean_up_s = 600;   // mean session length
  double mean_down_s = 120; // mean downtime
  double shape = 0.5;       // Weibull shape k (measured P2P traces: ~0.3-0.8)
  /// Share of down periods that are process crashes (the node's actors
  /// stop and restart from its store) rather than network departures.
  double crash_fraction = 0;
};

struct scenario {
  std::uint64_t seed = 1;
  std::uint32_t nodes = 10;
  bool relay = true;              // nodes find each other through one relay
  std::uint32_t follows = 3;      // each node follows this many others (random)
  double duration_s = 120;        // workload and churn run this long
  double post_interval_s = 10;    // mean time between posts of one node (exponential)
  double zipf_s = 1.0;            // authors chosen by Zipf with this exponent (0: uniform)
  double delete_fraction = 0;     // share of workload events that delete one of the author's posts
  churn_model churn{};
  std::uint32_t anti_entropy_s = 10;
  std::uint32_t latency_ms = 20;
  std::uint32_t jitter_ms = 0;     // extra delay, uniform in [0, jitter) per send
  double reset_probability = 0;    // per send: the connection is reset instead
  double settle_limit_s = 600;    // after the workload: time allowed to converge
};

/// Reads a scenario from TOML text; errors name the key.
[[nodiscard]] std::optional<scenario> parse_scenario(const std::string& toml_text,
                                                     std::string& error);

struct summary {
  nlohmann::json json; // seed, trace hash, figures (docs/simulation.md)
  bool converged = false;
};

/// Runs the scenario. `progress` (may be empty) is called about every
/// simulated 10% with a line of text.
[[nodiscard]] summary run(const scenario& s,
                          const std::function<void(const std::string&)>& progress = {});

} // namespace kith::sim
