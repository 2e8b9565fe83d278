#include "kith/actors/sim_network.hpp"

#include "kith/actors/node.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace kith::actors {

namespace {

void notify_closed(const std::vector<std::pair<caf::actor, conn_id>>& list, const std::string& why) {
  for (const auto& [owner, id] : list)
    caf::anon_send(owner, closed_atom::value, id, why);
}

transport_actor::behavior_type sim_transport(transport_actor::pointer self,
                                             std::shared_ptr<sim_network> net, std::string address) {
  return {
      [=](dial_atom, const std::string& to, const caf::actor& owner, std::uint64_t tag) {
        std::unique_lock lock(net->mu);
        auto it = net->listeners.find(to);
        if (it == net->listeners.end() || !net->link_up(address, to)) {
          lock.unlock();
          caf::anon_send(owner, dialfail_atom::value, tag, std::string("connection refused"));
          return;
        }
        const conn_id mine = net->next_id++;
        const conn_id theirs = net->next_id++;
        net->conns[mine] = sim_network::end{address, to, owner, theirs, true};
        net->conns[theirs] = sim_network::end{to, address, it->second, mine, true};
        auto listener = it->second;
        lock.unlock();
        caf::delayed_anon_send(owner, net->latency_, opened_atom::value, mine, to, true, tag);
        caf::delayed_anon_send(listener, net->latency_, opened_atom::value, theirs, address, false,
                           std::uint64_t{0});
      },
      [=](send_atom, conn_id c, const std::string& bytes) {
        std::unique_lock lock(net->mu);
        auto it = net->conns.find(c);
        if (it == net->conns.end() || !it->second.open)
          return;
        auto other = net->conns.find(it->second.peer_end);
        if (other == net->conns.end() || !other->second.open)
          return;
        const auto now = static_cast<std::int64_t>(clock_ms(self->clock().now()));
        net->carried += bytes.size();
        ++net->send_count;
        net->mix(static_cast<std::uint64_t>(now));
        net->mix(c);
        net->mix(bytes);
        if (net->reset_probability > 0 && net->draw() < net->reset_probability) {
          ++net->reset_count;
          it->second.open = false;
          other->second.open = false;
          std::vector<std::pair<caf::actor, conn_id>> list{{it->second.owner, it->first},
                                                           {other->second.owner, other->first}};
          lock.unlock();
          notify_closed(list, "connection reset by the network");
          return;
        }
        if (other->second.paused) {
          other->second.held.push_back(bytes); // as a kernel buffer would
          return;
        }
        // Latency plus jitter, never before the bytes sent earlier on this
        // connection (a stream keeps its order).
        std::int64_t delay = net->latency_.count();
        if (net->jitter.count() > 0)
          delay += static_cast<std::int64_t>(net->draw() * static_cast<double>(net->jitter.count()));
        const auto arrive = std::max(now + delay, other->second.deliver_after_ms);
        other->second.deliver_after_ms = arrive;
        auto owner = other->second.owner;
        auto id = other->first;
        lock.unlock();
        caf::delayed_anon_send(owner, std::chrono::milliseconds(arrive - now), bytes_atom::value, id,
                               bytes);
      },
      [=](pause_atom, conn_id c) {
        std::lock_guard lock(net->mu);
        if (auto it = net->conns.find(c); it != net->conns.end())
          it->second.paused = true;
      },
      [=](resume_atom, conn_id c) {
        std::unique_lock lock(net->mu);
        auto it = net->conns.find(c);
        if (it == net->conns.end() || !it->second.paused)
          return;
        it->second.paused = false;
        auto held = std::move(it->second.held);
        it->second.held.clear();
        auto owner = it->second.owner;
        lock.unlock();
        for (auto& b : held)
          caf::delayed_anon_send(owner, net->latency_, bytes_atom::value, c, std::move(b));
      },
      [=](close_atom, conn_id c, const std::string& reason) {
        std::unique_lock lock(net->mu);
        auto it = net->conns.find(c);
        if (it == net->conns.end() || !it->second.open)
          return;
        it->second.open = false;
        auto other = net->conns.find(it->second.peer_end);
        if (other == net->conns.end() || !other->second.open)
          return;
        other->second.open = false;
        auto owner = other->second.owner;
        auto id = other->first;
        lock.unlock();
        caf::delayed_anon_send(owner, net->latency_, closed_atom::value, id,
                           std::string("closed by the other end: ") + reason);
      },
  };
}

} // namespace

transport_actor sim_network::make_transport(caf::actor_system& sys, const std::string& address) {
  return sys.spawn(sim_transport, shared_from_this(), address);
}

void sim_network::listen(const std::string& address, caf::actor node) {
  std::lock_guard lock(mu);
  listeners[address] = std::move(node);
}

void sim_network::unlisten(const std::string& address) {
  std::vector<std::pair<caf::actor, conn_id>> list;
  {
    std::lock_guard lock(mu);
    listeners.erase(address);
    list = close_where([&](const end& e) { return e.local == address || e.remote == address; });
  }
  notify_closed(list, "node went away");
}

void sim_network::set_link(const std::string& a, const std::string& b, bool up) {
  std::vector<std::pair<caf::actor, conn_id>> list;
  {
    std::lock_guard lock(mu);
    auto key = std::make_pair(std::min(a, b), std::max(a, b));
    if (up) {
      cut.erase(key);
      return;
    }
    cut.insert(key);
    list = close_where([&](const end& e) {
      return (e.local == a && e.remote == b) || (e.local == b && e.remote == a);
    });
  }
  notify_closed(list, "link down");
}

std::uint64_t sim_network::bytes_carried() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  return carried;
}

void sim_network::set_faults(std::chrono::milliseconds j, double p, std::uint64_t seed) {
  std::lock_guard lock(mu);
  jitter = j;
  reset_probability = p;
  fault_state = seed;
}

std::uint64_t sim_network::resets() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  return reset_count;
}

std::uint64_t sim_network::trace_hash() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  return trace;
}

std::uint64_t sim_network::sends() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  return send_count;
}

} // namespace kith::actors
