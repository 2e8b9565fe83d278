#pragma once

// An in-memory network for the relay tests: one relay_core, any number of
// relay_clients and raw connections, and a pump that moves bytes between
// them in order until nothing is in flight. Time only moves when a test
// calls advance(). Every action the relay emits is recorded, so a test can
// compare two runs byte for byte.

#include "kith/protocol/channel.hpp"
#include "kith/relay/client.hpp"
#include "kith/relay/core.hpp"

#include <catch2/catch.hpp>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kith::relay::test {

inline protocol::key_seed seed_of(std::uint64_t n, std::uint8_t tag) {
  protocol::key_seed s{};
  for (int i = 0; i < 8; ++i)
    s[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  s[30] = 0x5e; // keeps these seeds apart from other test binaries'
  s[31] = tag;
  return s;
}

inline protocol::identity person(std::uint64_t n) {
  return protocol::identity::from_seed(seed_of(n, 0xa1));
}

inline const protocol::identity& relay_identity() {
  static const protocol::identity id = protocol::identity::from_seed(seed_of(1, 0xee));
  return id;
}

constexpr std::uint64_t t0 = 1'750'000'000'000; // unix ms, mid 2025

/// One end attached to the relay: a relay_client, or a raw transport (for
/// garbage and hand-made messages) when `client` is empty.
struct endpoint {
  conn_id conn = 0;
  std::optional<relay_client> client;
  std::vector<client_event> events;
  std::optional<std::string> client_error; // the client closed itself
  std::optional<std::string> relay_closed; // the relay closed the connection (reason)
  bool hung_up = false;                    // the client's side closed the transport
  std::int64_t clock_error_ms = 0;         // the client's clock minus the relay's
  std::string raw_in;                      // raw endpoints: bytes from the relay

  [[nodiscard]] bool open() const { return !client_error && !relay_closed && !hung_up; }

  /// Removes and returns the events of type T, in order.
  template <class T>
  std::vector<T> take() {
    std::vector<T> out;
    std::vector<client_event> rest;
    for (auto& e : events) {
      if (auto* x = std::get_if<T>(&e))
        out.push_back(std::move(*x));
      else
        rest.push_back(std::move(e));
    }
    events.swap(rest);
    return out;
  }
  /// The single event of type T (fails the test otherwise).
  template <class T>
  T one() {
    auto v = take<T>();
    INFO("events of the wanted type: " << v.size());
    REQUIRE(v.size() == 1);
    return std::move(v.front());
  }
};

class network {
public:
  explicit network(relay_limits limits = {}, protocol::key_seed relay_seed = seed_of(7, 0xee),
                   std::uint64_t client_seed_base = 1000)
      : relay(relay_identity(), limits, relay_seed), client_seed_base_(client_seed_base) {}

  relay_core relay;
  std::uint64_t now = t0;
  /// Every action the relay emitted, in order (for determinism checks).
  std::vector<relay_action> trace;

  /// The time on e's clock (the relay's is `now`).
  [[nodiscard]] std::uint64_t clock_of(const endpoint& e) const {
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(now) + e.clock_error_ms);
  }

  /// Connects a client for `who` from `ip` and runs the handshake.
  endpoint& connect(const protocol::identity& who, const std::string& ip = "10.0.0.1",
                    std::optional<protocol::public_key> pin = std::nullopt,
                    const protocol::resume_ticket* ticket = nullptr) {
    return connect_with_clock(who, ip, 0, pin, ticket);
  }
  /// The same for a client whose clock is off by clock_error_ms.
  endpoint& connect_with_clock(const protocol::identity& who, const std::string& ip,
                               std::int64_t clock_error_ms,
                               std::optional<protocol::public_key> pin = std::nullopt,
                               const protocol::resume_ticket* ticket = nullptr) {
    auto& e = attach(ip);
    e.clock_error_ms = clock_error_ms;
    e.client.emplace(who, pin ? pin : std::optional(relay.id()),
                     seed_of(client_seed_base_ + e.conn, 0xc1), clock_of(e));
    if (ticket)
      e.client->offer_ticket(*ticket);
    to_relay(e, e.client->start());
    pump();
    return e;
  }

  /// A transport connection with no client: the test writes raw bytes.
  endpoint& connect_raw(const std::string& ip = "10.9.9.9") {
    auto& e = attach(ip);
    pump();
    return e;
  }

  /// Sends what the client queued (after request calls) and pumps.
  void flush(endpoint& e) {
    if (e.client)
      to_relay(e, e.client->take_to_send());
    pump();
  }

  void send_raw(endpoint& e, std::string bytes) {
    to_relay(e, std::move(bytes));
    pump();
  }

  /// The transport under `e` closes from the client's side.
  void disconnect(endpoint& e) {
    hang_up(e);
    pump();
  }

  /// Moves time forward by `ms`, ticking relay and clients once at the end.
  void advance(std::uint64_t ms) {
    now += ms;
    apply(relay.tick(now));
    for (auto& [id, e] : endpoints_)
      if (e->client && e->open()) {
        auto o = e->client->tick(clock_of(*e));
        handle_client_output(*e, std::move(o));
      }
    pump();
  }

  /// relay.begin_restart(now, spread) with its messages delivered.
  void restart(std::uint64_t spread_ms) {
    apply(relay.begin_restart(now, spread_ms));
    pump();
  }

  /// relay.shutdown(reason) with its messages delivered.
  void shutdown(const std::string& reason) {
    apply(relay.shutdown(reason));
    pump();
  }

  /// advance() in steps of `step` ms up to `total` ms.
  void advance_by_steps(std::uint64_t total, std::uint64_t step) {
    for (std::uint64_t t = 0; t < total; t += step)
      advance(std::min(step, total - t));
  }

  std::size_t endpoints() const { return endpoints_.size(); }

private:
  struct packet {
    conn_id conn;
    bool to_relay;
    std::string bytes;
    std::optional<std::string> close; // from the relay: close, with this reason
  };

  endpoint& attach(const std::string& ip) {
    const conn_id id = next_conn_++;
    auto e = std::make_unique<endpoint>();
    e->conn = id;
    auto& ref = *e;
    endpoints_.emplace(id, std::move(e));
    apply(relay.accepted(id, ip, now));
    return ref;
  }

  void to_relay(endpoint& e, std::string bytes) {
    if (!bytes.empty())
      wire_.push_back(packet{e.conn, true, std::move(bytes), std::nullopt});
  }

  void apply(std::vector<relay_action> actions) {
    for (auto& a : actions) {
      trace.push_back(a);
      auto it = endpoints_.find(a.conn);
      if (it == endpoints_.end())
        continue;
      if (a.what == relay_action::kind::send)
        wire_.push_back(packet{a.conn, false, std::move(a.bytes), std::nullopt});
      else
        wire_.push_back(packet{a.conn, false, {}, a.reason});
    }
  }

  void handle_client_output(endpoint& e, client_output o) {
    for (auto& ev : o.events)
      e.events.push_back(std::move(ev));
    to_relay(e, std::move(o.to_send));
    if (o.error && !e.client_error) {
      e.client_error = *o.error;
      hang_up(e); // the owner of a closed client closes its socket
    }
  }

  void hang_up(endpoint& e) {
    if (e.relay_closed || e.hung_up)
      return;
    e.hung_up = true;
    apply(relay.closed(e.conn, now));
  }

  void pump() {
    while (!wire_.empty()) {
      packet p = std::move(wire_.front());
      wire_.pop_front();
      auto it = endpoints_.find(p.conn);
      if (it == endpoints_.end())
        continue;
      endpoint& e = *it->second;
      if (p.to_relay) {
        if (e.relay_closed || e.hung_up)
          continue; // the transport is gone
        apply(relay.received(p.conn, p.bytes, now));
      } else if (p.close) {
        // A close action, in order after the sends before it.
        if (!e.relay_closed)
          e.relay_closed = *p.close;
      } else if (e.client) {
        if (!e.open())
          continue;
        handle_client_output(e, e.client->receive(p.bytes, clock_of(e)));
      } else {
        e.raw_in += p.bytes;
      }
    }
    relay.check_invariant();
  }

  std::map<conn_id, std::unique_ptr<endpoint>> endpoints_;
  std::deque<packet> wire_;
  conn_id next_conn_ = 1;
  std::uint64_t client_seed_base_;
};

