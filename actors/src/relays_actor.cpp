// The relays actor: the node's sessions with its relays (one relay_client
// core per relay, over connections of the node's transport), the node's
// signed record announced on each, lookups of identities, topic
// rendezvous, and relayed connections (circuits), which it offers to peer
// actors as a transport. docs/architecture.md ("Relays") describes the
// flows; docs/relay-protocol.md the messages.
//
// Every relay is used at once: lookups ask all of them and the first
// verified record wins; a relay that fails or restarts is redialled with
// backoff while the others (and every direct connection) carry on.

#include "internal.hpp"

#include "kith/protocol/topic_name.hpp"
#include "kith/relay/client.hpp"
#include "kith/relay/record.hpp"

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <map>
#include <set>

namespace kith::actors::detail {

namespace {

/// Renewed by the relay client before it expires; short enough that a
/// node that vanished is soon gone from lookups.
constexpr std::uint64_t record_ttl_ms = 10 * 60 * 1000;

struct relay_session {
  std::string address; // host:port
  std::optional<protocol::public_key> pinned;
  /// The identity the last session proved (a ticket is offered to it).
  std::optional<protocol::public_key> known_id;
  std::unique_ptr<relay::relay_client> client;
  conn_id conn = 0;
  bool dialing = false;
  std::uint64_t dial_tag = 0;
  std::uint32_t failures = 0;
  std::uint64_t next_dial_ms = 0;
  bool announced = false;
  std::uint64_t lookups = 0;
  std::string last_error;
  std::map<std::uint64_t, caf::actor> lookups_waiting; // req -> who asked
  /// Identities this relay watches for us (a lookup with watch found no
  /// record): who asked, told (found_atom) when the relay sends the record.
  /// Weak: a peer actor that ended meanwhile is not kept alive by this.
  std::map<protocol::public_key, caf::actor_addr> awaited;
  std::map<std::uint64_t, conn_id> circuits_waiting;   // open_circuit req -> local conn
  /// Circuit bytes passed to peer actors and not yet acknowledged by them.
  /// Above max_circuit_unhandled, the relay connection's own bytes are
  /// not acknowledged to the transport (ack_owed), which stops reading it:
  /// a fast circuit then waits in the kernel, not in a mailbox.
  std::uint64_t circuit_unhandled = 0;
  std::uint64_t ack_owed = 0;
};

constexpr std::uint64_t max_circuit_unhandled = 1u << 20;
constexpr std::size_t max_tracked_members = 1024;

/// One relayed connection, as a connection of this transport.
struct circuit {
  std::size_t relay = 0;
  relay::circuit_id id = 0; // 0 until the relay opened it
  caf::actor owner;
  std::uint64_t tag = 0;
  protocol::public_key peer;
  bool outbound = true;
  std::vector<std::size_t> tried; // relays that refused (outbound)
  std::uint64_t unhandled = 0;    // its share of the relay's circuit_unhandled
};

struct relays_state {
  std::shared_ptr<node_env> env;
  node_actor node;
  std::vector<relay_session> relays;
  std::map<conn_id, circuit> circuits;
  /// Open circuits by (relay, the relay's circuit id): circuit data and
  /// closes arrive by that name, so this is the hot-path lookup.
  std::map<std::pair<std::size_t, relay::circuit_id>, conn_id> by_circuit;
  /// Rendezvous topics (names) to join on every relay. Names and keys
  /// are shared with every other holder (protocol::topic_name).
  std::set<protocol::topic_name, std::less<>> topics;
  /// Of those, the ones the node stopped watching (rwatch_atom): joined
  /// without a watch or a members listing, also at the next welcome.
  std::set<protocol::topic_name, std::less<>> unwatched;
  std::map<protocol::topic_name, protocol::topic_name, std::less<>> topic_of_key; // rendezvous key -> name
  std::vector<std::string> announce; // our dial addresses
  /// Lookups asked while no session was up: run at the next welcome.
  std::map<protocol::public_key, caf::actor> deferred_lookups;
  /// With several relays: at which of them (bit i: relay i) each member of
  /// a rendezvous was last seen, so a member that leaves one relay but is
  /// still at another is not reported as gone. At most
  /// max_tracked_members per rendezvous (the node remembers 8 per feed);
  /// a member not tracked is reported on its first `left`, as with one
  /// relay.
  std::map<protocol::topic_name, std::map<protocol::public_key, std::uint64_t>, std::less<>> present;
  conn_id next_conn = 1;
  static inline const char* name = "kith.relays";
};

using relays_pointer = relays_actor::stateful_pointer<relays_state>;

std::uint64_t now_ms(relays_pointer self) {
  return clock_ms(self->clock().now());
}

std::uint64_t unix_ms(relays_pointer self) {
  const auto& env = *self->state.env;
  return env.unix_ms ? env.unix_ms() : now_ms(self);
}

void log(relays_pointer self, log_level l, const relay_session& r, const std::string& what) {
  self->state.env->logf(l, "relay " + r.address + ": " + what);
}

void flush(relays_pointer self, relay_session& r, std::string bytes = {}) {
  if (r.client)
    bytes += r.client->take_to_send();
  if (!bytes.empty() && r.conn != 0)
    self->send(self->state.env->transport, send_atom::value, r.conn, std::move(bytes));
}

using circuit_iter = std::map<conn_id, circuit>::iterator;

/// Removes a circuit from both tables; returns the next one.
circuit_iter forget(relays_state& st, circuit_iter it) {
  // Its owner's late acknowledgements find no circuit: take its share now
  // (release_owed runs at the next acknowledgement or tick).
  if (it->second.relay < st.relays.size()) {
    auto& r = st.relays[it->second.relay];
    r.circuit_unhandled -= std::min(it->second.unhandled, r.circuit_unhandled);
  }
  if (it->second.id != 0)
    st.by_circuit.erase({it->second.relay, it->second.id});
  return st.circuits.erase(it);
}

circuit_iter find_circuit(relays_state& st, std::size_t relay, relay::circuit_id id) {
  auto k = st.by_circuit.find({relay, id});
  return k == st.by_circuit.end() ? st.circuits.end() : st.circuits.find(k->second);
}

/// The circuit waiting for the answer to open_circuit request `req`.
circuit_iter take_waiting(relays_state& st, relay_session& r, std::uint64_t req) {
  auto w = r.circuits_waiting.find(req);
  if (w == r.circuits_waiting.end())
    return st.circuits.end();
  const conn_id c = w->second;
  r.circuits_waiting.erase(w);
  return st.circuits.find(c);
}

/// Asks relay `i` to open circuit `it` to its peer; false if it cannot.
bool request_open(relays_pointer self, std::size_t i, circuit_iter it, std::string& why) {
  auto& r = self->state.relays[i];
  if (!r.client || !r.client->established())
    return false;
  auto req = r.client->open_circuit(it->second.peer);
  if (!req) {
    why = req.error;
    return false;
  }
  it->second.relay = i;
  r.circuits_waiting[req.req] = it->first;
  flush(self, r);
  return true;
}

/// Joins one rendezvous topic on a relay; watches it and pages its members
/// unless `quiet` (the public directory for a node that is not an
/// aggregator: it wants to be listed, not to hear of everyone else).
void join_topic(relay_session& r, const std::string& name, bool quiet) {
  const auto key = relay::rendezvous_key(name);
  if (!quiet)
    (void)r.client->watch(key);
  (void)r.client->join(key);
  if (!quiet)
    (void)r.client->members(key);
}

/// The public directory for a node that is not an aggregator: it wants to
/// be listed, not to hear of everyone else.
bool listed_only(const relays_state& st, const std::string& name) {
  return name == directory_topic && !st.env->aggregate;
}

bool quiet_topic(const relays_state& st, const std::string& name) {
  return listed_only(st, name) || st.unwatched.count(name) > 0;
}

bool lookup_on(relay_session& r, const protocol::public_key& pk, const caf::actor& who) {
  auto req = r.client->lookup(pk, true);
  if (!req)
    return false;
  ++r.lookups;
  r.lookups_waiting[req.req] = who;
  return true;
}

/// Ends every circuit of relay `i` (its session is gone).
void drop_circuits_of(relays_pointer self, std::size_t i, const std::string& why) {
  auto& st = self->state;
  for (auto it = st.circuits.begin(); it != st.circuits.end();) {
    if (it->second.relay != i) {
      ++it;
      continue;
    }
    if (it->second.id == 0 && it->second.outbound)
      caf::anon_send(it->second.owner, dialfail_atom::value, it->second.tag, "relay: " + why);
    else
      caf::anon_send(it->second.owner, closed_atom::value, it->first, "relay: " + why);
    it = forget(st, it);
  }
}

/// Bit 63 of a presence mask: a `left` was held back for this member
/// (it left one relay and was still at another). Relays 0-62 have a bit.
constexpr std::uint64_t left_held_back = std::uint64_t{1} << 63;
constexpr std::size_t max_presence_relays = 63;

/// Members of rendezvous `key` seen at relay i (several relays only).
void seen_at(relays_state& st, std::size_t i, const std::string& key, const protocol::public_key& pk) {
  if (st.relays.size() < 2 || i >= max_presence_relays)
    return;
  auto& m = st.present[key];
  auto it = m.find(pk);
  if (it == m.end()) {
    if (m.size() >= max_tracked_members)
      return;
    it = m.emplace(pk, 0).first;
  }
  it->second = (it->second & ~left_held_back) | (std::uint64_t{1} << i);
}

/// A member left rendezvous `key` at relay i: whether it is gone from
/// every relay we know it at (then the node forgets it).
bool gone_everywhere(relays_state& st, std::size_t i, const std::string& key,
                     const protocol::public_key& pk) {
  auto t = st.present.find(key);
  if (t == st.present.end())
    return true;
  auto it = t->second.find(pk);
  if (it == t->second.end())
    return true;
  if (i < max_presence_relays)
    it->second &= ~(std::uint64_t{1} << i);
  if ((it->second & ~left_held_back) != 0) {
    it->second |= left_held_back;
    return false;
  }
  t->second.erase(it);
  return true;
}

/// Relay i's session ended: what it told us of the rendezvous no longer
/// holds (its members are listed again at the next welcome). A member
/// whose `left` was held back for relay i alone is reported gone now, as
/// it would have been without presence tracking.
void forget_presence_at(relays_pointer self, std::size_t i) {
  auto& st = self->state;
  if (i >= max_presence_relays)
    return;
  for (auto t = st.present.begin(); t != st.present.end();) {
    for (auto it = t->second.begin(); it != t->second.end();) {
      it->second &= ~(std::uint64_t{1} << i);
      if ((it->second & ~left_held_back) != 0) {
        ++it;
        continue;
      }
      if ((it->second & left_held_back) != 0)
        if (auto name = st.topic_of_key.find(t->first); name != st.topic_of_key.end())
          self->send(st.node, left_atom::value, name->second.str(), it->first);
      it = t->second.erase(it);
    }
    t = t->second.empty() ? st.present.erase(t) : std::next(t);
  }
}

void session_down(relays_pointer self, std::size_t i, const std::string& why,
                  std::uint64_t retry_after_ms = 0) {
  auto& st = self->state;
  auto& r = st.relays[i];
  if (r.conn != 0)
    self->send(st.env->transport, close_atom::value, r.conn, why);
  const bool was_up = r.client && r.client->established();
  r.conn = 0;
  r.dialing = false;
  r.client.reset();
  r.announced = false;
  r.last_error = why;
  r.lookups_waiting.clear(); // the asker looks up again later
  // The relay forgot these watches with the session: their askers ask
  // again (deferred until a session is up), or they would wait for a
  // record that no relay will send.
  for (const auto& [pk, who] : r.awaited)
    if (auto alive = caf::actor_cast<caf::actor>(who))
      caf::anon_send(alive, absent_atom::value, false);
  r.awaited.clear();
  r.circuits_waiting.clear();
  r.circuit_unhandled = 0;
  r.ack_owed = 0;
  forget_presence_at(self, i);
  drop_circuits_of(self, i, why);
  if (was_up)
    log(self, log_level::warn, r, "session ended: " + why);
  if (retry_after_ms > 0) {
    r.failures = 0;
    r.next_dial_ms = now_ms(self) + retry_after_ms;
    return;
  }
  r.next_dial_ms = now_ms(self) + backoff_ms(*st.env, ++r.failures);
}

/// Closes a circuit of ours (its owner asked).
void close_circuit(relays_pointer self, conn_id c, const std::string& reason) {
  auto& st = self->state;
  auto it = st.circuits.find(c);
  if (it == st.circuits.end())
    return;
  auto& r = st.relays[it->second.relay];
  if (r.client && it->second.id != 0) {
    (void)r.client->close_circuit(it->second.id, reason);
    flush(self, r);
  }
  forget(st, it);
}

/// Acknowledges the relay connection's withheld bytes once its circuits'
/// owners have caught up (the transport then reads it again).
void release_owed(relays_pointer self, relay_session& r) {
  if (r.ack_owed == 0 || r.conn == 0 || r.circuit_unhandled > max_circuit_unhandled / 2)
    return;
  self->send(self->state.env->transport, consumed_atom::value, r.conn, r.ack_owed);
  r.ack_owed = 0;
}

/// Sends every event of one relay's output where it belongs.
void handle(relays_pointer self, std::size_t i, relay::client_output out) {
  auto& st = self->state;
  auto& r = st.relays[i];
  flush(self, r, std::move(out.to_send));
  for (auto& ev : out.events) {
    std::visit(
        [&](auto& e) {
          using T = std::decay_t<decltype(e)>;
          if constexpr (std::is_same_v<T, relay::welcomed>) {
            r.failures = 0;
            r.known_id = e.relay;
            if (auto& c = st.env->settings.counters)
              ++(r.client->resumed() ? c->relay_handshakes_resumed : c->relay_handshakes_full);
            // Kept only for a relay that keeps tickets too (an older one
            // would refuse the next opening).
            if (auto t = r.client->take_ticket(); t && e.terms.resumes && st.env->relay_tickets)
              st.env->relay_tickets->put(*t, now_ms(self));
            log(self, log_level::info, r,
                "connected to relay " + protocol::to_text(e.relay).substr(0, 12) + " (we are " +
                    e.observed_ip + ")");
            auto a = r.client->announce(st.announce, record_ttl_ms, unix_ms(self));
            if (!a)
              log(self, log_level::warn, r, "cannot announce: " + a.error);
            for (const auto& t : st.topics)
              join_topic(r, t, quiet_topic(st, t));
            for (const auto& [pk, who] : st.deferred_lookups)
              (void)lookup_on(r, pk, who);
            st.deferred_lookups.clear();
          } else if constexpr (std::is_same_v<T, relay::announced>) {
            if (!r.announced)
              log(self, log_level::info, r, "announced this node's record");
            r.announced = true;
          } else if constexpr (std::is_same_v<T, relay::lookup_result>) {
            auto it = r.lookups_waiting.find(e.req);
            if (it != r.lookups_waiting.end()) {
              if (e.record) {
                caf::anon_send(it->second, found_atom::value, e.record->addresses);
              } else if (e.watching) {
                r.awaited[e.id] = it->second.address();
                caf::anon_send(it->second, absent_atom::value, true);
              }
              r.lookups_waiting.erase(it);
            }
          } else if constexpr (std::is_same_v<T, relay::present>) {
            if (auto it = r.awaited.find(e.record.id); it != r.awaited.end()) {
              if (auto alive = caf::actor_cast<caf::actor>(it->second))
                caf::anon_send(alive, found_atom::value, e.record.addresses);
              r.awaited.erase(it);
            }
          } else if constexpr (std::is_same_v<T, relay::members_page>) {
            if (auto t = st.topic_of_key.find(e.topic); t != st.topic_of_key.end())
              for (const auto& id : e.ids)
                if (id != st.env->self.pub()) {
                  seen_at(st, i, e.topic, id);
                  self->send(st.node, meet_atom::value, t->second.str(), id);
                }
            if (!e.next_cursor.empty())
              (void)r.client->members(e.topic, e.next_cursor);
          } else if constexpr (std::is_same_v<T, relay::topic_event>) {
            auto t = st.topic_of_key.find(e.topic);
            if (e.id == st.env->self.pub() || t == st.topic_of_key.end())
              return;
            if (e.joined) {
              seen_at(st, i, e.topic, e.id);
              self->send(st.node, meet_atom::value, t->second.str(), e.id);
            } else if (gone_everywhere(st, i, e.topic, e.id)) {
              self->send(st.node, left_atom::value, t->second.str(), e.id);
            }
          } else if constexpr (std::is_same_v<T, relay::circuit_incoming>) {
            // A peer asks to reach us: accept, and hand the stream to the
            // node actor like an inbound TCP connection.
            if (!r.client->accept_circuit(e.circuit))
              return;
            const conn_id c = circuit_conn_bit | st.next_conn++;
            st.circuits[c] = circuit{i, e.circuit, caf::actor_cast<caf::actor>(st.node), 0, e.from,
                                     false, {}};
            st.by_circuit[{i, e.circuit}] = c;
            self->send(st.node, opened_atom::value, c,
                       std::string(circuit_address_prefix) + protocol::to_text(e.from), false,
                       std::uint64_t{0});
          } else if constexpr (std::is_same_v<T, relay::circuit_opened>) {
            auto it = take_waiting(st, r, e.req);
            if (it == st.circuits.end()) {
              (void)r.client->close_circuit(e.circuit, "no longer wanted");
              return;
            }
            const conn_id c = it->first;
            it->second.id = e.circuit;
            st.by_circuit[{i, e.circuit}] = c;
            log(self, log_level::debug, r, "circuit to " + protocol::to_text(e.peer).substr(0, 12) + " open");
            caf::anon_send(it->second.owner, opened_atom::value, c,
                       std::string(circuit_address_prefix) + protocol::to_text(e.peer), true,
                       it->second.tag);
          } else if constexpr (std::is_same_v<T, relay::circuit_data>) {
            if (auto it = find_circuit(st, i, e.circuit); it != st.circuits.end()) {
              r.circuit_unhandled += e.bytes.size();
              it->second.unhandled += e.bytes.size();
              caf::anon_send(it->second.owner, bytes_atom::value, it->first, std::move(e.bytes));
            }
          } else if constexpr (std::is_same_v<T, relay::circuit_closed>) {
            if (auto it = find_circuit(st, i, e.circuit); it != st.circuits.end()) {
              caf::anon_send(it->second.owner, closed_atom::value, it->first,
                             "relay closed the circuit: " + e.reason);
              forget(st, it);
            }
          } else if constexpr (std::is_same_v<T, relay::refused>) {
            if (e.kind == relay::request_kind::lookup) {
              r.lookups_waiting.erase(e.req);
            } else if (e.kind == relay::request_kind::open_circuit) {
              auto it = take_waiting(st, r, e.req);
              if (it == st.circuits.end())
                return;
              // Try the next relay that has a session; give up when none is left.
              it->second.tried.push_back(i);
              std::string why;
              for (std::size_t j = 0; j < st.relays.size(); ++j)
                if (std::find(it->second.tried.begin(), it->second.tried.end(), j) ==
                        it->second.tried.end() &&
                    request_open(self, j, it, why))
                  return;
              caf::anon_send(it->second.owner, dialfail_atom::value, it->second.tag,
                             "no relay could open a circuit: " + e.detail);
              forget(st, it);
            } else {
              log(self, log_level::warn, r,
                  std::string(relay::request_kind_name(e.kind)) + " refused: " + e.detail);
            }
          } else if constexpr (std::is_same_v<T, relay::reconnect>) {
            log(self, log_level::info, r,
                "relay restarting; reconnecting in " + std::to_string(e.after_ms) + " ms");
            st.env->note({node_observation::kind::relay_restart, r.address, {}, e.after_ms});
            session_down(self, i, "relay restarting", std::max<std::uint64_t>(e.after_ms, 1));
          } else if constexpr (std::is_same_v<T, relay::goodbye>) {
            session_down(self, i, "relay said goodbye: " + e.reason);
          }
        },
        ev);
    if (!st.relays[i].client)
      return; // the session ended while handling an event
  }
  if (out.error)
    session_down(self, i, *out.error);
  else
    flush(self, st.relays[i]);
}

std::optional<std::size_t> relay_of_conn(relays_state& st, conn_id c) {
  for (std::size_t i = 0; i < st.relays.size(); ++i)
    if (st.relays[i].conn == c && c != 0)
      return i;
  return std::nullopt;
}

void dial_relay(relays_pointer self, std::size_t i) {
  auto& st = self->state;
  auto& r = st.relays[i];
  r.dialing = true;
  r.dial_tag = st.env->rng->next_u64();
  self->send(st.env->transport, dial_atom::value, r.address, caf::actor_cast<caf::actor>(self),
             r.dial_tag);
}

relays_actor::behavior_type relays_impl(relays_pointer self, std::shared_ptr<node_env> env,
                                        node_actor node) {
  auto& st = self->state;
  st.env = std::move(env);
  st.node = std::move(node);
  st.announce = st.env->announce;
  for (const auto& spec : st.env->relays) {
    relay_session r;
    const auto hash = spec.find('#');
    r.address = spec.substr(0, hash);
    if (hash != std::string::npos) {
      std::string why;
      r.pinned = protocol::parse_id(spec.substr(hash + 1), &why);
      if (!r.pinned)
        st.env->logf(log_level::error, "relay " + spec + ": bad relay id: " + why);
    }
    st.relays.push_back(std::move(r));
  }
  self->send(self, tick_atom::value);
  return {
      // --- our own connections to relays ------------------------------------------
      [self](opened_atom, conn_id c, const std::string&, bool, std::uint64_t tag) {
        auto& st = self->state;
        for (std::size_t i = 0; i < st.relays.size(); ++i) {
          auto& r = st.relays[i];
          if (r.dialing && r.dial_tag == tag) {
            r.dialing = false;
            r.conn = c;
            r.client = std::make_unique<relay::relay_client>(st.env->self, r.pinned,
                                                             st.env->rng->next(), unix_ms(self));
            if (const auto& id = r.pinned ? r.pinned : r.known_id; id && st.env->relay_tickets)
              if (auto t = st.env->relay_tickets->take_for(*id, now_ms(self)))
                r.client->offer_ticket(*t);
            flush(self, r, r.client->start());
            return;
          }
        }
        self->send(st.env->transport, close_atom::value, c, std::string("not dialled"));
      },
      [self](bytes_atom, conn_id c, const std::string& bytes) {
        auto& st = self->state;
        auto i = relay_of_conn(st, c);
        if (i && st.relays[*i].client)
          handle(self, *i, st.relays[*i].client->receive(bytes, unix_ms(self)));
        if (i && st.relays[*i].conn == c && st.relays[*i].circuit_unhandled > max_circuit_unhandled) {
          st.relays[*i].ack_owed += bytes.size();
          return;
        }
        self->send(st.env->transport, consumed_atom::value, c, std::uint64_t{bytes.size()});
      },
      [](written_atom, conn_id, std::uint64_t) {}, // relay sessions are small and paced
      [self](closed_atom, conn_id c, const std::string& reason) {
        auto& st = self->state;
        if (auto i = relay_of_conn(st, c)) {
          st.relays[*i].conn = 0; // already closed
          session_down(self, *i, "connection closed: " + reason);
        }
      },
      [self](dialfail_atom, std::uint64_t tag, const std::string& reason) {
        auto& st = self->state;
        for (std::size_t i = 0; i < st.relays.size(); ++i)
          if (st.relays[i].dialing && st.relays[i].dial_tag == tag) {
            st.relays[i].dialing = false;
            session_down(self, i, "dial: " + reason);
          }
      },
      // --- as a transport of circuits -------------------------------------------------
      [self](dial_atom, const std::string& address, const caf::actor& owner, std::uint64_t tag) {
        auto& st = self->state;
        std::string why = "no relay session is up";
        if (address.rfind(circuit_address_prefix, 0) == 0) {
          auto pk = protocol::parse_id(address.substr(circuit_address_prefix.size()), &why);
          if (pk) {
            why = "no relay session is up";
            const conn_id c = circuit_conn_bit | st.next_conn++;
            auto it = st.circuits.emplace(c, circuit{0, 0, owner, tag, *pk, true, {}}).first;
            for (std::size_t i = 0; i < st.relays.size(); ++i)
              if (request_open(self, i, it, why))
                return;
            st.circuits.erase(it);
          }
        } else {
          why = "not a relay address: " + address;
        }
        caf::anon_send(owner, dialfail_atom::value, tag, why);
      },
      [self](send_atom, conn_id c, std::string& bytes) {
        auto& st = self->state;
        auto it = st.circuits.find(c);
        if (it == st.circuits.end() || it->second.id == 0)
          return;
        auto& r = st.relays[it->second.relay];
        if (!r.client)
          return;
        if (auto s = r.client->circuit_send(it->second.id, bytes); !s) {
          caf::anon_send(it->second.owner, closed_atom::value, c, "relay: " + s.error);
          forget(st, it);
          return;
        }
        flush(self, r);
      },
      [self](close_atom, conn_id c, const std::string& reason) { close_circuit(self, c, reason); },
      // A circuit has no reset: the relay closes it for both ends.
      [self](close_atom, conn_id c, const std::string& reason, bool) { close_circuit(self, c, reason); },
      // A paused circuit is not held apart from the others: the relay
      // connection it shares stops being read once circuit_unhandled is
      // over its limit (the consumed handler below).
      [](pause_atom, conn_id) {},
      [](resume_atom, conn_id) {},
      [self](consumed_atom, conn_id c, std::uint64_t n) {
        auto& st = self->state;
        auto it = st.circuits.find(c);
        if (it == st.circuits.end() || it->second.relay >= st.relays.size())
          return;
        auto& r = st.relays[it->second.relay];
        n = std::min(n, it->second.unhandled);
        it->second.unhandled -= n;
        r.circuit_unhandled -= std::min(n, r.circuit_unhandled);
        release_owed(self, r);
      },
      // --- discovery --------------------------------------------------------------------
      [self](lookup_atom, const protocol::public_key& pk, const caf::actor& reply_to) {
        auto& st = self->state;
        bool asked = false;
        for (auto& r : st.relays) {
          if (r.client && r.client->established() && lookup_on(r, pk, reply_to)) {
            asked = true;
            flush(self, r);
          }
        }
        if (!asked && st.deferred_lookups.size() < 100'000)
          st.deferred_lookups[pk] = reply_to;
      },
      [self](meet_atom, const std::string& topic) {
        auto& st = self->state;
        if (!st.topics.insert(topic).second)
          return;
        st.topic_of_key[relay::rendezvous_key(topic)] = topic;
        for (auto& r : st.relays) {
          if (!r.client || !r.client->established())
            continue;
          join_topic(r, topic, quiet_topic(st, topic));
          flush(self, r);
        }
      },
      [self](rwatch_atom, const std::string& topic, bool on) {
        auto& st = self->state;
        if (st.topics.count(topic) == 0 || listed_only(st, topic))
          return;
        if (on ? st.unwatched.erase(topic) == 0 : !st.unwatched.insert(topic).second)
          return;
        const auto key = relay::rendezvous_key(topic);
        if (!on)
          st.present.erase(key); // no left events come to keep it true
        for (auto& r : st.relays) {
          if (!r.client || !r.client->established())
            continue;
          if (on) {
            (void)r.client->watch(key);
            (void)r.client->members(key);
          } else {
            (void)r.client->unwatch(key);
          }
          flush(self, r);
        }
      },
      [self](found_atom, std::vector<std::string>& own) {
        auto& st = self->state;
        if (own == st.announce)
          return;
        st.announce = std::move(own);
        for (auto& r : st.relays) {
          if (!r.client || !r.client->established())
            continue;
          (void)r.client->announce(st.announce, record_ttl_ms, unix_ms(self));
          flush(self, r);
        }
      },
      [self](tick_atom) {
        auto& st = self->state;
        const auto now = now_ms(self);
        for (std::size_t i = 0; i < st.relays.size(); ++i) {
          auto& r = st.relays[i];
          release_owed(self, r);
          if (r.client)
            handle(self, i, r.client->tick(unix_ms(self)));
          else if (!r.dialing && now >= r.next_dial_ms)
            dial_relay(self, i);
        }
        self->delayed_send(self, st.env->settings.tick, tick_atom::value);
      },
      [self](status_atom) -> std::vector<relay_info> {
        auto& st = self->state;
        std::vector<relay_info> out;
        for (std::size_t i = 0; i < st.relays.size(); ++i) {
          const auto& r = st.relays[i];
          relay_info ri;
          ri.address = r.address;
          if (r.client && r.client->relay_id())
            ri.id = protocol::to_text(*r.client->relay_id());
          else if (r.pinned)
            ri.id = protocol::to_text(*r.pinned);
          ri.state = r.client && r.client->established() ? "connected"
                     : r.conn != 0 || r.dialing          ? "connecting"
                                                         : "backoff";
          ri.announced = r.announced;
          ri.lookups = r.lookups;
          for (const auto& [c, ci] : st.circuits)
            ri.circuits_open += ci.relay == i && ci.id != 0 ? 1 : 0;
          if (r.client && r.client->established()) {
            ri.topics_joined = st.topics.size();
            ri.topics_watched = static_cast<std::uint64_t>(std::count_if(
                st.topics.begin(), st.topics.end(), [&](const std::string& t) { return !quiet_topic(st, t); }));
          }
          ri.last_error = r.last_error;
          out.push_back(std::move(ri));
        }
        return out;
      },
  };
}

} // namespace

relays_actor spawn_relays(caf::actor_system& sys, std::shared_ptr<node_env> env, node_actor node) {
  return sys.spawn(relays_impl, std::move(env), std::move(node));
}

} // namespace kith::actors::detail
