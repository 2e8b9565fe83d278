#pragma once

// A simulated network of transports for tests and the simulator: each node
// gets a transport actor; connections are in-process pairs with a latency
// (per link if set) on CAF's clock (virtual under the testing scheduler).
// Links can be cut: a cut closes the link's connections and refuses dials,
// the way TCP would report it. Faults that keep connections open hold
// bytes instead: a hold delays every send in one direction until it ends
// (one-way and symmetric partitions, clogging of a node or a link), and a
// bandwidth queues a link's sends behind each other. A connection's bytes
// arrive in order (it is a stream) unless tampering (set_tampering)
// duplicates or swaps sends above the stream.

#include "kith/actors/interfaces.hpp"

#include <caf/actor_system.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace kith::actors {

class sim_network : public std::enable_shared_from_this<sim_network> {
public:
  explicit sim_network(std::chrono::milliseconds latency = std::chrono::milliseconds(1))
      : latency_(latency) {}

  /// A transport for the node reachable at `address`; its inbound
  /// connections go to `listener` once set with listen().
  [[nodiscard]] transport_actor make_transport(caf::actor_system& sys, const std::string& address);
  void listen(const std::string& address, caf::actor node);
  /// Takes a node off the network (its connections close, dials to it fail).
  void unlisten(const std::string& address);
  /// Dials to `address` fail from now on; its open connections stay (a
  /// server that closed its listening socket). listen() undoes it.
  void stop_accepting(const std::string& address);
  /// Cuts or restores the link between two addresses.
  void set_link(const std::string& a, const std::string& b, bool up);
  /// Takes every link of `address` down (its open connections close with
  /// "link down", dials to and from it fail) or up again (links cut with
  /// set_link stay cut). The same as set_link with every other address,
  /// at a cost that does not grow with the number of addresses (churn at
  /// 10,000 nodes).
  void set_node_up(const std::string& address, bool up);
  /// The order in which set_node_up closes a node's connections: by the
  /// other end's rank in `addresses` (others after), then connection id.
  void set_address_order(const std::vector<std::string>& addresses);
  /// Faults, drawn from `seed` (deterministic on the testing scheduler):
  /// each send is delayed by latency plus up to `jitter` (bytes of one
  /// connection still arrive in order, as on TCP), and with probability
  /// `reset_probability` the connection is reset instead (both ends see it
  /// close), which is how loss shows on a stream transport.
  void set_faults(std::chrono::milliseconds jitter, double reset_probability, std::uint64_t seed);
  /// The distribution of the extra delay per send (set_faults' jitter):
  /// uniform in [0, jitter) (the default), exponential with mean jitter,
  /// Pareto with mean jitter and tail index `shape` (> 1; heavy tails as
  /// measured on wide-area paths), or log-normal with mean jitter and
  /// `shape` the sigma of the underlying normal (wide-area delays are
  /// often fitted so). Draws other than uniform are capped at 60 s: a
  /// longer delay is a partition, not jitter.
  /// `empirical` replays measured delays: each send takes one of the
  /// samples given with set_jitter_samples (or the link's own), drawn
  /// uniformly (one draw per send), so the delays follow the trace's
  /// distribution; jitter's bound or mean is not used.
  enum class jitter_kind { uniform, exponential, pareto, lognormal, empirical };
  void set_jitter_model(jitter_kind kind, double shape = 1.5);
  /// The samples (ms, each 0 to 60,000) the empirical model draws from.
  void set_jitter_samples(std::vector<std::int64_t> samples_ms);
  /// The link between a and b (both directions) draws its jitter from
  /// its own distribution instead: `jitter` is its bound (uniform) or
  /// mean. From the same seeded stream: one draw per send (two for
  /// log-normal).
  void set_link_jitter(const std::string& a, const std::string& b, std::chrono::milliseconds jitter,
                       jitter_kind kind, double shape = 1.5,
                       std::vector<std::int64_t> samples_ms = {});
  /// Connections reset by the fault model so far.
  [[nodiscard]] std::uint64_t resets() const;
  /// Frames tampered with above the stream, as a faulty or hostile
  /// middlebox or relay would (TCP itself hides duplication and
  /// reordering below the stream): with probability `duplicate` a send's
  /// bytes arrive twice, and with probability `reorder` they are kept back
  /// and arrive right after the connection's next send (swapped with it;
  /// dropped if the connection closes first). Draws come from the fault
  /// stream of set_faults, only while a probability is above 0. An end
  /// that received tampered bytes is marked (from their arrival) until
  /// its connection closes: the secure channel must refuse them (its
  /// nonces are counters), so a marked end that stays open is a bug the
  /// simulator reports.
  void set_tampering(double duplicate, double reorder);

