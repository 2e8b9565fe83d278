#include "kith/sim/simulation.hpp"

#include "kith/actors/node.hpp"
#include "kith/actors/relay_host.hpp"
#include "kith/actors/sim_network.hpp"
#include "kith/storage/documents.hpp"

#include <caf/actor_registry.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include <toml++/toml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <sys/resource.h>
#include <unistd.h>

namespace kith::sim {

namespace {

using nlohmann::json;
using namespace std::chrono;

/// This process's resident memory now, in MB (from /proc; 0 where there is
/// none), for the progress lines.
/// The process's peak resident set so far, in KiB (0 if unknown).
long peak_rss_kib() {
  rusage u{};
  return getrusage(RUSAGE_SELF, &u) == 0 ? u.ru_maxrss : 0;
}

double resident_mb() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f)
    return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e6 : 0;
}

std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

/// Relay 0 is "sim:relay" (as when there was only one), relay k "sim:relay<k>".
std::string relay_address(std::size_t k) {
  return k == 0 ? std::string("sim:relay") : "sim:relay" + std::to_string(k);
}

std::string address_of(const node_ref& r) {
  return r.is_relay() ? relay_address(r.relay_index()) : "sim:" + std::to_string(r.index);
}

/// A jitter distribution by its scenario name; nullopt for another name.
std::optional<actors::sim_network::jitter_kind> jitter_kind_named(const std::string& model) {
  using kind = actors::sim_network::jitter_kind;
  if (model == "uniform")
    return kind::uniform;
  if (model == "exponential")
    return kind::exponential;
  if (model == "pareto")
    return kind::pareto;
  if (model == "lognormal")
    return kind::lognormal;
  if (model == "empirical")
    return kind::empirical;
  return std::nullopt;
}
const char* const jitter_models_text =
    "\"uniform\", \"exponential\", \"pareto\", \"lognormal\" or \"empirical\" (with jitter_samples)";

/// The shape parameter of a jitter model: the Pareto tail index or the
/// log-normal sigma (unused by the others).
template <class Setting>
double jitter_shape_of(const Setting& s) {
  return s.jitter_model == "lognormal" ? s.jitter_sigma : s.jitter_alpha;
}

/// Parsed names only reach the world (parse_scenario checks them).
actors::sim_network::jitter_kind jitter_kind_of(const std::string& model) {
  return jitter_kind_named(model).value_or(actors::sim_network::jitter_kind::uniform);
}

/// One simulated world: the actor system on the testing scheduler, the
/// network, the nodes.
class world {
public:
  explicit world(const scenario& s)
      : s_(s), rng_(s.seed), net_(std::make_shared<actors::sim_network>(milliseconds(s.latency_ms))) {
    cfg_.set("scheduler.policy", caf::atom("testing"));
    net_->set_faults(milliseconds(s.jitter_ms), s.reset_probability, s.seed ^ 0xfa017ull);
    net_->set_jitter_model(jitter_kind_of(s.jitter_model), jitter_shape_of(s));
    if (!s.jitter_samples_ms.empty())
      net_->set_jitter_samples(s.jitter_samples_ms);
    net_->set_tampering(s.duplicate_probability, s.reorder_probability);
    net_->set_packet_faults(s.packet_loss, s.packet_duplicate, s.packet_reorder,
                            milliseconds(static_cast<std::int64_t>(s.min_rto_ms)));
    net_->set_congestion_window(s.congestion_window);
    if (s.bandwidth_bytes_s > 0)
      net_->set_default_bandwidth(s.bandwidth_bytes_s);
    for (const auto& l : s.links) {
      if (l.latency_ms)
        net_->set_latency(address_of(l.a), address_of(l.b), milliseconds(*l.latency_ms));
      if (l.bandwidth_bytes_s)
        net_->set_bandwidth(address_of(l.a), address_of(l.b), *l.bandwidth_bytes_s);
      if (l.jitter_ms || !l.jitter_samples_ms.empty())
        net_->set_link_jitter(address_of(l.a), address_of(l.b), milliseconds(l.jitter_ms.value_or(0)),
                              jitter_kind_of(l.jitter_model), jitter_shape_of(l), l.jitter_samples_ms);
      if (l.own_packet_faults())
        net_->set_link_packet_faults(address_of(l.a), address_of(l.b),
                                     l.packet_loss.value_or(s.packet_loss),
                                     l.packet_duplicate.value_or(s.packet_duplicate),
                                     l.packet_reorder.value_or(s.packet_reorder));
    }
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    sched_ = &dynamic_cast<caf::scheduler::test_coordinator&>(sys_->scheduler());
  }

  ~world() {
    for (auto& n : nodes_)
      if (!n.crashed)
        caf::anon_send(n.actor, actors::stop_atom::value);
    for (auto& r : relays_)
      if (r.actor)
        caf::anon_send_exit(r.actor, caf::exit_reason::user_shutdown);
    sched_->run();
    for (auto& n : nodes_)
      n.env->observe = nullptr; // it points into this world
  }

  struct node {
    std::string address;
    std::shared_ptr<actors::node_env> env;
    actors::node_actor actor;
    bool up = true;        // its links are up (churn)
    bool crashed = false;  // its actors are not running (crash, not joined yet, departed)
    bool joined = true;    // false until a late node joins
    bool departed = false; // left for good
    bool refollow = false; // lost its store: follows (and topics) again when it restarts
    std::uint32_t store_losses = 0;
    std::vector<std::size_t> follows;
    /// Crashed by a rare-path fault (crash_during_sync), to restart by the
    /// fault's own timer; cleared when churn or the settle phase takes over.
    bool fault_down = false;
    std::uint64_t fault_crashes = 0; // numbers each rare-path crash (its restart timer's)
    std::int64_t skew_ms = 0; // its wall clock's error (clock_skew_s)
  };