/// A hand-driven client: a bare secure channel to the relay on a raw
/// endpoint, for messages relay_client would never send.
class raw_client {
public:
  raw_client(network& net, const protocol::identity& who, const std::string& ip = "10.8.8.8")
      : net_(net), e_(net.connect_raw(ip)),
        ch_(who, protocol::channel::role::initiator, seed_of(e_.conn, 0xd1), net.now) {
    net_.send_raw(e_, ch_.start());
    auto o = ch_.receive(std::exchange(e_.raw_in, {}));
    REQUIRE(o.established);
    net_.send_raw(e_, o.to_send);
    read(); // welcome
  }

  void send(const relay_message& m) { net_.send_raw(e_, *ch_.seal(encode_relay_message(m))); }
  void send_frame(std::string_view plaintext) { net_.send_raw(e_, *ch_.seal(plaintext)); }

  /// Messages the relay sent since the last read.
  std::vector<relay_message> read() {
    auto o = ch_.receive(std::exchange(e_.raw_in, {}));
    std::vector<relay_message> out;
    for (auto& f : o.frames) {
      auto m = decode_relay_message(f);
      REQUIRE(m);
      out.push_back(std::move(*m));
    }
    return out;
  }

  endpoint& ep() { return e_; }

private:
  network& net_;
  endpoint& e_;
  protocol::channel ch_;
};

/// A packed ping whose union discriminant (member 11) is patched to 99: what
/// a request this build does not know looks like on the wire.
inline std::string unknown_request(std::uint64_t req) {
  auto bytes = encode_relay_message(ping_msg{req});
  // Packed: the discriminant's word is a tag byte 0x01 and the value 0x0b.
  auto pos = bytes.find(std::string("\x01\x0b", 2), 6);
  REQUIRE(pos != std::string::npos);
  bytes[pos + 1] = static_cast<char>(99);
  return bytes;
}

template <class T>
std::vector<T> only(const std::vector<relay_message>& ms) {
  std::vector<T> out;
  for (const auto& m : ms)
    if (auto* x = std::get_if<T>(&m))
      out.push_back(*x);
  return out;
}

} // namespace kith::relay::test