  /// Faults below the stream, which TCP hides from the node except as
  /// delay and bandwidth (an approximation of TCP, not a model of it).
  /// Each send is cut into segments of mss_bytes. Each segment is lost
  /// with probability `loss`: the lost segments are sent again (their
  /// bytes take the link's bandwidth again) and the send arrives later by
  /// one round trip (fast retransmit) when it has at least 4 segments,
  /// else by one retransmission timeout (the round trip plus min_rto, as
  /// Linux sets it for a steady round trip); each retransmission is lost
  /// again with the same probability and waits a doubled timeout (at
  /// most 120 s); when the first transmission and 15 retransmissions in a
  /// row are lost, the connection is reset, as TCP gives up (Linux's
  /// tcp_retries2). Sends held for a receiver that paused reading, and
  /// sends kept back by set_tampering's reorder, take no packet delay. Each segment is
  /// duplicated with probability `duplicate` (bandwidth only: the
  /// receiver drops the copy). A send is reordered with probability
  /// `reorder`: one of its segments arrives late, up to one one-way
  /// latency (uniform), and the bytes behind it wait for it (the stream
  /// keeps its order). Draws come from the fault stream of set_faults,
  /// only while a probability is above 0, so runs without packet faults
  /// keep their trace.
  void set_packet_faults(double loss, double duplicate, double reorder,
                         std::chrono::milliseconds min_rto = std::chrono::milliseconds(200),
                         std::size_t mss_bytes = 1448);
  /// With packet faults on a link, each direction of a connection also
  /// has a congestion window (on unless turned off here): it starts at 10
  /// segments (Linux's initial window) and starts there again after an
  /// idle spell longer than a retransmission timeout (tcp_cwnd_restart); a
  /// send of more segments than the window waits a round trip for each
  /// further window's worth, the window growing by the segments sent in
  /// slow start (up to the threshold) and by about one per round trip
  /// after; a loss recovered by fast retransmit halves it, one recovered
  /// by a timeout sets it to one segment (the threshold halves in both
  /// cases, RFC 5681). A send smaller than the window does not grow it.
  /// So a loss slows the sends behind it, not only the one it hit. Links
  /// without packet faults have no window (their traces do not change).
  void set_congestion_window(bool on);
  /// The link between a and b (both directions) takes its own loss,
  /// duplication and reordering probabilities instead of those of
  /// set_packet_faults (min_rto and the segment size stay the network's).
  /// All three 0 makes the link clean while others are lossy.
  void set_link_packet_faults(const std::string& a, const std::string& b, double loss,
                              double duplicate, double reorder);
  struct packet_figures {
    std::uint64_t segments = 0;     // segments of sends made while the model is on
    std::uint64_t lost = 0;         // segment transmissions lost (retransmissions included)
    std::uint64_t delayed_sends = 0; // sends that arrived late because of a loss
    std::uint64_t timeouts = 0;     // recoveries by retransmission timeout (not fast retransmit)
    std::uint64_t loss_delay_ms = 0; // extra delay of those sends, in all
    std::uint64_t duplicated = 0;   // segments sent twice
    std::uint64_t reordered = 0;    // sends with a late segment
    std::uint64_t gave_up = 0;      // connections reset: 15 retransmissions lost in a row
    std::uint64_t window_waits = 0; // round trips sends waited for the congestion window
    std::uint64_t window_delay_ms = 0; // the delay of those waits, in all
  };
  [[nodiscard]] packet_figures packet_faults() const;
  struct tamper_figures {
    std::uint64_t duplicated = 0; // sends delivered twice
    std::uint64_t reordered = 0;  // sends kept back
    std::uint64_t swapped = 0;    // kept-back sends delivered after the next one
    std::uint64_t refused = 0;    // marked ends whose owner closed them (the channel refused)
    std::uint64_t closed = 0;     // marked ends closed for any reason (refused included)
    std::uint64_t open = 0;       // marked ends still open whose tampered bytes arrived by now
    std::uint64_t in_flight = 0;  // marked ends still open, tampered bytes not arrived yet
    std::uint64_t withheld = 0;   // open ends holding a kept-back send no next send released
  };
  /// The figures as of virtual time now_ms.
  [[nodiscard]] tamper_figures tampering(std::int64_t now_ms) const;

