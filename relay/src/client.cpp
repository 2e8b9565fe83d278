#include "kith/relay/client.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

namespace kith::relay {

namespace {

using protocol::public_key;

std::string_view view_of(const protocol::key_seed& s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

constexpr std::size_t default_circuit_frame = 64u << 10;

} // namespace

const char* request_kind_name(request_kind k) {
  static constexpr const char* names[] = {
      "announce", "lookup",       "join",           "leave",          "members",      "watch",
      "unwatch",  "open_circuit", "accept_circuit", "refuse_circuit", "close_circuit"};
  const auto i = static_cast<std::size_t>(k);
  return i < std::size(names) ? names[i] : "unknown";
}

struct relay_client::impl {
  struct pending {
    request_kind kind;
    public_key id;           // lookup: asked for; open_circuit: target
    circuit_id circuit = 0;  // accept/refuse/close
    std::uint64_t expiry_ms = 0; // announce
    std::uint64_t seq = 0;
    bool renewal = false;
    bool watch = false;      // lookup
  };

  struct announcement {
    std::vector<std::string> addresses;
    std::uint64_t ttl_ms = 0;
    std::uint64_t renew_at_ms = 0;
  };

  struct circuit_state {
    public_key peer;
    bool open = false;
  };

  impl(const protocol::identity& s, std::optional<public_key> relay, const protocol::key_seed& seed,
       std::uint64_t now, client_limits l)
      : self(s), pin(relay), lim(l),
        ch(s, protocol::channel::role::initiator,
           protocol::hash_of(view_of(seed), "kith-relay-client/ephemeral"), now, relay,
           l.channel),
        last_sent_ms(now) {}

  protocol::identity self;
  std::optional<public_key> pin;
  client_limits lim;
  protocol::channel ch;
  std::string outbox;
  bool sent_since_tick = false;
  std::uint64_t last_sent_ms;
  std::uint64_t next_req = 1;
  std::uint64_t last_seq = 0;
  std::unordered_map<std::uint64_t, pending> requests;
  /// Identities the relay said it watches for (lookups with watch).
  std::set<public_key> awaiting;
  std::unordered_map<circuit_id, circuit_state> circuits;
  std::optional<announcement> announcing;
  std::optional<relay_terms> relay_terms_;
  /// The relay's clock minus ours, from its welcome (0 until then, and
  /// with relays that do not send their time). Records are stamped and
  /// checked in the relay's time: a client whose clock is off by more
  /// than a record's TTL would otherwise announce records the relay takes
  /// as expired (behind) or take every record it looks up as expired
  /// (ahead).
  std::int64_t relay_offset_ms = 0;
  std::uint64_t relay_now(std::uint64_t now) const {
    const auto t = static_cast<std::int64_t>(std::min(now, std::uint64_t{1} << 52)) + relay_offset_ms;
    return t > 0 ? static_cast<std::uint64_t>(t) : 0;
  }
  bool closed = false;
  std::string close_reason;

  // --- sending -------------------------------------------------------------------------

  bool ready(request_result& r) const {
    if (closed)
      r.error = "the relay session is closed: " + close_reason;
    else if (ch.state() != protocol::channel_state::established)
      r.error = "not connected to the relay yet (the handshake is not complete)";
    return r.error.empty();
  }

  void send(const relay_message& m) {
    auto wire = ch.seal(encode_relay_message(m));
    if (!wire) { // over the channel's frame limit: the channel is closed now
      fail("could not send " + std::string(relay_message_name(m)) + ": " + ch.close_reason());
      return;
    }
    outbox += *wire;
    sent_since_tick = true;
  }

  void fail(std::string why) {
    if (closed)
      return;
    closed = true;
    close_reason = std::move(why);
  }

  std::uint64_t track(pending p) {
    const std::uint64_t req = next_req++;
    requests.emplace(req, p);
    return req;
  }

  bool topic_ok(std::string_view topic, request_result& r) const {
    const std::size_t max = lim.wire.max_topic_bytes;
    if (topic.empty() || topic.size() > max)
      r.error = "a topic is 1 to " + std::to_string(max) +
                " bytes (pass rendezvous_key(name) for a longer name)";
    return r.error.empty();
  }

