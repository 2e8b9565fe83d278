#include "kith/actors/sim_network.hpp"

#include <cmath>
#include <tuple>

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
  // A close and a reset look the same to the other end here.
  auto close_conn = [=](conn_id c, const std::string& reason) {
        std::unique_lock lock(net->mu);
        auto it = net->conns.find(c);
        if (it == net->conns.end() || !it->second.open)
          return;
        if (it->second.tampered_at_ms >= 0)
          ++net->tamper.refused; // its owner closed it after tampered bytes
        net->close_end(it->first, it->second);
        auto other = net->conns.find(it->second.peer_end);
        if (other == net->conns.end() || !other->second.open) {
          net->forget(c);
          return;
        }
        net->close_end(other->first, other->second);
        auto owner = other->second.owner;
        auto id = other->first;
        const auto& local = net->address_name(it->second.local);
        const auto& remote = net->address_name(it->second.remote);
        auto delay = net->latency_of(local, remote);
        if (!net->holds.empty()) {
          // The close follows the bytes held before it.
          const auto now = static_cast<std::int64_t>(clock_ms(self->clock().now()));
          const auto until = net->held_until(local, remote, now);
          if (until > now)
            delay = std::chrono::milliseconds(
                std::max(until + delay.count(), other->second.deliver_after_ms) - now);
        }
        net->forget(c); // it and other are gone from here on
        lock.unlock();
        caf::delayed_anon_send(owner, delay, closed_atom::value, id,
                           std::string("closed by the other end: ") + reason);
      };
  return {
      [=](dial_atom, const std::string& to, const caf::actor& owner, std::uint64_t tag) {
        std::unique_lock lock(net->mu);
        auto it = net->listeners.find(to);
        if (it == net->listeners.end() || !net->link_up(address, to)) {
          lock.unlock();
          caf::anon_send(owner, dialfail_atom::value, tag, to + ": connection refused");
          return;
        }
        const conn_id mine = net->next_id++;
        const conn_id theirs = net->next_id++;
        const auto here = net->address_id(address);
        const auto there = net->address_id(to);
        auto& m = net->conns[mine];
        m.local = here;
        m.remote = there;
        m.owner = owner;
        m.peer_end = theirs;
        auto& t = net->conns[theirs];
        t.local = there;
        t.remote = here;
        t.owner = it->second;
        t.peer_end = mine;
        net->opened_end(mine, net->conns[mine]);
        net->opened_end(theirs, net->conns[theirs]);
        auto listener = it->second;
        // A hold either way delays the handshake until it ends.
        auto delay = net->latency_of(address, to);
        if (!net->holds.empty()) {
          const auto now = static_cast<std::int64_t>(clock_ms(self->clock().now()));
          const auto until = std::max(net->held_until(address, to, now), net->held_until(to, address, now));
          delay += std::chrono::milliseconds(until - now);
        }
        lock.unlock();
        caf::delayed_anon_send(owner, delay, opened_atom::value, mine, to, true, tag);
        caf::delayed_anon_send(listener, delay, opened_atom::value, theirs, address, false,
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
        sim_network::packet_outcome pk;
        if (net->packet_model_on())
          pk = net->draw_packet_faults(net->address_name(it->second.local),
                                       net->address_name(it->second.remote), bytes.size(), it->first,
                                       now);
        if ((net->reset_probability > 0 && net->draw() < net->reset_probability) || pk.give_up) {
          ++net->reset_count;
          net->close_end(it->first, it->second);
          net->close_end(other->first, other->second);
          std::vector<std::pair<caf::actor, conn_id>> list{{it->second.owner, it->first},
                                                           {other->second.owner, other->first}};
          net->forget(c);
          lock.unlock();
          notify_closed(list, "connection reset by the network");
          return;
        }
        if (other->second.paused) {
          other->second.more().held.push_back(bytes); // as a kernel buffer would
          return;
        }
        // Tampering above the stream (set_tampering): what arrives is one
        // run of bytes, as a stream would hand it over. No copy without it.
        auto& to = other->second;
        const bool tamper = to.has_stashed() || net->duplicate_probability > 0 ||
                            net->reorder_probability > 0;
        std::string payload = tamper ? bytes : std::string();
        bool tampered = false;
        if (to.has_stashed()) {
          payload += to.kept->stashed; // the kept-back send, after this one
          to.kept->stashed.clear();
          tampered = true;
          ++net->tamper.swapped;
        }
        if (net->duplicate_probability > 0 && net->draw() < net->duplicate_probability) {
          payload += bytes;
          tampered = true;
          ++net->tamper.duplicated;
        }
        if (net->reorder_probability > 0 && net->draw() < net->reorder_probability && !tampered &&
            !bytes.empty()) {
          to.more().stashed = std::move(payload); // arrives after the next send
          ++net->tamper.reordered;
          return;
        }
        // Leaves after any hold and behind the link's earlier bytes
        // (bandwidth), then takes latency plus jitter, never arriving before
        // the bytes sent earlier on this connection (a stream keeps its order).
        std::int64_t leave = now;
        const auto& local = net->address_name(it->second.local);
        const auto& remote = net->address_name(it->second.remote);
        if (!net->holds.empty()) {
          net->drop_ended_holds(now);
          leave = net->held_until(local, remote, now);
          if (leave > now)
            ++net->held_count;
        }
        // A duplicated send, or a kept-back one released with this send,
        // takes the link's bandwidth for every byte that goes out.
        // So do segments sent again or twice below the stream.
        const auto on_wire = (tamper ? payload.size() : bytes.size()) + pk.extra_bytes;
        if (net->default_bandwidth > 0 || !net->bandwidth.empty())
          leave = (net->leave_us(local, remote, leave, on_wire) + 999) / 1000;
        std::int64_t delay = net->latency_of(local, remote).count() + pk.extra_ms;
        if (net->jitter.count() > 0 || !net->link_jitter.empty() ||
            net->jitter_model == sim_network::jitter_kind::empirical)
          delay += net->draw_jitter_ms(local, remote);
        const auto arrive = std::max(leave + delay, other->second.deliver_after_ms);
        other->second.deliver_after_ms = arrive;
        if (tampered && to.tampered_at_ms < 0)
          to.tampered_at_ms = arrive;
        auto owner = other->second.owner;
        auto id = other->first;
        lock.unlock();
        // One copy of the bytes either way (a prvalue moves into the message).
        caf::delayed_anon_send(owner, std::chrono::milliseconds(arrive - now), bytes_atom::value, id,
                               tamper ? std::move(payload) : bytes);
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
        std::vector<std::string> held;
        if (it->second.kept)
          held.swap(it->second.kept->held);
        auto owner = it->second.owner;
        const auto delay = net->latency_of(net->address_name(it->second.local),
                                           net->address_name(it->second.remote));
        net->forget(c); // if it was closed meanwhile
        lock.unlock();
        for (auto& b : held)
          caf::delayed_anon_send(owner, delay, bytes_atom::value, c, std::move(b));
      },
      // Each simulated send arrives as one message; there is no read
      // buffer to hold back, so acknowledgements change nothing here.
      [](consumed_atom, conn_id, std::uint64_t) {},
      [=](close_atom, conn_id c, const std::string& reason) { close_conn(c, reason); },
      [=](close_atom, conn_id c, const std::string& reason, bool) { close_conn(c, reason); },
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
    const auto id = address_id(address);
    list = close_where_at({address}, [&](const end& e) { return e.local == id || e.remote == id; });
  }
  notify_closed(list, "node went away");
}

