#include "kith/relay/core.hpp"

#include "kith/protocol/tickets.hpp"

#include "kith/protocol/channel.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <exception>
#include <functional>
#include <iterator>
#include <queue>
#include <set>
#include <stdexcept>
#include <unordered_map>

namespace kith::relay {

namespace {

using protocol::public_key;
using actions = std::vector<relay_action>;

struct key_hash {
  std::size_t operator()(const public_key& k) const noexcept {
    std::size_t h = 0;
    std::memcpy(&h, k.bytes.data(), sizeof h); // ids are uniformly random already
    return h;
  }
};

std::string_view view_of(const protocol::key_seed& s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

std::string u64_bytes(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * (7 - i)));
  return s;
}

std::uint64_t u64_of(const protocol::hash256& h) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | h[static_cast<std::size_t>(i)];
  return v;
}

std::string short_id(const public_key& k) { return protocol::to_text(k).substr(0, 12); }

/// The client request kinds (message index) that draw on the token bucket.
/// circuit_data does not: its cost is bounded per circuit by bytes and time.
bool is_client_request(std::size_t index) {
  return index <= message_index<ping_msg>;
}

} // namespace

struct relay_core::impl {
  // --- state ------------------------------------------------------------------------

  enum class timer_kind : std::uint8_t { handshake, idle, record, circuit_accept, circuit_duration };

  struct timer {
    std::uint64_t at;
    std::uint64_t id;         // conn_id or circuit_id
    std::uint32_t generation; // the connection's incarnation (0 for circuits)
    timer_kind kind;
    friend bool operator>(const timer& a, const timer& b) {
      if (a.at != b.at)
        return a.at > b.at;
      if (a.kind != b.kind)
        return a.kind > b.kind;
      if (a.id != b.id)
        return a.id > b.id;
      return a.generation > b.generation;
    }
  };

  /// One transport connection. Kept small: an idle registered client costs
  /// this struct, its channel and its record.
  struct connection {
    connection(protocol::channel c, std::string address, std::uint32_t gen, std::uint64_t now,
               std::uint32_t burst_milli)
        : ch(std::move(c)), ip(std::move(address)), incarnation(gen), last_rx_ms(now),
          bucket_ms(now), tokens_milli(burst_milli) {}

    protocol::channel ch;
    std::string ip;
    std::optional<public_key> id; // set once registered
    std::uint32_t incarnation;
    std::uint64_t last_rx_ms;
    std::uint64_t bucket_ms;
    std::uint32_t tokens_milli;
    std::uint32_t strikes = 0;
    std::unique_ptr<signed_record> record; // most clients announce; none pay for two
    std::vector<std::string> topics;       // joined
    std::vector<std::string> watching;
    std::vector<public_key> awaiting; // identities watched for (lookup with watch)
    std::vector<circuit_id> circuits;
  };

  struct topic_state {
    std::set<public_key> members; // ordered: members pages walk it by cursor
    std::vector<conn_id> watchers;
  };

  struct circuit {
    conn_id a;          // the one who asked
    conn_id b;          // the target
    public_key a_id;
    public_key b_id;
    std::uint64_t a_req; // a's open_circuit request, answered on accept/refuse
    std::string a_ip;    // for the per-address circuit count
    std::string b_ip;
    std::uint64_t started_ms = 0;
    std::uint64_t bytes = 0;
    bool open = false;
  };

  impl(const protocol::identity& s, relay_limits l, const protocol::key_seed& seed)
      : self(s), lim(l), seed_(seed),
        tickets(l.resume_tickets, l.resume_ticket_lifetime_ms, ticket_hash_key(seed)) {
    // The relay's own frames must fit the channel: a full circuit payload,
    // a full members page or record, plus the message's framing.
    const std::size_t page = lim.max_page_size * 40 + 1024;
    const std::size_t record = lim.max_record_bytes + lim.max_record_addresses * 16 + 1024;
    const std::size_t need =
        std::max({lim.max_circuit_frame_bytes + 1024, page, record, lim.wire.max_reason_bytes * 2 + 1024});
    if (lim.max_frame_bytes < need)
      throw std::invalid_argument("relay_limits: max_frame_bytes (" +
                                  std::to_string(lim.max_frame_bytes) + ") must be at least " +
                                  std::to_string(need) + " for the other limits");
    if (lim.max_page_size == 0 || lim.request_burst == 0)
      throw std::invalid_argument("relay_limits: max_page_size and request_burst must be > 0");
    lim.wire.max_topic_bytes = std::min(lim.wire.max_topic_bytes, lim.max_topic_bytes);
    lim.wire.max_payload_bytes = std::max(lim.wire.max_payload_bytes, lim.max_circuit_frame_bytes);
    lim.wire.max_message_bytes = std::max(lim.wire.max_message_bytes, lim.max_frame_bytes);
    channel_lim.max_frame_bytes = lim.max_frame_bytes;
    channel_lim.max_buffered_bytes = lim.max_frame_bytes + 64;
    channel_lim.handshake_timeout_ms = lim.handshake_timeout_ms;
  }

  /// The ticket tables' hash key: secret (from the relay's seed) so that
  /// clients cannot choose identities that share a bucket.
  static protocol::ticket_cache::hash_key ticket_hash_key(const protocol::key_seed& seed) {
    const auto h = protocol::hash_of(
        "kith-relay/ticket-cache", std::string_view(reinterpret_cast<const char*>(seed.data()), seed.size()));
    protocol::ticket_cache::hash_key key{};
    std::copy_n(h.begin(), key.size(), key.begin());
    return key;
  }

  protocol::identity self;
  relay_limits lim;
  protocol::key_seed seed_;
  protocol::channel_limits channel_lim;
  protocol::ticket_cache tickets; // clients' resumption tickets
  std::uint64_t draws = 0;
  std::uint32_t next_incarnation = 1;
  circuit_id next_circuit = 1;
  bool restarting = false;
  std::uint64_t restart_epoch = 0;
  std::uint64_t restart_spread = 0;