  request_result announce(std::vector<std::string> addresses, std::uint64_t ttl, std::uint64_t now,
                          bool renewal) {
    request_result r;
    if (!ready(r))
      return r;
    if (relay_terms_) {
      if (relay_terms_->max_record_ttl_ms != 0)
        ttl = std::min(ttl, relay_terms_->max_record_ttl_ms);
      if (addresses.size() > relay_terms_->max_record_addresses) {
        r.error = std::to_string(addresses.size()) + " addresses; the relay takes at most " +
                  std::to_string(relay_terms_->max_record_addresses);
        return r;
      }
    }
    if (ttl == 0) {
      r.error = "a record needs a TTL above 0 ms";
      return r;
    }
    // Sequence numbers follow the clock so that a restarted client's
    // records still order after its earlier ones.
    const std::uint64_t seq = std::max(last_seq + 1, now);
    last_seq = seq;
    auto rec = make_record(self, addresses, relay_now(now) + ttl, seq);
    pending p{request_kind::announce, {}};
    p.expiry_ms = rec.expiry_ms;
    p.seq = seq;
    p.renewal = renewal;
    r.req = track(p);
    const std::uint64_t pct = std::min<std::uint32_t>(lim.renew_percent, 100);
    const std::uint64_t renew_after = ttl / 100 * pct + ttl % 100 * pct / 100; // no overflow
    announcing = announcement{std::move(addresses), ttl,
                              now + std::max<std::uint64_t>(1, renew_after)};
    send(announce_msg{r.req, std::move(rec)});
    return r;
  }

  request_result simple(request_kind k, std::string_view topic, relay_message m) {
    request_result r;
    if (!ready(r) || !topic_ok(topic, r))
      return r;
    r.req = track(pending{k, {}});
    std::visit(
        [&](auto& x) {
          if constexpr (detail::has_req<std::decay_t<decltype(x)>>::value)
            x.req = r.req;
        },
        m);
    send(m);
    return r;
  }

  // --- receiving -----------------------------------------------------------------------

  void on(welcome_msg& x, client_output& o, std::uint64_t now) {
    relay_terms_ = x.terms;
    // Half a round trip late at most: seconds, against the minutes a
    // record lives. Both times capped (2^52 ms is 140,000 years) so that
    // a wild value cannot overflow the difference.
    constexpr std::uint64_t cap = std::uint64_t{1} << 52;
    if (x.relay_time_ms != 0)
      relay_offset_ms = static_cast<std::int64_t>(std::min(x.relay_time_ms, cap)) -
                        static_cast<std::int64_t>(std::min(now, cap));
    o.events.push_back(welcomed{*ch.peer(), x.terms, std::move(x.observed_ip)});
  }

  /// The pending request `req`, removed; nullopt for unknown ids.
  std::optional<pending> answered(std::uint64_t req) {
    auto it = requests.find(req);
    if (it == requests.end())
      return std::nullopt;
    pending p = it->second;
    requests.erase(it);
    return p;
  }

  void on(ok_msg& x, client_output& o, std::uint64_t) {
    auto p = answered(x.req);
    if (!p)
      return;
    if (p->kind == request_kind::announce)
      o.events.push_back(announced{x.req, p->expiry_ms, p->seq, p->renewal});
    else
      o.events.push_back(acknowledged{x.req, p->kind});
  }

  void on(lookup_result_msg& x, client_output& o, std::uint64_t now) {
    auto p = answered(x.req);
    if (!p)
      return;
    if (p->kind != request_kind::lookup || x.id != p->id) {
      o.events.push_back(refused{x.req, p->kind, code::bad_record,
                                 "the relay answered with a lookup for another identity"});
      return;
    }
    if (x.record) {
      if (const char* wrong = record_fault(*x.record, p->id, relay_now(now))) {
        o.events.push_back(refused{x.req, p->kind, code::bad_record,
                                   std::string("the relay's record does not check out: ") + wrong});
        return;
      }
    }
    const bool watching = !x.record && x.watching && p->watch;
    if (watching)
      awaiting.insert(x.id);
    o.events.push_back(lookup_result{x.req, x.id, std::move(x.record), watching});
  }