  /// The simulated unix time: virtual time from a fixed date, so that a
  /// clock that is behind stays positive.
  static constexpr std::uint64_t unix_base_ms = 1'700'000'000'000;
  std::uint64_t unix_ms() const { return unix_base_ms + now_ms(); }
  /// Messages so far, in the groups of series.csv: the nodes' protocol
  /// messages as rounds (sync_request, data_answer), keepalives, pushes,
  /// resyncs (request, pages, done), connection set-up (hello, subscribe,
  /// offer, unsubscribe) and the rest; then the requests the relays took.
  std::array<std::uint64_t, 7> message_groups() const {
    std::array<std::uint64_t, 7> out{};
    const auto group_of = [](std::string_view k) -> std::size_t {
      if (k == "sync_request" || k == "data_answer")
        return 0;
      if (k == "keepalive")
        return 1;
      if (k == "data_push")
        return 2;
      if (k == "resync_request" || k == "data_resync" || k == "resync_done")
        return 3;
      if (k == "hello" || k == "subscribe" || k == "offer" || k == "unsubscribe")
        return 4;
      return 5;
    };
    for (std::size_t k = 0; k < actors::membership_counters::sent_kinds; ++k)
      out[group_of(actors::membership_counters::sent_kind_name(k))] += counters_->sent_messages[k];
    for (const auto& r : relays_)
      for (const auto& m : r.metrics)
        for (auto n : m->requests)
          out[6] += n;
    return out;
  }
  /// Node i's wall clock: the simulated unix time and its skew.
  std::uint64_t unix_ms_at(std::size_t i) const {
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(unix_ms()) + nodes_[i].skew_ms);
  }

  /// One relay process. A crash closes its connections and loses its state
  /// (registrations, rendezvous, circuits); a restart spawns a fresh core
  /// under the same identity on the same address.
  struct relay_proc {
    std::string address;
    protocol::identity id;
    actors::transport_actor transport;
    caf::actor actor; // empty while down
    std::uint32_t incarnation = 0;
    std::uint64_t down_since_ms = 0;
    bool draining = false; // graceful restart begun: not accepting, goodbye pending
    /// Each process's metrics (relay_host_options::metrics), oldest first.
    std::vector<std::shared_ptr<relay::relay_metrics>> metrics;
  };

  std::shared_ptr<storage::store> make_store(std::size_t i, std::uint32_t losses) {
    storage::store_options o;
    // A store loss gives a new replica id (same identity): another nonce.
    o.replica_nonce = s_.seed * 1'000'003u + i + 1 + losses * 0x9e3779b97f4a7c15ull;
    o.sync = false;
    auto st = storage::store::open(storage::make_memory_kv(values_), nodes_[i].env->self, o);
    if (!st)
      throw std::runtime_error("store: " + st.err().message);
    return std::move(st.value());
  }

  /// Builds the relay and the nodes; nodes in `late` are created but start
  /// only when they join().
  void build(const std::set<std::size_t>& late) {
    {
      // A node going down closes its connections in this order (the
      // nodes by number, then the relays), as a loop over links would.
      std::vector<std::string> order;
      for (std::uint32_t i = 0; i < s_.nodes; ++i)
        order.push_back("sim:" + std::to_string(i));
      for (std::size_t k = 0; k < relay_count(s_); ++k)
        order.push_back(relay_address(k));
      net_->set_address_order(order);
    }
    // Relay 0 keeps the seeds it had when there was only one relay.
    std::vector<std::string> relay_at;
    for (std::size_t k = 0; k < relay_count(s_); ++k) {
      relay_proc r{relay_address(k),
                   protocol::identity::from_seed(relay_seed(k, 0)),
                   net_->make_transport(*sys_, relay_address(k)),
                   {},
                   0,
                   0,
                   false,
                   {}};
      relays_.push_back(std::move(r));
      start_relay(k);
      relay_at.push_back(relays_[k].address + "#" + protocol::to_text(relays_[k].id.pub()));
    }
    for (std::uint32_t i = 0; i < s_.nodes; ++i) {
      auto id = protocol::identity::from_seed(actors::seed_for(s_.seed, i));
      auto env = std::make_shared<actors::node_env>(id);
      const std::string address = "sim:" + std::to_string(i);
      nodes_.push_back(node{address, env, {}, true, false, true, false, false, 0, {}});
      env->store = make_store(i, 0);
      env->rng = std::make_shared<actors::entropy>(actors::seed_for(s_.seed, 1000 + i));
      by_id_[protocol::to_text(id.pub())] = i;
      env->observe = [this, i](const actors::node_observation& o) { observe(i, o); };
      env->unix_ms = [this, i] { return unix_ms_at(i); };
      // KITH_SIM_LOG set: every node's log lines on stderr, with the
      // virtual time and node number (no effect on the trace).
      if (std::getenv("KITH_SIM_LOG"))
        env->log = [this, i](actors::log_level, const std::string& line) {
          std::fprintf(stderr, "%.3f n%u %s\n", now_ms() / 1000.0, unsigned(i), line.c_str());
        };
      env->settings.anti_entropy = seconds(s_.anti_entropy_s);
      env->settings.anti_entropy_idle_max = seconds(s_.anti_entropy_idle_max_s);
      if (s_.keepalive_s)
        env->settings.keepalive = seconds(*s_.keepalive_s);
      if (s_.peer_timeout_s)
        env->settings.peer_timeout = seconds(*s_.peer_timeout_s);
      if (s_.retire_after_s)
        env->settings.retire_after = milliseconds(static_cast<std::int64_t>(*s_.retire_after_s * 1000));
      if (s_.co_follower_retire_after_s)
        env->settings.co_follower_retire_after =
            milliseconds(static_cast<std::int64_t>(*s_.co_follower_retire_after_s * 1000));
      if (s_.co_follower_linger_s)
        env->settings.co_follower_linger =
            milliseconds(static_cast<std::int64_t>(*s_.co_follower_linger_s * 1000));
      if (s_.peer_sleep_after_s)
        env->settings.peer_sleep_after = milliseconds(static_cast<std::int64_t>(*s_.peer_sleep_after_s * 1000));
      env->settings.retire_shared = s_.retire_shared_topics;
      if (!s_.resume_tickets)
        env->settings.resume_tickets = 0;
      if (s_.co_follower_pass_over_checks)
        env->settings.co_follower_pass_over_checks = *s_.co_follower_pass_over_checks;
      env->settings.counters = counters_;
      env->transport = net_->make_transport(*sys_, address);
      if (s_.relay) {
        // Node i uses relays i, i+1, ... (mod the number of relays).
        for (std::size_t j = 0; j < relays_per_node(s_); ++j)
          env->relays.push_back(relay_at[(i + j) % relay_at.size()]);
        env->announce = {address};
      }
      if (late.count(i)) {
        nodes_.back().joined = false;
        nodes_.back().crashed = true;
        continue;
      }
      nodes_.back().actor = actors::spawn_node(*sys_, env);
      net_->listen(address, caf::actor_cast<caf::actor>(nodes_.back().actor));
    }
    // Clock errors from their own stream, so that turning them on
    // changes no other draw of the run.
    if (s_.clock_skew_s > 0) {
      std::mt19937_64 g(s_.seed ^ 0xc10c5e3a5e3a5e3aull);
      const auto k = static_cast<std::uint64_t>(s_.clock_skew_s * 1000);
      for (auto& n : nodes_)
        n.skew_ms = static_cast<std::int64_t>(g() % (2 * k + 1)) - static_cast<std::int64_t>(k);
    }
    // Follows: each node follows `follows` distinct others (a late node
    // when it joins).
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      nodes_[i].follows = pick_follows(i, nodes_.size(), s_.follows, rng_);
      if (nodes_[i].joined)
        follow_all(i);
    }
  }

  /// Node i follows its list in one call: one signed batch in its feed
  /// for all of them (a node importing its follows), not one per follow.
  void follow_all(std::size_t i) {
    if (nodes_[i].follows.empty())
      return;
    json list = json::array();
    for (auto j : nodes_[i].follows) {
      json p{{"id", id_of(j)}};
      if (!s_.relay)
        p["address"] = nodes_[j].address;
      list.push_back(std::move(p));
    }
    const auto r = api(i, "follow", json{{"follows", std::move(list)}});
    if (r.status != 200) // the list is ours: a refusal is a bug, not a fault to simulate
      throw std::runtime_error("node " + std::to_string(i) + " refused its follows: " + r.json);
  }

  actors::relay_host_options relay_options() const {
    actors::relay_host_options o;
    o.unix_ms = [this] { return unix_ms(); };
    // Every simulated node is its own host ("sim:<n>"), not one IP "sim".
    o.ip_of = [](const std::string& address) { return address; };
    // One relay serves the whole simulated network.
    o.limits.max_registrations_per_ip = 1;
    // Room for every node: an operator's defaults (40,000 identities) are
    // for one server, and with a majority of the relays per node each
    // relay serves more than half of any network (docs/simulation.md,
    // "Session 19").
    o.limits.max_registrations = std::max<std::size_t>(o.limits.max_registrations, 2 * s_.nodes);
    o.limits.max_connections = std::max<std::size_t>(o.limits.max_connections, 2 * s_.nodes + 1024);
    return o;
  }

  std::string id_of(std::size_t i) const { return protocol::to_text(nodes_[i].env->self.pub()); }

  /// Node i's protocol events (node_env::observe): a peer actor reports a
  /// reply to one of its sync requests (an anti-entropy answer or a resync
  /// page, not a push) as it arrives, the simulator's view of a sync in
  /// flight; the relays actor reports a relay's "restarting, come back
  /// in after_ms".
  void observe(std::size_t i, const actors::node_observation& o) {
    using kind = actors::node_observation::kind;
    if (o.what == kind::sync_reply && watch_sync_)
      replies_seen_.emplace_back(i, o.peer);
    else if (o.what == kind::relay_restart)
      restart_notices_.push_back(o.after_ms);
    else if (o.what == kind::retired && watch_sync_)
      retired_.push_back({i, o.peer, now_ms()});
  }
  /// Whether node i retired replica `rid` (decimal) from one of its topics
  /// at `since` or later.
  bool retired_since(std::size_t i, const std::string& rid, std::uint64_t since) const {
    return std::any_of(retired_.begin(), retired_.end(), [&](const retirement& r) {
      return r.node == i && r.replica == rid && r.at_ms >= since;
    });
  }

  /// Relay k's identity (n = 0) and the channel seed of its n-th process
  /// (n >= 1). Relay 0's first process keeps the seeds of the single relay
  /// (5000, 5001: the same traces); the others come from a stream of their
  /// own, apart from the nodes' seeds.
  protocol::key_seed relay_seed(std::size_t k, std::uint64_t n) const {
    if (k == 0 && n <= 1)
      return actors::seed_for(s_.seed, 5000 + n);
    return actors::seed_for(s_.seed ^ 0x7e1a75eedull, (k << 20) | n);
  }

  /// Spawns relay k's process (its first start or a restart).
  void start_relay(std::size_t k) {
    auto& r = relays_[k];
    const auto seed = relay_seed(k, 1 + r.incarnation);
    ++r.incarnation;
    auto o = relay_options();
    o.metrics = r.metrics.emplace_back(std::make_shared<relay::relay_metrics>());
    r.actor = actors::spawn_relay_host(*sys_, r.transport, r.id, seed, std::move(o));
    net_->listen(r.address, r.actor);
  }
  [[nodiscard]] bool relay_running(std::size_t k) const { return static_cast<bool>(relays_[k].actor); }
  /// Relay k's process dies: its connections close at once (the nodes see
  /// it as a reset) and its state is gone.
  void crash_relay(std::size_t k) {
    auto& r = relays_[k];
    if (!r.actor)
      return;
    if (r.draining) {
      stop_draining_relay(k);
      return;
    }
    net_->unlisten(r.address);
    caf::anon_send_exit(r.actor, caf::exit_reason::kill);
    r.actor = caf::actor{};
    r.down_since_ms = now_ms();
    sched_->run();
  }
  /// Relay k begins a graceful restart: it stops accepting and tells its
  /// clients to come back within spread_ms; stop_draining_relay ends it.
  void begin_relay_restart(std::size_t k, std::uint64_t spread_ms) {
    auto& r = relays_[k];
    if (!r.actor || r.draining)
      return;
    net_->stop_accepting(r.address);
    caf::anon_send(r.actor, actors::restart_atom::value, spread_ms);
    r.draining = true;
    r.down_since_ms = now_ms();
    sched_->run();
  }
  /// The end of a graceful restart: goodbye to every client still there,
  /// their connections closed, then the process stops.
  void stop_draining_relay(std::size_t k) {
    auto& r = relays_[k];
    if (!r.actor || !r.draining)
      return;
    caf::anon_send(r.actor, actors::stop_atom::value, std::string("the relay is restarting"));
    sched_->run();
    net_->unlisten(r.address); // what the goodbye did not close
    caf::anon_send_exit(r.actor, caf::exit_reason::user_shutdown);
    r.actor = caf::actor{};
    r.draining = false;
    sched_->run();
  }
  /// Relay k comes back; returns how long it was down (ms), 0 if it was up.
  std::uint64_t restart_relay(std::size_t k) {
    stop_draining_relay(k); // a restart that ends before its drain did
    if (relays_[k].actor)
      return 0;
    const auto down = now_ms() - relays_[k].down_since_ms;
    start_relay(k);
    return down;
  }
  [[nodiscard]] std::size_t relays_up() const {
    std::size_t n = 0;
    for (const auto& r : relays_)
      n += r.actor ? 1 : 0;
    return n;
  }

  std::uint64_t now_ms() const {
    return static_cast<std::uint64_t>(
        duration_cast<milliseconds>(sched_->clock().now().time_since_epoch()).count());
  }

  /// Runs everything up to virtual time `t_ms`, stepping to each timer in
  /// order (never jumping over one: docs/simulation.md).
  ///
  /// Between two deliveries (after each timer's cascade of messages has
  /// run) it calls after_run, which may act on what it observed (crash a
  /// node in the middle of a sync); the simulator's own timed actions
  /// (timed_) run in time order with the actors' timers, before a timer
  /// due at the same time. With neither, the steps are those of a plain
  /// advance.
  void advance_to(std::uint64_t t_ms) {
    auto& clk = sched_->clock();
    const auto target = caf::actor_clock::time_point{milliseconds(t_ms)};
    for (;;) {
      sched_->run();
      if (after_run)
        after_run();
      if ((++steps_ & 4095) == 0 && on_steps)
        on_steps(); // progress during long stretches between events
      const bool timer_due = !clk.schedule().empty() && clk.schedule().begin()->first <= target;
      if (!timed_.empty() && timed_.begin()->first <= t_ms) {
        const auto at = caf::actor_clock::time_point{milliseconds(timed_.begin()->first)};
        if (!timer_due || at <= clk.schedule().begin()->first) {
          if (clk.current_time < at)
            clk.current_time = at;
          auto action = std::move(timed_.begin()->second);
          timed_.erase(timed_.begin());
          action();
          continue;
        }
      }
      if (!timer_due) {
        if (clk.current_time < target)
          clk.current_time = target;
        sched_->run();
        if (after_run)
          after_run();
        return;
      }
      clk.trigger_timeout();
    }
  }

  actors::api_result api(std::size_t i, const std::string& op, const json& params) {
    auto out = std::make_shared<std::optional<actors::api_result>>();
    auto target = nodes_[i].actor;
    const std::uint64_t t = unix_ms_at(i);
    sys_->spawn(
        [=](caf::event_based_actor* self, int) {
          self->request(target, caf::infinite, actors::api_atom::value, op, params.dump(),
                        std::string{}, t)
              .then([=](const actors::api_result& r) { *out = r; });
        },
        0);
    for (int i = 0; i < 1000 && !out->has_value(); ++i)
      sched_->run();
    if (!out->has_value())
      throw std::runtime_error("api " + op + " did not answer");
    return **out;
  }

  /// A crash: the node's actors stop (its connections close); restart()
  /// spawns them again over the same store, as a restarted process would.
  void crash(std::size_t i) {
    auto& n = nodes_[i];
    if (n.crashed)
      return;
    n.crashed = true;
    net_->unlisten(n.address);
    caf::anon_send(n.actor, actors::stop_atom::value);
    sched_->run();
  }
  /// A crash that loses the store: the node comes back with an empty store
  /// and a new replica id, under the same identity.
  void lose_store(std::size_t i) {
    crash(i);
    auto& n = nodes_[i];
    ++n.store_losses;
    n.env->store = make_store(i, n.store_losses);
    n.env->restore_own_feed = true;
    n.refollow = true;
  }
  void restart(std::size_t i) {
    auto& n = nodes_[i];
    if (!n.crashed || n.departed || !n.joined)
      return;
    n.crashed = false;
    n.env->relays_handle = actors::relays_actor{};
    n.actor = actors::spawn_node(*sys_, n.env);
    net_->listen(n.address, caf::actor_cast<caf::actor>(n.actor));
    if (n.refollow) {
      // The simulated user follows the same people again (the node does
      // not fetch its own follows back from its followers).
      n.refollow = false;
      follow_all(i);
      if (on_fresh_store)
        on_fresh_store(i);
    }
  }
  /// A late node starts for the first time.
  void join(std::size_t i) {
    auto& n = nodes_[i];
    if (n.joined || n.departed)
      return;
    n.joined = true;
    n.refollow = true; // its follows (and topics) are set up now
    restart(i);
  }
  void note_delete_dot(std::size_t author, const std::string& subject) {
    auto& st = *nodes_[author].env->store;
    const auto* c = st.clock(st.feed_topic_id());
    if (c)
      delete_dot_[subject] = causality::dot{st.self_id(), causality::counter{c->base(st.self_id())}};
  }
  /// Node k applied the delete whose last dot is d in `topic`: its clock
  /// has d, or it holds the author's summary up to d.
  [[nodiscard]] bool applied_delete(std::size_t k, const std::string& topic, causality::dot d) {
    auto& st = *nodes_[k].env->store;
    const auto* c = st.clock(topic);
    if (!c)
      return false;
    if (c->contains(d))
      return true;
    auto su = st.summary(topic, d.id);
    return su && su->upto >= d.n.value();
  }
  /// Has a node other than the author, still in the network, applied the
  /// delete of `subject`?
  [[nodiscard]] bool delete_went_out(std::size_t author, const std::string& subject) {
    auto it = delete_dot_.find(subject);
    if (it == delete_dot_.end())
      return true; // unknown: counted as a resurrection if it stays
    const auto topic = "feed/" + id_of(author);
    for (std::size_t k = 0; k < nodes_.size(); ++k)
      if (k != author && live(k) && applied_delete(k, topic, it->second))
        return true;
    return false;
  }
  /// A permanent departure: the node's actors stop for good.
  void leave(std::size_t i) {
    crash(i);
    nodes_[i].departed = true;
  }
  [[nodiscard]] bool live(std::size_t i) const { return nodes_[i].joined && !nodes_[i].departed; }
  [[nodiscard]] bool running(std::size_t i) const { return !nodes_[i].crashed; }

  /// A node goes off the network (all its links cut) or comes back.
  void set_up(std::size_t i, bool up) {
    if (nodes_[i].up == up)
      return;
    nodes_[i].up = up;
    net_->set_node_up(nodes_[i].address, up);
  }

  std::size_t posts_of(std::size_t holder, std::size_t author) {
    storage::documents docs(*nodes_[holder].env->store);
    auto f = docs.feed(nodes_[author].env->self.pub(), 100000);
    return f ? f->size() : 0;
  }

  /// The subjects of `author`'s posts that `holder` holds with a live
  /// value: what documents::feed lists, without building each document's
  /// JSON (the checker runs this for every follow pair).
  std::set<std::string> subjects_of(std::size_t holder, std::size_t author) {
    auto& store = *nodes_[holder].env->store;
    std::set<std::string> out;
    auto hits = store.by_author(nodes_[author].env->self.pub(), 100000);
    if (!hits)
      return out;
    for (const auto& h : *hits) {
      std::string subject = h.key.substr(0, h.key.find('\0'));
      auto rows = store.read_prefix(h.topic, subject + std::string(1, '\0'));
      if (rows && std::any_of(rows->begin(), rows->end(),
                              [](const auto& row) { return !row.second.siblings.empty(); }))
        out.insert(std::move(subject));
    }
    return out;
  }

  /// Follower i holds what author j holds of itself: nothing lost, nothing
  /// deleted still there. After j lost its store, i may also hold j's
  /// undeleted posts from before the loss (j no longer does), nothing else.
  bool pair_ok(std::size_t i, std::size_t j, const std::set<std::string>& own) {
    auto have = subjects_of(i, j);
    if (nodes_[j].store_losses == 0)
      return have == own;
    for (const auto& o : own)
      if (!have.count(o))
        return false;
    const auto& pre = pre_loss_[j];
    for (const auto& h : have)
      if (!own.count(h) && (!pre.count(h) || deleted_.count(h)))
        return false;
    return true;
  }

  /// Follow pairs (live follower, live author) that do not hold the same.
  std::size_t pairs_behind(std::size_t stop_after = SIZE_MAX) {
    std::size_t n = 0;
    std::unordered_map<std::size_t, std::set<std::string>> own; // per author, this pass
    for (std::size_t i = 0; i < nodes_.size() && n < stop_after; ++i) {
      if (!live(i))
        continue;
      for (auto j : nodes_[i].follows) {
        if (!live(j))
          continue;
        auto o = own.find(j);
        if (o == own.end())
          o = own.emplace(j, subjects_of(j, j)).first;
        if (!pair_ok(i, j, o->second) && ++n >= stop_after)
          break;
      }
    }
    return n;
  }

  bool converged() { return pairs_behind(1) == 0; }

  /// Whether a live node still holds a deleted post whose delete a live
  /// node can still carry (its author is here, or some other live node
  /// applied it): the delete is still on its way, as a feed behind its
  /// author is (pairs_behind), and settling waits for it. A feed of an
  /// author that left is in no follow pair, so this is the only wait for
  /// its deletes; whatever is still held at the settle limit counts as
  /// resurrected.
  bool deletes_pending() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (!live(i))
        continue;
      storage::documents docs(*nodes_[i].env->store);
      for (const auto& d : deleted_) {
        auto r = docs.get(d, {});
        if (!r || r->is_null() || !r->contains("doc") || (*r)["doc"].empty())
          continue;
        const auto author = by_id_.find(d.substr(0, d.find('/')));
        if (author != by_id_.end() && nodes_[author->second].departed && !delete_went_out(author->second, d))
          continue; // nobody left can carry it (the final check's lost_with_departures)
        return true;
      }
    }
    return false;
  }

  // The key-value workload's shared topic.
  std::string kv_topic_;
  json kv_descriptor_;
  std::string kv_subject(std::uint32_t k) const { return id_of(0) + "/kv/k" + std::to_string(k); }
  [[nodiscard]] bool kv_writer(std::size_t i) const {
    return s_.workload == scenario::workload_kind::kv && i < s_.kv.writers;
  }
  /// The values (siblings) replica i holds for key k.
  std::set<std::string> kv_values(std::size_t i, std::uint32_t k) {
    storage::documents docs(*nodes_[i].env->store);
    std::set<std::string> out;
    auto r = docs.get(kv_subject(k), kv_topic_);
    if (!r || r->is_null())
      return out;
    const auto& c = (*r)["conflicts"];
    if (c.contains("v"))
      for (const auto& v : c["v"])
        out.insert(v.is_string() ? v.get<std::string>() : v.dump());
    else if ((*r)["doc"].contains("v"))
      out.insert((*r)["doc"]["v"].is_string() ? (*r)["doc"]["v"].get<std::string>()
                                              : (*r)["doc"]["v"].dump());
    return out;
  }
  /// Every live writer's replica holds the same values for every key.
  bool kv_converged() {
    if (s_.workload != scenario::workload_kind::kv)
      return true;
    std::optional<std::size_t> ref;
    for (std::size_t i = 0; i < s_.kv.writers; ++i) {
      if (!live(i))
        continue;
      if (!ref) {
        ref = i;
        continue;
      }
      for (std::uint32_t k = 0; k < s_.kv.keys; ++k)
        if (kv_values(i, k) != kv_values(*ref, k))
          return false;
    }
    return true;
  }

  /// Causality metadata every node holds, over all its topics.
  struct metadata_totals {
    std::size_t dot_map_entries = 0; // dots some member may still ask for
    std::size_t members = 0;         // watermark columns (self included)
    std::size_t unstripped_keys = 0; // keys whose stored context is not empty
  };
  metadata_totals metadata() {
    metadata_totals m;
    for (auto& n : nodes_)
      for (const auto& t : n.env->store->topics())
        if (auto x = n.env->store->metadata(t)) {
          m.dot_map_entries += x->dot_map_entries;
          m.members += x->members;
          m.unstripped_keys += x->unstripped_keys;
        }
    return m;
  }
  /// Kept delete and overwrite records (write headers) by (topic, dot):
  /// the first and last sample at which some node held it.
  std::map<std::pair<std::string, causality::dot>, std::pair<std::uint64_t, std::uint64_t>> kept_seen_;
  void note_kept(std::uint64_t t) {
    for (auto& n : nodes_)
      for (const auto& topic : n.env->store->topics())
        for (auto d : n.env->store->kept_dots(topic)) {
          auto [it, fresh] = kept_seen_.try_emplace({topic, d}, t, t);
          it->second.second = t;
        }
  }
  std::shared_ptr<actors::membership_counters> counters_ =
      std::make_shared<actors::membership_counters>();

  /// count(store, topic) summed over every topic of every store.
  template <class Count>
  std::size_t sum_over_topics(Count count) {
    std::size_t sum = 0;
    for (auto& n : nodes_)
      for (const auto& t : n.env->store->topics())
        sum += count(*n.env->store, t);
    return sum;
  }
  std::size_t kept_headers() {
    return sum_over_topics([](storage::store& st, const std::string& t) { return st.superseded_count(t); });
  }
  /// Signed batches every store holds (each proves some write it holds,
  /// or is spent and awaits the next sweep: docs/storage.md).
  std::size_t signed_batches() {
    return sum_over_topics([](storage::store& st, const std::string& t) { return st.batch_count(t); });
  }

  const scenario& s_;
  std::mt19937_64 rng_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  caf::scheduler::test_coordinator* sched_ = nullptr;
  std::shared_ptr<actors::sim_network> net_;
  /// Shared by the nodes' stores (scenario shared_values), or none.
  std::shared_ptr<storage::value_pool> values_ =
      s_.shared_values ? std::make_shared<storage::value_pool>() : nullptr;
  std::vector<relay_proc> relays_;
  std::vector<node> nodes_;
  std::uint64_t steps_ = 0;
  std::function<void(std::size_t)> on_fresh_store; // set by the workload
  std::function<void()> on_steps;                 // every 4096 steps (progress lines)
  /// Called by advance_to between deliveries (set by rare-path faults).
  std::function<void()> after_run;
  /// The simulator's own actions at virtual times (ms), run by advance_to
  /// in order (equal times in insertion order).
  std::multimap<std::uint64_t, std::function<void()>> timed_;
  /// Sync replies seen and not yet acted on: (receiver, the sender's
  /// identity text).
  bool watch_sync_ = false;
  std::vector<std::pair<std::size_t, std::string>> replies_seen_;
  std::map<std::string, std::size_t> by_id_; // identity text -> node
  /// Retirements the nodes reported (while rare-path faults watch).
  struct retirement {
    std::size_t node;
    std::string replica;
    std::uint64_t at_ms;
  };
  std::vector<retirement> retired_;
  /// after_ms of every "relay restarting, come back then" a node received.
  std::vector<std::uint64_t> restart_notices_;
  std::map<std::size_t, std::set<std::string>> posted_;   // author -> its posts (current store)
  std::map<std::size_t, std::set<std::string>> pre_loss_; // author -> posts made before a store loss
  std::set<std::string> deleted_;
  /// The last dot of each delete's batch at its author (the delete went
  /// out once another node's clock or held summary reaches it).
  std::map<std::string, causality::dot> delete_dot_;
  std::map<std::size_t, std::set<std::string>> deleted_by_; // author -> its deletes (current store)
};


enum class ev_kind { post, down, up, kv_op, fault_start, fault_end, join, trace, relay_down, relay_up };
struct event {
  std::uint64_t at_ms;
  std::uint64_t order; // ties broken by creation order: deterministic
  ev_kind kind;
  std::size_t node; // or the fault's / trace event's index
  friend bool operator>(const event& a, const event& b) {
    return a.at_ms != b.at_ms ? a.at_ms > b.at_ms : a.order > b.order;
  }
};

/// A cumulative distribution over ranks 1..n with Zipf exponent `s`.
std::vector<double> zipf_cdf(std::size_t n, double s) {
  std::vector<double> cdf(n);
  double total = 0;
  for (std::size_t i = 0; i < n; ++i)
    cdf[i] = (total += 1.0 / std::pow(static_cast<double>(i + 1), s));
  for (auto& c : cdf)
    c /= total;
  return cdf;
}

std::size_t draw_rank(const std::vector<double>& cdf, double u) {
  return std::min<std::size_t>(
      static_cast<std::size_t>(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin()),
      cdf.size() - 1);
}

// --- scenario parsing ---------------------------------------------------------

/// A number of the file: an integer or a float, finite and at most 1e15 in
/// size; nullopt for anything else, which each key reports as not a number
/// of its kind. No key means anything beyond that size (1e15 ms is 31,000
/// years), and the bound keeps every later conversion to whole
/// milliseconds or counters in range: `inf`, `nan` and 1e300 are TOML
/// floats, and casting them to an integer is undefined behaviour.
std::optional<double> number_of(const toml::node& v) {
  std::optional<double> x;
  if (auto i = v.value<std::int64_t>())
    x = static_cast<double>(*i);
  else
    x = v.value<double>();
  if (x && (!std::isfinite(*x) || std::fabs(*x) > 1e15))
    return std::nullopt;
  return x;
}

