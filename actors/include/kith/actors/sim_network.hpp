#pragma once

// A simulated network of transports for tests (and, later, the simulator):
// each node gets a transport actor; connections are in-process pairs with a
// fixed latency on CAF's clock (virtual under the testing scheduler). Links
// can be cut: a cut closes the link's connections and refuses dials, the
// way TCP would report it.

#include "kith/actors/interfaces.hpp"

#include <caf/actor_system.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
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
  /// Cuts or restores the link between two addresses.
  void set_link(const std::string& a, const std::string& b, bool up);
  /// Faults, drawn from `seed` (deterministic on the testing scheduler):
  /// each send is delayed by latency plus up to `jitter` (bytes of one
  /// connection still arrive in order, as on TCP), and with probability
  /// `reset_probability` the connection is reset instead (both ends see it
  /// close), which is how loss shows on a stream transport.
  void set_faults(std::chrono::milliseconds jitter, double reset_probability, std::uint64_t seed);
  /// Connections reset by the fault model so far.
  [[nodiscard]] std::uint64_t resets() const;

  /// Bytes carried so far (both directions, all links).
  [[nodiscard]] std::uint64_t bytes_carried() const;
  /// A hash of every send so far (virtual time, connection, bytes) in
  /// order: equal across two runs only if they did exactly the same.
  [[nodiscard]] std::uint64_t trace_hash() const;
  /// Sends carried so far.
  [[nodiscard]] std::uint64_t sends() const;

  // Used by the transport actors.
  struct end {
    std::string local;
    std::string remote;
    caf::actor owner;
    conn_id peer_end = 0;
    bool open = true;
    std::int64_t deliver_after_ms = 0; // arrival time of the last bytes sent here
    bool paused = false;            // the owner stopped reading
    std::vector<std::string> held;  // bytes that arrived while paused
  };
  std::mutex mu;
  std::map<conn_id, end> conns;
  std::map<std::string, caf::actor> listeners;
  std::set<std::pair<std::string, std::string>> cut;
  conn_id next_id = 1;
  std::uint64_t carried = 0;
  std::uint64_t trace = 1469598103934665603ull; // FNV-1a offset basis
  std::uint64_t send_count = 0;
  std::chrono::milliseconds jitter{0};
  double reset_probability = 0;
  std::uint64_t fault_state = 0; // splitmix64 state
  std::uint64_t reset_count = 0;
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

  [[nodiscard]] bool link_up(const std::string& a, const std::string& b) const {
    return cut.count({std::min(a, b), std::max(a, b)}) == 0;
  }
  /// Closes every open connection matching pred; returns (owner, conn, reason) to notify.
  template <class Pred>
  std::vector<std::pair<caf::actor, conn_id>> close_where(Pred pred) {
    std::vector<std::pair<caf::actor, conn_id>> out;
    for (auto& [id, e] : conns)
      if (e.open && pred(e)) {
        e.open = false;
        out.emplace_back(e.owner, id);
      }
    return out;
  }
};

} // namespace kith::actors