  /// Why a record from the relay cannot be used for `id`, or nullptr.
  static const char* record_fault(const signed_record& r, const public_key& id, std::uint64_t now) {
    if (r.id != id)
      return "it is another identity's record";
    if (r.expiry_ms <= now)
      return "it has expired";
    if (!verify_record(r))
      return "its signature does not verify";
    return nullptr;
  }

  void on(present_msg& x, client_output& o, std::uint64_t now) {
    // Only for an identity this client waits for; anything else is
    // dropped, and so is a record that does not check out (the next
    // lookup asks again).
    auto it = awaiting.find(x.record.id);
    if (it == awaiting.end())
      return;
    awaiting.erase(it);
    if (record_fault(x.record, x.record.id, relay_now(now)) == nullptr)
      o.events.push_back(present{std::move(x.record)});
  }

  void on(members_page_msg& x, client_output& o, std::uint64_t) {
    if (!answered(x.req))
      return;
    o.events.push_back(
        members_page{x.req, std::move(x.topic), std::move(x.ids), std::move(x.next_cursor)});
  }

  void on(topic_event_msg& x, client_output& o, std::uint64_t) {
    o.events.push_back(topic_event{std::move(x.topic), x.id, x.joined});
  }

  void on(circuit_incoming_msg& x, client_output& o, std::uint64_t) {
    circuits[x.circuit] = circuit_state{x.from, false};
    o.events.push_back(circuit_incoming{x.circuit, x.from});
  }

  void on(circuit_opened_msg& x, client_output& o, std::uint64_t) {
    auto p = answered(x.req);
    if (!p || p->kind != request_kind::open_circuit)
      return;
    if (x.peer != p->id) {
      // The relay spliced us to someone else. The end-to-end channel
      // would catch it too; refuse it here and say so.
      send(close_circuit_msg{0, x.circuit, "wrong peer"});
      o.events.push_back(refused{x.req, p->kind, code::bad_request,
                                 "the relay opened the circuit to another identity"});
      return;
    }
    circuits[x.circuit] = circuit_state{x.peer, true};
    o.events.push_back(circuit_opened{x.req, x.circuit, x.peer});
  }

  void on(circuit_data_msg& x, client_output& o, std::uint64_t) {
    auto it = circuits.find(x.circuit);
    if (it == circuits.end() || !it->second.open)
      return; // closed here a moment ago: the relay's copy was in flight
    o.events.push_back(circuit_data{x.circuit, std::move(x.payload)});
  }

  void on(circuit_closed_msg& x, client_output& o, std::uint64_t) {
    if (circuits.erase(x.circuit) == 0)
      return;
    o.events.push_back(circuit_closed{x.circuit, x.code, std::move(x.reason)});
  }

  void on(refused_msg& x, client_output& o, std::uint64_t) {
    auto p = answered(x.req);
    if (!p)
      return;
    if (p->kind == request_kind::accept_circuit)
      circuits.erase(p->circuit);
    o.events.push_back(refused{x.req, p->kind, x.code, std::move(x.detail)});
  }

  void on(reconnect_msg& x, client_output& o, std::uint64_t) {
    o.events.push_back(reconnect{x.after_ms});
  }

  void on(goodbye_msg& x, client_output& o, std::uint64_t) {
    fail(std::string("the relay closed the session (") + code_name(x.code) + "): " + x.reason);
    o.events.push_back(goodbye{x.code, std::move(x.reason)});
  }

  void on(pong_msg&, client_output&, std::uint64_t) {}

  template <class T>
  void on(T&, client_output&, std::uint64_t) {
    // Client-to-relay messages and members this build does not know: a
    // relay does not send them; ignoring them keeps newer relays usable.
  }

  void finish(client_output& o) {
    o.to_send += outbox;
    outbox.clear();
    if (closed)
      o.error = close_reason;
  }