/// A node reference: an index, "relay" (relay 0) or "relay<k>".
std::optional<node_ref> node_of(const toml::node& v) {
  if (auto i = v.value<std::int64_t>(); i && *i >= 0)
    return node_ref{*i};
  auto t = v.value<std::string>();
  if (!t || t->rfind("relay", 0) != 0)
    return std::nullopt;
  if (*t == "relay")
    return node_ref{node_ref::relay};
  const auto digits = t->substr(5);
  if (digits.empty() || digits.size() > 4 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return node_ref::relay_n(static_cast<std::size_t>(std::stoul(digits)));
}

std::optional<std::vector<node_ref>> nodes_of(const toml::node& v) {
  auto* arr = v.as_array();
  if (!arr)
    return std::nullopt;
  std::vector<node_ref> out;
  for (const auto& e : *arr) {
    auto r = node_of(e);
    if (!r)
      return std::nullopt;
    out.push_back(*r);
  }
  return out;
}

const std::string fault_kinds_text =
    "\"partition\", \"oneway\", \"clog\", \"relay\", \"crash_during_sync\" or \"late_reply\"";

std::optional<fault> parse_fault(const toml::table& t, const std::string& where, std::string& error) {
  fault f;
  std::optional<std::string> kind_text;
  std::vector<node_ref> nodes;
  bool have_nodes = false, have_groups = false, have_from = false, have_links = false;
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string name = where + "." + key;
    auto bad = [&](const std::string& want) {
      error = "'" + name + "' must be " + want;
      return std::nullopt;
    };
    if (key == "kind") {
      kind_text = v.value<std::string>();
      static const std::map<std::string, fault::kind> kinds{
          {"partition", fault::kind::partition},
          {"oneway", fault::kind::oneway},
          {"clog", fault::kind::clog},
          {"relay", fault::kind::relay},
          {"crash_during_sync", fault::kind::crash_during_sync},
          {"late_reply", fault::kind::late_reply}};
      auto k = kind_text ? kinds.find(*kind_text) : kinds.end();
      if (k == kinds.end())
        return bad(fault_kinds_text);
      f.what = k->second;
    } else if (key == "start_s" || key == "duration_s") {
      auto x = number_of(v);
      if (!x || *x < 0)
        return bad(key == "start_s" ? "a number of seconds, 0 or more" : "a positive number of seconds");
      (key == "start_s" ? f.start_s : f.duration_s) = *x;
    } else if (key == "probability") {
      auto x = number_of(v);
      if (!x || *x < 0 || *x > 1)
        return bad("a number from 0 to 1");
      f.probability = *x;
    } else if (key == "max_count") {
      auto x = number_of(v);
      if (!x || *x < 0 || *x > 1e9 || *x != std::floor(*x))
        return bad("a whole number, 0 or more (0: no limit)");
      f.max_count = static_cast<std::uint32_t>(*x);
    } else if (key == "down_s" || key == "hold_s") {
      auto x = number_of(v);
      if (!x || *x < 0 || (key == "hold_s" && *x < 2))
        return bad(key == "down_s" ? "a number of seconds, 0 or more" : "at least 2 seconds");
      (key == "down_s" ? f.down_s : f.hold_s) = *x;
    } else if (key == "away_s") {
      auto x = number_of(v);
      if (!x || *x < 0 || *x > 86400)
        return bad("a number of seconds from 0 to 86400 (0: reset the connection instead)");
      f.away_s = *x;
    } else if (key == "side") {
      auto m = v.value<std::string>();
      if (m != "receiver" && m != "sender")
        return bad("\"receiver\" (the node that got the reply) or \"sender\" (the peer that sent it)");
      f.crash_sender = *m == "sender";
    } else if (key == "held") {
      auto m = v.value<std::string>();
      if (m != "replies" && m != "requests")
        return bad("\"replies\" (the replier's sends) or \"requests\" (the requester's sends)");
      f.hold_requests = *m == "requests";
    } else if (key == "graceful") {
      auto b = v.is_boolean() ? v.value<bool>() : std::nullopt;
      if (!b)
        return bad("true or false");
      f.graceful = *b;
    } else if (key == "spread_s" || key == "drain_s") {
      auto x = number_of(v);
      if (!x || *x < 0 || *x > 86400)
        return bad("a number of seconds from 0 to 86400");
      (key == "spread_s" ? f.spread_s : f.drain_s) = *x;
    } else if (key == "mode") {
      auto m = v.value<std::string>();
      if (m == "hold")
        f.cut = false;
      else if (m == "cut")
        f.cut = true;
      else
        return bad("\"hold\" (bytes wait; connections stay open) or \"cut\" (connections close)");
    } else if (key == "nodes" || key == "from" || key == "to") {
      auto list = nodes_of(v);
      if (!list || list->empty())
        return bad("a non-empty array of node numbers (0, 1, ...) or \"relay\"");
      if (key == "nodes") {
        nodes = *list;
        have_nodes = true;
      } else if (key == "from") {
        f.a = *list;
        have_from = true;
      } else {
        f.b = *list;
      }
    } else if (key == "groups") {
      auto* arr = v.as_array();
      if (!arr || arr->size() < 2)
        return bad("an array of two or more arrays of nodes");
      for (const auto& g : *arr) {
        auto list = nodes_of(g);
        if (!list || list->empty())
          return bad("an array of non-empty arrays of node numbers or \"relay\"");
        f.groups.push_back(*list);
      }
      have_groups = true;
    } else if (key == "links") {
      auto* arr = v.as_array();
      if (!arr || arr->empty())
        return bad("an array of [a, b] node pairs");
      for (const auto& l : *arr) {
        auto pair = nodes_of(l);
        if (!pair || pair->size() != 2)
          return bad("an array of [a, b] node pairs");
        f.links.emplace_back((*pair)[0], (*pair)[1]);
      }
      have_links = true;
    } else {
      error = "unknown key '" + name + "'";
      return std::nullopt;
    }
  }
  if (!kind_text) {
    error = "'" + where + ".kind' is missing: " + fault_kinds_text;
    return std::nullopt;
  }
  if (f.what != fault::kind::relay && f.duration_s <= 0) {
    error = "'" + where + ".duration_s' must be a positive number of seconds";
    return std::nullopt;
  }
  const bool rare = f.what == fault::kind::crash_during_sync || f.what == fault::kind::late_reply;
  for (const char* k : {"probability", "max_count"})
    if (!rare && t.contains(k)) {
      error = where + ": '" + k + "' is for crash_during_sync and late_reply faults only";
      return std::nullopt;
    }
  if (f.what != fault::kind::crash_during_sync && (t.contains("down_s") || t.contains("side"))) {
    error = where + ": 'down_s' and 'side' are for crash_during_sync faults only";
    return std::nullopt;
  }
  if ((f.what != fault::kind::relay || !f.graceful) &&
      (t.contains("spread_s") || t.contains("drain_s"))) {
    error = where + ": 'spread_s' and 'drain_s' are for relay faults with graceful = true";
    return std::nullopt;
  }
  if (f.what != fault::kind::relay && t.contains("graceful")) {
    error = where + ": 'graceful' is for relay faults only";
    return std::nullopt;
  }
  if (f.graceful && f.drain_s > f.duration_s) {
    error = where + ": 'drain_s' must not be longer than 'duration_s' (the new process starts "
                    "duration_s after the restart begins)";
    return std::nullopt;
  }
  if (f.what != fault::kind::late_reply &&
      (t.contains("hold_s") || t.contains("held") || t.contains("away_s"))) {
    error = where + ": 'hold_s', 'held' and 'away_s' are for late_reply faults only";
    return std::nullopt;
  }
  if ((f.what == fault::kind::relay || rare) && (have_groups || have_from || have_links || t.contains("to"))) {
    error = where + ": a " + *kind_text + " fault takes only 'nodes' (and its own keys)";
    return std::nullopt;
  }
  switch (f.what) {
    case fault::kind::partition:
      if (have_nodes == have_groups) {
        error = where + ": a partition takes either 'groups' (two or more) or 'nodes' (against the rest)";
        return std::nullopt;
      }
      if (have_nodes)
        f.groups = {nodes};
      break;
    case fault::kind::oneway:
      if (!have_from) {
        error = where + ": a oneway fault needs 'from' (and 'to', default everyone)";
        return std::nullopt;
      }
      break;
    case fault::kind::clog:
      if (have_nodes == have_links) {
        error = where + ": a clog takes either 'nodes' or 'links'";
        return std::nullopt;
      }
      f.a = nodes;
      break;
    case fault::kind::relay:
      f.a = have_nodes ? nodes : std::vector<node_ref>{node_ref{node_ref::relay}};
      for (const auto& r : f.a)
        if (!r.is_relay()) {
          error = where + ": a relay fault's 'nodes' must be relays (\"relay\", \"relay1\", ...)";
          return std::nullopt;
        }
      break;
    case fault::kind::crash_during_sync:
    case fault::kind::late_reply:
      f.a = nodes; // empty: every node
      for (const auto& r : f.a)
        if (r.is_relay()) {
          error = where + ": a " + *kind_text + " fault's 'nodes' must be nodes, not relays";
          return std::nullopt;
        }
      break;
  }
  if (f.what != fault::kind::partition && t.contains("mode")) {
    error = where + ": 'mode' is for partitions only";
    return std::nullopt;
  }
  return f;
}

} // namespace

double draw_length(const churn_model& c, double mean, std::mt19937_64& g) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double x = u(g);
  if (c.model == churn_model::kind::weibull) {
    const double scale = mean / std::tgamma(1.0 + 1.0 / c.shape);
    return scale * std::pow(-std::log(1.0 - x), 1.0 / c.shape);
  }
  if (c.model == churn_model::kind::lognormal) {
    // exp(N(mu, sigma)) has mean exp(mu + sigma^2 / 2): pick mu for `mean`.
    // A standard normal from two uniforms (Box-Muller), so the draw is the
    // same on every standard library.
    const double y = u(g);
    const double z = std::sqrt(-2.0 * std::log(1.0 - x)) * std::cos(2.0 * M_PI * y);
    const double mu = std::log(mean) - c.sigma * c.sigma / 2.0;
    return std::exp(mu + c.sigma * z);
  }
  return -mean * std::log(1.0 - x);
}

std::optional<std::vector<trace_event>> parse_churn_trace(const std::string& text, std::string& error) {
  std::vector<trace_event> out;
  std::istringstream in(text);
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (auto hash = line.find('#'); hash != std::string::npos)
      line.erase(hash);
    std::istringstream ls(line);
    std::string t, node, what, extra;
    if (!(ls >> t))
      continue; // blank
    auto fail = [&](const std::string& why) {
      error = "line " + std::to_string(n) + ": " + why +
              " (expected '<time_s> <node> up|down|crash|lose|leave|join')";
      return std::nullopt;
    };
    if (!(ls >> node >> what))
      return fail("too few fields");
    if (ls >> extra)
      return fail("too many fields");
    trace_event e;
    try {
      std::size_t used = 0;
      e.at_s = std::stod(t, &used);
      if (used != t.size() || !(e.at_s >= 0) || !std::isfinite(e.at_s))
        return fail("the time must be a number of seconds, 0 or more");
      const auto v = std::stoll(node, &used);
      if (used != node.size() || v < 0 || v > 1'000'000)
        return fail("the node must be a node number");
      e.node = static_cast<std::uint32_t>(v);
    } catch (const std::exception&) {
      return fail("the time and node must be numbers");
    }
    static const std::map<std::string, trace_event::kind> kinds{
        {"up", trace_event::kind::up},       {"down", trace_event::kind::down},
        {"crash", trace_event::kind::crash}, {"lose", trace_event::kind::lose},
        {"leave", trace_event::kind::leave}, {"join", trace_event::kind::join}};
    auto k = kinds.find(what);
    if (k == kinds.end())
      return fail("unknown event '" + what + "'");
    e.what = k->second;
    out.push_back(e);
  }
  // Events in time order; equal times keep the file's order.
  std::stable_sort(out.begin(), out.end(),
                   [](const trace_event& a, const trace_event& b) { return a.at_s < b.at_s; });
  return out;
}