  relay_metrics m;
  std::unordered_map<conn_id, connection> conns;
  std::unordered_map<public_key, conn_id, key_hash> by_id;
  /// Who waits for an identity's record: its lookups with watch found none.
  std::unordered_map<public_key, std::vector<conn_id>, key_hash> presence_watchers;
  std::unordered_map<std::string, std::uint32_t> per_ip; // registrations per address
  std::unordered_map<std::string, std::uint32_t> circuits_per_ip; // either end, per address
  std::unordered_map<std::string, topic_state> topics;
  std::unordered_map<circuit_id, circuit> circuits;
  std::priority_queue<timer, std::vector<timer>, std::greater<>> timers;

  /// Per-call output; moved out by the public functions.
  actions out;

  // --- randomness and time -------------------------------------------------------------

  /// BLAKE2b(seed, purpose, counter): the only source of randomness.
  protocol::key_seed draw(std::string_view purpose) {
    return protocol::hash_of(view_of(seed_), purpose, u64_bytes(draws++));
  }

  std::uint64_t restart_delay(const public_key& id) const {
    if (restart_spread == 0)
      return 0;
    const auto h =
        protocol::hash_of(view_of(seed_), "kith-relay/restart" + u64_bytes(restart_epoch), id.view());
    const std::uint64_t span = restart_spread == UINT64_MAX ? UINT64_MAX : restart_spread + 1;
    return u64_of(h) % span;
  }

  void arm(std::uint64_t at, timer_kind k, std::uint64_t id, std::uint32_t gen = 0) {
    timers.push(timer{at, id, gen, k});
  }

  // --- output helpers ------------------------------------------------------------------

  void send(conn_id id, connection& c, const relay_message& msg) {
    auto wire = c.ch.seal(encode_relay_message(msg));
    // The constructor sized max_frame_bytes for every message the relay
    // sends; a failure here is a bug, and the channel is closed already.
    assert(wire);
    if (wire)
      out.push_back(relay_action{relay_action::kind::send, id, std::move(*wire), {}});
  }

  void send_to(conn_id id, const relay_message& msg) {
    auto it = conns.find(id);
    if (it != conns.end())
      send(id, it->second, msg);
  }

  void refuse(conn_id id, connection& c, std::uint64_t req, code k, std::string detail) {
    ++m.rejections[static_cast<std::size_t>(k)];
    send(id, c, refused_msg{req, k, std::move(detail)});
  }

  // --- connection lifetime -----------------------------------------------------------

  /// Forgets `id` and everything hanging off it. With `goodbye` set and the
  /// channel up, the client is told why first. `close_action` is false
  /// when the transport already closed it.
  void drop(conn_id id, code why, const std::string& reason, bool goodbye, bool close_action) {
    auto it = conns.find(id);
    if (it == conns.end())
      return;
    connection& c = it->second;
    if (goodbye && c.ch.state() == protocol::channel_state::established)
      send(id, c, goodbye_msg{why, reason});
    ++m.closes[static_cast<std::size_t>(why)];

    // Circuits first: the other ends are told while this side's id is known.
    const auto circs = std::move(c.circuits);
    for (circuit_id cid : circs)
      end_circuit_because_gone(cid, id);
    for (const auto& t : c.topics)
      remove_member(t, id, c);
    for (const auto& t : c.watching)
      remove_watcher(t, id);
    m.watches -= c.watching.size();
    for (const auto& k : c.awaiting)
      remove_presence_watcher(k, id);
    m.presence_watches -= c.awaiting.size();
    if (c.record) {
      c.record.reset();
      --m.records;
    }
    if (c.id) {
      by_id.erase(*c.id);
      auto ip = per_ip.find(c.ip);
      if (ip != per_ip.end() && --ip->second == 0)
        per_ip.erase(ip);
      --m.registrations;
    }
    conns.erase(it);
    --m.connections;
    if (close_action)
      out.push_back(relay_action{relay_action::kind::close, id, {}, reason});
  }

  void established(conn_id id, connection& c, std::uint64_t now) {
    ++m.handshakes_completed;
    if (c.ch.resumed())
      ++m.handshakes_resumed;
    const public_key peer = *c.ch.peer();
    std::optional<conn_id> older;
    if (auto f = by_id.find(peer); f != by_id.end())
      older = f->second;
    const bool same_ip = older && conns.at(*older).ip == c.ip;

    std::uint32_t on_ip = 0;
    if (auto f = per_ip.find(c.ip); f != per_ip.end())
      on_ip = f->second;
    if (same_ip)
      --on_ip;
    if (on_ip >= lim.max_registrations_per_ip) {
      drop(id, code::limit_reached,
           "this address already has " + std::to_string(on_ip) +
               " registered identities (max_registrations_per_ip); disconnect one or use "
               "another relay",
           true, true);
      return;
    }
    const std::size_t total = by_id.size() - (older ? 1 : 0);
    if (total >= lim.max_registrations) {
      drop(id, code::limit_reached,
           "the relay is full (max_registrations " + std::to_string(lim.max_registrations) +
               "); try another relay or later",
           true, true);
      return;
    }
    if (older)
      drop(*older, code::replaced,
           "replaced by a newer connection of the same identity", true, true);

    if (auto t = c.ch.take_ticket())
      tickets.put(*t, now);
    c.id = peer;
    by_id[peer] = id;
    ++per_ip[c.ip];
    ++m.registrations;
    c.last_rx_ms = now;
    arm(now + lim.idle_timeout_ms, timer_kind::idle, id, c.incarnation);
    send(id, c, welcome_msg{terms(), c.ip, now});
    if (restarting)
      send(id, c, reconnect_msg{restart_delay(peer)});
  }

  relay_terms terms() const {
    relay_terms t;
    t.max_record_ttl_ms = lim.max_record_ttl_ms;
    t.max_record_addresses = static_cast<std::uint32_t>(lim.max_record_addresses);
    t.max_topics_per_connection = static_cast<std::uint32_t>(lim.max_topics_per_connection);
    t.max_page_size = lim.max_page_size;
    t.circuit_max_bytes = lim.circuit_max_bytes;
    t.circuit_max_duration_ms = lim.circuit_max_duration_ms;
    t.max_circuit_frame_bytes = static_cast<std::uint32_t>(lim.max_circuit_frame_bytes);
    t.idle_timeout_ms = lim.idle_timeout_ms;
    t.resumes = lim.resume_tickets > 0;
    t.request_rate_per_s = lim.request_rate_per_s;
    t.request_burst = lim.request_burst;
    return t;
  }

