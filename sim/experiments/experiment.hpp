#pragma once

// The causality-scheme experiments (issue 6, docs/experiments.md): one
// replication group driven by a seeded workload and fault schedule, run
// once per scheme on the causality library alone. Virtual time in ms, one
// event queue, no threads, no sockets, no wall clock: same seed and
// parameters, same output, byte for byte.

#include "kith/causality/scheme.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace kith::experiments {

/// Everything that defines a run. The workload and the fault schedule
/// depend only on these values (never on a scheme's state), so every scheme
/// sees the same writes at the same replicas at the same times, the same
/// lost pushes and the same anti-entropy partners.
struct config {
  std::uint64_t seed = 20261122;
  std::size_t rf = 3;                  ///< replicas in the group
  std::size_t keys = 2000;             ///< key space
  double zipf = 0.8;                   ///< key popularity exponent; 0 = uniform
  double writes_per_s = 20;            ///< whole group, Poisson arrivals
  double delete_share = 0.25;          ///< of writes to a live key
  std::size_t value_bytes = 64;
  std::uint64_t duration_ms = 300'000; ///< writes (and push loss) stop here
  /// Then anti-entropy alone, until every replica holds every write, the
  /// contents agree and (ndc) every write's metadata is stripped, or this
  /// long at most.
  std::uint64_t heal_max_ms = 300'000;
  std::uint64_t sync_ms = 10'000;      ///< each replica pulls from a random member this often
  double loss = 0.2;                   ///< probability a push to one member is lost
  std::uint64_t latency_ms = 20;       ///< one-way message latency: latency + U[0, jitter)
  std::uint64_t jitter_ms = 30;
  std::uint64_t sample_ms = 2000;      ///< time-series row interval
  std::size_t merkle_leaves = 256;     ///< baselines' tree (a power of merkle_fanout)
  std::size_t merkle_fanout = 16;
};

/// Latency distribution summary (ms) over the writes that completed.
struct percentiles {
  std::uint64_t count = 0;    ///< writes that reached the state
  std::uint64_t never = 0;    ///< writes that had not when the run ended
  double mean = 0;
  std::uint64_t p50 = 0, p90 = 0, p99 = 0, max = 0;
};

/// One time-series row: means over the replicas, cumulative traffic.
struct sample {
  std::uint64_t t_ms = 0;
  double keys = 0;            ///< objects in storage, tombstones included
  double live = 0;            ///< keys with a live value: the ideal
  double tombstones = 0;
  double key_meta = 0;        ///< bytes of per-key causality metadata
  double node_meta = 0;       ///< bytes of per-replica metadata
  double data = 0;            ///< value bytes stored
  kith::causality::byte_split ae; ///< anti-entropy bytes so far, all replicas
  std::uint64_t push_bytes = 0;   ///< replication pushes sent so far (lost ones too)
  std::uint64_t unrepaired = 0;   ///< writes not yet held everywhere
};

struct scheme_result {
  kith::causality::scheme_kind kind{};
  std::vector<sample> series;
  /// Per write, in issue order: ms until every replica held it (repair),
  /// until every replica's stored context for the key was empty (key
  /// strip), and until that and no dot-key map listing it (strip);
  /// -1 = not reached by the end of the run.
  std::vector<std::int64_t> repair, key_strip, strip;
  percentiles repair_p, key_strip_p, strip_p;
  bool strips = false;            ///< the scheme drops per-write metadata (ndc)
  std::uint64_t writes = 0, deletes = 0;
  std::uint64_t sync_sessions = 0;
  std::uint64_t pushes_sent = 0, pushes_lost = 0;
  std::vector<bool> erase;          ///< per write: a delete
  std::vector<std::uint64_t> write_ms;  ///< per write: when
  std::vector<std::uint32_t> write_key; ///< per write: which key (index)
  kith::causality::byte_split ae_total;  ///< anti-entropy bytes, whole run
  kith::causality::byte_split ae_writes; ///< the same, during the write phase only
  std::uint64_t push_bytes = 0;
  std::int64_t converged_ms = -1; ///< first sample after the writes with equal contents and all writes repaired
  bool forced = false;            ///< heal_max_ms ran out: all-pairs pulls were run to converge
  bool converged_end = false;     ///< every replica holds the same live values at the end
  std::uint64_t end_ms = 0;
  kith::causality::scheme_stats end_stats;   ///< summed over replicas
  std::uint64_t end_live = 0;                ///< summed over replicas
  std::uint64_t settled_at_end = 0; ///< (write, replica) pairs whose key metadata is gone at the end
  std::uint64_t trace_hash = 0;     ///< hash of every event and of the end state
};

/// Runs one scheme on the configuration's workload. Deterministic.
[[nodiscard]] scheme_result run(const config& c, kith::causality::scheme_kind kind);

[[nodiscard]] percentiles summarise(const std::vector<std::int64_t>& latencies);

} // namespace kith::experiments