std::optional<scenario> parse_scenario(const std::string& text, std::string& error) {
  toml::table t;
  try {
    t = toml::parse(text);
  } catch (const toml::parse_error& e) {
    error = "line " + std::to_string(e.source().begin.line) + ": " + std::string(e.description());
    return std::nullopt;
  }
  scenario s;
  auto bad = [&](const std::string& key, const std::string& want) {
    error = "'" + key + "' must be " + want;
    return std::nullopt;
  };
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    auto num = [&]() -> std::optional<double> { return number_of(v); };
    if (key == "churn") {
      if (!v.is_table())
        return bad("churn", "a table");
      for (auto&& [ck, cv] : *v.as_table()) {
        const std::string c(ck.str());
        auto cnum = [&]() -> std::optional<double> { return number_of(cv); };
        if (c == "model") {
          auto m = cv.value<std::string>();
          if (m && *m == "none")
            s.churn.model = churn_model::kind::none;
          else if (m && *m == "exponential")
            s.churn.model = churn_model::kind::exponential;
          else if (m && *m == "weibull")
            s.churn.model = churn_model::kind::weibull;
          else if (m && *m == "trace")
            s.churn.model = churn_model::kind::trace;
          else if (m && *m == "lognormal")
            s.churn.model = churn_model::kind::lognormal;
          else
            return bad("churn.model",
                       "\"none\", \"exponential\", \"weibull\", \"lognormal\" or \"trace\"");
        } else if (c == "trace") {
          auto f = cv.value<std::string>();
          if (!f || f->empty())
            return bad("churn.trace", "a file name (relative to the scenario file)");
          s.churn.trace_file = *f;
        } else if (c == "crash_fraction" || c == "lose_store_fraction" || c == "depart_fraction" ||
                   c == "join_fraction") {
          auto x = cnum();
          if (!x || *x < 0 || *x > 1)
            return bad("churn." + c, "a number from 0 to 1");
          (c == "crash_fraction"        ? s.churn.crash_fraction
           : c == "lose_store_fraction" ? s.churn.lose_store_fraction
           : c == "depart_fraction"     ? s.churn.depart_fraction
                                        : s.churn.join_fraction) = *x;
        } else if (c == "mean_up_s" || c == "mean_down_s" || c == "shape" || c == "sigma" ||
                   c == "join_rate_per_s") {
          auto x = cnum();
          if (!x || *x <= 0)
            return bad("churn." + c, "a positive number");
          if (c == "shape" && (*x < 0.05 || *x > 20))
            return bad("churn.shape", "a Weibull shape from 0.05 to 20 (measured P2P sessions: 0.3-0.8)");
          if (c == "sigma" && *x > 5)
            return bad("churn.sigma", "a log-normal sigma above 0 and at most 5 (measured: 1.0-1.8)");
          (c == "mean_up_s"     ? s.churn.mean_up_s
           : c == "mean_down_s" ? s.churn.mean_down_s
           : c == "shape"       ? s.churn.shape
           : c == "sigma"       ? s.churn.sigma
                                : s.churn.join_rate_per_s) = *x;
        } else {
          error = "unknown key 'churn." + c + "'";
          return std::nullopt;
        }
      }
      continue;
    }
    if (key == "kv") {
      if (!v.is_table())
        return bad("kv", "a table");
      for (auto&& [ck, cv] : *v.as_table()) {
        const std::string c(ck.str());
        auto x = number_of(cv);
        if (c == "keys" || c == "writers") {
          if (!x || *x < 1 || *x > 100000 || *x != std::floor(*x))
            return bad("kv." + c, "a whole number from 1 to 100000");
          (c == "keys" ? s.kv.keys : s.kv.writers) = static_cast<std::uint32_t>(*x);
        } else if (c == "zipf_s") {
          if (!x || *x < 0)
            return bad("kv.zipf_s", "a number, 0 or more (0: uniform)");
          s.kv.zipf_s = *x;
        } else if (c == "read_fraction" || c == "delete_fraction") {
          if (!x || *x < 0 || *x > 1)
            return bad("kv." + c, "a number from 0 to 1");
          (c == "read_fraction" ? s.kv.read_fraction : s.kv.delete_fraction) = *x;
        } else if (c == "op_interval_s") {
          if (!x || *x <= 0)
            return bad("kv.op_interval_s", "a positive number");
          s.kv.op_interval_s = *x;
        } else {
          error = "unknown key 'kv." + c + "'";
          return std::nullopt;
        }
      }
      if (s.kv.read_fraction + s.kv.delete_fraction > 1)
        return bad("kv.read_fraction + kv.delete_fraction", "at most 1");
      continue;
    }
    if (key == "fault" || key == "link") {
      auto* arr = v.as_array();
      if (!arr)
        return bad(key, std::string("an array of tables: write [[") + key + "]]");
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const std::string where = key + "[" + std::to_string(i) + "]";
        auto* tab = (*arr)[i].as_table();
        if (!tab)
          return bad(where, "a table");
        if (key == "fault") {
          auto f = parse_fault(*tab, where, error);
          if (!f)
            return std::nullopt;
          s.faults.push_back(std::move(*f));
          continue;
        }
        link_setting l;
        bool have_nodes = false;
        for (auto&& [lk, lv] : *tab) {
          const std::string c(lk.str());
          auto x = number_of(lv);
          if (c == "nodes") {
            auto list = nodes_of(lv);
            if (!list || list->size() != 2)
              return bad(where + ".nodes", "two nodes, e.g. [0, 1] or [3, \"relay\"]");
            l.a = (*list)[0];
            l.b = (*list)[1];
            have_nodes = true;
          } else if (c == "latency_ms") {
            if (!x || *x < 0 || *x > 3'600'000)
              return bad(where + ".latency_ms", "milliseconds from 0 to 3600000");
            l.latency_ms = static_cast<std::uint32_t>(*x);
          } else if (c == "bandwidth_bytes_s") {
            if (!x || *x < 1)
              return bad(where + ".bandwidth_bytes_s", "a positive number of bytes per second");
            l.bandwidth_bytes_s = static_cast<std::uint64_t>(*x);
          } else if (c == "jitter_ms") {
            if (!x || *x < 0 || *x > 60'000)
              return bad(where + ".jitter_ms", "milliseconds from 0 to 60000");
            l.jitter_ms = static_cast<std::uint32_t>(*x);
          } else if (c == "jitter_model") {
            auto m = lv.value<std::string>();
            if (!m || !jitter_kind_named(*m))
              return bad(where + ".jitter_model", jitter_models_text);
            l.jitter_model = *m;
          } else if (c == "jitter_alpha") {
            if (!x || *x <= 1 || *x > 100)
              return bad(where + ".jitter_alpha", "a Pareto tail index above 1 (and at most 100)");
            l.jitter_alpha = *x;
          } else if (c == "jitter_sigma") {
            if (!x || *x <= 0 || *x > 5)
              return bad(where + ".jitter_sigma", "a log-normal sigma above 0 (and at most 5)");
            l.jitter_sigma = *x;
          } else if (c == "jitter_samples") {
            auto f = lv.value<std::string>();
            if (!f || f->empty())
              return bad(where + ".jitter_samples", "a file name (relative to the scenario file)");
            l.jitter_samples_file = *f;
          } else if (c == "packet_loss") {
            if (!x || *x < 0 || *x > 0.5)
              return bad(where + ".packet_loss", "a segment loss probability from 0 to 0.5");
            l.packet_loss = *x;
          } else if (c == "packet_duplicate" || c == "packet_reorder") {
            if (!x || *x < 0 || *x > 1)
              return bad(where + "." + c, "a number from 0 to 1");
            (c == "packet_duplicate" ? l.packet_duplicate : l.packet_reorder) = *x;
          } else {
            error = "unknown key '" + where + "." + c + "'";
            return std::nullopt;
          }
        }
        if (!have_nodes)
          return bad(where + ".nodes", "given: the link's two nodes");
        if ((l.jitter_model == "empirical") != !l.jitter_samples_file.empty())
          return bad(where + ".jitter_samples", "given with jitter_model = \"empirical\" (and only then)");
        if (l.jitter_model == "empirical" && l.jitter_ms)
          return bad(where + ".jitter_ms", "left out with jitter_model = \"empirical\" (the samples are the delays)");
        if (l.jitter_model != "empirical" && !l.jitter_ms &&
            (tab->contains("jitter_model") || tab->contains("jitter_alpha") || tab->contains("jitter_sigma")))
          return bad(where + ".jitter_ms", "given with jitter_model, jitter_alpha or jitter_sigma");
        s.links.push_back(l);
      }
      continue;
    }
    if (key == "relay_churn") {
      if (!v.is_table())
        return bad("relay_churn", "a table");
      for (auto&& [ck, cv] : *v.as_table()) {
        const std::string c(ck.str());
        auto x = number_of(cv);
        if (c == "model") {
          static const std::map<std::string, churn_model::kind> models{
              {"none", churn_model::kind::none},
              {"exponential", churn_model::kind::exponential},
              {"weibull", churn_model::kind::weibull},
              {"lognormal", churn_model::kind::lognormal}};
          auto m = cv.value<std::string>();
          auto it = m ? models.find(*m) : models.end();
          if (it == models.end())
            return bad("relay_churn.model", "\"none\", \"exponential\", \"weibull\" or \"lognormal\"");
          s.relay_churn.model = it->second;
        } else if (c == "mean_up_s" || c == "mean_down_s" || c == "shape" || c == "sigma") {
          if (!x || *x <= 0)
            return bad("relay_churn." + c, "a positive number");
          (c == "mean_up_s"     ? s.relay_churn.mean_up_s
           : c == "mean_down_s" ? s.relay_churn.mean_down_s
           : c == "shape"       ? s.relay_churn.shape
                                : s.relay_churn.sigma) = *x;
        } else {
          error = "unknown key 'relay_churn." + c + "'";
          return std::nullopt;
        }
      }
      continue;
    }
    if (key == "relays" || key == "relays_per_node" || key == "checkpoint_s" ||
        key == "max_kept_headers" || key == "max_dot_keys" || key == "max_siblings_per_key" ||
        key == "max_context_per_key") {
      auto x = num();
      if (key == "relays" || key == "relays_per_node") {
        if (!x || *x < 0 || *x > 64 || *x != std::floor(*x))
          return bad(key, key == "relays" ? "a whole number from 0 to 64 (0: no relay)"
                                          : "a whole number from 0 to 64 (0: a majority of the relays)");
        (key == "relays" ? s.relays : s.relays_per_node) = static_cast<std::uint32_t>(*x);
      } else if (key == "checkpoint_s") {
        if (!x || *x < 0)
          return bad(key, "a number of seconds, 0 or more (0: no checkpoints)");
        s.checkpoint_s = *x;
      } else {
        if (!x || *x < 0 || *x != std::floor(*x))
          return bad(key, "a whole number, 0 or more (0: no limit)");
        const auto n = static_cast<std::uint64_t>(*x);
        if (key == "max_kept_headers")
          s.max_kept_headers = n;
        else if (key == "max_dot_keys")
          s.max_dot_keys = n;
        else if (key == "max_siblings_per_key")
          s.max_siblings_per_key = n;
        else
          s.max_context_per_key = n;
      }
      continue;
    }
    if (key == "workload") {
      auto w = v.value<std::string>();
      if (w && *w == "feed")
        s.workload = scenario::workload_kind::feed;
      else if (w && *w == "kv")
        s.workload = scenario::workload_kind::kv;
      else
        return bad("workload", "\"feed\" or \"kv\"");
      continue;
    }
    if (key == "seed") {
      // Read exactly: a seed above 2^53 would not survive a double.
      auto i = v.is_integer() ? v.value<std::int64_t>() : std::nullopt;
      if (!i || *i < 0)
        return bad(key, "a whole number from 0 to 9223372036854775807");
      s.seed = static_cast<std::uint64_t>(*i);
      continue;
    }
    auto x = num();
    if (key == "jitter_model") {
      auto m = v.value<std::string>();
      if (!m || !jitter_kind_named(*m))
        return bad(key, jitter_models_text);
      s.jitter_model = *m;
      continue;
    }
    if (key == "jitter_samples") {
      auto f = v.value<std::string>();
      if (!f || f->empty())
        return bad(key, "a file name (relative to the scenario file)");
      s.jitter_samples_file = *f;
      continue;
    }
    if (key == "relay" || key == "verify_memo" || key == "shared_values" ||
        key == "retire_shared_topics" || key == "resume_tickets" || key == "congestion_window") {
      auto b = v.is_boolean() ? v.value<bool>() : std::nullopt;
      if (!b)
        return bad(key, "true or false");
      (key == "relay"         ? s.relay
       : key == "verify_memo" ? s.verify_memo
       : key == "shared_values" ? s.shared_values
       : key == "resume_tickets" ? s.resume_tickets
       : key == "congestion_window" ? s.congestion_window
                                : s.retire_shared_topics) = *b;
    } else if (!x) {
      if (key == "seed" || key == "nodes" || key == "follows" || key == "duration_s" ||
          key == "post_interval_s" || key == "zipf_s" || key == "anti_entropy_s" ||
          key == "anti_entropy_idle_max_s" || key == "keepalive_s" || key == "peer_timeout_s" ||
          key == "latency_ms" || key == "settle_limit_s" || key == "strip_limit_s" ||
          key == "retire_after_s" || key == "co_follower_retire_after_s" || key == "jitter_ms" ||
          key == "co_follower_linger_s" || key == "peer_sleep_after_s" || key == "clock_skew_s" ||
          key == "co_follower_pass_over_checks" ||
          key == "reset_probability" || key == "delete_fraction" || key == "bandwidth_bytes_s" ||
          key == "duplicate_probability" || key == "reorder_probability" ||
          key == "packet_loss" || key == "packet_duplicate" || key == "packet_reorder" ||
          key == "min_rto_ms" || key == "jitter_alpha" || key == "jitter_sigma")
        return bad(key, "a number (finite, and at most 1e15 in size)");
      error = "unknown key '" + key + "'";
      return std::nullopt;
    } else if (key == "nodes") {
      if (*x < 1 || *x > 100000 || *x != std::floor(*x))
        return bad(key, "a whole number from 1 to 100000");
      s.nodes = static_cast<std::uint32_t>(*x);
    } else if (key == "follows") {
      if (*x < 0 || *x > 100000 || *x != std::floor(*x))
        return bad(key, "a whole number from 0 to 100000");
      s.follows = static_cast<std::uint32_t>(*x);
    } else if (key == "duration_s") {
      if (*x < 0 || *x > 1e9)
        return bad(key, "seconds from 0 to 1000000000");
      s.duration_s = *x;
    } else if (key == "post_interval_s") {
      if (*x <= 0)
        return bad(key, "positive");
      s.post_interval_s = *x;
    } else if (key == "zipf_s") {
      if (*x < 0 || *x > 10)
        return bad(key, "a Zipf exponent from 0 (uniform) to 10");
      s.zipf_s = *x;
    } else if (key == "anti_entropy_s") {
      if (*x < 1 || *x > 86400)
        return bad(key, "seconds from 1 to 86400");
      s.anti_entropy_s = static_cast<std::uint32_t>(*x);
    } else if (key == "anti_entropy_idle_max_s") {
      if (*x < 0 || *x > 86400)
        return bad(key, "seconds from 0 (off) to 86400");
      s.anti_entropy_idle_max_s = static_cast<std::uint32_t>(*x);
    } else if (key == "keepalive_s" || key == "peer_timeout_s") {
      if (*x < 1 || *x > 86400)
        return bad(key, "seconds from 1 to 86400");
      (key == "keepalive_s" ? s.keepalive_s : s.peer_timeout_s) = static_cast<std::uint32_t>(*x);
    } else if (key == "latency_ms") {
      if (*x < 0 || *x > 3'600'000)
        return bad(key, "milliseconds from 0 to 3600000");
      s.latency_ms = static_cast<std::uint32_t>(*x);
    } else if (key == "jitter_ms") {
      if (*x < 0 || *x > 60'000)
        return bad(key, "milliseconds from 0 to 60000 (longer delays are partitions: [[fault]])");
      s.jitter_ms = static_cast<std::uint32_t>(*x);
    } else if (key == "jitter_alpha") {
      if (*x <= 1 || *x > 100)
        return bad(key, "a Pareto tail index above 1 (and at most 100)");
      s.jitter_alpha = *x;
    } else if (key == "jitter_sigma") {
      if (*x <= 0 || *x > 5)
        return bad(key, "a log-normal sigma above 0 (and at most 5)");
      s.jitter_sigma = *x;
    } else if (key == "bandwidth_bytes_s") {
      if (*x < 0)
        return bad(key, "a number of bytes per second (0: unlimited)");
      s.bandwidth_bytes_s = static_cast<std::uint64_t>(*x);
    } else if (key == "packet_loss") {
      if (*x < 0 || *x > 0.5)
        return bad(key, "a segment loss probability from 0 to 0.5");
      s.packet_loss = *x;
    } else if (key == "packet_duplicate" || key == "packet_reorder") {
      if (*x < 0 || *x > 1)
        return bad(key, "a number from 0 to 1");
      (key == "packet_duplicate" ? s.packet_duplicate : s.packet_reorder) = *x;
    } else if (key == "min_rto_ms") {
      if (*x < 1 || *x > 60000)
        return bad(key, "milliseconds from 1 to 60000 (Linux: 200)");
      s.min_rto_ms = *x;
    } else if (key == "reset_probability" || key == "delete_fraction" ||
               key == "duplicate_probability" || key == "reorder_probability") {
      if (*x < 0 || *x > 1)
        return bad(key, "a number from 0 to 1");
      (key == "reset_probability"       ? s.reset_probability
       : key == "duplicate_probability" ? s.duplicate_probability
       : key == "reorder_probability"   ? s.reorder_probability
                                        : s.delete_fraction) = *x;
    } else if (key == "settle_limit_s") {
      if (*x < 0 || *x > 1e9)
        return bad(key, "seconds from 0 to 1000000000");
      s.settle_limit_s = *x;
    } else if (key == "strip_limit_s") {
      if (*x < 0 || *x > 86400)
        return bad(key, "seconds from 0 to 86400 (0: do not wait for the metadata to go)");
      s.strip_limit_s = *x;
    } else if (key == "co_follower_retire_after_s") {
      if (*x < 0)
        return bad(key, "seconds of silence before a co-follower member is retired (0: as retire_after_s)");
      s.co_follower_retire_after_s = *x;
    } else if (key == "co_follower_linger_s") {
      if (*x < 0 || *x > 86400)
        return bad(key, "seconds from 0 (close at once) to 86400 that a connection to a co-follower "
                        "stays once no longer pulled from");
      s.co_follower_linger_s = *x;
    } else if (key == "peer_sleep_after_s") {
      if (*x < 0 || *x > 86400)
        return bad(key, "seconds from 0 (never) to 86400 that an idle peer connection stays awake "
                        "before its actor sleeps");
      s.peer_sleep_after_s = *x;
    } else if (key == "clock_skew_s") {
      if (*x < 0 || *x > 7 * 86400)
        return bad(key, "seconds from 0 to 604800 that a node's clock may be off, either way");
      s.clock_skew_s = *x;
    } else if (key == "co_follower_pass_over_checks") {
      if (*x < 1 || *x > 1000 || *x != std::floor(*x))
        return bad(key, "a whole number of missed checks from 1 to 1000");
      s.co_follower_pass_over_checks = static_cast<std::uint32_t>(*x);
    } else if (key == "retire_after_s") {
      if (*x < 0)
        return bad(key, "seconds of silence before a topic member is retired (0: never)");
      s.retire_after_s = *x;
    } else {
      error = "unknown key '" + key + "'";
      return std::nullopt;
    }
  }
  if (s.churn.model == churn_model::kind::trace && s.churn.trace_file.empty()) {
    error = "'churn.trace' must name the trace file when churn.model = \"trace\"";
    return std::nullopt;
  }
  if (s.churn.model != churn_model::kind::trace && !s.churn.trace_file.empty()) {
    error = "'churn.trace' is only read with churn.model = \"trace\"";
    return std::nullopt;
  }
  if (s.jitter_model == "empirical" && t.contains("jitter_ms")) {
    error = "'jitter_ms' is left out with jitter_model = \"empirical\" (the samples are the delays)";
    return std::nullopt;
  }
  if ((s.jitter_model == "empirical") != !s.jitter_samples_file.empty()) {
    error = "'jitter_samples' names the latency trace file, given with jitter_model = \"empirical\" (and only then)";
    return std::nullopt;
  }
  const actors::sync_settings node_default;
  const auto keepalive = s.keepalive_s.value_or(static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(node_default.keepalive).count()));
  const auto timeout = s.peer_timeout_s.value_or(static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(node_default.peer_timeout).count()));
  if (keepalive >= timeout) {
    error = "'keepalive_s' (" + std::to_string(keepalive) + ") must be shorter than 'peer_timeout_s' (" +
            std::to_string(timeout) + "), or idle connections are dropped as silent";
    return std::nullopt;
  }
  if (t.contains("relays") && s.relays == 0)
    s.relay = false; // relays = 0: no relay
  return s;
}

std::optional<std::vector<std::int64_t>> parse_latency_samples(const std::string& text,
                                                              std::string& error) {
  std::vector<std::int64_t> out;
  std::istringstream in(text);
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (auto hash = line.find('#'); hash != std::string::npos)
      line.erase(hash);
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos)
      continue;
    const auto last = line.find_last_not_of(" \t\r");
    const std::string word = line.substr(first, last - first + 1);
    char* end = nullptr;
    const double ms = std::strtod(word.c_str(), &end);
    if (end != word.c_str() + word.size() || !(ms >= 0) || ms > 60'000) {
      error = "line " + std::to_string(n) + ": '" + word +
              "' is not a delay in milliseconds from 0 to 60000";
      return std::nullopt;
    }
    out.push_back(static_cast<std::int64_t>(ms));
  }
  if (out.empty()) {
    error = "no delays in it (one number of milliseconds per line)";
    return std::nullopt;
  }
  return out;
}

std::optional<std::string> check_scenario(const scenario& s) {
  if (s.jitter_model == "empirical" && s.jitter_samples_ms.empty())
    return std::string("jitter_model = \"empirical\" needs the delays of ") +
           (s.jitter_samples_file.empty() ? std::string("jitter_samples") : s.jitter_samples_file) +
           " (kith-sim loads the file)";
  for (const auto& l : s.links)
    if (l.jitter_model == "empirical" && l.jitter_samples_ms.empty())
      return "a link with jitter_model = \"empirical\" needs the delays of " + l.jitter_samples_file +
             " (kith-sim loads the file)";
  auto check_ref = [&](const node_ref& r, const std::string& where) -> std::optional<std::string> {
    if (r.is_relay() && !s.relay)
      return where + " names the relay, but relay = false";
    if (r.is_relay() && r.relay_index() >= relay_count(s))
      return where + " names relay " + std::to_string(r.relay_index()) + ", but there are " +
             std::to_string(relay_count(s)) + " relays (\"relay\" or \"relay0\" to \"relay" +
             std::to_string(relay_count(s) - 1) + "\")";
    if (!r.is_relay() && r.index >= static_cast<std::int64_t>(s.nodes))
      return where + " names node " + std::to_string(r.index) + ", but there are " +
             std::to_string(s.nodes) + " nodes (0 to " + std::to_string(s.nodes - 1) + ")";
    return std::nullopt;
  };
  for (std::size_t i = 0; i < s.faults.size(); ++i) {
    const auto& f = s.faults[i];
    const auto where = "fault[" + std::to_string(i) + "]";
    std::vector<node_ref> all = f.a;
    all.insert(all.end(), f.b.begin(), f.b.end());
    for (const auto& g : f.groups)
      all.insert(all.end(), g.begin(), g.end());
    for (const auto& [a, b] : f.links) {
      all.push_back(a);
      all.push_back(b);
    }
    for (const auto& r : all)
      if (auto e = check_ref(r, where))
        return e;
  }
  for (std::size_t i = 0; i < s.links.size(); ++i) {
    const auto where = "link[" + std::to_string(i) + "]";
    for (const auto& r : {s.links[i].a, s.links[i].b})
      if (auto e = check_ref(r, where))
        return e;
  }
  if (s.churn.model == churn_model::kind::trace) {
    if (s.churn.trace.empty())
      return std::string("the churn trace ") + s.churn.trace_file + " has no events";
    for (const auto& e : s.churn.trace)
      if (e.node >= s.nodes)
        return "the churn trace names node " + std::to_string(e.node) + ", but there are " +
               std::to_string(s.nodes) + " nodes";
  }
  if (s.relay && s.relays_per_node > relay_count(s))
    return "relays_per_node (" + std::to_string(s.relays_per_node) + ") is more than relays (" +
           std::to_string(relay_count(s)) + ")";
  if (s.relay && 2 * relays_per_node(s) <= relay_count(s))
    return "relays_per_node (" + std::to_string(relays_per_node(s)) + ") must be more than half of relays (" +
           std::to_string(relay_count(s)) + "), so that every two nodes share a relay";
  if (!s.relay && s.relay_churn.model != churn_model::kind::none)
    return "relay_churn needs relays (relay = false)";
  if (s.relay_churn.model == churn_model::kind::trace)
    return "relay_churn.model must be none, exponential, weibull or lognormal";
  if (s.workload == scenario::workload_kind::kv && s.kv.writers > s.nodes)
    return "kv.writers (" + std::to_string(s.kv.writers) + ") is more than nodes (" +
           std::to_string(s.nodes) + ")";
  return std::nullopt;
}