  // --- topics --------------------------------------------------------------------------

  void topic_event(const std::string& topic, const topic_state& ts, conn_id except,
                   const public_key& who, bool joined) {
    for (conn_id w : ts.watchers)
      if (w != except)
        send_to(w, topic_event_msg{topic, who, joined});
  }

  void forget_topic_if_empty(std::unordered_map<std::string, topic_state>::iterator it) {
    if (it->second.members.empty() && it->second.watchers.empty()) {
      topics.erase(it);
      --m.topics;
    }
  }

  void remove_member(const std::string& topic, conn_id id, const connection& c) {
    auto it = topics.find(topic);
    if (it == topics.end() || !c.id)
      return;
    if (it->second.members.erase(*c.id) != 0) {
      --m.memberships;
      topic_event(topic, it->second, id, *c.id, false);
    }
    forget_topic_if_empty(it);
  }

  void remove_watcher(const std::string& topic, conn_id id) {
    auto it = topics.find(topic);
    if (it == topics.end())
      return;
    auto& ws = it->second.watchers;
    ws.erase(std::remove(ws.begin(), ws.end(), id), ws.end());
    forget_topic_if_empty(it);
  }

  // --- presence --------------------------------------------------------------------

  void remove_presence_watcher(const public_key& k, conn_id id) {
    auto it = presence_watchers.find(k);
    if (it == presence_watchers.end())
      return;
    auto& ws = it->second;
    ws.erase(std::remove(ws.begin(), ws.end(), id), ws.end());
    if (ws.empty())
      presence_watchers.erase(it);
  }

  /// Waits for k's record on behalf of connection id; false when a cap
  /// says no (the lookup is answered without a watch).
  bool add_presence_watch(conn_id id, connection& c, const public_key& k) {
    if (std::find(c.awaiting.begin(), c.awaiting.end(), k) != c.awaiting.end())
      return true;
    if (c.awaiting.size() >= lim.max_presence_watches_per_connection ||
        m.presence_watches >= lim.max_presence_watches)
      return false;
    c.awaiting.push_back(k);
    presence_watchers[k].push_back(id);
    ++m.presence_watches;
    return true;
  }

  /// k announced `r`: every connection waiting for it is told once.
  void tell_presence(const public_key& k, const signed_record& r) {
    auto it = presence_watchers.find(k);
    if (it == presence_watchers.end())
      return;
    const auto waiting = std::move(it->second);
    presence_watchers.erase(it);
    for (conn_id w : waiting) {
      auto c = conns.find(w);
      if (c == conns.end())
        continue;
      auto& a = c->second.awaiting;
      a.erase(std::remove(a.begin(), a.end(), k), a.end());
      --m.presence_watches;
      ++m.presence_sent;
      send(w, c->second, present_msg{r});
    }
  }

  /// The topic's state, created if there is room; nullptr when max_topics
  /// is reached.
  topic_state* topic_for(const std::string& topic) {
    auto it = topics.find(topic);
    if (it != topics.end())
      return &it->second;
    if (topics.size() >= lim.max_topics)
      return nullptr;
    ++m.topics;
    return &topics[topic];
  }

  // --- circuits ------------------------------------------------------------------------

  static void unlink(connection& c, circuit_id cid) {
    auto& v = c.circuits;
    v.erase(std::remove(v.begin(), v.end(), cid), v.end());
  }

  /// Removes a circuit from the tables (no messages).
  circuit erase_circuit(std::unordered_map<circuit_id, circuit>::iterator it) {
    circuit k = it->second;
    const circuit_id cid = it->first;
    circuits.erase(it);
    for (const auto* ip : {&k.a_ip, &k.b_ip})
      if (auto f = circuits_per_ip.find(*ip); f != circuits_per_ip.end() && --f->second == 0)
        circuits_per_ip.erase(f);
    if (k.open)
      --m.circuits_open;
    else
      --m.circuits_pending;
    if (auto a = conns.find(k.a); a != conns.end())
      unlink(a->second, cid);
    if (auto b = conns.find(k.b); b != conns.end())
      unlink(b->second, cid);
    return k;
  }

  /// Ends a circuit and tells both ends why: a pending one's asker gets
  /// refused (its open_circuit is answered), everyone else circuit_closed.
  void end_circuit(circuit_id cid, code why, const std::string& reason, bool tell_a = true,
                   bool tell_b = true) {
    auto it = circuits.find(cid);
    if (it == circuits.end())
      return;
    ++m.circuit_ends[static_cast<std::size_t>(why)];
    const circuit k = erase_circuit(it);
    if (tell_a) {
      if (k.open) {
        send_to(k.a, circuit_closed_msg{cid, why, reason});
      } else if (auto a = conns.find(k.a); a != conns.end()) {
        refuse(k.a, a->second, k.a_req, why, reason);
      }
    }
    if (tell_b)
      send_to(k.b, circuit_closed_msg{cid, why, reason});
  }

  void end_circuit_because_gone(circuit_id cid, conn_id gone) {
    auto it = circuits.find(cid);
    if (it == circuits.end())
      return;
    const bool a_gone = it->second.a == gone;
    if (!it->second.open && !a_gone)
      end_circuit(cid, code::not_connected,
                  "the target disconnected before answering the circuit", true, false);
    else
      end_circuit(cid, code::peer_gone, "the other end of the circuit disconnected", !a_gone,
                  a_gone);
  }

  // --- requests ------------------------------------------------------------------------

  /// Token bucket: true if the request may be served now.
  bool take_token(connection& c, std::uint64_t now) {
    // tokens_milli is 32 bits: a burst above ~4.29 million is clamped, not wrapped.
    const std::uint64_t cap =
        std::min<std::uint64_t>(std::uint64_t{lim.request_burst} * 1000, 0xffffffffu);
    if (now > c.bucket_ms) {
      // Clamped to the time a refill from empty takes: no overflow below.
      const std::uint64_t fill_ms = lim.request_rate_per_s == 0 ? 0 : cap / lim.request_rate_per_s + 1;
      const std::uint64_t elapsed = std::min<std::uint64_t>(now - c.bucket_ms, fill_ms);
      c.tokens_milli = static_cast<std::uint32_t>(
          std::min<std::uint64_t>(cap, c.tokens_milli + elapsed * lim.request_rate_per_s));
      c.bucket_ms = now;
    }
    if (c.tokens_milli < 1000)
      return false;
    c.tokens_milli -= 1000;
    return true;
  }