  client_output receive(std::string_view bytes, std::uint64_t now) {
    client_output o;
    if (closed) {
      o.error = close_reason;
      return o;
    }
    auto co = ch.receive(bytes);
    o.to_send = std::move(co.to_send);
    if (!o.to_send.empty())
      sent_since_tick = true;
    for (auto& frame : co.frames) {
      std::string why;
      auto m = decode_relay_message(frame, lim.wire, &why);
      if (!m) {
        fail("undecodable message from the relay: " + why);
        break;
      }
      std::visit([&](auto& x) { on(x, o, now); }, *m);
      if (closed)
        break;
    }
    if (co.error)
      fail("secure channel to the relay failed: " + *co.error);
    finish(o);
    return o;
  }

  client_output tick(std::uint64_t now) {
    client_output o;
    if (closed) {
      o.error = close_reason;
      return o;
    }
    if (sent_since_tick) {
      last_sent_ms = now;
      sent_since_tick = false;
    }
    auto co = ch.tick(now);
    if (co.error) {
      fail("relay handshake: " + *co.error);
      finish(o);
      return o;
    }
    if (ch.state() == protocol::channel_state::established) {
      if (announcing && now >= announcing->renew_at_ms) {
        auto r = announce(announcing->addresses, announcing->ttl_ms, now, true);
        if (!r)
          announcing.reset(); // cannot renew (e.g. the relay's terms changed): stop
      }
      std::uint64_t interval = lim.ping_interval_ms;
      if (interval == 0 && relay_terms_)
        interval = relay_terms_->idle_timeout_ms / 3;
      if (interval != 0 && now >= last_sent_ms + interval && !sent_since_tick)
        send(ping_msg{next_req++});
      if (sent_since_tick) {
        last_sent_ms = now;
        sent_since_tick = false;
      }
    }
    finish(o);
    return o;
  }
};

relay_client::relay_client(const protocol::identity& self,
                           std::optional<protocol::public_key> relay_id,
                           const protocol::key_seed& seed, std::uint64_t now_ms,
                           client_limits limits)
    : impl_(std::make_unique<impl>(self, relay_id, seed, now_ms, std::move(limits))) {}

relay_client::~relay_client() = default;
relay_client::relay_client(relay_client&&) noexcept = default;
relay_client& relay_client::operator=(relay_client&&) noexcept = default;

void relay_client::offer_ticket(const protocol::resume_ticket& t) { impl_->ch.offer_ticket(t); }

std::optional<protocol::resume_ticket> relay_client::take_ticket() {
  return impl_->ch.take_ticket();
}

bool relay_client::resumed() const { return impl_->ch.resumed(); }

std::string relay_client::start() {
  auto s = impl_->ch.start();
  if (!s.empty())
    impl_->sent_since_tick = true;
  return s;
}

client_output relay_client::receive(std::string_view bytes, std::uint64_t now_ms) {
  return impl_->receive(bytes, now_ms);
}

client_output relay_client::tick(std::uint64_t now_ms) { return impl_->tick(now_ms); }

std::string relay_client::take_to_send() {
  std::string s;
  s.swap(impl_->outbox);
  return s;
}

request_result relay_client::announce(std::vector<std::string> addresses, std::uint64_t ttl_ms,
                                      std::uint64_t now_ms) {
  return impl_->announce(std::move(addresses), ttl_ms, now_ms, false);
}

void relay_client::stop_announcing() { impl_->announcing.reset(); }

request_result relay_client::lookup(const protocol::public_key& id, bool watch) {
  request_result r;
  if (!impl_->ready(r))
    return r;
  impl::pending p{request_kind::lookup, id};
  p.watch = watch;
  r.req = impl_->track(p);
  impl_->send(lookup_msg{r.req, id, watch});
  return r;
}

request_result relay_client::join(std::string_view topic) {
  return impl_->simple(request_kind::join, topic, join_msg{0, std::string(topic)});
}

request_result relay_client::leave(std::string_view topic) {
  return impl_->simple(request_kind::leave, topic, leave_msg{0, std::string(topic)});
}

request_result relay_client::members(std::string_view topic, std::string_view cursor,
                                     std::uint32_t limit) {
  if (!cursor.empty() && cursor.size() != 32)
    return request_result{0, "a members cursor is empty or the 32-byte next_cursor of a page"};
  return impl_->simple(request_kind::members, topic,
                       members_msg{0, std::string(topic), std::string(cursor), limit});
}

request_result relay_client::watch(std::string_view topic) {
  return impl_->simple(request_kind::watch, topic, watch_msg{0, std::string(topic)});
}

request_result relay_client::unwatch(std::string_view topic) {
  return impl_->simple(request_kind::unwatch, topic, unwatch_msg{0, std::string(topic)});
}

request_result relay_client::open_circuit(const protocol::public_key& target) {
  request_result r;
  if (!impl_->ready(r))
    return r;
  r.req = impl_->track(impl::pending{request_kind::open_circuit, target});
  impl_->send(open_circuit_msg{r.req, target});
  return r;
}

request_result relay_client::accept_circuit(circuit_id c) {
  request_result r;
  if (!impl_->ready(r))
    return r;
  auto it = impl_->circuits.find(c);
  if (it == impl_->circuits.end() || it->second.open) {
    r.error = "no incoming circuit " + std::to_string(c) + " waiting for an answer";
    return r;
  }
  it->second.open = true;
  impl::pending p{request_kind::accept_circuit, it->second.peer};
  p.circuit = c;
  r.req = impl_->track(p);
  impl_->send(accept_circuit_msg{r.req, c});
  return r;
}

request_result relay_client::refuse_circuit(circuit_id c, std::string_view reason) {
  request_result r;
  if (!impl_->ready(r))
    return r;
  auto it = impl_->circuits.find(c);
  if (it == impl_->circuits.end() || it->second.open) {
    r.error = "no incoming circuit " + std::to_string(c) + " waiting for an answer";
    return r;
  }
  impl::pending p{request_kind::refuse_circuit, it->second.peer};
  p.circuit = c;
  impl_->circuits.erase(it);
  r.req = impl_->track(p);
  impl_->send(refuse_circuit_msg{r.req, c, std::string(reason)});
  return r;
}

request_result relay_client::circuit_send(circuit_id c, std::string_view bytes) {
  request_result r;
  if (!impl_->ready(r))
    return r;
  auto it = impl_->circuits.find(c);
  if (it == impl_->circuits.end() || !it->second.open) {
    r.error = "circuit " + std::to_string(c) + " is not open";
    return r;
  }
  std::size_t chunk = default_circuit_frame;
  if (impl_->relay_terms_ && impl_->relay_terms_->max_circuit_frame_bytes != 0)
    chunk = impl_->relay_terms_->max_circuit_frame_bytes;
  for (std::size_t at = 0; at < bytes.size() && !impl_->closed; at += chunk)
    impl_->send(circuit_data_msg{c, std::string(bytes.substr(at, chunk))});
  if (impl_->closed)
    r.error = impl_->close_reason;
  return r;
}

request_result relay_client::close_circuit(circuit_id c, std::string_view reason) {
  request_result r;
  if (!impl_->ready(r))
    return r;
  auto it = impl_->circuits.find(c);
  if (it == impl_->circuits.end()) {
    r.error = "no circuit " + std::to_string(c);
    return r;
  }
  impl::pending p{request_kind::close_circuit, it->second.peer};
  p.circuit = c;
  impl_->circuits.erase(it);
  r.req = impl_->track(p);
  impl_->send(close_circuit_msg{r.req, c, std::string(reason)});
  return r;
}

client_state relay_client::state() const {
  if (impl_->closed)
    return client_state::closed;
  switch (impl_->ch.state()) {
    case protocol::channel_state::established: return client_state::established;
    case protocol::channel_state::handshaking: return client_state::handshaking;
    default: return client_state::closed;
  }
}

std::optional<protocol::public_key> relay_client::relay_id() const {
  if (impl_->ch.peer())
    return impl_->ch.peer();
  return impl_->pin;
}

const std::optional<relay_terms>& relay_client::terms() const { return impl_->relay_terms_; }

const std::string& relay_client::close_reason() const {
  if (impl_->closed)
    return impl_->close_reason;
  return impl_->ch.close_reason();
}

} // namespace kith::relay