void delete_watch::applied(std::size_t node, const std::string& subject) {
  state_[{node, subject}] = seen::applied;
}

bool delete_watch::observe(std::size_t node, const std::string& subject, bool held) {
  auto it = state_.find({node, subject});
  if (held) {
    if (it != state_.end() && it->second == seen::applied)
      return true;
    state_[{node, subject}] = seen::held_after_delete;
  } else if (it != state_.end()) {
    it->second = seen::applied;
  }
  return false;
}

void delete_watch::forget(std::size_t node) {
  for (auto it = state_.begin(); it != state_.end();)
    it = it->first.first == node ? state_.erase(it) : std::next(it);
}

std::size_t delete_watch::applied_count() const {
  return static_cast<std::size_t>(std::count_if(
      state_.begin(), state_.end(), [](const auto& x) { return x.second == seen::applied; }));
}

std::optional<causality::dot> clock_regression(const causality::node_clock& before,
                                               const causality::node_clock& now,
                                               const std::set<causality::replica_id>& live_ids) {
  for (const auto& d : before.missing_from(now))
    if (now.find(d.id) || live_ids.count(d.id))
      return d;
  return std::nullopt;
}

kv_verdict check_kv_key(const std::vector<kv_record>& log,
                        const std::vector<std::set<std::string>>& replicas) {
  kv_verdict v;
  std::set<std::string> anywhere;
  for (const auto& h : replicas) {
    anywhere.insert(h.begin(), h.end());
    v.replicas_agree = v.replicas_agree && h == replicas.front();
  }
  // A record whose writer later lost it (store loss, departure) may have
  // died before reaching anyone, unless its value is still around or
  // another writer read it: what it replaced is then undetermined, neither
  // required nor dead.
  std::map<std::string, std::size_t> writer_of;
  for (const auto& r : log)
    if (!r.value.empty())
      writer_of[r.value] = r.writer;
  std::set<std::string> seen_by_others;
  for (const auto& r : log)
    for (const auto& x : r.read)
      if (auto it = writer_of.find(x); it != writer_of.end() && it->second != r.writer)
        seen_by_others.insert(x);
  auto unsure = [&](const kv_record& r) {
    return r.writer_lost_it &&
           (r.value.empty() || (!anywhere.count(r.value) && !seen_by_others.count(r.value)));
  };
  std::set<std::string> dead, deleted, written, undetermined;
  for (const auto& r : log) {
    if (!r.value.empty())
      written.insert(r.value);
    if (unsure(r)) {
      undetermined.insert(r.read.begin(), r.read.end());
      continue;
    }
    dead.insert(r.read.begin(), r.read.end());
    if (r.value.empty())
      deleted.insert(r.read.begin(), r.read.end());
  }
  for (const auto& x : anywhere) {
    if (!written.count(x))
      ++v.unknown;
    else if (deleted.count(x))
      ++v.resurrected_deletes;
    else if (dead.count(x))
      ++v.overwritten_present;
  }
  for (const auto& r : log) {
    if (r.value.empty() || dead.count(r.value))
      continue;
    if (undetermined.count(r.value)) {
      ++v.undetermined;
      continue;
    }
    const bool everywhere = std::all_of(replicas.begin(), replicas.end(),
                                        [&](const auto& h) { return h.count(r.value) > 0; });
    if (everywhere) {
      ++v.live;
      continue;
    }
    if (r.writer_lost_it && !anywhere.count(r.value)) {
      ++v.lost_with_store; // it left with its writer's store
      continue;
    }
    ++v.lost;
    v.lost_values.push_back(r.value);
  }
  return v;
}

// The shuffle of all the others would take O(n^2) in all at 100,000
// nodes. The list of every other node, left behind as the vector's
// capacity, was 1.4 GB of a 10,000-node run's heap: hence shrink_to_fit.
void recent_pace::add(double wall_s, double simulated_s) {
  seen_.emplace_back(wall_s, simulated_s);
  // Keep one observation at or before the window's start, so the pace
  // spans the whole window once the run is that long.
  while (seen_.size() > 2 && seen_[1].first <= wall_s - window_s_)
    seen_.pop_front();
}

std::optional<double> recent_pace::pace() const {
  if (seen_.size() < 2)
    return std::nullopt;
  const double wall = seen_.back().first - seen_.front().first;
  const double simulated = seen_.back().second - seen_.front().second;
  if (wall <= 0 || simulated <= 0)
    return std::nullopt;
  return simulated / wall;
}

std::optional<double> recent_pace::wall_left(double end_s) const {
  const auto p = pace();
  if (!p || seen_.empty())
    return std::nullopt;
  return std::max(0.0, end_s - seen_.back().second) / *p;
}

std::vector<std::size_t> pick_follows(std::size_t i, std::size_t n, std::size_t k, std::mt19937_64& g) {
  const std::size_t others = n > 0 ? n - 1 : 0;
  k = std::min(k, others);
  std::vector<std::size_t> out;
  if (n <= 10'000 || 2 * k >= others) {
    for (std::size_t j = 0; j < n; ++j)
      if (j != i)
        out.push_back(j);
    std::shuffle(out.begin(), out.end(), g);
    out.resize(k);
    out.shrink_to_fit();
    return out;
  }
  out.reserve(k);
  std::uniform_int_distribution<std::size_t> any(0, n - 1);
  while (out.size() < k) {
    const auto j = any(g);
    if (j != i && std::find(out.begin(), out.end(), j) == out.end())
      out.push_back(j);
  }
  return out;
}