  /// One decoded frame from an established, registered connection.
  /// Returns false when the connection was dropped.
  bool handle(conn_id id, connection& c, relay_message msg, std::uint64_t now) {
    ++m.requests[msg.index()];
    const std::uint64_t req = request_id_of(msg);
    if (is_client_request(msg.index())) {
      if (!take_token(c, now)) {
        refuse(id, c, req, code::rate_limited,
               "over " + std::to_string(lim.request_rate_per_s) + " requests/s (burst " +
                   std::to_string(lim.request_burst) + "); slow down");
        if (++c.strikes >= lim.max_rate_strikes) {
          drop(id, code::abuse,
               "kept sending requests after " + std::to_string(c.strikes) +
                   " rate_limited refusals",
               true, true);
          return false;
        }
        return true;
      }
      if (c.strikes > 0)
        --c.strikes;
    }
    std::visit([&](auto& x) { on(id, c, x, now); }, msg);
    return true;
  }

  void on(conn_id id, connection& c, announce_msg& x, std::uint64_t now) {
    signed_record& r = x.record;
    if (r.id != *c.id) {
      refuse(id, c, x.req, code::forbidden,
             "the record is for " + short_id(r.id) + "… but this connection is " +
                 short_id(*c.id) + "…: a client may only announce itself");
      return;
    }
    if (r.addresses.size() > lim.max_record_addresses) {
      refuse(id, c, x.req, code::bad_record,
             std::to_string(r.addresses.size()) + " addresses, over max_record_addresses (" +
                 std::to_string(lim.max_record_addresses) + ")");
      return;
    }
    std::size_t total = 0;
    for (const auto& a : r.addresses) {
      if (a.size() > lim.max_address_bytes) {
        refuse(id, c, x.req, code::bad_record,
               "an address of " + std::to_string(a.size()) + " bytes, over max_address_bytes (" +
                   std::to_string(lim.max_address_bytes) + ")");
        return;
      }
      total += a.size();
    }
    if (total > lim.max_record_bytes) {
      refuse(id, c, x.req, code::bad_record,
             "addresses of " + std::to_string(total) + " bytes together, over max_record_bytes (" +
                 std::to_string(lim.max_record_bytes) + ")");
      return;
    }
    if (r.expiry_ms <= now) {
      refuse(id, c, x.req, code::bad_record,
             "the record expired already (check the clock; relay time is " + std::to_string(now) +
                 " ms)");
      return;
    }
    if (r.expiry_ms - now > lim.max_record_ttl_ms + lim.max_clock_skew_ms) {
      refuse(id, c, x.req, code::bad_record,
             "the record expires in " + std::to_string(r.expiry_ms - now) +
                 " ms, over max_record_ttl_ms (" + std::to_string(lim.max_record_ttl_ms) +
                 "); announce a shorter TTL and renew");
      return;
    }
    if (c.record) {
      if (*c.record == r) { // a retransmission: nothing to verify again
        send(id, c, ok_msg{x.req});
        return;
      }
      if (r.seq <= c.record->seq) {
        refuse(id, c, x.req, code::bad_record,
               "sequence number " + std::to_string(r.seq) + " is not above the current " +
                   std::to_string(c.record->seq));
        return;
      }
    }
    if (!verify_record(r)) {
      refuse(id, c, x.req, code::bad_record, "the record's signature does not verify");
      return;
    }
    if (!c.record) {
      c.record = std::make_unique<signed_record>();
      ++m.records;
    }
    *c.record = std::move(r);
    arm(c.record->expiry_ms, timer_kind::record, id, c.incarnation);
    send(id, c, ok_msg{x.req});
    tell_presence(*c.id, *c.record);
  }

  void on(conn_id id, connection& c, lookup_msg& x, std::uint64_t now) {
    lookup_result_msg res{x.req, x.id, std::nullopt};
    if (auto f = by_id.find(x.id); f != by_id.end()) {
      const connection& t = conns.at(f->second);
      if (t.record && t.record->expiry_ms > now)
        res.record = *t.record;
    }
    if (!res.record && x.watch)
      res.watching = add_presence_watch(id, c, x.id);
    send(id, c, res);
  }

  bool topic_ok(conn_id id, connection& c, std::uint64_t req, const std::string& topic) {
    if (topic.empty() || topic.size() > lim.max_topic_bytes) {
      refuse(id, c, req, code::bad_request,
             "a topic is 1 to " + std::to_string(lim.max_topic_bytes) + " bytes");
      return false;
    }
    return true;
  }

  void on(conn_id id, connection& c, join_msg& x, std::uint64_t) {
    if (!topic_ok(id, c, x.req, x.topic))
      return;
    if (std::find(c.topics.begin(), c.topics.end(), x.topic) != c.topics.end()) {
      send(id, c, ok_msg{x.req});
      return;
    }
    if (c.topics.size() >= lim.max_topics_per_connection) {
      refuse(id, c, x.req, code::limit_reached,
             "already in " + std::to_string(c.topics.size()) +
                 " topics (max_topics_per_connection)");
      return;
    }
    auto existing = topics.find(x.topic);
    if (existing != topics.end() && existing->second.members.size() >= lim.max_members_per_topic) {
      refuse(id, c, x.req, code::limit_reached,
             "the topic has " + std::to_string(existing->second.members.size()) +
                 " members (max_members_per_topic)");
      return;
    }
    topic_state* ts = topic_for(x.topic);
    if (ts == nullptr) {
      refuse(id, c, x.req, code::limit_reached, "the relay holds max_topics topics; try later");
      return;
    }
    ts->members.insert(*c.id);
    ++m.memberships;
    c.topics.push_back(x.topic);
    topic_event(x.topic, *ts, id, *c.id, true);
    send(id, c, ok_msg{x.req});
  }