void sim_network::stop_accepting(const std::string& address) {
  std::lock_guard lock(mu);
  listeners.erase(address);
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
    const auto ia = address_id(a);
    const auto ib = address_id(b);
    list = close_where_at({a, b}, [&](const end& e) {
      return (e.local == ia && e.remote == ib) || (e.local == ib && e.remote == ia);
    });
  }
  notify_closed(list, "link down");
}

void sim_network::set_node_up(const std::string& a, bool up) {
  std::vector<std::pair<caf::actor, conn_id>> list;
  {
    std::lock_guard lock(mu);
    if (up) {
      down.erase(a);
      return;
    }
    down.insert(a);
    // In the order set_link over every other address would close them:
    // by the other end's rank, then by id.
    std::vector<std::tuple<std::size_t, conn_id>> ids;
    if (auto it = open_by_address.find(a); it != open_by_address.end())
      for (auto id : it->second) {
        const auto& e = conns.at(id);
        auto r = rank_of.find(address_name(e.remote));
        const auto rank = r != rank_of.end() ? r->second : rank_of.size();
        ids.emplace_back(rank, id);
        if (auto other = conns.find(e.peer_end); other != conns.end() && other->second.open)
          ids.emplace_back(rank, other->first);
      }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::vector<conn_id> order;
    for (const auto& [rank, id] : ids)
      order.push_back(id);
    list = close_ids(order);
  }
  notify_closed(list, "link down");
}