  /// Holds every send from an address in `from` to an address in `to`
  /// (an empty `to` means every address) made before virtual time
  /// `until_ms`: its bytes leave at `until_ms`, then take the link's
  /// latency and bandwidth, behind the connection's earlier bytes. Dials
  /// between held addresses (either direction: TCP's handshake needs
  /// both) complete only after the hold. Connections stay open. A
  /// one-way partition is one hold; a symmetric one is two; clogging a
  /// node is a hold of its sends to everyone. Holds may overlap; each
  /// send takes the latest end among the holds that match it.
  void hold(std::set<std::string> from, std::set<std::string> to, std::int64_t until_ms);
  /// Cuts (or, with `cut` false, restores) every link between an address
  /// of `a` and one of `b`, as one partition rule; independent of
  /// set_link's cuts (churn), so a node coming back does not heal it.
  /// Returns the rule's id for the restore.
  std::uint64_t partition(std::set<std::string> a, std::set<std::string> b);
  void heal(std::uint64_t partition_id);
  /// Bytes per second of the link between a and b, each direction on its
  /// own (0: unlimited, the default). A send's bytes leave after the
  /// link's earlier sends, taking size / bandwidth.
  void set_bandwidth(const std::string& a, const std::string& b, std::uint64_t bytes_per_s);
  /// The bandwidth of every link without its own (0: unlimited).
  void set_default_bandwidth(std::uint64_t bytes_per_s);
  /// One-way latency of the link between a and b (both directions).
  void set_latency(const std::string& a, const std::string& b, std::chrono::milliseconds l);
  /// Sends delayed by a hold so far, and sends that waited for a link's
  /// earlier bytes (bandwidth) so far.
  [[nodiscard]] std::uint64_t held_sends() const;
  [[nodiscard]] std::uint64_t queued_sends() const;
  /// Open connections (both ends counted once each).
  [[nodiscard]] std::size_t open_ends() const;

  /// Bytes carried so far (both directions, all links).
  [[nodiscard]] std::uint64_t bytes_carried() const;
  /// A hash of every send so far (virtual time, connection, bytes) in
  /// order: equal across two runs only if they did exactly the same.
  [[nodiscard]] std::uint64_t trace_hash() const;
  /// Sends carried so far.
  [[nodiscard]] std::uint64_t sends() const;