summary run(const scenario& s, const std::function<void(const std::string&)>& progress,
            const run_options& options) {
  if (auto e = check_scenario(s))
    throw std::invalid_argument(*e);
  const auto wall0 = steady_clock::now();
  // Installed before the world is built and removed when run returns,
  // whichever way (the memo is process-wide state). Room for about 32
  // signatures per node (at least a million): a 100,000-node run with
  // the default million forgot everything 7 times (about 40 bytes per
  // entry: 128 MB at 100,000 nodes).
  protocol::verify_memo memo(std::max<std::size_t>(std::size_t{1} << 20, std::size_t{32} * s.nodes));
  struct memo_scope {
    explicit memo_scope(protocol::verify_memo* m) { protocol::use_verify_memo(m); }
    ~memo_scope() { protocol::use_verify_memo(nullptr); }
    memo_scope(const memo_scope&) = delete;
    memo_scope& operator=(const memo_scope&) = delete;
  } memo_in_use(s.verify_memo ? &memo : nullptr);
  world w(s);
  // Draws of the features added after the first slice (joins, departures,
  // store losses, the kv workload) come from their own generators, so a
  // scenario without them keeps the draws, and the trace, it had.
  std::mt19937_64 g2(s.seed ^ 0xc4a12eull);
  std::mt19937_64 gkv(s.seed ^ 0x6b76ull);
  std::uniform_real_distribution<double> unit(0.0, 1.0);

  std::set<std::size_t> late;
  std::vector<std::size_t> join_order;
  if (s.churn.model == churn_model::kind::trace) {
    std::set<std::size_t> seen;
    for (const auto& e : s.churn.trace) {
      if (e.what == trace_event::kind::join && !seen.count(e.node))
        late.insert(e.node); // its first event is a join: it starts offline
      seen.insert(e.node);
    }
  } else if (s.churn.join_fraction > 0 && s.nodes > 1) {
    std::vector<std::size_t> c;
    for (std::size_t i = 1; i < s.nodes; ++i) // node 0 is always there (it creates the kv topic)
      c.push_back(i);
    std::shuffle(c.begin(), c.end(), g2);
    c.resize(std::min<std::size_t>(
        c.size(), static_cast<std::size_t>(std::llround(s.churn.join_fraction * s.nodes))));
    join_order = c;
    late.insert(c.begin(), c.end());
  }
  // Rare-path faults act on the sync replies the nodes report.
  w.watch_sync_ = std::any_of(s.faults.begin(), s.faults.end(), [](const fault& f) {
    return f.what == fault::kind::crash_during_sync || f.what == fault::kind::late_reply;
  });
  w.build(late);
  std::mt19937_64 g(s.seed ^ 0x5eedull);

  const bool kv = s.workload == scenario::workload_kind::kv;
  if (kv) {
    if (!s.relay) {
      // Writers meet at the relay's rendezvous; without a relay they follow
      // each other to be connected.
      for (std::size_t i = 0; i < s.kv.writers; ++i)
        for (std::size_t j = 0; j < s.kv.writers; ++j) {
          auto& f = w.nodes_[i].follows;
          if (i != j && std::find(f.begin(), f.end(), j) == f.end()) {
            f.push_back(j);
            if (w.running(i))
              w.api(i, "follow", json{{"id", w.id_of(j)}, {"address", w.nodes_[j].address}});
          }
        }
    }
    json writers = json::array();
    for (std::size_t i = 1; i < s.kv.writers; ++i)
      writers.push_back(w.id_of(i));
    auto created = json::parse(w.api(0, "topic_create", json{{"name", "kv"}, {"writers", writers}}).json);
    w.kv_topic_ = created.at("topic").get<std::string>();
    w.kv_descriptor_ = created.at("descriptor");
    w.on_fresh_store = [&w](std::size_t i) {
      if (w.kv_writer(i))
        w.api(i, "topic_join", json{{"descriptor", w.kv_descriptor_}});
    };
    for (std::size_t i = 1; i < s.kv.writers; ++i)
      if (w.running(i))
        w.on_fresh_store(i);
  }

  // Zipf over node ranks for choosing authors; over keys for the kv workload.
  const auto cdf = zipf_cdf(s.nodes, s.zipf_s);
  const auto key_cdf = zipf_cdf(s.kv.keys, s.kv.zipf_s);

  std::priority_queue<event, std::vector<event>, std::greater<>> q;
  std::uint64_t order = 0;
  const auto start = w.now_ms();
  const auto start_wall = steady_clock::now(); // the pace in progress lines is from here
  const auto end = start + static_cast<std::uint64_t>(s.duration_s * 1000);
  const double post_mean_ms = s.post_interval_s * 1000.0 / s.nodes; // all nodes together
  auto next_post = [&](std::uint64_t from) {
    std::exponential_distribution<double> e(1.0 / post_mean_ms);
    q.push({from + static_cast<std::uint64_t>(e(g)) + 1, order++, ev_kind::post, 0});
  };
  const double op_mean_ms = s.kv.op_interval_s * 1000.0 / s.kv.writers; // all writers together
  auto next_op = [&](std::uint64_t from) {
    std::exponential_distribution<double> e(1.0 / op_mean_ms);
    q.push({from + static_cast<std::uint64_t>(e(gkv)) + 1, order++, ev_kind::kv_op, 0});
  };
  const bool random_churn = s.churn.model == churn_model::kind::exponential ||
                            s.churn.model == churn_model::kind::weibull ||
                            s.churn.model == churn_model::kind::lognormal;
  if (kv)
    next_op(start);
  else
    next_post(start);
  if (random_churn)
    for (std::size_t i = 0; i < s.nodes; ++i)
      if (!late.count(i))
        q.push({start + static_cast<std::uint64_t>(draw_length(s.churn, s.churn.mean_up_s, g) * 1000) + 1,
                order++, ev_kind::down, i});
  {
    double t = 0;
    for (auto i : join_order) {
      t += std::exponential_distribution<double>(s.churn.join_rate_per_s)(g2);
      q.push({start + static_cast<std::uint64_t>(t * 1000) + 1, order++, ev_kind::join, i});
    }
  }
  std::uint64_t trace_ignored = 0;
  if (s.churn.model == churn_model::kind::trace)
    for (std::size_t k = 0; k < s.churn.trace.size(); ++k) {
      const auto at = start + static_cast<std::uint64_t>(s.churn.trace[k].at_s * 1000);
      if (at > end)
        ++trace_ignored;
      else
        q.push({at, order++, ev_kind::trace, k});
    }
  for (std::size_t k = 0; k < s.faults.size(); ++k) {
    const auto& f = s.faults[k];
    const auto from = start + static_cast<std::uint64_t>(f.start_s * 1000);
    if (from >= end)
      continue;
    q.push({from, order++, ev_kind::fault_start, k});
    if ((f.what == fault::kind::partition && f.cut) || f.what == fault::kind::relay)
      q.push({std::min(end, from + static_cast<std::uint64_t>(f.duration_s * 1000)), order++,
              ev_kind::fault_end, k});
  }
  // Relays that fail on their own: one up/down process per relay, drawn
  // from a generator of its own (other draws, and traces without it, stay).
  std::mt19937_64 grelay(s.seed ^ 0x2e1a7ull);
  const bool relay_churn = s.relay_churn.model != churn_model::kind::none;
  if (relay_churn)
    for (std::size_t k = 0; k < w.relays_.size(); ++k)
      q.push({start + static_cast<std::uint64_t>(draw_length(s.relay_churn, s.relay_churn.mean_up_s, grelay) * 1000) + 1,
              order++, ev_kind::relay_down, k});

  std::uint64_t posts = 0, transitions = 0, deletes = 0, crashes = 0, losses = 0, departures = 0,
                joins = 0, faults_applied = 0;
  std::uint64_t kv_reads = 0, kv_writes = 0, kv_deletes = 0, kv_empty_deletes = 0;
  struct kv_write {
    std::string value; // unique: "w<n>" ("" for a delete)
    std::size_t writer;
    std::uint64_t at_ms;
    std::uint32_t writer_losses; // the writer's store losses before this write
    std::vector<std::string> read; // the values it replaced (read at the writer first)
  };
  std::vector<std::vector<kv_write>> kv_log(s.kv.keys);
  std::map<std::size_t, std::vector<std::uint64_t>> partitions_of_fault;

  // A relay is down while a relay fault or its churn holds it down; it
  // crashes when the first hold starts and restarts when the last ends.
  std::vector<std::uint32_t> relay_holds(w.relays_.size(), 0);
  std::uint64_t relay_failures = 0, relay_restarts = 0, relay_downtime_ms = 0;
  auto relay_hold = [&](std::size_t k) {
    if (relay_holds[k]++ == 0 && w.relay_running(k)) {
      w.crash_relay(k);
      ++relay_failures;
    }
  };
  std::uint64_t relay_graceful = 0;
  // A graceful restart is a hold too: the relay stops accepting now and
  // goes down after its drain, unless something else holds it down already.
  auto relay_hold_graceful = [&](std::size_t k, const fault& f) {
    if (relay_holds[k]++ == 0 && w.relay_running(k)) {
      w.begin_relay_restart(k, static_cast<std::uint64_t>(f.spread_s * 1000));
      ++relay_graceful;
      const auto incarnation = w.relays_[k].incarnation;
      w.timed_.emplace(w.now_ms() + static_cast<std::uint64_t>(f.drain_s * 1000), [&w, k, incarnation] {
        if (w.relays_[k].incarnation == incarnation)
          w.stop_draining_relay(k);
      });
    }
  };
  auto relay_release = [&](std::size_t k) {
    if (relay_holds[k] == 0 || --relay_holds[k] > 0)
      return;
    relay_downtime_ms += w.restart_relay(k);
    ++relay_restarts;
  };

  // Every address a fault may name.
  std::set<std::string> everyone;
  for (std::size_t i = 0; i < s.nodes; ++i)
    everyone.insert(w.nodes_[i].address);
  for (const auto& r : w.relays_)
    everyone.insert(r.address);
  auto addresses = [](const std::vector<node_ref>& refs) {
    std::set<std::string> out;
    for (const auto& r : refs)
      out.insert(address_of(r));
    return out;
  };
  auto apply_fault = [&](std::size_t k, std::uint64_t now) {
    const auto& f = s.faults[k];
    const auto until = static_cast<std::int64_t>(
        std::min<std::uint64_t>(end, start + static_cast<std::uint64_t>((f.start_s + f.duration_s) * 1000)));
    (void)now;
    ++faults_applied;
    switch (f.what) {
      case fault::kind::partition: {
        std::vector<std::set<std::string>> groups;
        for (const auto& gr : f.groups)
          groups.push_back(addresses(gr));
        if (groups.size() == 1) { // against the rest
          std::set<std::string> rest;
          for (const auto& a : everyone)
            if (!groups[0].count(a))
              rest.insert(a);
          groups.push_back(std::move(rest));
        }
        for (std::size_t x = 0; x < groups.size(); ++x)
          for (std::size_t y = x + 1; y < groups.size(); ++y) {
            if (f.cut) {
              partitions_of_fault[k].push_back(w.net_->partition(groups[x], groups[y]));
            } else {
              w.net_->hold(groups[x], groups[y], until);
              w.net_->hold(groups[y], groups[x], until);
            }
          }
        break;
      }
      case fault::kind::oneway:
        w.net_->hold(addresses(f.a), addresses(f.b), until);
        break;
      case fault::kind::clog:
        if (!f.a.empty())
          w.net_->hold(addresses(f.a), {}, until);
        for (const auto& [a, b] : f.links) {
          w.net_->hold({address_of(a)}, {address_of(b)}, until);
          w.net_->hold({address_of(b)}, {address_of(a)}, until);
        }
        break;
      case fault::kind::relay:
        for (const auto& r : f.a) {
          if (f.graceful)
            relay_hold_graceful(r.relay_index(), f);
          else
            relay_hold(r.relay_index());
        }
        break;
      case fault::kind::crash_during_sync:
      case fault::kind::late_reply:
        break; // they act on sync replies inside their window (after_run below)
    }
  };
  auto heal_fault = [&](std::size_t k) {
    if (s.faults[k].what == fault::kind::relay)
      for (const auto& r : s.faults[k].a)
        relay_release(r.relay_index());
    for (auto id : partitions_of_fault[k])
      w.net_->heal(id);
    partitions_of_fault.erase(k);
  };

  // Rare-path faults: they act on the sync replies the nodes log, between
  // two deliveries, while their window is open (never after the workload).
  std::mt19937_64 grare(s.seed ^ 0x5a7e1ull);
  std::uint64_t sync_replies_seen = 0, sync_crashes = 0, late_replies = 0, late_after_close = 0;
  std::uint64_t late_crashes = 0, late_after_retire = 0;
  std::vector<std::uint32_t> rare_count(s.faults.size(), 0);
  std::set<std::pair<std::size_t, std::size_t>> late_pairs; // held now (smaller node first)
  auto reachable = [&](std::size_t i) {
    return w.live(i) && w.running(i) && w.nodes_[i].up && !w.nodes_[i].fault_down;
  };
  // A rare-path crash: node i goes down now and restarts after down_ms
  // unless churn or the settle phase took it over meanwhile.
  auto crash_for = [&w](std::size_t i, std::uint64_t down_ms) {
    w.crash(i);
    w.nodes_[i].fault_down = true;
    const auto n = ++w.nodes_[i].fault_crashes;
    w.timed_.emplace(w.now_ms() + down_ms, [&w, i, n] {
      if (!w.nodes_[i].fault_down || w.nodes_[i].fault_crashes != n)
        return; // churn took over, or a later crash restarts it by its own timer
      w.nodes_[i].fault_down = false;
      w.restart(i);
    });
  };
  // Open connections from `from` to `to` with bytes still on their way.
  auto late_bytes_between = [&w](std::size_t from, std::size_t to) {
    const auto& from_addr = w.nodes_[from].address;
    const auto& to_addr = w.nodes_[to].address;
    std::lock_guard lock(w.net_->mu);
    const auto t = static_cast<std::int64_t>(w.now_ms());
    const auto to_id = w.net_->address_id(to_addr);
    const auto from_id = w.net_->address_id(from_addr);
    std::uint64_t n = 0;
    for (const auto& [id, e] : w.net_->conns)
      if (e.open && e.local == to_id && e.remote == from_id && e.deliver_after_ms > t)
        ++n;
    return n;
  };
  auto on_sync_reply = [&](std::size_t x, const std::string& peer) {
    const auto now = w.now_ms();
    auto it = w.by_id_.find(peer);
    if (now >= end || it == w.by_id_.end())
      return;
    const std::size_t y = it->second; // x asked y; y replied
    ++sync_replies_seen;
    for (std::size_t k = 0; k < s.faults.size(); ++k) {
      const auto& f = s.faults[k];
      if (f.what != fault::kind::crash_during_sync && f.what != fault::kind::late_reply)
        continue;
      const auto from = start + static_cast<std::uint64_t>(f.start_s * 1000);
      const auto until = std::min(end, from + static_cast<std::uint64_t>(f.duration_s * 1000));
      if (now < from || now >= until || (f.max_count > 0 && rare_count[k] >= f.max_count))
        continue;
      if (!f.a.empty() && std::none_of(f.a.begin(), f.a.end(), [&](const node_ref& r) {
            return r.index == static_cast<std::int64_t>(x);
          }))
        continue;
      if (!reachable(x) || !reachable(y))
        continue;
      if (f.what == fault::kind::late_reply &&
          (late_pairs.count({std::min(x, y), std::max(x, y)}) ||
           now + static_cast<std::uint64_t>(f.hold_s * 1000) > end))
        continue; // one at a time per pair, and over before the workload ends
      if (std::uniform_real_distribution<double>(0.0, 1.0)(grare) >= f.probability)
        continue;
      ++rare_count[k];
      if (f.what == fault::kind::crash_during_sync) {
        // The rest of the round (the next part, page or resync end) is
        // still on its way: the node dies with the sync half done.
        const auto victim = f.crash_sender ? y : x;
        crash_for(victim, static_cast<std::uint64_t>(f.down_s * 1000));
        ++sync_crashes;
        return; // one fault per reply
      }
      // late_reply: hold one direction between x and y, then reset their
      // connections while the held bytes are still on the way.
      const auto held_from = f.hold_requests ? x : y, held_to = f.hold_requests ? y : x;
      const auto hold_until = now + static_cast<std::uint64_t>(f.hold_s * 1000);
      w.net_->hold({w.nodes_[held_from].address}, {w.nodes_[held_to].address},
                   static_cast<std::int64_t>(hold_until));
      late_pairs.insert({std::min(x, y), std::max(x, y)});
      ++late_replies;
      if (f.away_s > 0) {
        // The held side crashes 1 s in; held_to retires it (given a short
        // retirement period) while its last sends are still on the way.
        const auto rid = std::to_string(w.nodes_[held_from].env->store->self_id().value());
        const auto away_ms = static_cast<std::uint64_t>(f.away_s * 1000);
        w.timed_.emplace(hold_until, [&, x, y] { late_pairs.erase({std::min(x, y), std::max(x, y)}); });
        w.timed_.emplace(now + 1000, [&, held_from, held_to, rid, away_ms, hold_until] {
          if (!reachable(held_from) || !reachable(held_to))
            return; // churn took one of them
          const auto pending = late_bytes_between(held_from, held_to);
          const auto crashed_at = w.now_ms();
          crash_for(held_from, away_ms);
          ++late_crashes;
          late_after_close += pending;
          if (pending > 0)
            w.timed_.emplace(hold_until, [&, held_to, rid, crashed_at] {
              if (w.retired_since(held_to, rid, crashed_at))
                ++late_after_retire;
            });
        });
        return;
      }
      w.timed_.emplace(hold_until - 1000, [&, x, y, held_from, held_to] {
        // What is still on the way toward held_to arrives after the reset.
        late_after_close += late_bytes_between(held_from, held_to);
        w.net_->heal(w.net_->partition({w.nodes_[held_from].address}, {w.nodes_[held_to].address}));
        late_pairs.erase({std::min(x, y), std::max(x, y)});
      });
      return;
    }
  };
  if (w.watch_sync_)
    w.after_run = [&] {
      while (!w.replies_seen_.empty()) {
        auto seen = std::move(w.replies_seen_);
        w.replies_seen_.clear();
        for (const auto& [x, peer] : seen)
          on_sync_reply(x, peer);
      }
    };

  // The time series.
  std::ostringstream csv;
  const auto sample_ms = static_cast<std::uint64_t>(options.sample_s * 1000);
  std::uint64_t next_sample = start;
  std::uint64_t last_messages = 0, last_bytes = 0, last_sample = start;
  decltype(w.message_groups()) last_groups{};
  auto sample = [&](std::uint64_t t) {
    std::size_t up = 0;
    for (std::size_t i = 0; i < w.nodes_.size(); ++i)
      up += (w.running(i) && w.nodes_[i].up) ? 1 : 0;
    const auto m = w.net_->sends(), b = w.net_->bytes_carried();
    const double dt = t > last_sample ? (t - last_sample) / 1000.0 : sample_ms / 1000.0;
    last_sample = t;
    csv << (t - start) / 1000.0 << ',' << up << ',' << m << ',' << b << ','
        << static_cast<double>(m - last_messages) / dt << ',' << static_cast<double>(b - last_bytes) / dt
        << ',' << w.net_->held_sends() << ',' << w.net_->open_ends() << ',' << w.kept_headers() << ','
        << w.pairs_behind() << ',' << posts << ',' << deletes << ',' << (kv_writes + kv_deletes) << ','
        << (t >= end ? 1 : 0);
    {
      // Membership and metadata (retirement): appended columns.
      const auto meta = w.metadata();
      const auto& c = *w.counters_;
      w.note_kept(t);
      csv << ',' << meta.dot_map_entries << ',' << meta.members << ',' << c.retirements << ','
          << (c.new_members + c.returning_members + c.repeated_resyncs) << ',' << c.resync_bytes;
      // Messages per second by group since the last row: the nodes'
      // protocol messages (sent_by_kind) and the requests the relays took.
      const auto groups = w.message_groups();
      for (std::size_t g = 0; g < groups.size(); ++g)
        csv << ',' << static_cast<double>(groups[g] - last_groups[g]) / dt;
      last_groups = groups;
    }
    csv << '\n';
    last_messages = m;
    last_bytes = b;
  };
  if (sample_ms > 0)
    csv << "t_s,nodes_up,messages,bytes,messages_per_s,bytes_per_s,held_sends,open_connection_ends,"
           "kept_headers,pairs_behind,posts,deletes,kv_writes,settling,"
           "dot_map_entries,members,retirements,resyncs,resync_bytes,"
           "round_msgs_per_s,keepalives_per_s,pushes_per_s,resync_msgs_per_s,setup_msgs_per_s,"
           "other_msgs_per_s,relay_requests_per_s\n";

  // Checkpoints: invariants that must hold at all times, checked every
  // checkpoint_s of virtual time through the workload and the settle phase
  // (docs/simulation.md). Like sampling, they only read the stores.
  const auto check_ms = static_cast<std::uint64_t>(s.checkpoint_s * 1000);
  std::uint64_t next_check = start + check_ms, last_check = start;
  std::ostringstream ck_csv;
  if (check_ms > 0)
    ck_csv << "t_s,settling,nodes_checked,topics_checked,max_kept_headers,max_dot_keys,kept_headers,"
              "dot_keys,deletes_tracked,resurrected,unknown_writes,clock_regressions,over_limit,ok,"
              "max_siblings_per_key,max_context_per_key,store_check_failures\n";
  struct {
    std::uint64_t count = 0, failed = 0, resurrected = 0, unknown = 0, regressions = 0, over_limit = 0;
    std::uint64_t max_kept = 0, max_dot_keys = 0, max_siblings = 0, max_context = 0, store_failures = 0;
    std::uint64_t deletes_watched = 0, clocks_watched = 0; // at the last checkpoint
    std::string first_failure;
    /// Counts a failed check; the first one's text is kept. Returns
    /// whether this was the first.
    bool failure(const std::string& what) {
      ++failed;
      if (!first_failure.empty())
        return false;
      first_failure = what;
      return true;
    }
  } ck;
  delete_watch del_seen;
  std::map<std::pair<std::size_t, std::string>, causality::node_clock> last_clock; // (node, topic)
  std::vector<std::uint32_t> ck_losses(s.nodes, 0);
  auto checkpoint = [&](std::uint64_t t) {
    last_check = t;
    ++ck.count;
    std::uint64_t nodes_checked = 0, topics_checked = 0, max_kept = 0, max_dkm = 0, kept_total = 0,
                  dkm_total = 0, resurrected = 0, unknown = 0, regressions = 0, over = 0,
                  max_sib = 0, max_ctx = 0, store_failures = 0;
    std::string failure;
    auto fail = [&](std::size_t i, const std::string& what) {
      if (failure.empty())
        failure = "node " + std::to_string(i) + ": " + what;
    };
    auto short_topic = [](const std::string& topic) { return topic.substr(0, 17); };
    std::set<causality::replica_id> current_ids;
    for (const auto& n : w.nodes_)
      current_ids.insert(n.env->store->self_id());
    std::set<std::string> kv_written;
    for (const auto& key_log : kv_log)
      for (const auto& rec : key_log)
        if (!rec.value.empty())
          kv_written.insert(rec.value);
    for (std::size_t i = 0; i < w.nodes_.size(); ++i) {
      if (!w.live(i))
        continue;
      auto& n = w.nodes_[i];
      if (ck_losses[i] != n.store_losses) { // a new store: its history starts again
        ck_losses[i] = n.store_losses;
        del_seen.forget(i);
        for (auto it = last_clock.begin(); it != last_clock.end();)
          it = it->first.first == i ? last_clock.erase(it) : std::next(it);
      }
      ++nodes_checked;
      for (const auto& topic : n.env->store->topics()) {
        ++topics_checked;
        const std::uint64_t kept = n.env->store->superseded_count(topic);
        const auto sizes = n.env->store->metadata(topic);
        const std::uint64_t dkm = sizes ? sizes->dot_map_entries : 0;
        auto clock = n.env->store->clock_copy(topic);
        const std::uint64_t dots = clock ? clock->dot_count() : 0;
        kept_total += kept;
        dkm_total += dkm;
        max_kept = std::max(max_kept, kept);
        max_dkm = std::max(max_dkm, dkm);
        // A replica keeps headers and dot-key rows only of dots it has seen.
        if (kept > dots || dkm > dots) {
          ++over;
          fail(i, "topic " + short_topic(topic) + ": " + std::to_string(kept) + " kept headers and " +
                      std::to_string(dkm) + " dot-key rows, but only " + std::to_string(dots) + " dots seen");
        }
        if ((s.max_kept_headers > 0 && kept > s.max_kept_headers) ||
            (s.max_dot_keys > 0 && dkm > s.max_dot_keys)) {
          ++over;
          fail(i, "topic " + short_topic(topic) + ": " + std::to_string(kept) + " kept headers, " +
                      std::to_string(dkm) + " dot-key rows (limits " + std::to_string(s.max_kept_headers) +
                      ", " + std::to_string(s.max_dot_keys) + ")");
        }
        // The store's own structural check: clock normalised, every
        // stored write in the clock and matching its signed batch, the
        // unstripped-key set exact.
        if (auto c = n.env->store->check_topic(topic); !c) {
          ++store_failures;
          fail(i, "topic " + short_topic(topic) + ": store check: " + c.err().message);
        }
        // Per key: values held and stored context entries.
        if (auto km = n.env->store->key_metadata(topic)) {
          max_sib = std::max<std::uint64_t>(max_sib, km->max_siblings);
          max_ctx = std::max<std::uint64_t>(max_ctx, km->max_context_entries);
          if ((s.max_siblings_per_key > 0 && km->max_siblings > s.max_siblings_per_key) ||
              (s.max_context_per_key > 0 && km->max_context_entries > s.max_context_per_key)) {
            ++over;
            fail(i, "topic " + short_topic(topic) + ": a key holds " + std::to_string(km->max_siblings) +
                        " values or " + std::to_string(km->max_context_entries) +
                        " context entries (limits " + std::to_string(s.max_siblings_per_key) + ", " +
                        std::to_string(s.max_context_per_key) + ")");
          }
        }
        if (!clock)
          continue;
        auto& last = last_clock[{i, topic}];
        if (auto d = clock_regression(last, *clock, current_ids)) {
          ++regressions;
          fail(i, "topic " + short_topic(topic) + ": its clock went backwards (it no longer has dot " +
                      std::to_string(d->id.value()) + ":" + std::to_string(d->n.value()) + ")");
        }
        last = std::move(*clock);
      }
      // No deleted post comes back to a node that has applied its delete.
      storage::documents docs(*n.env->store);
      for (const auto& d : w.deleted_) {
        auto r = docs.get(d, {});
        const bool held = r && !r->is_null() && r->contains("doc") && !(*r)["doc"].empty();
        if (del_seen.observe(i, d, held)) {
          ++resurrected;
          fail(i, "deleted post " + d + " is back after the node applied the delete");
        }
      }
      // Nothing held that the model says was never written.
      std::vector<std::size_t> authors = n.follows;
      authors.push_back(i);
      for (auto j : authors) {
        auto made = [&](const std::map<std::size_t, std::set<std::string>>& by_author,
                        const std::string& p) {
          auto it = by_author.find(j);
          return it != by_author.end() && it->second.count(p) > 0;
        };
        for (const auto& p : w.subjects_of(i, j))
          if (!made(w.posted_, p) && !made(w.pre_loss_, p)) {
            ++unknown;
            fail(i, "holds post " + p + " of node " + std::to_string(j) + ", which no one wrote");
          }
      }
      if (w.kv_writer(i))
        for (std::uint32_t k = 0; k < s.kv.keys; ++k)
          for (const auto& v : w.kv_values(i, k))
            if (!kv_written.count(v)) {
              ++unknown;
              fail(i, "holds value " + v + " of kv key " + std::to_string(k) + ", which no one wrote");
            }
    }
    ck.max_kept = std::max(ck.max_kept, max_kept);
    ck.max_dot_keys = std::max(ck.max_dot_keys, max_dkm);
    ck.max_siblings = std::max(ck.max_siblings, max_sib);
    ck.max_context = std::max(ck.max_context, max_ctx);
    ck.store_failures += store_failures;
    ck.deletes_watched = del_seen.applied_count();
    ck.clocks_watched = last_clock.size();
    ck.resurrected += resurrected;
    ck.unknown += unknown;
    ck.regressions += regressions;
    ck.over_limit += over;
    ck_csv << (t - start) / 1000.0 << ',' << (t >= end ? 1 : 0) << ',' << nodes_checked << ','
           << topics_checked << ',' << max_kept << ',' << max_dkm << ',' << kept_total << ',' << dkm_total
           << ',' << w.deleted_.size() << ',' << resurrected << ',' << unknown << ',' << regressions << ','
           << over << ',' << (failure.empty() ? 1 : 0) << ',' << max_sib << ',' << max_ctx << ','
           << store_failures << '\n';
    if (failure.empty())
      return;
    char at[32];
    std::snprintf(at, sizeof at, "%.3f", (t - start) / 1000.0);
    if (ck.failure(std::string("at ") + at + " s: " + failure) && progress)
      progress("checkpoint " + ck.first_failure + " (seed " + std::to_string(s.seed) + ")");
  };

  // Advances to t, stopping on the way for samples and checkpoints. Without
  // checkpoints, the steps are those of sampling alone.
  auto advance = [&](std::uint64_t t) {
    for (;;) {
      const bool sample_due = sample_ms > 0 && next_sample <= t;
      const bool check_due = check_ms > 0 && next_check <= t;
      if (!sample_due && !check_due)
        break;
      const auto step = std::min(sample_due ? next_sample : t, check_due ? next_check : t);
      w.advance_to(step);
      if (sample_due && next_sample == step) {
        sample(step);
        next_sample += sample_ms;
      }
      if (check_due && next_check == step) {
        checkpoint(step);
        next_check += check_ms;
      }
    }
    w.advance_to(t);
  };
  auto last_progress = steady_clock::now();
  recent_pace pace;
  std::uint64_t last_sends = w.net_->sends();
  std::uint64_t events = 0;
  auto report = [&](const std::string& phase, std::uint64_t t) {
    if (!progress || options.progress_wall_s <= 0)
      return;
    const auto now = steady_clock::now();
    const double since = duration<double>(now - last_progress).count();
    if (since < options.progress_wall_s)
      return;
    last_progress = now;
    const double wall = duration<double>(now - wall0).count();
    const double paced = duration<double>(now - start_wall).count();
    const double simulated = (t - start) / 1000.0;
    const auto sends = w.net_->sends();
    // Messages per wall second since the last line; and, in the workload,
    // the wall time left at the pace of the last 30 wall seconds
    // (recent_pace).
    const double rate = static_cast<double>(sends - last_sends) / since;
    last_sends = sends;
    char eta[128] = "";
    if (phase == "workload")
      pace.add(paced, simulated);
    const auto left = pace.wall_left(s.duration_s);
    if (phase == "workload" && simulated < s.duration_s && left) {
      const double left_s = *left;
      const bool hours = left_s >= 7200, minutes = left_s >= 120;
      std::snprintf(eta, sizeof eta,
                    ", %.3g simulated s per wall s in the last 30 wall s, about %.*f wall %s left at that pace",
                    *pace.pace(), hours ? 1 : 0,
                    hours ? left_s / 3600 : minutes ? left_s / 60 : left_s, hours ? "h" : minutes ? "min" : "s");
    }
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "%s: simulated %.1f s (workload %.0f s), %llu events, %llu messages (%.0f per wall s), "
                  "%zu actors, RSS %.0f MB, wall %.1f s%s",
                  phase.c_str(), simulated, s.duration_s, static_cast<unsigned long long>(events),
                  static_cast<unsigned long long>(sends), rate, w.sys_->registry().running(),
                  resident_mb(), wall, eta);
    progress(buf);
  };

  std::string phase = "workload";
  w.on_steps = [&] { report(phase, w.now_ms()); };
  auto record_post = [&](std::size_t author, const actors::api_result& r) {
    auto j = json::parse(r.json, nullptr, false);
    if (!j.is_discarded() && j.contains("subject") && j["subject"].is_string())
      w.posted_[author].insert(j["subject"].get<std::string>());
  };
  std::uint64_t deletes_lost_with_store = 0;
  std::uint64_t deletes_lost_with_author = 0; // made just before a departure, never sent
  auto note_loss = [&](std::size_t i) {
    auto& p = w.posted_[i];
    w.pre_loss_[i].insert(p.begin(), p.end());
    p.clear();
    // A delete some other node has not applied yet dies with the store:
    // followers pull a feed from its author only, so they keep the post.
    // It is then neither required nor a resurrection.
    for (const auto& d : w.deleted_by_[i]) {
      bool held = false;
      for (std::size_t k = 0; k < w.nodes_.size() && !held; ++k) {
        if (k == i || !w.live(k))
          continue;
        storage::documents docs(*w.nodes_[k].env->store);
        auto r = docs.get(d, {});
        held = r && !r->is_null() && r->contains("doc") && !(*r)["doc"].empty();
      }
      if (held) {
        w.deleted_.erase(d);
        w.pre_loss_[i].insert(d);
        ++deletes_lost_with_store;
      }
    }
    w.deleted_by_[i].clear();
  };
  auto go_down = [&](std::size_t i, trace_event::kind how) {
    switch (how) {
      case trace_event::kind::down:
        w.set_up(i, false);
        break;
      case trace_event::kind::crash:
        if (w.running(i))
          ++crashes;
        w.crash(i);
        break;
      case trace_event::kind::lose:
        w.lose_store(i);
        note_loss(i);
        ++losses;
        break;
      case trace_event::kind::leave:
        if (!w.nodes_[i].departed) {
          ++departures;
          // A delete no other node has applied leaves with its author:
          // nothing can carry it any more, so the post its followers
          // keep is not a resurrection.
          for (const auto& d : w.deleted_by_[i])
            if (w.deleted_.count(d) != 0 && !w.delete_went_out(i, d)) {
              w.deleted_.erase(d);
              ++deletes_lost_with_author;
            }
        }
        w.leave(i);
        break;
      default:
        break;
    }
  };

  while (!q.empty() && q.top().at_ms <= end) {
    auto e = q.top();
    q.pop();
    advance(e.at_ms);
    ++events;
    switch (e.kind) {
      case ev_kind::post: {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        const auto author = std::min<std::size_t>(draw_rank(cdf, u(g)), s.nodes - 1);
        next_post(e.at_ms);
        if (w.nodes_[author].crashed)
          break; // a crashed process takes no writes
        if (s.delete_fraction > 0 && u(g) < s.delete_fraction) {
          auto own = w.subjects_of(author, author);
          if (!own.empty()) {
            auto victim = std::next(own.begin(), static_cast<std::ptrdiff_t>(g() % own.size()));
            w.api(author, "del", json{{"subject", *victim}});
            w.note_delete_dot(author, *victim);
            w.deleted_.insert(*victim);
            w.deleted_by_[author].insert(*victim);
            del_seen.applied(author, *victim);
            ++deletes;
          }
          break;
        }
        record_post(author, w.api(author, "post", json{{"text", "post " + std::to_string(posts) + " #sim"}}));
        ++posts;
        break;
      }
      case ev_kind::kv_op: {
        next_op(e.at_ms);
        const std::size_t writer = gkv() % s.kv.writers;
        const auto k = static_cast<std::uint32_t>(draw_rank(key_cdf, unit(gkv)));
        const double r = unit(gkv);
        if (!w.running(writer))
          break;
        const auto subject = w.kv_subject(k);
        if (r < s.kv.read_fraction) {
          w.api(writer, "get", json{{"subject", subject}, {"topic", w.kv_topic_}});
          ++kv_reads;
          break;
        }
        // What the write replaces: the values this replica holds now (the
        // node reads the same context when it writes; nothing runs between).
        auto seen = w.kv_values(writer, k);
        kv_write rec{"", writer, e.at_ms, w.nodes_[writer].store_losses, {seen.begin(), seen.end()}};
        if (r < s.kv.read_fraction + s.kv.delete_fraction) {
          if (seen.empty()) {
            ++kv_empty_deletes; // nothing to delete here
            break;
          }
          auto res = w.api(writer, "del", json{{"subject", subject}, {"topic", w.kv_topic_}});
          if (res.status != 200)
            throw std::runtime_error("kv delete failed: " + res.json);
          ++kv_deletes;
        } else {
          rec.value = "w" + std::to_string(kv_writes);
          auto res = w.api(writer, "put",
                           json{{"subject", subject}, {"doc", {{"v", rec.value}}}, {"topic", w.kv_topic_}});
          if (res.status != 200)
            throw std::runtime_error("kv write failed: " + res.json);
          ++kv_writes;
        }
        kv_log[k].push_back(std::move(rec));
        break;
      }
      case ev_kind::down: {
        const auto i = e.node;
        if (!w.live(i))
          break;
        w.nodes_[i].fault_down = false; // a sync crash's restart waits for this churn's up
        if (s.churn.depart_fraction > 0 && unit(g2) < s.churn.depart_fraction) {
          go_down(i, trace_event::kind::leave);
          ++transitions;
          break; // never comes back
        }
        if (s.churn.crash_fraction > 0 &&
            std::uniform_real_distribution<double>(0.0, 1.0)(g) < s.churn.crash_fraction) {
          w.crash(i);
          ++crashes;
          if (s.churn.lose_store_fraction > 0 && unit(g2) < s.churn.lose_store_fraction)
            go_down(i, trace_event::kind::lose);
        } else {
          w.set_up(i, false);
        }
        ++transitions;
        q.push({e.at_ms + static_cast<std::uint64_t>(draw_length(s.churn, s.churn.mean_down_s, g) * 1000) + 1,
                order++, ev_kind::up, i});
        break;
      }
      case ev_kind::up:
        if (w.nodes_[e.node].crashed)
          w.restart(e.node);
        w.set_up(e.node, true); // (a no-op after a restart unless a fault also cut its links)
        ++transitions;
        q.push({e.at_ms + static_cast<std::uint64_t>(draw_length(s.churn, s.churn.mean_up_s, g) * 1000) + 1,
                order++, ev_kind::down, e.node});
        break;
      case ev_kind::join:
        w.join(e.node);
        ++joins;
        if (random_churn)
          q.push({e.at_ms + static_cast<std::uint64_t>(draw_length(s.churn, s.churn.mean_up_s, g2) * 1000) + 1,
                  order++, ev_kind::down, e.node});
        break;
      case ev_kind::trace: {
        const auto& t = s.churn.trace[e.node];
        const std::size_t i = t.node;
        w.nodes_[i].fault_down = false; // the trace decides from here on
        ++transitions;
        switch (t.what) {
          case trace_event::kind::join:
            if (!w.nodes_[i].joined)
              ++joins;
            w.join(i);
            break;
          case trace_event::kind::up:
            w.restart(i);
            w.set_up(i, true);
            break;
          default:
            go_down(i, t.what);
        }
        break;
      }
      case ev_kind::fault_start:
        apply_fault(e.node, e.at_ms);
        break;
      case ev_kind::fault_end:
        heal_fault(e.node);
        break;
      case ev_kind::relay_down:
        relay_hold(e.node);
        q.push({e.at_ms + static_cast<std::uint64_t>(draw_length(s.relay_churn, s.relay_churn.mean_down_s, grelay) * 1000) + 1,
                order++, ev_kind::relay_up, e.node});
        break;
      case ev_kind::relay_up:
        relay_release(e.node);
        q.push({e.at_ms + static_cast<std::uint64_t>(draw_length(s.relay_churn, s.relay_churn.mean_up_s, grelay) * 1000) + 1,
                order++, ev_kind::relay_down, e.node});
        break;
    }
    report("workload", e.at_ms);
  }
  advance(end);
  // Metadata held when the churn stops (retirement's effect shows here).
  const json metadata_at_churn_end = [&] {
    const auto m = w.metadata();
    return json{{"kept_headers", w.kept_headers()},
                {"signed_batches", w.signed_batches()},
                {"dot_map_entries", m.dot_map_entries},
                {"watermark_members", m.members},
                {"unstripped_keys", m.unstripped_keys}};
  }();

  phase = "settling";
  // Faults stop: every node that has not left comes back; wait for
  // convergence.
  w.net_->set_faults(milliseconds(0), 0, 0);
  for (auto& [k, ids] : partitions_of_fault)
    for (auto id : ids)
      w.net_->heal(id);
  partitions_of_fault.clear();
  for (std::size_t k = 0; k < w.relays_.size(); ++k)
    if (relay_holds[k] > 0) {
      relay_holds[k] = 1;
      relay_release(k);
    }
  for (std::size_t i = 0; i < s.nodes; ++i) {
    w.nodes_[i].fault_down = false;
    if (w.nodes_[i].departed)
      continue;
    if (!w.nodes_[i].joined) {
      w.join(i);
      ++joins;
    }
    if (w.nodes_[i].crashed)
      w.restart(i);
    w.set_up(i, true);
  }
  const auto settle_end = end + static_cast<std::uint64_t>(s.settle_limit_s * 1000);
  std::optional<std::uint64_t> converged_at;
  for (auto t = end; t <= settle_end; t += 1000) {
    advance(t);
    if (w.converged() && w.kv_converged() && !w.deletes_pending()) {
      converged_at = t;
      break;
    }
    report("settling", t);
  }
  // With strip_limit_s: after convergence, anti-entropy goes on until the
  // metadata is gone too (every stored context empty, no kept header, no
  // dot-key map entry), as NDC promises once every member has seen
  // every dot.
  std::optional<std::uint64_t> stripped_at;
  if (converged_at && s.strip_limit_s > 0) {
    const auto strip_end = *converged_at + static_cast<std::uint64_t>(s.strip_limit_s * 1000);
    for (auto t = *converged_at; t <= strip_end; t += 1000) {
      if (t > *converged_at)
        advance(t);
      const auto m = w.metadata();
      if (m.unstripped_keys == 0 && m.dot_map_entries == 0 && w.kept_headers() == 0) {
        stripped_at = t;
        break;
      }
      report("stripping", t);
    }
  }
  if (sample_ms > 0 && w.now_ms() > last_sample)
    sample(w.now_ms()); // the last, shorter interval
  if (check_ms > 0 && w.now_ms() > last_check)
    checkpoint(w.now_ms()); // the state the final checkers see

  summary out;
  out.converged = converged_at.has_value() && (s.strip_limit_s <= 0 || stripped_at.has_value());
  // Checker: a deleted post held anywhere (that has not left) is a
  // resurrection.
  std::uint64_t resurrected = 0;
  // ... of those, posts whose author left for good: no one can vouch for
  // the delete any more (docs/architecture.md, "Topic membership").
  std::uint64_t resurrected_departed = 0;
  std::set<std::string> departed_ids;
  for (std::size_t i = 0; i < w.nodes_.size(); ++i)
    if (w.nodes_[i].departed)
      departed_ids.insert(w.id_of(i));
  // A delete of an author that left, which every node that applied it
  // has left too (after the author: the check at the author's departure
  // saw it out), went with them: nothing can carry it any more.
  std::set<std::string> lost_later;
  const auto lost_with_departures = [&](const std::string& d) {
    if (lost_later.count(d) != 0)
      return true;
    const auto author = w.by_id_.find(d.substr(0, d.find('/')));
    if (author == w.by_id_.end() || !w.nodes_[author->second].departed || w.delete_went_out(author->second, d))
      return false;
    lost_later.insert(d);
    ++deletes_lost_with_author;
    return true;
  };
  for (std::size_t i = 0; i < w.nodes_.size(); ++i) {
    if (!w.live(i))
      continue;
    storage::documents docs(*w.nodes_[i].env->store);
    for (const auto& d : w.deleted_) {
      auto r = docs.get(d, {});
      if (r && !r->is_null() && r->contains("doc") && !(*r)["doc"].empty()) {
        if (lost_with_departures(d)) // nobody left can carry the delete
          continue;
        ++resurrected;
        resurrected_departed += departed_ids.count(d.substr(0, d.find('/')));
        if (std::getenv("KITH_SIM_LOG")) {
          // With the delete's dot and the nodes whose clock or held
          // summary has it: where it stopped.
          std::string reached;
          if (auto dd = w.delete_dot_.find(d); dd != w.delete_dot_.end()) {
            const auto topic = "feed/" + d.substr(0, d.find('/'));
            for (std::size_t k = 0; k < w.nodes_.size(); ++k)
              if (w.applied_delete(k, topic, dd->second))
                reached += " " + std::to_string(k) + (w.live(k) ? "" : "(gone)");
          }
          std::fprintf(stderr, "kith-sim: deleted post back at node %zu: %s; delete applied at:%s\n", i,
                       d.c_str(), reached.c_str());
        }
      }
    }
  }
  // Store losses: the lost posts that still exist at some follower, and
  // those the author itself got back (it would need to fetch its own feed
  // from its followers).
  std::uint64_t pre_loss_posts = 0, pre_loss_at_followers = 0, pre_loss_back_at_author = 0;
  for (const auto& [j, subjects] : w.pre_loss_) {
    if (!w.live(j))
      continue;
    const auto own = w.subjects_of(j, j);
    std::vector<std::set<std::string>> at;
    for (std::size_t i = 0; i < w.nodes_.size(); ++i)
      if (w.live(i) && i != j &&
          std::find(w.nodes_[i].follows.begin(), w.nodes_[i].follows.end(), j) != w.nodes_[i].follows.end())
        at.push_back(w.subjects_of(i, j));
    for (const auto& p : subjects) {
      if (w.deleted_.count(p))
        continue;
      ++pre_loss_posts;
      pre_loss_back_at_author += own.count(p);
      pre_loss_at_followers +=
          std::any_of(at.begin(), at.end(), [&](const auto& set) { return set.count(p) > 0; }) ? 1 : 0;
    }
  }

  // The kv checker against the naive model (check_kv_key).
  json kv_json = nullptr;
  bool kv_ok = true;
  if (kv) {
    kv_verdict all;
    std::uint64_t max_siblings = 0, keys_with_siblings = 0;
    json lost_examples = json::array();
    json disagreements = json::array();
    std::vector<std::size_t> replicas;
    for (std::size_t i = 0; i < s.kv.writers; ++i)
      if (w.live(i))
        replicas.push_back(i);
    for (std::uint32_t k = 0; k < s.kv.keys; ++k) {
      std::vector<std::set<std::string>> held;
      for (auto i : replicas)
        held.push_back(w.kv_values(i, k));
      std::vector<kv_record> log;
      for (const auto& rec : kv_log[k]) {
        const auto& wn = w.nodes_[rec.writer];
        log.push_back(kv_record{rec.value, rec.read, wn.store_losses > rec.writer_losses || wn.departed, rec.writer});
      }
      auto v = check_kv_key(log, held);
      for (const auto& x : v.lost_values)
        if (lost_examples.size() < 10)
          lost_examples.push_back(json{{"key", k}, {"value", x}});
      if (!v.ok() && disagreements.size() < 5) {
        // What each replica holds of a key that fails, and the key's log.
        json at = json::object();
        for (std::size_t r = 0; r < replicas.size(); ++r)
          at[std::to_string(replicas[r])] = held[r];
        json writes = json::array();
        for (const auto& rec : kv_log[k])
          writes.push_back(json{{"value", rec.value.empty() ? json(nullptr) : json(rec.value)},
                                {"writer", rec.writer},
                                {"at_s", (rec.at_ms - start) / 1000.0},
                                {"read", rec.read},
                                {"writer_lost_it_since", w.nodes_[rec.writer].store_losses > rec.writer_losses}});
        disagreements.push_back(json{{"key", k}, {"replicas", at}, {"log", writes}});
      }
      all.live += v.live;
      all.lost += v.lost;
      all.lost_with_store += v.lost_with_store;
      all.undetermined += v.undetermined;
      all.resurrected_deletes += v.resurrected_deletes;
      all.overwritten_present += v.overwritten_present;
      all.unknown += v.unknown;
      all.replicas_agree = all.replicas_agree && v.replicas_agree;
      if (!held.empty()) {
        max_siblings = std::max<std::uint64_t>(max_siblings, held.front().size());
        keys_with_siblings += held.front().size() > 1 ? 1 : 0;
      }
    }
    kv_ok = all.ok();
    kv_json = json{{"topic", w.kv_topic_},
                   {"keys", s.kv.keys},
                   {"writers", s.kv.writers},
                   {"reads", kv_reads},
                   {"writes", kv_writes},
                   {"deletes", kv_deletes},
                   {"deletes_of_empty_keys", kv_empty_deletes},
                   {"replicas_agree", all.replicas_agree},
                   {"live_writes", all.live},
                   {"lost_writes", all.lost},
                   {"lost_with_store", all.lost_with_store},
                   {"undetermined_after_store_loss", all.undetermined},
                   {"resurrected_deletes", all.resurrected_deletes},
                   {"overwritten_present", all.overwritten_present},
                   {"unknown_values", all.unknown},
                   {"keys_with_siblings", keys_with_siblings},
                   {"max_siblings", max_siblings},
                   {"lost_examples", lost_examples},
                   {"failing_keys", disagreements},
                   {"ok", kv_ok}};
  }
  out.converged = out.converged && resurrected == 0 && kv_ok;

  json lagging = json::array();
  for (std::size_t i = 0; i < w.nodes_.size() && lagging.size() < 10; ++i) {
    if (!w.live(i))
      continue;
    for (auto j : w.nodes_[i].follows)
      if (w.live(j) && !w.pair_ok(i, j, w.subjects_of(j, j))) {
        auto peers = json::parse(w.api(i, "peers", json::object()).json)["peers"];
        json state = "unknown";
        for (auto& p : peers)
          if (p["id"] == w.id_of(j))
            state = p;
        lagging.push_back(json{{"follower", i}, {"author", j}, {"has", w.posts_of(i, j)},
                               {"of", w.posts_of(j, j)}, {"peer", state}});
      }
  }
  std::size_t topics = 0;
  for (auto& n : w.nodes_)
    topics += n.env->store->topics().size();
  static const char* churn_names[] = {"none", "exponential", "weibull", "trace", "lognormal"};
  out.json = json{
      {"seed", s.seed},
      {"trace_hash", hex64(w.net_->trace_hash())},
      {"nodes", s.nodes},
      {"relay", s.relay},
      {"follows_per_node", s.follows},
      {"sync", json{{"anti_entropy_s", s.anti_entropy_s},
                    {"anti_entropy_idle_max_s", s.anti_entropy_idle_max_s},
                    {"keepalive_s", s.keepalive_s ? json(*s.keepalive_s) : json("node default")},
                    {"peer_timeout_s", s.peer_timeout_s ? json(*s.peer_timeout_s) : json("node default")}}},
      {"workload", kv ? "kv" : "feed"},
      {"churn", churn_names[static_cast<int>(s.churn.model)]},
      {"churn_transitions", transitions},
      {"posts", posts},
      {"deletes", deletes},
      {"resurrected", resurrected},
      {"crashes", crashes},
      {"store_losses", losses},
      {"departures", departures},
      {"joins", joins},
      {"faults", faults_applied},
      {"held_sends", w.net_->held_sends()},
      {"queued_sends", w.net_->queued_sends()},
      {"connection_resets", w.net_->resets()},
      {"simulated_ms", w.now_ms() - start},
      {"scheduler_steps", w.steps_},
      {"events", events},
      {"messages", w.net_->sends()},
      {"bytes", w.net_->bytes_carried()},
      {"converged", out.converged},
      {"convergence_ms", converged_at ? json(*converged_at - end) : json(nullptr)},
      {"topic_replicas", topics},
      {"kept_headers", w.kept_headers()},
      {"lagging", lagging},
      {"wall_ms", duration_cast<milliseconds>(steady_clock::now() - wall0).count()},
      {"peak_rss_kib", peak_rss_kib()},
  };
  {
    // The peer actors by what keeps each (its node's peer list, as `GET
    // /v1/peers` shows it), read once everything above is measured: the
    // memory target's largest item (docs/simulation.md, "Summary fields").
    std::uint64_t followed = 0, pulled_from = 0, serving_only = 0, neither = 0, asleep = 0, connected = 0;
    for (std::size_t i = 0; i < w.nodes_.size(); ++i) {
      if (!w.live(i))
        continue;
      const auto peers = json::parse(w.api(i, "peers", json::object()).json); // kept: the loop reads into it
      for (const auto& p : peers["peers"]) {
        connected += p["state"] == "connected" ? 1 : 0;
        if (p["asleep"].get<bool>()) // no actor: the node keeps its connection
          ++asleep;
        else if (p["followed"].get<bool>())
          ++followed;
        else if (!p["pulling"].empty())
          ++pulled_from;
        else if (!p["serving"].empty())
          ++serving_only;
        else
          ++neither;
      }
    }
    out.json["peer_actors"] = json{{"followed", followed},
                                   {"pulled_from", pulled_from},
                                   {"serving_only", serving_only},
                                   {"neither", neither},
                                   {"asleep", asleep},
                                   {"connected", connected}};
  }
  {
    const auto f = memo.figures();
    out.json["verify_memo"] = json{{"on", s.verify_memo},
                                   {"hits", f.hits},
                                   {"misses", f.misses},
                                   {"clears", f.clears},
                                   {"entries", f.entries}};
  }
  if (!s.jitter_samples_ms.empty()) {
    // Which delays were replayed: a changed file changes the trace.
    std::uint64_t h = 1469598103934665603ull;
    for (auto v : s.jitter_samples_ms)
      for (int i = 0; i < 8; ++i)
        h = (h ^ ((static_cast<std::uint64_t>(v) >> (8 * i)) & 0xff)) * 1099511628211ull;
    out.json["jitter_samples"] = json{{"file", s.jitter_samples_file},
                                      {"count", s.jitter_samples_ms.size()},
                                      {"hash", hex64(h)}};
  }
  if (s.clock_skew_s > 0) {
    std::int64_t behind = 0, ahead = 0;
    for (const auto& n : w.nodes_) {
      behind = std::min(behind, n.skew_ms);
      ahead = std::max(ahead, n.skew_ms);
    }
    out.json["clock_skew"] = json{{"max_s", s.clock_skew_s},
                                  {"most_behind_s", static_cast<double>(behind) / 1000},
                                  {"most_ahead_s", static_cast<double>(ahead) / 1000}};
  }
  out.json["shared_values"] =
      json{{"on", s.shared_values},
           {"values", w.values_ ? w.values_->size() : 0},
           {"bytes", w.values_ ? w.values_->bytes() : 0}};
  if (losses > 0)
    out.json["store_loss"] = json{{"posts_before_loss", pre_loss_posts},
                                  {"deletes_lost_with_store", deletes_lost_with_store},
                                  {"still_at_a_follower", pre_loss_at_followers},
                                  {"back_at_author", pre_loss_back_at_author}};
  if (trace_ignored > 0)
    out.json["trace_events_after_end"] = trace_ignored;
  if (s.strip_limit_s > 0) {
    const auto m = w.metadata();
    out.json["strip"] = json{
        {"limit_s", s.strip_limit_s},
        {"stripped", stripped_at.has_value()},
        {"strip_ms", stripped_at && converged_at ? json(*stripped_at - *converged_at) : json(nullptr)},
        {"unstripped_keys", m.unstripped_keys},
        {"kept_headers", w.kept_headers()},
        {"dot_map_entries", m.dot_map_entries}};
  }
  if (kv)
    out.json["kv"] = kv_json;
  {
    // Retirement's trade-off: what it prunes against the resyncs it costs.
    const auto& c = *w.counters_;
    const auto m = w.metadata();
    json lifetimes = nullptr;
    if (!w.kept_seen_.empty()) {
      // Kept records per (topic, dot), from the first to the last sample at
      // which any node held one (sample granularity); those still held at
      // the last sample are counted apart, by their age so far.
      std::vector<double> pruned;
      std::uint64_t still = 0;
      double oldest_held = 0;
      for (const auto& [k, v] : w.kept_seen_) {
        const double life = (v.second - v.first) / 1000.0;
        if (v.second == last_sample) {
          ++still;
          oldest_held = std::max(oldest_held, life);
        } else {
          pruned.push_back(life);
        }
      }
      std::sort(pruned.begin(), pruned.end());
      auto pct = [&](double q) {
        return pruned.empty() ? json(nullptr)
                              : json(pruned[static_cast<std::size_t>(q * (pruned.size() - 1))]);
      };
      double sum = 0;
      for (auto x : pruned)
        sum += x;
      lifetimes = json{{"records", w.kept_seen_.size()},
                       {"pruned", pruned.size()},
                       {"still_held", still},
                       {"oldest_still_held_s", oldest_held},
                       {"mean_s", pruned.empty() ? json(nullptr) : json(sum / pruned.size())},
                       {"p50_s", pct(0.5)},
                       {"p90_s", pct(0.9)},
                       {"max_s", pct(1.0)}};
    }
    out.json["membership"] = json{
        {"retire_after_s", s.retire_after_s ? json(*s.retire_after_s) : json("node default")},
        {"co_follower_retire_after_s",
         s.co_follower_retire_after_s ? json(*s.co_follower_retire_after_s) : json("node default")},
        {"co_follower_linger_s",
         s.co_follower_linger_s ? json(*s.co_follower_linger_s) : json("node default")},
        {"peer_sleep_after_s", s.peer_sleep_after_s ? json(*s.peer_sleep_after_s) : json("node default")},
        {"retire_shared_topics", s.retire_shared_topics},
        {"co_follower_pass_over_checks",
         s.co_follower_pass_over_checks ? json(*s.co_follower_pass_over_checks) : json("node default")},
        {"retirements", c.retirements.load()},
        {"resyncs_new_members", c.new_members.load()},
        {"resyncs_returning_members", c.returning_members.load()},
        {"resyncs_repeated", c.repeated_resyncs.load()},
        {"resync_pages", c.resync_pages.load()},
        {"resyncs_completed", c.resyncs_completed.load()},
        {"resync_bytes", c.resync_bytes.load()},
        {"bytes_per_node", s.nodes > 0 ? w.net_->bytes_carried() / s.nodes : 0},
        {"resurrected_of_departed_authors", resurrected_departed},
        {"deletes_lost_with_departed_author", deletes_lost_with_author},
        {"at_churn_end", metadata_at_churn_end},
        {"at_end", json{{"kept_headers", w.kept_headers()},
                        {"signed_batches", w.signed_batches()},
                        {"dot_map_entries", m.dot_map_entries},
                        {"watermark_members", m.members},
                        {"unstripped_keys", m.unstripped_keys}}},
        {"kept_record_lifetime", lifetimes}};
  }
  {
    const auto& c = *w.counters_;
    out.json["handshakes"] = json{{"resume_tickets", s.resume_tickets},
                                  {"full", c.handshakes_full.load()},
                                  {"resumed", c.handshakes_resumed.load()},
                                  {"relay_full", c.relay_handshakes_full.load()},
                                  {"relay_resumed", c.relay_handshakes_resumed.load()}};
    // Node-to-node protocol messages by kind, as encoded (the network's
    // `messages` and `bytes` also count handshakes, relay traffic and the
    // channel's framing).
    json kinds = json::object();
    for (std::size_t k = 0; k < actors::membership_counters::sent_kinds; ++k)
      if (const auto n = c.sent_messages[k].load())
        kinds[actors::membership_counters::sent_kind_name(k)] =
            json{{"messages", n}, {"bytes", c.sent_bytes[k].load()}};
    out.json["sent_by_kind"] = std::move(kinds);
  }
  // Relays, rare-path faults and checkpoints (after the trace hash is read:
  // the status requests below send nothing on the network anyway).
  out.json["relays"] = relay_count(s);
  out.json["relay_failures"] = relay_failures;
  {
    // What the relays received and refused, every process of every relay
    // together (as of each process's last tick).
    json requests = json::object(), refused = json::object(), closes = json::object();
    const auto add = [](json& to, const char* name, std::uint64_t n) {
      if (n != 0)
        to[name] = to.value(name, std::uint64_t{0}) + n;
    };
    for (const auto& r : w.relays_)
      for (const auto& m : r.metrics) {
        for (std::size_t k = 0; k < m->requests.size(); ++k)
          add(requests, relay::relay_message_name(k), m->requests[k]);
        for (std::uint16_t c = 0; c < relay::code_count; ++c) {
          add(refused, relay::code_name(static_cast<relay::code>(c)), m->rejections[c]);
          add(closes, relay::code_name(static_cast<relay::code>(c)), m->closes[c]);
        }
      }
    out.json["relay_traffic"] = json{{"requests", std::move(requests)},
                                     {"refused", std::move(refused)},
                                     {"closes", std::move(closes)}};
  }
  const bool relay_faults = relay_churn || std::any_of(s.faults.begin(), s.faults.end(), [](const fault& f) {
    return f.what == fault::kind::relay;
  });
  if (relay_count(s) > 1 || relay_faults) {
    // Sessions of running nodes with their relays now: after the relays
    // came back, the nodes found them again.
    std::uint64_t sessions = 0, connected = 0;
    for (std::size_t i = 0; i < w.nodes_.size(); ++i) {
      if (!w.live(i) || !w.running(i))
        continue;
      auto r = json::parse(w.api(i, "relays", json::object()).json, nullptr, false);
      if (r.is_discarded() || !r.contains("relays"))
        continue;
      for (const auto& x : r["relays"]) {
        ++sessions;
        connected += x.value("state", std::string{}) == "connected" ? 1 : 0;
      }
    }
    out.json["relay_faults"] = json{{"relays", relay_count(s)},
                             {"relays_per_node", relays_per_node(s)},
                             {"failures", relay_failures},
                             {"restarts", relay_restarts},
                             {"downtime_ms", relay_downtime_ms},
                             {"graceful_restarts", relay_graceful},
                             {"restart_notices", w.restart_notices_.size()},
                             {"restart_notice_max_ms",
                              w.restart_notices_.empty()
                                  ? json(nullptr)
                                  : json(*std::max_element(w.restart_notices_.begin(),
                                                           w.restart_notices_.end()))},
                             {"sessions_at_end", sessions},
                             {"sessions_connected_at_end", connected}};
  }
  if (w.watch_sync_)
    out.json["rare_faults"] = json{{"sync_replies_seen", sync_replies_seen},
                                   {"sync_crashes", sync_crashes},
                                   {"late_replies", late_replies},
                                   {"late_deliveries_after_close", late_after_close},
                                   {"late_crashes", late_crashes},
                                   {"late_deliveries_after_retire", late_after_retire}};
  if (s.duplicate_probability > 0 || s.reorder_probability > 0) {
    // Every end that received duplicated or swapped bytes must have been
    // closed by its channel (counter nonces) by now.
    const auto t = w.net_->tampering(static_cast<std::int64_t>(w.now_ms()));
    out.json["tampering"] = json{{"duplicated", t.duplicated},
                                 {"reordered", t.reordered},
                                 {"swapped", t.swapped},
                                 {"refused", t.refused},
                                 {"closed", t.closed},
                                 {"still_open", t.open},
                                 {"in_flight", t.in_flight},
                                 {"withheld", t.withheld}};
    if (t.open > 0)
      ck.failure("at the end: " + std::to_string(t.open) +
                 " connection ends stayed open after receiving duplicated or swapped bytes");
  }
  if (s.packet_loss > 0 || s.packet_duplicate > 0 || s.packet_reorder > 0 ||
      std::any_of(s.links.begin(), s.links.end(),
                  [](const link_setting& l) { return l.own_packet_faults(); })) {
    const auto p = w.net_->packet_faults();
    out.json["packet_faults"] = json{{"segments", p.segments},
                                     {"lost", p.lost},
                                     {"delayed_sends", p.delayed_sends},
                                     {"timeouts", p.timeouts},
                                     {"loss_delay_ms", p.loss_delay_ms},
                                     {"duplicated", p.duplicated},
                                     {"reordered", p.reordered},
                                     {"gave_up", p.gave_up},
                                     {"congestion_window", s.congestion_window},
                                     {"window_waits", p.window_waits},
                                     {"window_delay_ms", p.window_delay_ms}};
  }
  out.checkpoints_ok = ck.failed == 0;
  out.checkpoint_failure = ck.first_failure;
  if (check_ms > 0) {
    out.checkpoints_csv = ck_csv.str();
    out.json["checkpoints"] = json{{"interval_s", s.checkpoint_s},
                                   {"count", ck.count},
                                   {"failed", ck.failed},
                                   {"ok", ck.failed == 0},
                                   {"first_failure", ck.first_failure.empty() ? json(nullptr)
                                                                              : json(ck.first_failure)},
                                   {"resurrected", ck.resurrected},
                                   {"unknown_writes", ck.unknown},
                                   {"clock_regressions", ck.regressions},
                                   {"over_limit", ck.over_limit},
                                   {"max_kept_headers_per_topic", ck.max_kept},
                                   {"max_dot_keys_per_topic", ck.max_dot_keys},
                                   {"max_siblings_per_key", ck.max_siblings},
                                   {"max_context_per_key", ck.max_context},
                                   {"store_check_failures", ck.store_failures},
                                   {"deletes_watched", ck.deletes_watched},
                                   {"clocks_watched", ck.clocks_watched}};
  }
  out.series_csv = csv.str();
  return out;
}

} // namespace kith::sim