  void on(conn_id id, connection& c, leave_msg& x, std::uint64_t) {
    auto pos = std::find(c.topics.begin(), c.topics.end(), x.topic);
    if (pos != c.topics.end()) {
      c.topics.erase(pos);
      remove_member(x.topic, id, c);
    }
    send(id, c, ok_msg{x.req});
  }

  void on(conn_id id, connection& c, members_msg& x, std::uint64_t) {
    members_page_msg page;
    page.req = x.req;
    page.topic = x.topic;
    const std::uint32_t n =
        x.limit == 0 || x.limit > lim.max_page_size ? lim.max_page_size : x.limit;
    if (auto it = topics.find(x.topic); it != topics.end()) {
      const auto& ms = it->second.members;
      auto pos = ms.begin();
      if (!x.cursor.empty()) {
        public_key after;
        std::memcpy(after.bytes.data(), x.cursor.data(), after.bytes.size());
        pos = ms.upper_bound(after);
      }
      for (; pos != ms.end() && page.ids.size() < n; ++pos)
        page.ids.push_back(*pos);
      if (pos != ms.end())
        page.next_cursor = std::string(page.ids.back().view());
    }
    send(id, c, page);
  }

  void on(conn_id id, connection& c, watch_msg& x, std::uint64_t) {
    if (!topic_ok(id, c, x.req, x.topic))
      return;
    if (std::find(c.watching.begin(), c.watching.end(), x.topic) != c.watching.end()) {
      send(id, c, ok_msg{x.req});
      return;
    }
    if (c.watching.size() >= lim.max_watches_per_connection) {
      refuse(id, c, x.req, code::limit_reached,
             "already watching " + std::to_string(c.watching.size()) +
                 " topics (max_watches_per_connection)");
      return;
    }
    topic_state* ts = topic_for(x.topic);
    if (ts == nullptr) {
      refuse(id, c, x.req, code::limit_reached, "the relay holds max_topics topics; try later");
      return;
    }
    ts->watchers.push_back(id);
    c.watching.push_back(x.topic);
    ++m.watches;
    send(id, c, ok_msg{x.req});
  }

  void on(conn_id id, connection& c, unwatch_msg& x, std::uint64_t) {
    auto pos = std::find(c.watching.begin(), c.watching.end(), x.topic);
    if (pos != c.watching.end()) {
      c.watching.erase(pos);
      --m.watches;
      remove_watcher(x.topic, id);
    }
    send(id, c, ok_msg{x.req});
  }

  void on(conn_id id, connection& c, open_circuit_msg& x, std::uint64_t now) {
    if (x.target == *c.id) {
      refuse(id, c, x.req, code::bad_request, "cannot open a circuit to yourself");
      return;
    }
    auto t = by_id.find(x.target);
    if (t == by_id.end()) {
      refuse(id, c, x.req, code::not_connected,
             short_id(x.target) + "… is not connected to this relay");
      return;
    }
    connection& b = conns.at(t->second);
    if (circuits.size() >= lim.max_circuits) {
      refuse(id, c, x.req, code::limit_reached,
             "the relay carries max_circuits (" + std::to_string(lim.max_circuits) +
                 ") circuits; try later or connect directly");
      return;
    }
    if (c.circuits.size() >= lim.max_circuits_per_identity) {
      refuse(id, c, x.req, code::limit_reached,
             "you have " + std::to_string(c.circuits.size()) +
                 " circuits (max_circuits_per_identity); close one first");
      return;
    }
    if (b.circuits.size() >= lim.max_circuits_per_identity) {
      refuse(id, c, x.req, code::limit_reached,
             "the target has max_circuits_per_identity (" +
                 std::to_string(lim.max_circuits_per_identity) + ") circuits");
      return;
    }
    for (const auto* ip : {&c.ip, &b.ip}) {
      auto f = circuits_per_ip.find(*ip);
      if (f != circuits_per_ip.end() && f->second >= lim.max_circuits_per_ip) {
        refuse(id, c, x.req, code::limit_reached,
               std::string(ip == &c.ip ? "your address" : "the target's address") + " has max_circuits_per_ip (" +
                   std::to_string(lim.max_circuits_per_ip) + ") circuits");
        return;
      }
    }
    const circuit_id cid = next_circuit++;
    circuits.emplace(cid, circuit{id, t->second, *c.id, x.target, x.req, c.ip, b.ip});
    ++circuits_per_ip[c.ip];
    ++circuits_per_ip[b.ip];
    c.circuits.push_back(cid);
    b.circuits.push_back(cid);
    ++m.circuits_pending;
    arm(now + lim.circuit_accept_timeout_ms, timer_kind::circuit_accept, cid);
    send(t->second, b, circuit_incoming_msg{cid, *c.id});
  }

  /// The pending circuit `cid` whose target is `id`, or end().
  std::unordered_map<circuit_id, circuit>::iterator pending_for(circuit_id cid, conn_id id) {
    auto it = circuits.find(cid);
    if (it == circuits.end() || it->second.open || it->second.b != id)
      return circuits.end();
    return it;
  }

  void on(conn_id id, connection& c, accept_circuit_msg& x, std::uint64_t now) {
    auto it = pending_for(x.circuit, id);
    if (it == circuits.end()) {
      refuse(id, c, x.req, code::not_found,
             "no pending circuit " + std::to_string(x.circuit) + " for you (it may have ended)");
      return;
    }
    circuit& k = it->second;
    k.open = true;
    k.started_ms = now;
    --m.circuits_pending;
    ++m.circuits_open;
    ++m.circuits_opened;
    arm(now + lim.circuit_max_duration_ms, timer_kind::circuit_duration, x.circuit);
    send_to(k.a, circuit_opened_msg{k.a_req, x.circuit, k.b_id});
    send(id, c, ok_msg{x.req});
  }

  void on(conn_id id, connection& c, refuse_circuit_msg& x, std::uint64_t) {
    if (pending_for(x.circuit, id) == circuits.end()) {
      refuse(id, c, x.req, code::not_found,
             "no pending circuit " + std::to_string(x.circuit) + " for you (it may have ended)");
      return;
    }
    end_circuit(x.circuit, code::peer_refused,
                "the target refused the circuit" + (x.reason.empty() ? "" : ": " + x.reason), true,
                false);
    send(id, c, ok_msg{x.req});
  }