  // Used by the transport actors.
  /// One end of a connection. The simulator holds two per connection,
  /// tens per node: addresses are numbers (address_name), and what only
  /// paused readers and reordering need sits out of line.
  struct end {
    std::uint32_t local = 0;  // address_id
    std::uint32_t remote = 0; // address_id
    caf::actor owner;
    conn_id peer_end = 0;
    std::int64_t deliver_after_ms = 0; // arrival time of the last bytes sent here
    std::int64_t tampered_at_ms = -1;  // first arrival of duplicated or swapped bytes (set_tampering)
    bool open = true;
    bool paused = false; // the owner stopped reading
    struct withheld {
      std::vector<std::string> held; // bytes that arrived while paused
      std::string stashed;           // reordered bytes waiting for the next send here
    };
    std::unique_ptr<withheld> kept; // made on first use (more())
    withheld& more() {
      if (!kept)
        kept = std::make_unique<withheld>();
      return *kept;
    }
    [[nodiscard]] bool holds_bytes() const { return kept && !kept->held.empty(); }
    [[nodiscard]] bool has_stashed() const { return kept && !kept->stashed.empty(); }
  };
  /// Addresses as the ends name them: numbered in the order first seen
  /// (never forgotten; a simulation has as many as it has nodes and
  /// relays). A deque: a name's reference stays valid as others come.
  std::uint32_t address_id(const std::string& address) {
    auto [it, fresh] = address_ids.try_emplace(address, static_cast<std::uint32_t>(address_names.size()));
    if (fresh)
      address_names.push_back(address);
    return it->second;
  }
  [[nodiscard]] const std::string& address_name(std::uint32_t id) const { return address_names[id]; }
  std::deque<std::string> address_names;
  std::unordered_map<std::string, std::uint32_t> address_ids;
  std::mutex mu;
  std::map<conn_id, end> conns;
  std::map<std::string, caf::actor> listeners;
  std::set<std::pair<std::string, std::string>> cut;
  std::set<std::string> down;                   // set_node_up(a, false)
  std::map<std::string, std::size_t> rank_of;   // set_address_order
  conn_id next_id = 1;
  std::uint64_t carried = 0;
  std::uint64_t trace = 1469598103934665603ull; // FNV-1a offset basis
  std::uint64_t send_count = 0;
  std::chrono::milliseconds jitter{0};
  jitter_kind jitter_model = jitter_kind::uniform;
  double jitter_shape = 1.5;
  double reset_probability = 0;
  std::uint64_t fault_state = 0; // splitmix64 state
  std::uint64_t reset_count = 0;
  double duplicate_probability = 0;
  double reorder_probability = 0;
  tamper_figures tamper{}; // open is computed on demand
  double packet_loss = 0, packet_duplicate = 0, packet_reorder = 0;
  struct packet_setting {
    double loss = 0, duplicate = 0, reorder = 0;
  };
  std::map<std::pair<std::string, std::string>, packet_setting> link_packets; // unordered pair
  /// Whether any send may draw packet faults (the network's or a link's).
  [[nodiscard]] bool packet_model_on() const {
    return packet_loss > 0 || packet_duplicate > 0 || packet_reorder > 0 || !link_packets.empty();
  }
  std::chrono::milliseconds min_rto{200};
  std::size_t mss = 1448;
  packet_figures packets{};
  /// The packet model's effect on one send of `size` bytes on the link
  /// local-remote: extra bytes on the wire, extra delay (ms), and whether
  /// TCP would give up (set_packet_faults).
  struct packet_outcome {
    std::size_t extra_bytes = 0;
    std::int64_t extra_ms = 0;
    bool give_up = false;
  };
  packet_outcome draw_packet_faults(const std::string& local, const std::string& remote,
                                    std::size_t size, conn_id from, std::int64_t now_ms);
  /// One direction's congestion window (set_congestion_window), kept only
  /// for connections on links with packet faults; dropped with the end.
  struct window_state {
    double cwnd = 0;     // segments; 0: no send yet
    double ssthresh = 0; // 0: no loss yet (slow start unbounded)
    std::int64_t last_send_ms = 0;
  };
  bool congestion_window = true;
  std::map<conn_id, window_state> windows;
  /// One send's extra delay in ms (one draw; two for log-normal), with
  /// the default distribution or the one of the link a-b.
  std::int64_t draw_jitter_ms();
  std::int64_t draw_jitter_ms(const std::string& a, const std::string& b);
  using samples_ptr = std::shared_ptr<const std::vector<std::int64_t>>;
  std::int64_t draw_jitter(double mean, jitter_kind kind, double shape,
                           const samples_ptr& samples = nullptr);
  samples_ptr jitter_samples; // set_jitter_samples
  struct jitter_setting {
    std::chrono::milliseconds bound{0};
    jitter_kind kind = jitter_kind::uniform;
    double shape = 1.5;
    samples_ptr samples; // empirical: the link's own
  };
  std::map<std::pair<std::string, std::string>, jitter_setting> link_jitter; // unordered pair
  /// The next fault draw in [0, 1).
  double draw() {
    std::uint64_t z = (fault_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
  }
  void mix(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      trace ^= (v >> (8 * i)) & 0xff;
      trace *= 1099511628211ull;
    }
  }
  void mix(const std::string& bytes) {
    for (unsigned char ch : bytes) {
      trace ^= ch;
      trace *= 1099511628211ull;
    }
  }
  std::chrono::milliseconds latency_;

  struct hold_rule {
    std::set<std::string> from, to; // to empty: every address
    std::int64_t until_ms = 0;
  };
  struct partition_rule {
    std::set<std::string> a, b;
  };
  std::vector<hold_rule> holds;
  std::map<std::uint64_t, partition_rule> partitions;
  std::uint64_t next_partition = 1;
  std::map<std::pair<std::string, std::string>, std::uint64_t> bandwidth; // unordered pair
  std::uint64_t default_bandwidth = 0;
  std::map<std::pair<std::string, std::string>, std::int64_t> link_free_us; // directed
  std::map<std::pair<std::string, std::string>, std::chrono::milliseconds> latencies; // unordered
  std::uint64_t held_count = 0;
  std::uint64_t queued_count = 0;

