#pragma once

// The deterministic simulator: many real nodes (the same actors as the
// daemon) and optionally a relay (the same relay core) in one process, on
// CAF's testing scheduler with virtual time, over actors::sim_network.
// One seed drives every random choice; the same seed and build give the
// same trace hash. docs/simulation.md describes scenarios and outputs.
//
// Built: a feed workload and a key-value workload over a shared topic;
// on/off churn with exponential or Weibull session and downtime lengths,
// a join rate, permanent departures, crash-restart with and without loss
// of the store, and replay of a churn trace file; network faults (jitter,
// connection resets, one-way and symmetric partitions, clogging of nodes
// and links, per-link latency and bandwidth); several relays that crash
// and restart (scheduled or from a churn model); rare-path faults (a crash
// in the middle of a sync, replies arriving after a disconnect); checkers
// for convergence, resurrected deletes and lost concurrent writes (against
// a naive model), and invariants checked at checkpoints during the run;
// a JSON summary and CSV time series.

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <random>
#include <string>
#include <vector>

#include "kith/causality/node_clock.hpp"

#include <nlohmann/json.hpp>

namespace kith::sim {

/// A node of a fault or link: its index, or a relay. Relay k is index
/// -1 - k ("relay" and "relay0" are relay 0, "relay1" relay 1, ...).
struct node_ref {
  static constexpr std::int64_t relay = -1;
  std::int64_t index = 0;
  [[nodiscard]] static node_ref relay_n(std::size_t k) {
    return node_ref{-1 - static_cast<std::int64_t>(k)};
  }
  [[nodiscard]] bool is_relay() const { return index < 0; }
  /// Which relay (is_relay() only).
  [[nodiscard]] std::size_t relay_index() const { return static_cast<std::size_t>(-1 - index); }
  friend bool operator==(const node_ref& a, const node_ref& b) { return a.index == b.index; }
};

/// One line of a churn trace: at `at_s`, `node` does `what`.
struct trace_event {
  enum class kind { up, down, crash, lose, leave, join } what = kind::up;
  double at_s = 0;
  std::uint32_t node = 0;
};

/// Reads a churn trace: one event per line, `<time_s> <node> <event>`,
/// events up, down, crash, lose, leave, join; `#` starts a comment.
/// Errors name the line.
[[nodiscard]] std::optional<std::vector<trace_event>> parse_churn_trace(const std::string& text,
                                                                        std::string& error);

struct churn_model;

/// One session or downtime length (seconds) with the given mean, drawn
/// from the model's distribution with `g` (deterministic for a seed).
[[nodiscard]] double draw_length(const churn_model& c, double mean, std::mt19937_64& g);

struct churn_model {
  enum class kind { none, exponential, weibull, trace, lognormal } model = kind::none;
  double mean_up_s = 600;   // mean session length
  double mean_down_s = 120; // mean downtime
  double shape = 0.5;       // Weibull shape k (measured P2P traces: ~0.3-0.8)
  double sigma = 1.4;       // log-normal sigma (measured P2P traces: ~1.0-1.8)
  /// Share of down periods that are process crashes (the node's actors
  /// stop and restart from its store) rather than network departures.
  double crash_fraction = 0;
  /// Share of crashes that also lose the store: the node restarts with an
  /// empty store and a new replica id (same identity key).
  double lose_store_fraction = 0;
  /// Share of down periods that never end (permanent departures).
  double depart_fraction = 0;
  /// Share of nodes (never node 0) that start offline and join later, one
  /// at a time, as a Poisson process of `join_rate_per_s` joins a second.
  double join_fraction = 0;
  double join_rate_per_s = 0.1;
  /// model = trace: the file (as written in the scenario) and its events.
  std::string trace_file;
  std::vector<trace_event> trace;
};

/// A timed network fault ([[fault]] in a scenario).
struct fault {
  /// partition: groups cut off from each other (hold or cut); oneway: sends
  /// from `a` to `b` held while b to a works; clog: sends of nodes `a` (to
  /// anyone) or of `links` (both directions) held.
  ///
  /// relay: the relays in `a` crash at start_s (every connection to them
  /// closes, their state is lost) and restart duration_s later (0: at
  /// once), under the same identity. With `graceful`, they restart the way
  /// kith-relay does on SIGHUP instead: stop accepting, tell each client
  /// to come back within spread_s, serve the others for drain_s, say
  /// goodbye and stop; the new process starts duration_s after start_s.
  ///
  /// Rare-path faults, decided when a node receives a sync reply (an
  /// anti-entropy answer or a resync page) inside the window, with
  /// `probability`, at most `max_count` times (0: no limit), for nodes in
  /// `a` (empty: every node):
  /// crash_during_sync: the receiver (or, with crash_sender, the peer that
  /// sent the reply) crashes right after that reply is applied, before the
  /// next delivery (the rest of the round, the next resync page or its
  /// end), and restarts down_s later.
  /// late_reply: the replier's sends to the receiver (with
  /// hold_requests, the receiver's sends to the replier) are held for
  /// hold_s, and the connection between them is reset 1 s before the hold
  /// ends: what was sent meanwhile (the next rounds' replies, or requests)
  /// arrives after the disconnect, at a peer actor that has dropped the
  /// connection or ended. With away_s, the side whose sends are held
  /// crashes 1 s into the hold instead and restarts away_s later: with a
  /// retirement period (retire_after_s, co_follower_retire_after_s) well
  /// under hold_s, the other side retires it from its topics before the
  /// held bytes arrive.
  enum class kind { partition, oneway, clog, relay, crash_during_sync, late_reply } what =
      kind::partition;
  double start_s = 0;
  double duration_s = 10;
  bool cut = false; // partition only: close connections instead of holding bytes
  std::vector<std::vector<node_ref>> groups; // partition: two or more
  std::vector<node_ref> a, b;               // oneway: from, to (b empty: everyone); clog: nodes
  std::vector<std::pair<node_ref, node_ref>> links; // clog
  double probability = 1.0;    // rare-path faults: per observed sync reply
  std::uint32_t max_count = 0; // rare-path faults: at most this many (0: no limit)
  double down_s = 5;           // crash_during_sync: restart after this long
  bool crash_sender = false;   // crash_during_sync: crash the replier instead of the receiver
  double hold_s = 25;          // late_reply: how long the sends are held
  bool hold_requests = false;  // late_reply: hold the receiver's sends instead of the replier's
  double away_s = 0;           // late_reply: crash the held side 1 s in, for this long (0: reset instead)
  bool graceful = false;       // relay: a graceful restart instead of a crash
  double spread_s = 10;        // relay, graceful: clients come back within this
  double drain_s = 5;          // relay, graceful: serve this long before the goodbye
};

/// Per-link settings ([[link]] in a scenario).
struct link_setting {
  node_ref a, b;
  std::optional<std::uint32_t> latency_ms;
  std::optional<std::uint64_t> bandwidth_bytes_s;
  /// This link's own jitter (bound or mean, ms) and distribution; unset:
  /// the scenario's jitter_ms / jitter_model.
  std::optional<std::uint32_t> jitter_ms;
  std::string jitter_model = "uniform";
  double jitter_alpha = 1.5;
  double jitter_sigma = 1.0; // jitter_model "lognormal": sigma of the underlying normal
  /// jitter_model "empirical": the link's delays (ms) replayed from a
  /// trace file (named relative to the scenario file; kith-sim loads it).
  std::string jitter_samples_file;
  std::vector<std::int64_t> jitter_samples_ms;
  /// This link's packet faults below the stream; an unset one is the
  /// scenario's (actors::sim_network::set_link_packet_faults).
  std::optional<double> packet_loss, packet_duplicate, packet_reorder;
  [[nodiscard]] bool own_packet_faults() const {
    return packet_loss || packet_duplicate || packet_reorder;
  }
};

/// The key-value workload: writers of one shared topic read, update and
/// delete `keys` keys.
struct kv_workload {
  std::uint32_t keys = 20;
  std::uint32_t writers = 5;     // nodes 0..writers-1 write the shared topic
  double zipf_s = 0;             // key choice: Zipf with this exponent (0: uniform)
  double read_fraction = 0.2;    // share of operations that are reads
  double delete_fraction = 0.1;  // share that delete the key
  double op_interval_s = 10;     // mean time between operations of one writer
};

struct scenario {
  std::uint64_t seed = 1;
  std::uint32_t nodes = 10;
  bool relay = true;              // nodes find each other through one relay
  std::uint32_t follows = 3;      // each node follows this many others (random)
  double duration_s = 120;        // workload and churn run this long
  enum class workload_kind { feed, kv } workload = workload_kind::feed;
  double post_interval_s = 10;    // mean time between posts of one node (exponential)
  double zipf_s = 1.0;            // authors chosen by Zipf with this exponent (0: uniform)
  double delete_fraction = 0;     // share of workload events that delete one of the author's posts
  kv_workload kv{};
  churn_model churn{};
  std::uint32_t anti_entropy_s = 10;
  /// Rounds that bring nothing double the wait, up to this (actors::
  /// sync_settings::anti_entropy_idle_max); 0: every anti_entropy_s.
  std::uint32_t anti_entropy_idle_max_s = 0;
  /// Keepalive on an idle connection and the silence after which it is
  /// dropped (actors::sync_settings::keepalive, peer_timeout). Unset: the
  /// node's defaults (15 s, 60 s).
  std::optional<std::uint32_t> keepalive_s;
  std::optional<std::uint32_t> peer_timeout_s;
  std::uint32_t latency_ms = 20;
  std::uint32_t jitter_ms = 0;     // extra delay per send: uniform in [0, jitter), or the mean
  /// The extra delay's distribution: uniform, exponential, pareto or
  /// lognormal (actors::sim_network::jitter_kind), with the Pareto tail
  /// index or the log-normal sigma.
  std::string jitter_model = "uniform";
  double jitter_alpha = 1.5;
  double jitter_sigma = 1.0; // jitter_model "lognormal": sigma of the underlying normal
  /// jitter_model "empirical": extra delays (ms) replayed from a trace
  /// file, one drawn per send (parse_latency_samples; kith-sim loads the
  /// file named relative to the scenario file).
  std::string jitter_samples_file;
  std::vector<std::int64_t> jitter_samples_ms;
  double reset_probability = 0;    // per send: the connection is reset instead
  /// Per send: its bytes arrive twice, or swapped with the connection's
  /// next send (actors::sim_network::set_tampering). The channels must
  /// refuse them and close; the run fails if a tampered connection stays open.
  double duplicate_probability = 0;
  double reorder_probability = 0;
  /// Below the stream (actors::sim_network::set_packet_faults): per
  /// segment loss and duplication, per send reordering; TCP turns them
  /// into delay and bandwidth. min_rto_ms: the retransmission timeout's
  /// floor added to the round trip.
  double packet_loss = 0;
  double packet_duplicate = 0;
  double packet_reorder = 0;
  double min_rto_ms = 200;
  /// A congestion window per direction on links with packet faults
  /// (actors::sim_network::set_congestion_window); false: a loss delays
  /// only the send it hit, as before session 20.
  bool congestion_window = true;
  std::uint64_t bandwidth_bytes_s = 0; // every link, each direction (0: unlimited)
  std::vector<link_setting> links;
  std::vector<fault> faults;
  double settle_limit_s = 600;    // after the workload: time allowed to converge
  /// After convergence: time allowed for the causality metadata to go
  /// (stored contexts empty, no kept header or dot-key map entry at any
  /// node); the run fails if it stays. 0: not checked. Departed members
  /// and replica ids lost with a store hold it until they are retired.
  double strip_limit_s = 0;
  /// Topic members silent this long are retired from the watermark
  /// (actors::sync_settings::retire_after); 0: never. Unset: the node's
  /// default (a week: never within a simulated run).
  std::optional<double> retire_after_s;
  /// Co-follower members of a feed (actors::sync_settings::
  /// co_follower_retire_after); 0: as retire_after_s. Unset: the node's
  /// default (10 minutes).
  std::optional<double> co_follower_retire_after_s;
  /// How long a connection to a co-follower stays once no longer pulled
  /// from (actors::sync_settings::co_follower_linger); 0: closed at once.
  /// Unset: the node's default.
  std::optional<double> co_follower_linger_s;
  /// How long an idle peer connection (pulling and serving nothing) stays
  /// awake before its actor sleeps, the node keeping the connection
  /// (actors::sync_settings::peer_sleep_after); 0: never. Unset: the
  /// node's default (0 for now: docs/simulation.md, "Session 26").
  std::optional<double> peer_sleep_after_s;
  /// Each node's wall clock (its relay records' times, and the time its
  /// posts and follows carry) is off by a fixed amount drawn uniformly
  /// from [-clock_skew_s, +clock_skew_s] (a stream of its own from the
  /// seed); the relays keep the true time. 0: every clock is right.
  double clock_skew_s = 0;
  /// Retire silent members of shared topics as well as of feeds
  /// (actors::sync_settings::retire_shared).
  bool retire_shared_topics = false;
  /// Resumed channel handshakes between nodes that met before (actors::
  /// sync_settings::resume_tickets; false sets it to 0: every handshake
  /// signs and checks).
  bool resume_tickets = true;
  /// Missed checks (5 s apart) before a follower passes over a co-follower
  /// it pulls an absent author's feed from (actors::sync_settings::
  /// co_follower_pass_over_checks). Unset: the node's default (2).
  std::optional<std::uint32_t> co_follower_pass_over_checks;
  /// With relay: how many relays (addresses sim:relay, sim:relay1, ...),
  /// and how many of them each node uses: node i uses relays i, i+1, ...
  /// (mod relays). 0: a majority (relays / 2 + 1), so every two nodes
  /// share one.
  std::uint32_t relays = 1;
  std::uint32_t relays_per_node = 0;
  /// Relays that fail on their own: up and down periods drawn from this
  /// model (none, exponential, weibull, lognormal; mean_up_s,
  /// mean_down_s, shape, sigma), one process per relay.
  churn_model relay_churn{};
  /// Virtual seconds between checkpoints (0: none): invariants that must
  /// hold at all times are checked during the run (docs/simulation.md).
  double checkpoint_s = 0;
  /// Checkpoint limits per topic replica (0: no limit): kept headers and
  /// dot-key map entries.
  std::uint64_t max_kept_headers = 0;
  std::uint64_t max_dot_keys = 0;
  /// Checkpoint limits per key (0: no limit): values held for one key
  /// (siblings) and entries of its stored context.
  std::uint64_t max_siblings_per_key = 0;
  std::uint64_t max_context_per_key = 0;
  /// Check each signed (key, message, signature) once per process rather
  /// than once per receiving node (protocol::verify_memo). Every verdict
  /// is the same either way, and so is the trace; only ed25519 time goes.
  bool verify_memo = true;
  /// The nodes' in-memory stores hold each value (a signed batch, a key's
  /// container) once in the process however many nodes store it
  /// (storage::value_pool). Memory only: the trace is the same either way.
  bool shared_values = true;
};

/// The nodes' relays in a scenario: 0 without relay.
[[nodiscard]] inline std::uint32_t relay_count(const scenario& s) {
  return s.relay ? std::max<std::uint32_t>(s.relays, 1) : 0;
}
/// How many relays each node uses.
[[nodiscard]] inline std::uint32_t relays_per_node(const scenario& s) {
  const auto n = relay_count(s);
  return s.relays_per_node == 0 ? std::min(n, n / 2 + 1) : std::min(n, s.relays_per_node);
}

/// Reads a scenario from TOML text; errors name the key. A trace file is
/// not read here (scenario.churn.trace_file; the caller loads it).
[[nodiscard]] std::optional<scenario> parse_scenario(const std::string& toml_text,
                                                     std::string& error);

/// Checks what depends on several keys (node numbers against `nodes`, a
/// trace model with its events); nullopt when the scenario can run.
[[nodiscard]] std::optional<std::string> check_scenario(const scenario& s);

/// One write or delete of a key in the key-value workload, as the naive
/// model sees it.
struct kv_record {
  std::string value;              // unique per write; empty: a delete
  std::vector<std::string> read;  // the values the writer held: what it replaces
  bool writer_lost_it = false;    // its writer later lost its store or left for good
  std::size_t writer = 0;
};

/// What the naive model finds for one key. A value is dead once a later
/// record read it; every other written value must be at every replica.
struct kv_verdict {
  std::uint64_t live = 0;                // written, not replaced, present everywhere
  std::uint64_t lost = 0;                // not replaced, missing at some replica
  std::uint64_t lost_with_store = 0;     // missing everywhere; its writer lost it
  std::uint64_t undetermined = 0;        // replaced only by records that may have died with a store
  std::uint64_t resurrected_deletes = 0; // deleted, yet present somewhere
  std::uint64_t overwritten_present = 0; // overwritten, yet present somewhere
  std::uint64_t unknown = 0;             // present, never written
  bool replicas_agree = true;
  std::vector<std::string> lost_values;
  [[nodiscard]] bool ok() const {
    return lost == 0 && resurrected_deletes == 0 && overwritten_present == 0 && unknown == 0 &&
           replicas_agree;
  }
};

/// Checks one key's replicas (their value sets, after convergence) against
/// the log of its writes and deletes in the order they were made.
[[nodiscard]] kv_verdict check_kv_key(const std::vector<kv_record>& log,
                                      const std::vector<std::set<std::string>>& replicas);

/// The checkpoints' resurrection check. A node that has applied the
/// delete of a post (it is the author, or it was seen holding the post
/// after the delete and later not) must never hold it again; a node that
/// never had it may still receive an old copy before the delete.
class delete_watch {
public:
  /// The author applied its own delete.
  void applied(std::size_t node, const std::string& subject);
  /// One checkpoint's look at a deleted post on a node; true when the node
  /// holds it again after having applied the delete.
  [[nodiscard]] bool observe(std::size_t node, const std::string& subject, bool held);
  /// The node's store was replaced (store loss): it starts over.
  void forget(std::size_t node);
  /// (node, post) pairs known to have applied the delete.
  [[nodiscard]] std::size_t applied_count() const;

private:
  enum class seen { held_after_delete, applied };
  std::map<std::pair<std::size_t, std::string>, seen> state_;
};

/// The checkpoints' clock check: the first dot of `before` that `now` no
/// longer has, ignoring entries dropped whole for replica ids not in
/// `live_ids` (a retired id's entry, closed). nullopt: no regression.
[[nodiscard]] std::optional<causality::dot>
clock_regression(const causality::node_clock& before, const causality::node_clock& now,
                 const std::set<causality::replica_id>& live_ids);

struct summary {
  nlohmann::json json; // seed, trace hash, figures (docs/simulation.md)
  bool converged = false;
  std::string series_csv; // with run_options::sample_s > 0: one row per sample
  /// Every checkpoint (checkpoint_s > 0) and the end-of-run checks of
  /// tampered connections held their invariants; otherwise the first
  /// failure (time, node, what) is in checkpoint_failure. checkpoints_csv
  /// has one row per checkpoint.
  bool checkpoints_ok = true;
  std::string checkpoint_failure;
  std::string checkpoints_csv;
};

struct run_options {
  /// Virtual seconds between rows of the CSV time series (0: none). Each
  /// row reads every node's store: it costs about one convergence check.
  double sample_s = 0;
  /// Wall seconds between progress lines (0: none).
  double progress_wall_s = 2;
};

/// A latency trace: one delay in milliseconds per line (0 to 60,000;
/// decimals are rounded down), blank lines and '#' comments ignored.
/// nullopt and `error` (with the line number) if a line is not one.
[[nodiscard]] std::optional<std::vector<std::int64_t>> parse_latency_samples(const std::string& text,
                                                                             std::string& error);

/// Node i's follows: `k` distinct nodes other than i out of n (fewer when
/// n - 1 < k), in the order drawn from `g`. Up to 10,000 nodes, and
/// wherever they are at least half of the others, the first k of a
/// shuffle of all the others (the graph every scenario and trace up to
/// that size was made with); above it, draws that skip repeats, O(k) per
/// node instead of O(n). The result keeps no spare capacity.
[[nodiscard]] std::vector<std::size_t> pick_follows(std::size_t i, std::size_t n, std::size_t k,
                                                    std::mt19937_64& g);

/// The pace of a run for its progress lines: simulated seconds per wall
/// second over about the last `window_s` wall seconds, not since the
/// start. A large run spends its first simulated second or so with every
/// node dialling and resyncing at once (ten wall minutes at 100,000
/// nodes), then goes tens of times faster; an average since the start
/// would carry that storm in every estimate to the end of the run.
class recent_pace {
public:
  explicit recent_pace(double window_s = 30) : window_s_(window_s) {}
  /// One observation: wall seconds and simulated seconds since the start
  /// (both never decreasing).
  void add(double wall_s, double simulated_s);
  /// Simulated seconds per wall second over the window; nullopt before
  /// two observations apart in wall time or while the clock stood still.
  [[nodiscard]] std::optional<double> pace() const;
  /// Wall seconds left to reach `end_s` simulated seconds at that pace.
  [[nodiscard]] std::optional<double> wall_left(double end_s) const;

private:
  double window_s_;
  std::deque<std::pair<double, double>> seen_; // (wall, simulated), oldest first
};

/// Runs the scenario (check_scenario must have passed: a bad scenario
/// throws std::invalid_argument). `progress` (may be empty) gets a line
/// of text every few wall seconds.
[[nodiscard]] summary run(const scenario& s,
                          const std::function<void(const std::string&)>& progress = {},
                          const run_options& options = {});

} // namespace kith::sim
