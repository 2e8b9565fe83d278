#pragma once

// A relay as an actor: relay::relay_core fed by a transport actor. The
// simulator and the deterministic tests run relays this way over
// sim_network (virtual time, seeded); the kith-relay program runs the same
// core on Asio directly.

#include "kith/actors/interfaces.hpp"
#include "kith/relay/core.hpp"

#include <caf/actor_system.hpp>

#include <functional>
#include <memory>

namespace kith::actors {

struct relay_host_options {
  relay::relay_limits limits{};
  /// How often the core's timers are checked (virtual time in tests).
  std::chrono::milliseconds tick{100};
  /// Unix ms; empty: the actor clock.
  std::function<std::uint64_t()> unix_ms;
  /// The "IP" of a connection's address for the per-IP caps; empty: the
  /// address without its ":port". The simulator gives each node its own.
  std::function<std::string(const std::string&)> ip_of;
  /// When set, the host copies its core's metrics here at every tick (and
  /// once it has said goodbye on stop_atom): the simulator's view of the
  /// relay's traffic, at most one tick old.
  std::shared_ptr<relay::relay_metrics> metrics;
};

/// Graceful restart, as the kith-relay program does on SIGHUP:
/// (restart_atom, spread_ms) tells every client to come back within
/// spread_ms (relay_core::begin_restart; stop listening first), then
/// (stop_atom, reason) says goodbye and closes every connection
/// (relay_core::shutdown) before the actor is stopped.
using restart_atom = caf::atom_constant<caf::atom("restart")>;

/// Spawns a relay on `transport`; make it the listener of its address
/// (sim_network::listen) so inbound connections reach it. Stops on an exit
/// message.
[[nodiscard]] caf::actor spawn_relay_host(caf::actor_system& sys, transport_actor transport,
                                          const protocol::identity& self,
                                          const protocol::key_seed& seed,
                                          relay_host_options o = {});

} // namespace kith::actors