  [[nodiscard]] bool link_up(const std::string& a, const std::string& b) const {
    if (!down.empty() && (down.count(a) != 0 || down.count(b) != 0))
      return false;
    if (cut.count({std::min(a, b), std::max(a, b)}) != 0)
      return false;
    for (const auto& [id, p] : partitions)
      if ((p.a.count(a) && p.b.count(b)) || (p.a.count(b) && p.b.count(a)))
        return false;
    return true;
  }
  [[nodiscard]] std::chrono::milliseconds latency_of(const std::string& a, const std::string& b) const {
    if (latencies.empty())
      return latency_;
    auto it = latencies.find({std::min(a, b), std::max(a, b)});
    return it == latencies.end() ? latency_ : it->second;
  }
  /// The end of the latest hold on sends from `from` to `to` that is still
  /// running at `now_ms`, or `now_ms` when none is. Drops ended holds.
  std::int64_t held_until(const std::string& from, const std::string& to, std::int64_t now_ms) {
    std::int64_t until = now_ms;
    for (const auto& h : holds)
      if (h.until_ms > until && h.from.count(from) && (h.to.empty() || h.to.count(to)))
        until = h.until_ms;
    return until;
  }
  void drop_ended_holds(std::int64_t now_ms) {
    holds.erase(std::remove_if(holds.begin(), holds.end(),
                               [&](const hold_rule& h) { return h.until_ms <= now_ms; }),
                holds.end());
  }
  /// When a send of `size` bytes made at `now_ms` (after holds: `leave_ms`)
  /// has left the sender, in microseconds, given the link's bandwidth;
  /// updates the link's queue.
  std::int64_t leave_us(const std::string& from, const std::string& to, std::int64_t leave_ms,
                        std::size_t size) {
    std::uint64_t bw = default_bandwidth;
    if (!bandwidth.empty())
      if (auto it = bandwidth.find({std::min(from, to), std::max(from, to)}); it != bandwidth.end())
        bw = it->second;
    std::int64_t t = leave_ms * 1000;
    if (bw == 0)
      return t;
    auto& free = link_free_us[{from, to}];
    if (free > t) {
      t = free;
      ++queued_count;
    }
    t += static_cast<std::int64_t>((static_cast<double>(size) * 1e6) / static_cast<double>(bw));
    free = t;
    return t;
  }
  /// Open ends by their local address: closing a node's or a link's
  /// connections looks at those only, not at every connection ever made.
  std::map<std::string, std::set<conn_id>> open_by_address;
  void opened_end(conn_id id, const end& e) { open_by_address[address_name(e.local)].insert(id); }
  void close_end(conn_id id, end& e) {
    e.open = false;
    if (e.tampered_at_ms >= 0) {
      e.tampered_at_ms = -1;
      ++tamper.closed;
    }
    if (auto it = open_by_address.find(address_name(e.local)); it != open_by_address.end()) {
      it->second.erase(id);
      if (it->second.empty())
        open_by_address.erase(it);
    }
  }
  /// Drops a connection's two ends once both are closed and hold nothing,
  /// so the table holds open connections only (a closed id is unknown).
  void forget(conn_id id) {
    auto it = conns.find(id);
    if (it == conns.end() || it->second.open || it->second.holds_bytes())
      return;
    auto other = conns.find(it->second.peer_end);
    if (other != conns.end()) {
      if (other->second.open || other->second.holds_bytes())
        return;
      windows.erase(other->first);
      conns.erase(other);
    }
    windows.erase(it->first);
    conns.erase(it);
  }
  /// Closes every open connection matching pred, in id order; returns
  /// (owner, conn) to notify.
  template <class Pred>
  std::vector<std::pair<caf::actor, conn_id>> close_where(Pred pred) {
    std::vector<conn_id> ids;
    for (auto& [id, e] : conns)
      if (e.open && pred(e))
        ids.push_back(id);
    return close_ids(ids);
  }
  /// The same, looking only at the connections of these addresses.
  template <class Pred>
  std::vector<std::pair<caf::actor, conn_id>> close_where_at(std::initializer_list<std::string> at,
                                                             Pred pred) {
    std::vector<conn_id> ids;
    for (const auto& a : at)
      if (auto it = open_by_address.find(a); it != open_by_address.end())
        for (auto id : it->second) {
          auto& e = conns.at(id);
          if (pred(e))
            ids.push_back(id);
          auto other = conns.find(e.peer_end);
          if (other != conns.end() && other->second.open && pred(other->second))
            ids.push_back(other->first);
        }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return close_ids(ids);
  }
  std::vector<std::pair<caf::actor, conn_id>> close_ids(const std::vector<conn_id>& ids) {
    std::vector<std::pair<caf::actor, conn_id>> out;
    for (auto id : ids) {
      auto& e = conns.at(id);
      close_end(id, e);
      out.emplace_back(e.owner, id);
    }
    for (auto id : ids)
      forget(id);
    return out;
  }
};

} // namespace kith::actors