  void on(conn_id id, connection& c, close_circuit_msg& x, std::uint64_t) {
    auto it = circuits.find(x.circuit);
    if (it == circuits.end() || (it->second.a != id && it->second.b != id)) {
      refuse(id, c, x.req, code::not_found,
             "no circuit " + std::to_string(x.circuit) + " of yours (it may have ended)");
      return;
    }
    const bool is_a = it->second.a == id;
    if (!it->second.open && !is_a) // the target closing a pending circuit refuses it
      end_circuit(x.circuit, code::peer_refused,
                  "the target refused the circuit" + (x.reason.empty() ? "" : ": " + x.reason),
                  true, false);
    else
      end_circuit(x.circuit, code::closed_by_peer, x.reason, !is_a, is_a);
    send(id, c, ok_msg{x.req});
  }

  void on(conn_id id, connection& c, ping_msg& x, std::uint64_t) { send(id, c, pong_msg{x.req}); }

  void on(conn_id id, connection& c, circuit_data_msg& x, std::uint64_t) {
    auto it = circuits.find(x.circuit);
    if (it == circuits.end() || !it->second.open || (it->second.a != id && it->second.b != id)) {
      send(id, c, circuit_closed_msg{x.circuit, code::not_found,
                                     "no open circuit " + std::to_string(x.circuit) + " of yours"});
      return;
    }
    circuit& k = it->second;
    if (x.payload.size() > lim.max_circuit_frame_bytes) {
      end_circuit(x.circuit, code::bad_request,
                  "circuit_data of " + std::to_string(x.payload.size()) +
                      " bytes, over max_circuit_frame_bytes (" +
                      std::to_string(lim.max_circuit_frame_bytes) + ")");
      return;
    }
    if (x.payload.size() > lim.circuit_max_bytes - k.bytes) {
      end_circuit(x.circuit, code::byte_limit,
                  "the circuit carried its limit of " + std::to_string(lim.circuit_max_bytes) +
                      " bytes (circuit_max_bytes); open a new circuit or connect directly");
      return;
    }
    k.bytes += x.payload.size();
    m.relayed_bytes += x.payload.size();
    const conn_id other = k.a == id ? k.b : k.a;
    send_to(other, x);
  }

  template <class T>
  void on(conn_id id, connection& c, T& x, std::uint64_t) {
    // Relay-to-client messages and members this build does not know.
    if constexpr (std::is_same_v<T, unknown_msg>)
      refuse(id, c, x.req, code::unsupported,
             "this relay does not know message " + std::to_string(x.which) +
                 " (relay protocol version " + std::to_string(relay_protocol_version) + ")");
    else
      refuse(id, c, request_id_of(x), code::bad_request,
             std::string(relay_message_name(relay_message(x))) +
                 " is sent by relays, not to them");
  }

  // --- entry points --------------------------------------------------------------------

  void receive(conn_id id, std::string_view bytes, std::uint64_t now) {
    auto it = conns.find(id);
    if (it == conns.end())
      return;
    connection& c = it->second;
    c.last_rx_ms = now;
    const bool was_handshaking = c.ch.state() == protocol::channel_state::handshaking;
    auto o = c.ch.receive(bytes);
    if (!o.to_send.empty())
      out.push_back(relay_action{relay_action::kind::send, id, std::move(o.to_send), {}});
    // A handshake that completes and fails in the same call (its last
    // message followed by garbage) never counts as established: the
    // channel is already closed, so nothing can be sent on it.
    if (o.established && o.error) {
      ++m.handshakes_failed;
      drop(id, code::handshake_failed, "channel failed right after the handshake: " + *o.error,
           false, true);
      return;
    }
    if (o.established) {
      established(id, c, now);
      if (conns.find(id) == conns.end())
        return; // refused by a cap
    }
    for (auto& frame : o.frames) {
      std::string why;
      auto msg = decode_relay_message(frame, lim.wire, &why);
      if (!msg) {
        drop(id, code::bad_request, "undecodable message: " + why, true, true);
        return;
      }
      if (!handle(id, c, std::move(*msg), now))
        return;
    }
    if (o.error) {
      if (was_handshaking && !o.established) {
        ++m.handshakes_failed;
        drop(id, code::handshake_failed, "handshake failed: " + *o.error, false, true);
      } else {
        drop(id, code::bad_request, "secure channel failed: " + *o.error, false, true);
      }
    }
  }

  void on_timer(const timer& t, std::uint64_t now) {
    switch (t.kind) {
      case timer_kind::handshake: {
        auto it = conns.find(t.id);
        if (it == conns.end() || it->second.incarnation != t.generation ||
            it->second.ch.state() != protocol::channel_state::handshaking)
          return;
        ++m.handshakes_failed;
        drop(t.id, code::handshake_timeout,
             "handshake not completed within " + std::to_string(lim.handshake_timeout_ms) + " ms",
             false, true);
        return;
      }
      case timer_kind::idle: {
        auto it = conns.find(t.id);
        if (it == conns.end() || it->second.incarnation != t.generation)
          return;
        const std::uint64_t due = it->second.last_rx_ms + lim.idle_timeout_ms;
        if (due > now) {
          arm(due, timer_kind::idle, t.id, t.generation);
          return;
        }
        drop(t.id, code::idle,
             "nothing received for " + std::to_string(lim.idle_timeout_ms) +
                 " ms (idle_timeout_ms); send ping to stay connected",
             true, true);
        return;
      }
      case timer_kind::record: {
        auto it = conns.find(t.id);
        if (it == conns.end() || it->second.incarnation != t.generation)
          return;
        auto& c = it->second;
        if (!c.record || c.record->expiry_ms > now)
          return; // renewed since (its own timer is armed)
        c.record.reset();
        --m.records;
        ++m.records_expired;
        return;
      }
      case timer_kind::circuit_accept: {
        auto it = circuits.find(t.id);
        if (it == circuits.end() || it->second.open)
          return;
        end_circuit(t.id, code::timeout,
                    "the target did not answer within " +
                        std::to_string(lim.circuit_accept_timeout_ms) + " ms");
        return;
      }
      case timer_kind::circuit_duration: {
        auto it = circuits.find(t.id);
        if (it == circuits.end() || !it->second.open)
          return;
        end_circuit(t.id, code::duration_limit,
                    "the circuit reached its limit of " +
                        std::to_string(lim.circuit_max_duration_ms) +
                        " ms (circuit_max_duration_ms); open a new circuit or connect directly");
        return;
      }
    }
  }

