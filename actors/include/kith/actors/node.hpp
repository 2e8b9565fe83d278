#pragma once

#include "kith/actors/interfaces.hpp"
#include "kith/protocol/messages.hpp"
#include "kith/protocol/tickets.hpp"
#include "kith/storage/store.hpp"

#include <caf/actor_system.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <variant>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kith::actors {

namespace detail {
class tick_board;
}

enum class log_level { debug, info, warn, error };

/// Seeded randomness for the actors (channel ephemerals, backoff jitter):
/// outputs are BLAKE2b(seed, counter). The daemon seeds it from the OS at
/// start, tests and the simulator from their printed seed.
class entropy {
public:
  explicit entropy(const protocol::key_seed& seed) : seed_(seed) {}
  [[nodiscard]] protocol::key_seed next();
  [[nodiscard]] std::uint64_t next_u64();

private:
  protocol::key_seed seed_;
  std::atomic<std::uint64_t> counter_{0};
};

/// Counts of membership changes and resyncs served, added to by the topic
/// actors of every node that shares it (atomics: the daemon's scheduler
/// runs actors on several threads). For measurements: the simulator
/// attaches one; the daemon leaves sync_settings::counters empty.
struct membership_counters {
  std::atomic<std::uint64_t> retirements{0};        // members retired after silence
  std::atomic<std::uint64_t> new_members{0};        // first subscribe: full resync asked
  std::atomic<std::uint64_t> returning_members{0};  // ... of a replica this actor had retired
  std::atomic<std::uint64_t> repeated_resyncs{0};   // a member whose resync was unconfirmed, again
  std::atomic<std::uint64_t> resync_pages{0};       // resync pages served
  std::atomic<std::uint64_t> resyncs_completed{0};  // last pages served
  std::atomic<std::uint64_t> resync_bytes{0};       // encoded data messages of those pages
  // Not membership, counted in the same place: channel handshakes that
  // completed, full (signatures) and resumed (a ticket).
  std::atomic<std::uint64_t> handshakes_full{0};
  std::atomic<std::uint64_t> handshakes_resumed{0};
  // The same for this node's sessions with its relays.
  std::atomic<std::uint64_t> relay_handshakes_full{0};
  std::atomic<std::uint64_t> relay_handshakes_resumed{0};
  /// Node-to-node protocol messages sent, by kind, with their encoded
  /// bytes (before the channel's framing and encryption): one slot per
  /// protocol::message alternative, data messages split by data_kind
  /// (sent_kind_of, sent_kind_name).
  static constexpr std::size_t sent_kinds = std::variant_size_v<protocol::message> + 2;
  std::array<std::atomic<std::uint64_t>, sent_kinds> sent_messages{};
  std::array<std::atomic<std::uint64_t>, sent_kinds> sent_bytes{};
  void count_sent(const protocol::message& m, std::size_t bytes);
  /// The slot of m, and the name of a slot ("data_push", "keepalive", ...).
  [[nodiscard]] static std::size_t sent_kind_of(const protocol::message& m);
  [[nodiscard]] static const char* sent_kind_name(std::size_t slot);
};

