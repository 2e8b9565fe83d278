#include "kith/actors/relay_host.hpp"

#include "kith/actors/node.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

namespace kith::actors {

namespace {

struct relay_host_state {
  std::unique_ptr<relay::relay_core> core;
  transport_actor transport;
  relay_host_options opts;
  static inline const char* name = "kith.relay_host";
};

using host_pointer = caf::stateful_actor<relay_host_state>*;

std::uint64_t now(host_pointer self) {
  auto& o = self->state.opts;
  return o.unix_ms ? o.unix_ms() : clock_ms(self->clock().now());
}

void run(host_pointer self, std::vector<relay::relay_action> actions) {
  for (auto& a : actions) {
    if (a.what == relay::relay_action::kind::send)
      self->send(self->state.transport, send_atom::value, a.conn, std::move(a.bytes));
    else
      self->send(self->state.transport, close_atom::value, a.conn, std::move(a.reason));
  }
}

void report_metrics(host_pointer self) {
  if (auto& m = self->state.opts.metrics)
    *m = self->state.core->metrics();
}

caf::behavior relay_host_impl(host_pointer self, transport_actor transport,
                              protocol::identity id, protocol::key_seed seed,
                              relay_host_options o) {
  auto& st = self->state;
  st.core = std::make_unique<relay::relay_core>(id, o.limits, seed);
  st.transport = std::move(transport);
  st.opts = std::move(o);
  self->send(self, tick_atom::value);
  return {
      [self](opened_atom, conn_id c, const std::string& addr, bool, std::uint64_t) {
        const auto& o = self->state.opts;
        const auto ip = o.ip_of ? o.ip_of(addr) : addr.substr(0, addr.rfind(':'));
        run(self, self->state.core->accepted(c, ip, now(self)));
      },
      [self](bytes_atom, conn_id c, const std::string& bytes) {
        run(self, self->state.core->received(c, bytes, now(self)));
        self->send(self->state.transport, consumed_atom::value, c, std::uint64_t{bytes.size()});
      },
      [](written_atom, conn_id, std::uint64_t) {},
      [self](closed_atom, conn_id c, const std::string&) {
        run(self, self->state.core->closed(c, now(self)));
      },
      [self](restart_atom, std::uint64_t spread_ms) {
        run(self, self->state.core->begin_restart(now(self), spread_ms));
      },
      [self](stop_atom, const std::string& reason) {
        run(self, self->state.core->shutdown(reason));
        report_metrics(self);
      },
      [self](tick_atom) {
        run(self, self->state.core->tick(now(self)));
        report_metrics(self);
        self->delayed_send(self, self->state.opts.tick, tick_atom::value);
      },
  };
}

} // namespace

caf::actor spawn_relay_host(caf::actor_system& sys, transport_actor transport,
                            const protocol::identity& self, const protocol::key_seed& seed,
                            relay_host_options o) {
  return sys.spawn(relay_host_impl, std::move(transport), self, seed, std::move(o));
}

} // namespace kith::actors