  std::vector<conn_id> sorted_conns() const {
    std::vector<conn_id> ids;
    ids.reserve(conns.size());
    for (const auto& [id, c] : conns)
      ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  actions take() {
    actions a;
    a.swap(out);
    return a;
  }

  // --- invariant -----------------------------------------------------------------------

  void check() const {
    std::size_t registered = 0, records = 0, memberships = 0, watches = 0, presence = 0;
    std::size_t presence_listed = 0;
    for (const auto& [k, ws] : presence_watchers) {
      if (ws.empty())
        throw std::logic_error("relay_core: an identity is watched for by nobody");
      presence_listed += ws.size();
    }
    std::unordered_map<std::string, std::uint32_t> ips;
    for (const auto& [id, c] : conns) {
      if (c.id) {
        ++registered;
        ++ips[c.ip];
        auto f = by_id.find(*c.id);
        if (f == by_id.end() || f->second != id)
          throw std::logic_error("relay_core: registration missing from by_id");
      } else if (!c.topics.empty() || !c.watching.empty() || !c.circuits.empty() || c.record) {
        throw std::logic_error("relay_core: unregistered connection holds state");
      }
      if (c.record)
        ++records;
      for (const auto& t : c.topics) {
        auto f = topics.find(t);
        if (f == topics.end() || f->second.members.count(*c.id) == 0)
          throw std::logic_error("relay_core: joined topic without membership");
      }
      watches += c.watching.size();
      presence += c.awaiting.size();
      for (const auto& k : c.awaiting) {
        auto w = presence_watchers.find(k);
        if (w == presence_watchers.end() || std::count(w->second.begin(), w->second.end(), id) != 1)
          throw std::logic_error("relay_core: a connection awaits an identity it is not listed for");
      }
      for (circuit_id k : c.circuits) {
        auto f = circuits.find(k);
        if (f == circuits.end() || (f->second.a != id && f->second.b != id))
          throw std::logic_error("relay_core: connection lists a circuit that is not its own");
      }
    }
    std::size_t pending = 0, open = 0;
    std::unordered_map<std::string, std::uint32_t> circuit_ips;
    for (const auto& [k, ci] : circuits) {
      (ci.open ? open : pending) += 1;
      ++circuit_ips[ci.a_ip];
      ++circuit_ips[ci.b_ip];
      if (conns.count(ci.a) == 0 || conns.count(ci.b) == 0)
        throw std::logic_error("relay_core: circuit outlived a connection");
    }
    for (const auto& [t, ts] : topics) {
      memberships += ts.members.size();
      if (ts.members.empty() && ts.watchers.empty())
        throw std::logic_error("relay_core: empty topic kept");
    }
    if (registered != by_id.size() || registered != m.registrations || ips != per_ip ||
        records != m.records || memberships != m.memberships || watches != m.watches ||
        presence != m.presence_watches || presence != presence_listed ||
        topics.size() != m.topics || conns.size() != m.connections ||
        pending != m.circuits_pending || open != m.circuits_open || circuit_ips != circuits_per_ip)
      throw std::logic_error("relay_core: metrics gauges disagree with the state");
  }
};

// --- relay_core ----------------------------------------------------------------------

namespace {

/// Calls check_invariant on entry and exit in debug builds.
class invariant_guard {
public:
  explicit invariant_guard(const relay_core& c) : c_(c) {
#ifndef NDEBUG
    c_.check_invariant();
#endif
  }
  ~invariant_guard() noexcept(false) {
#ifndef NDEBUG
    if (std::uncaught_exceptions() == 0)
      c_.check_invariant();
#endif
  }
  invariant_guard(const invariant_guard&) = delete;
  invariant_guard& operator=(const invariant_guard&) = delete;

private:
  const relay_core& c_;
};

} // namespace

relay_core::relay_core(const protocol::identity& self, relay_limits limits,
                       const protocol::key_seed& seed)
    : impl_(std::make_unique<impl>(self, std::move(limits), seed)) {
  protocol::ensure_sodium();
}

relay_core::~relay_core() = default;
relay_core::relay_core(relay_core&&) noexcept = default;
relay_core& relay_core::operator=(relay_core&&) noexcept = default;

std::vector<relay_action> relay_core::accepted(conn_id c, std::string ip, std::uint64_t now_ms) {
  invariant_guard guard(*this);
  auto& s = *impl_;
  ++s.m.connections_accepted;
  if (s.conns.count(c) != 0) {
    // A transport bug; the older connection's state cannot be trusted.
    s.drop(c, code::transport, "connection id reused while open", false, true);
  }
  if (s.conns.size() >= s.lim.max_connections) {
    ++s.m.closes[static_cast<std::size_t>(code::limit_reached)];
    s.out.push_back(relay_action{relay_action::kind::close, c, {},
                                 "max_connections (" + std::to_string(s.lim.max_connections) +
                                     ") reached"});
    return s.take();
  }
  const std::uint32_t gen = s.next_incarnation++;
  protocol::channel ch(s.self, protocol::channel::role::responder,
                       s.draw("kith-relay/ephemeral"), now_ms, std::nullopt, s.channel_lim);
  if (s.lim.resume_tickets > 0)
    ch.accept_tickets([&tickets = s.tickets, now_ms](const protocol::resume_ticket::ticket_id& id) {
      return tickets.take_id(id, now_ms);
    });
  s.conns.emplace(c, impl::connection(std::move(ch), std::move(ip), gen, now_ms,
                                      static_cast<std::uint32_t>(std::min<std::uint64_t>(
                                          std::uint64_t{s.lim.request_burst} * 1000, 0xffffffffu))));
  ++s.m.connections;
  s.arm(now_ms + s.lim.handshake_timeout_ms, impl::timer_kind::handshake, c, gen);
  return s.take();
}

std::vector<relay_action> relay_core::received(conn_id c, std::string_view bytes,
                                               std::uint64_t now_ms) {
  invariant_guard guard(*this);
  impl_->receive(c, bytes, now_ms);
  return impl_->take();
}

std::vector<relay_action> relay_core::closed(conn_id c, std::uint64_t) {
  invariant_guard guard(*this);
  impl_->drop(c, code::transport, "closed by the transport", false, false);
  return impl_->take();
}

std::vector<relay_action> relay_core::tick(std::uint64_t now_ms) {
  invariant_guard guard(*this);
  auto& s = *impl_;
  while (!s.timers.empty() && s.timers.top().at <= now_ms) {
    const impl::timer t = s.timers.top();
    s.timers.pop();
    s.on_timer(t, now_ms);
  }
  return s.take();
}

std::optional<std::uint64_t> relay_core::next_deadline() const {
  if (impl_->timers.empty())
    return std::nullopt;
  return impl_->timers.top().at;
}

std::vector<relay_action> relay_core::begin_restart(std::uint64_t, std::uint64_t spread_ms) {
  invariant_guard guard(*this);
  auto& s = *impl_;
  s.restarting = true;
  ++s.restart_epoch;
  s.restart_spread = spread_ms;
  for (conn_id id : s.sorted_conns()) {
    auto& c = s.conns.at(id);
    if (c.id)
      s.send(id, c, reconnect_msg{s.restart_delay(*c.id)});
  }
  return s.take();
}

std::vector<relay_action> relay_core::shutdown(const std::string& reason) {
  invariant_guard guard(*this);
  auto& s = *impl_;
  for (conn_id id : s.sorted_conns())
    s.drop(id, code::shutdown, reason, true, true);
  return s.take();
}

const relay_metrics& relay_core::metrics() const { return impl_->m; }
const relay_limits& relay_core::limits() const { return impl_->lim; }
const protocol::public_key& relay_core::id() const { return impl_->self.pub(); }
relay_terms relay_core::terms() const { return impl_->terms(); }
bool relay_core::is_registered(const protocol::public_key& id) const {
  return impl_->by_id.count(id) != 0;
}
void relay_core::check_invariant() const { impl_->check(); }

// --- Prometheus ----------------------------------------------------------------------

namespace {

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP kith_relay_";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE kith_relay_";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const char* name, std::uint64_t v, const char* label = nullptr,
            const char* value = nullptr) {
  out += "kith_relay_";
  out += name;
  if (label != nullptr) {
    out += '{';
    out += label;
    out += "=\"";
    out += value;
    out += "\"}";
  }
  out += ' ';
  out += std::to_string(v);
  out += '\n';
}

void scalar(std::string& out, const char* name, const char* type, const char* help,
            std::uint64_t v) {
  family(out, name, type, help);
  sample(out, name, v);
}

void by_code(std::string& out, const char* name, const char* help,
             const std::array<std::uint64_t, code_count>& values,
             std::initializer_list<code> codes) {
  family(out, name, "counter", help);
  for (code k : codes)
    sample(out, name, values[static_cast<std::size_t>(k)], "reason", code_name(k));
}

} // namespace