void sim_network::set_address_order(const std::vector<std::string>& addresses) {
  std::lock_guard lock(mu);
  rank_of.clear();
  for (std::size_t i = 0; i < addresses.size(); ++i)
    rank_of.emplace(addresses[i], i);
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

void sim_network::set_jitter_model(jitter_kind kind, double shape) {
  std::lock_guard lock(mu);
  jitter_model = kind;
  jitter_shape = shape;
}

namespace {

/// One extra delay in ms from uniform draws u (and u2, log-normal only).
std::int64_t jitter_from(double u, double u2, double mean, sim_network::jitter_kind kind, double shape) {
  double d = 0;
  switch (kind) {
    case sim_network::jitter_kind::uniform:
      return static_cast<std::int64_t>(u * mean);
    case sim_network::jitter_kind::exponential:
      d = -mean * std::log(1.0 - u);
      break;
    case sim_network::jitter_kind::pareto: {
      // Scale x_m so the mean is `mean`: mean = x_m * alpha / (alpha - 1).
      const double xm = mean * (shape - 1.0) / shape;
      d = xm / std::pow(1.0 - u, 1.0 / shape);
      break;
    }
    case sim_network::jitter_kind::lognormal: {
      // A standard normal from two uniforms (Box-Muller), then mu chosen
      // so the mean is `mean`: mean = exp(mu + sigma^2 / 2).
      if (mean <= 0)
        return 0;
      const double z = std::sqrt(-2.0 * std::log(1.0 - u)) * std::cos(2.0 * M_PI * u2);
      d = std::exp(std::log(mean) - shape * shape / 2.0 + shape * z);
      break;
    }
    case sim_network::jitter_kind::empirical:
      return 0; // drawn from the trace by the caller, never here
  }
  return static_cast<std::int64_t>(std::min(d, 60'000.0));
}

} // namespace

std::int64_t sim_network::draw_jitter_ms() {
  return draw_jitter(static_cast<double>(jitter.count()), jitter_model, jitter_shape, jitter_samples);
}

std::int64_t sim_network::draw_jitter(double mean, jitter_kind kind, double shape,
                                      const samples_ptr& samples) {
  if (kind == jitter_kind::empirical) {
    if (!samples || samples->empty())
      return 0;
    const double u = draw();
    const auto i = std::min(samples->size() - 1, static_cast<std::size_t>(u * static_cast<double>(samples->size())));
    return std::clamp<std::int64_t>((*samples)[i], 0, 60'000);
  }
  const double u = draw();
  const double u2 = kind == jitter_kind::lognormal ? draw() : 0.0;
  return jitter_from(u, u2, mean, kind, shape);
}

std::int64_t sim_network::draw_jitter_ms(const std::string& a, const std::string& b) {
  if (!link_jitter.empty())
    if (auto it = link_jitter.find({std::min(a, b), std::max(a, b)}); it != link_jitter.end()) {
      const auto& j = it->second;
      return draw_jitter(static_cast<double>(j.bound.count()), j.kind, j.shape, j.samples);
    }
  if (jitter_model == jitter_kind::empirical)
    return draw_jitter_ms();
  if (jitter.count() <= 0)
    return 0; // no draw: runs without jitter keep their stream
  return draw_jitter_ms();
}

void sim_network::set_link_jitter(const std::string& a, const std::string& b,
                                  std::chrono::milliseconds bound, jitter_kind kind, double shape,
                                  std::vector<std::int64_t> samples_ms) {
  std::lock_guard lock(mu);
  samples_ptr samples;
  if (!samples_ms.empty())
    samples = std::make_shared<const std::vector<std::int64_t>>(std::move(samples_ms));
  link_jitter[{std::min(a, b), std::max(a, b)}] = jitter_setting{bound, kind, shape, std::move(samples)};
}

void sim_network::set_jitter_samples(std::vector<std::int64_t> samples_ms) {
  std::lock_guard lock(mu);
  jitter_samples = std::make_shared<const std::vector<std::int64_t>>(std::move(samples_ms));
}

void sim_network::set_tampering(double duplicate, double reorder) {
  std::lock_guard lock(mu);
  duplicate_probability = duplicate;
  reorder_probability = reorder;
}

void sim_network::set_packet_faults(double loss, double duplicate, double reorder,
                                    std::chrono::milliseconds rto, std::size_t mss_bytes) {
  std::lock_guard lock(mu);
  packet_loss = loss;
  packet_duplicate = duplicate;
  packet_reorder = reorder;
  min_rto = rto;
  mss = std::max<std::size_t>(1, mss_bytes);
}

void sim_network::set_congestion_window(bool on) {
  std::lock_guard lock(mu);
  congestion_window = on;
}

void sim_network::set_link_packet_faults(const std::string& a, const std::string& b, double loss,
                                         double duplicate, double reorder) {
  std::lock_guard lock(mu);
  link_packets[{std::min(a, b), std::max(a, b)}] = packet_setting{loss, duplicate, reorder};
}

sim_network::packet_figures sim_network::packet_faults() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  return packets;
}

sim_network::packet_outcome sim_network::draw_packet_faults(const std::string& local,
                                                            const std::string& remote,
                                                            std::size_t size, conn_id from,
                                                            std::int64_t now_ms) {
  constexpr std::uint32_t give_up_after = 15; // retransmissions lost in a row (Linux's tcp_retries2)
  packet_outcome out;
  packet_setting p{packet_loss, packet_duplicate, packet_reorder};
  if (!link_packets.empty())
    if (auto it = link_packets.find({std::min(local, remote), std::max(local, remote)});
        it != link_packets.end())
      p = it->second;
  if (p.loss <= 0 && p.duplicate <= 0 && p.reorder <= 0)
    return out; // a clean link: no draws, no segments counted
  const std::size_t segments = std::max<std::size_t>(1, (size + mss - 1) / mss);
  packets.segments += segments;
  const std::int64_t one_way = latency_of(local, remote).count();
  const std::int64_t rtt = 2 * one_way;
  const std::int64_t rto = rtt + min_rto.count(); // Linux's, for a steady round trip
  window_state* win = nullptr;
  if (congestion_window) {
    constexpr double initial_window = 10;   // segments (RFC 6928, Linux)
    constexpr double max_window = 1 << 16; // segments: a bound, not a receive window
    win = &windows[from];
    // A new connection, or one idle longer than a timeout (Linux's
    // tcp_cwnd_restart: a window from before the idle spell, larger or
    // smaller, says nothing of the path now), starts at the initial window.
    if (win->cwnd == 0 || now_ms - win->last_send_ms > rto)
      win->cwnd = initial_window;
    win->last_send_ms = now_ms;
    // One window's worth per round trip; a send smaller than the window
    // leaves it as it is (it was not limited by it).
    std::size_t left = segments;
    std::uint64_t waits = 0;
    while (left > static_cast<std::size_t>(win->cwnd)) {
      const auto sent = static_cast<std::size_t>(win->cwnd);
      left -= sent;
      ++waits;
      if (win->ssthresh == 0)
        win->cwnd += static_cast<double>(sent); // slow start
      else if (win->cwnd < win->ssthresh)
        win->cwnd = std::min(win->cwnd + static_cast<double>(sent), win->ssthresh);
      else
        win->cwnd += static_cast<double>(sent) / win->cwnd; // congestion avoidance
      win->cwnd = std::min(win->cwnd, max_window);
    }
    if (waits > 0) {
      packets.window_waits += waits;
      packets.window_delay_ms += waits * static_cast<std::uint64_t>(rtt);
    }
    out.extra_ms += static_cast<std::int64_t>(waits) * rtt;
  }
  if (p.loss > 0) {
    const std::int64_t before = out.extra_ms;
    std::size_t lost = 0;
    for (std::size_t i = 0; i < segments; ++i)
      lost += draw() < p.loss ? 1 : 0;
    if (lost > 0) {
      packets.lost += lost;
      ++packets.delayed_sends;
      // The first loss: fast retransmit needs three segments behind it.
      // Timeout: Linux's for a steady round trip, the round trip plus its
      // floor for the variance term (tcp_rto_min).
      const bool fast = segments >= 4;
      out.extra_ms += fast ? rtt : rto;
      if (win) {
        win->ssthresh = std::max(2.0, win->cwnd / 2);
        win->cwnd = fast ? win->ssthresh : 1;
      }
      packets.timeouts += fast ? 0 : 1;
      out.extra_bytes += std::min(size, lost * mss);
      // Each retransmission may be lost too: a timeout, doubled each time.
      std::int64_t backoff = rto;
      for (std::uint32_t again = 1; draw() < p.loss; ++again) {
        ++packets.lost;
        ++packets.timeouts;
        if (win)
          win->cwnd = 1;
        if (again >= give_up_after) {
          ++packets.gave_up;
          out.give_up = true;
          return out;
        }
        out.extra_ms += backoff;
        out.extra_bytes += std::min(size, mss);
        backoff = std::min<std::int64_t>(2 * backoff, 120'000); // TCP_RTO_MAX
      }
      packets.loss_delay_ms += static_cast<std::uint64_t>(out.extra_ms - before);
    }
  }
  if (p.duplicate > 0)
    for (std::size_t i = 0; i < segments; ++i)
      if (draw() < p.duplicate) {
        ++packets.duplicated;
        out.extra_bytes += std::min(size, mss);
      }
  if (p.reorder > 0 && draw() < p.reorder) {
    ++packets.reordered;
    out.extra_ms += static_cast<std::int64_t>(draw() * static_cast<double>(one_way));
  }
  return out;
}

sim_network::tamper_figures sim_network::tampering(std::int64_t now_ms) const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  auto f = tamper;
  for (const auto& [id, e] : conns) {
    if (!e.open)
      continue;
    if (e.tampered_at_ms >= 0)
      ++(e.tampered_at_ms <= now_ms ? f.open : f.in_flight);
    if (e.has_stashed())
      ++f.withheld;
  }
  return f;
}

std::uint64_t sim_network::resets() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  return reset_count;
}

void sim_network::hold(std::set<std::string> from, std::set<std::string> to, std::int64_t until_ms) {
  std::lock_guard lock(mu);
  holds.push_back(hold_rule{std::move(from), std::move(to), until_ms});
}

std::uint64_t sim_network::partition(std::set<std::string> a, std::set<std::string> b) {
  std::vector<std::pair<caf::actor, conn_id>> list;
  std::uint64_t id = 0;
  {
    std::lock_guard lock(mu);
    id = next_partition++;
    list = close_where([&](const end& e) {
      const auto& l = address_name(e.local);
      const auto& r = address_name(e.remote);
      return (a.count(l) && b.count(r)) || (b.count(l) && a.count(r));
    });
    partitions[id] = partition_rule{std::move(a), std::move(b)};
  }
  notify_closed(list, "link down (partition)");
  return id;
}

void sim_network::heal(std::uint64_t partition_id) {
  std::lock_guard lock(mu);
  partitions.erase(partition_id);
}

void sim_network::set_bandwidth(const std::string& a, const std::string& b, std::uint64_t bytes_per_s) {
  std::lock_guard lock(mu);
  bandwidth[{std::min(a, b), std::max(a, b)}] = bytes_per_s;
}

void sim_network::set_default_bandwidth(std::uint64_t bytes_per_s) {
  std::lock_guard lock(mu);
  default_bandwidth = bytes_per_s;
}

void sim_network::set_latency(const std::string& a, const std::string& b, std::chrono::milliseconds l) {
  std::lock_guard lock(mu);
  latencies[{std::min(a, b), std::max(a, b)}] = l;
}

std::uint64_t sim_network::held_sends() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  return held_count;
}

std::uint64_t sim_network::queued_sends() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  return queued_count;
}

std::size_t sim_network::open_ends() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu));
  std::size_t n = 0;
  for (const auto& [address, ids] : open_by_address)
    n += ids.size();
  return n;
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