/// Timing and limits of the sync protocol (defaults for a personal node).
struct sync_settings {
  std::chrono::milliseconds tick{1000};            // peer housekeeping period
  std::chrono::milliseconds anti_entropy{30'000};  // periodic pull per topic
  /// When above anti_entropy: each round of a topic that brings nothing
  /// doubles the wait before the next one, up to this; a round or a push
  /// that brings writes sets it back to anti_entropy. Pushes carry new
  /// writes at once, so rounds only repair what a push missed: a longer
  /// wait costs repair latency, not freshness (docs/architecture.md).
  /// Off (anti_entropy) by default.
  std::chrono::milliseconds anti_entropy_idle_max{0};
  std::chrono::milliseconds keepalive{15'000};     // send one when idle this long
  std::chrono::milliseconds peer_timeout{60'000};  // close when silent this long
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{60'000};
  std::chrono::milliseconds watermark_delay{1000}; // coalesce watermark reports
  std::size_t max_part_bytes = 1u << 20;           // split answers into parts
  /// With a transport that reports writes: answers and resync pages for a
  /// peer wait while this many bytes sent to it have not reached the
  /// kernel, and a peer that takes none of them for write_stall is
  /// dropped (it does not read).
  std::size_t max_unsent_bytes = 4u << 20;
  std::chrono::milliseconds write_stall{20'000};
  /// Received data waiting to be applied, per peer; above it the peer's
  /// connection stops being read until half of it is applied.
  std::size_t max_applying_bytes = 16u << 20;
  /// A key actor stops after this long without a request (reads, writes,
  /// watches; a watched key stays active). Its state stays in the store.
  std::chrono::milliseconds key_idle{30'000};
  /// A peer actor on an inbound connection that neither pulls nor serves
  /// anything (a co-follower that stopped pulling from us, kept for its
  /// author's next absence) goes to sleep after this long without a
  /// message other than keepalives: the node keeps the connection and its
  /// channel and answers keepalives itself, and a new actor takes the
  /// connection up at the next other frame or when the node needs the
  /// peer (docs/architecture.md, "Idle peers sleep"). 0: never, the
  /// default: at 10 s the 10,000- and 100,000-node simulations had 28%
  /// of their peers asleep by the end, but the peak memory did not move
  /// (docs/simulation.md, "Session 26").
  std::chrono::milliseconds peer_sleep_after{0};
  /// Inbound connections (handshaking or established) at once; more are
  /// closed at once. Bounds what many sessions cost (docs/security.md).
  std::size_t max_inbound_connections = 256;
  /// A topic member (a replica that subscribed to one of our topics)
  /// silent this long, and not subscribed now, is retired from the
  /// topic's watermark: pruning of the dot-key map and of kept delete and
  /// overwrite records stops waiting for it. If it comes back it is a new
  /// member and does a full resync. 0: never retire. A week: a device
  /// offline over a long weekend still catches up by anti-entropy, and a
  /// peer that left for good holds metadata back for at most that long
  /// (docs/architecture.md, "Topic membership"; docs/experiments.md
  /// measures the trade-off). Silence is measured on the actor clock from
  /// the topic actor's start: a restart gives every member a full period.
  std::chrono::milliseconds retire_after{std::chrono::hours(24 * 7)};
  /// The same for members of a feed we hold but did not write (we follow
  /// its author) that are not the author: co-followers that pulled the
  /// feed from us while the author was unreachable. They stop reporting
  /// once they reach the author again, and after a crash they do not even
  /// remember having pulled from us, so the whole retire_after would hold
  /// this feed's metadata back; if one pulls from us again it resyncs in
  /// full. 0: only retire_after applies. The same period bounds how long
  /// a connection to a co-follower is kept once we stop pulling from it
  /// (peer_actor.cpp, linger_ms).
  std::chrono::milliseconds co_follower_retire_after{std::chrono::minutes(10)};
  /// How long a connection to a co-follower is kept once we stop pulling
  /// from it (the author is back), for the author's next absence: 0 (the
  /// default since session 27) closes it at the next tick; unset, it stays
  /// as long as the co-follower keeps us a member (co_follower_retire_
  /// after, or retire_after when that is 0). Kept, it would save one
  /// resumed handshake at the author's next absence, while its keepalives,
  /// two peer actors and channel state cost all along: closing at once
  /// sent 2% fewer messages, converged as soon and peaked 4.8% lower in
  /// the 10,000-node run (docs/simulation.md, "Session 27").
  std::optional<std::chrono::milliseconds> co_follower_linger{std::chrono::milliseconds(0)};
  /// Retire silent members of shared topics too (feeds always retire; open
  /// topics never). Off by default: see topic_actor.cpp retire_silent.
  bool retire_shared = false;
  /// Checks in a row (5 s apart) at which a co-follower we pull an absent
  /// author's feed from is not connected before we pass it over and pull
  /// from another (at least 1). Two: with resyncs that send only what the
  /// asker lacks, six (tried in session 10) only delayed convergence.
  std::uint32_t co_follower_pass_over_checks = 2;
  /// While a feed is pulled from co-followers, every this long one of
  /// those pulled makes way for the next co-follower known (in id order,
  /// round the list, passed-over ones included: they are tried again).
  /// Without it, pulls stay with the first reachable co-followers, and
  /// when those all missed a delete, a co-follower that has it is never
  /// asked (churn-lifecycle.toml seed 65, docs/simulation.md). 0: never.
  std::chrono::milliseconds co_follower_rotate{std::chrono::minutes(2)};
  /// Resumed handshakes (docs/secure-channel.md, "Resumption"): every
  /// channel leaves both ends a ticket with which their next channel
  /// proves the two identities without signatures, over a fresh key
  /// exchange. At most this many tickets are kept (in memory only: a
  /// restart forgets them); 0 turns resumption off.
  std::size_t resume_tickets = 4096;
  /// A ticket older than this is not used (the full handshake is).
  std::chrono::milliseconds resume_ticket_lifetime{std::chrono::hours(24)};
  /// Optional counters of retirements and resyncs served (see above).
  std::shared_ptr<membership_counters> counters;
  protocol::channel_limits channel{};
  protocol::message_limits messages{};
};

/// What every actor of one node shares: immutable configuration and
/// thread-safe services. Owned by the node actor; others hold shared_ptr.
/// A protocol event as it happens, for the simulator's faults and checks
/// (node_env::observe). Not a log line: its fields are the contract.
struct node_observation {
  enum class kind {
    /// A sync reply (anti-entropy answer or resync page) arrived from a
    /// peer, before it is applied: `peer` (identity text), `topic`.
    sync_reply,
    /// A relay said it is restarting: `peer` is the relay's address,
    /// `after_ms` when it asked this node to come back.
    relay_restart,
    /// A topic retired a silent member from its watermark: `peer` is the
    /// member's replica id (decimal), `topic` the topic.
    retired,
  } what = kind::sync_reply;
  std::string peer;
  std::string topic;
  std::uint64_t after_ms = 0;
};

struct node_env {
  /// The rest is set field by field (defaults as below).
  explicit node_env(protocol::identity id, std::shared_ptr<storage::store> st = nullptr,
                    transport_actor tr = {})
      : self(std::move(id)), store(std::move(st)), transport(std::move(tr)) {}

  protocol::identity self;
  std::shared_ptr<storage::store> store;
  transport_actor transport;
  sync_settings settings;
  std::shared_ptr<entropy> rng;
  std::string agent = "kith/0.1";
  /// Log sink (thread-safe). Tests collect lines; the daemon writes them.
  std::function<void(log_level, const std::string&)> log;
  /// Change events for the local API's stream (thread-safe, non-blocking).
  std::function<void(const nlohmann::json&)> on_event;
  /// Remembers the dial address of a followed identity (local only: not
  /// replicated). May be empty.
  std::function<void(const std::string& id, const std::string& address)> remember_address;
  /// Known dial addresses by identity text (loaded by the daemon).
  std::map<std::string, std::string> addresses;

  /// Relays to use, "host:port" or "host:port#<relay id>" (pinned). The
  /// node spawns its relays actor when this is not empty.
  std::vector<std::string> relays;
  /// Addresses put in this node's relay record (where peers can dial it
  /// directly). Empty: reachable through relays only.
  std::vector<std::string> announce;
  /// Unix time in ms, for relay records' expiries. The daemon passes the
  /// system clock; tests and the simulator leave it empty and the actor
  /// clock (virtual there) is used.
  std::function<std::uint64_t()> unix_ms;
  /// The transport reports bytes written to the kernel as (written_atom,
  /// conn, n) to a connection's owner (tcp_transport does). Peer actors
  /// then hold back answers while a peer has not taken the last ones
  /// (sync_settings::max_unsent_bytes). The simulated network delivers a
  /// send at once and reports nothing.
  bool transport_reports_writes = false;
  /// Join the public directory rendezvous at the relays (join only, no
  /// watching), so aggregators can find and follow this node. The daemon
  /// turns it on by default ([node] directory); tests and the simulator
  /// leave it off.
  bool directory = false;
  /// Aggregator mode (docs/app.md): watch the directory, follow every
  /// identity met there up to aggregate_max_follows (in memory, not
  /// published as follow documents), and answer queries from peers.
  bool aggregate = false;
  std::size_t aggregate_max_follows = 10'000;
  /// Aggregators this node asks for mentions, replies and threads beyond
  /// whom it follows; their answers are verified item by item.
  std::vector<protocol::public_key> aggregators;
  /// The store was created anew for an identity that already had one (a
  /// lost device or data directory): the node fetches its own feed back
  /// from its followers, met at the feed's rendezvous at the relays.
  bool restore_own_feed = false;
  /// Called synchronously by the actor that sees the event (so, with
  /// several threads, from several threads). The simulator sets it; the
  /// daemon leaves it empty.
  std::function<void(const node_observation&)> observe;
  /// Tests only: alters answers this node gives to queries (to show that
  /// askers refuse tampered items). Never set by the daemon.
  std::function<void(protocol::query_result_msg&)> tamper_answers;

  /// The relays actor (set by the node actor at spawn when relays are
  /// configured): the transport of circuits.
  relays_actor relays_handle;
  /// Resumption tickets of this node process, for its peers and for its
  /// relays apart (a relay's ticket must not resume a channel to the
  /// node). Made anew by spawn_node; null when settings.resume_tickets
  /// is 0.
  std::shared_ptr<protocol::ticket_cache> tickets;
  std::shared_ptr<protocol::ticket_cache> relay_tickets;
  /// The next ticks of this node's peer and topic actors, sent by the
  /// node actor's own tick (actors/src/tick_board.hpp). Made anew by the
  /// node actor when it starts; null without one (tests that run a peer
  /// or topic actor alone), and those actors then set their own timers.
  std::shared_ptr<detail::tick_board> ticks;

  /// The transport that carries connection `c`.
  [[nodiscard]] transport_actor transport_for(conn_id c) const {
    return (c & circuit_conn_bit) != 0 ? transport_actor{relays_handle} : transport;
  }
  /// The transport to dial `address` on.
  [[nodiscard]] transport_actor transport_to(const std::string& address) const {
    return address.rfind(circuit_address_prefix, 0) == 0 ? transport_actor{relays_handle}
                                                         : transport;
  }

  void logf(log_level l, const std::string& line) const {
    if (log)
      log(l, line);
  }
  void note(const node_observation& o) const {
    if (observe)
      observe(o);
  }
  void emit(const nlohmann::json& ev) const {
    if (on_event)
      on_event(ev);
  }
};

/// The rendezvous name of the public directory of nodes (hashed like any
/// topic name before it reaches a relay).
inline constexpr std::string_view directory_topic = "kith/directory/v1";

/// Sent in clear by `kith sync --stdio` as the first bytes of a loopback
/// connection to its own daemon: "take the initiator's side of the
/// handshake on this connection" (the pipe's other end runs a responder).
/// Accepted only from loopback addresses; it cannot be confused with a
/// handshake, whose first byte is the high byte of a small frame length.
inline constexpr std::string_view pipe_initiate_preamble = "KITH-PIPE-INITIATE\n";

/// Spawns a node: its topic actors for held topics, peer actors for
/// followed identities (which start dialling). Inbound connections of
/// `env->transport` must be owned by the returned actor.
[[nodiscard]] node_actor spawn_node(caf::actor_system& sys, std::shared_ptr<node_env> env);

/// The n-th key seed of a run seeded with `seed` (identities, channel
/// keys, node entropy in tests and the simulator). Deterministic.
[[nodiscard]] protocol::key_seed seed_for(std::uint64_t seed, std::uint64_t n);

/// Milliseconds of an actor's clock (virtual under the testing scheduler).
[[nodiscard]] std::uint64_t clock_ms(const caf::actor_clock::time_point& t);

} // namespace kith::actors