std::string relay_core::prometheus_text() const {
  const auto& m = impl_->m;
  std::string out;
  out.reserve(6000);
  scalar(out, "connections", "gauge", "Open connections, handshaking or established.",
         m.connections);
  scalar(out, "registrations", "gauge", "Established connections, one per identity.",
         m.registrations);
  scalar(out, "records", "gauge", "Live signed reachability records.", m.records);
  scalar(out, "topics", "gauge", "Topics with members or watchers.", m.topics);
  scalar(out, "memberships", "gauge", "Topic memberships.", m.memberships);
  scalar(out, "watches", "gauge", "Topic watches.", m.watches);
  scalar(out, "presence_watches", "gauge", "Identities clients wait for (lookups with watch).",
         m.presence_watches);
  scalar(out, "circuits_pending", "gauge", "Circuits asked for and not yet accepted.",
         m.circuits_pending);
  scalar(out, "circuits_open", "gauge", "Open circuits.", m.circuits_open);
  scalar(out, "connections_accepted_total", "counter", "Transport connections accepted.",
         m.connections_accepted);
  scalar(out, "handshakes_total", "counter", "Secure-channel handshakes completed.",
         m.handshakes_completed);
  scalar(out, "handshakes_resumed_total", "counter",
         "Of the handshakes completed, those resumed with a ticket (no signatures).",
         m.handshakes_resumed);
  scalar(out, "handshake_failures_total", "counter", "Handshakes that failed or timed out.",
         m.handshakes_failed);
  scalar(out, "records_expired_total", "counter", "Records dropped at their expiry.",
         m.records_expired);
  scalar(out, "presence_sent_total", "counter",
         "Records sent to clients that waited for them (lookups with watch).", m.presence_sent);
  scalar(out, "circuits_total", "counter", "Circuits opened (accepted by their target).",
         m.circuits_opened);
  scalar(out, "relayed_bytes_total", "counter", "Circuit payload bytes forwarded.",
         m.relayed_bytes);

  family(out, "requests_total", "counter", "Messages received from clients, by kind.");
  for (std::size_t i = 0; i <= message_index<circuit_data_msg>; ++i)
    sample(out, "requests_total", m.requests[i], "kind", relay_message_name(i));

  by_code(out, "rejections_total", "Requests refused, by reason.", m.rejections,
          {code::rate_limited, code::limit_reached, code::not_found, code::bad_record,
           code::forbidden, code::not_connected, code::peer_refused, code::timeout,
           code::bad_request, code::unsupported});
  by_code(out, "closes_total", "Connections ended, by reason.", m.closes,
          {code::replaced, code::idle, code::abuse, code::shutdown, code::limit_reached,
           code::bad_request, code::handshake_failed, code::handshake_timeout, code::transport});
  by_code(out, "circuit_ends_total", "Circuits ended, pending or open, by reason.",
          m.circuit_ends,
          {code::closed_by_peer, code::byte_limit, code::duration_limit, code::peer_gone,
           code::peer_refused, code::not_connected, code::timeout, code::bad_request});
  return out;
}

} // namespace kith::relay
