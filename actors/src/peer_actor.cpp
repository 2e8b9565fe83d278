// The peer actor: one per remote identity. It owns the connection to that
// identity (dialled by us, or accepted and handed over by the node actor
// after the handshake), the secure channel on it, the backoff between
// dials, the topics pulled from the peer and served to it, and the
// anti-entropy rounds. Received data goes to the topic actor, which
// verifies it before anything is stored; a peer that sends something
// malformed or unverifiable gets an error message and is disconnected.

#include "internal.hpp"
#include "tick_board.hpp"
#include "topic_links.hpp"

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>
#include <variant>
#include <vector>

namespace kith::actors::detail {

namespace {

using namespace protocol;


struct peer_state {
  std::shared_ptr<node_env> env;
  node_actor node;
  public_key pk; // its text form: to_text(pk), made when needed

  // The flags and small counters sit together (no padding between them):
  // the whole actor must fit the allocation class checked below.
  bool followed = false;
  bool member = false;    // writes a shared topic we hold (met at a relay)
  bool lingering = false; // no longer met: kept while this connection lasts
  bool upgrading = false; // trying a direct connection instead of a relayed one
  bool outbound = false;  // we dialled the current connection
  bool dialing = false;
  bool read_paused = false; // read backpressure (applying_bytes)
  bool ticking = false;     // housekeeping ticks (next_due_ms)
  bool tick_set = false;    // a tick is on its way, for tick_at_ms
  // The relays have no record of the peer and will send it when the peer
  // announces one (lookup with watch): no relayed dials, sparse lookups.
  bool absent = false;
  bool found_since_lookup = false; // a relay answered the last lookup with a record
  bool has_rid = false;            // rid is set (the peer's hello came)
  bool sleep_told = false;         // told the node we may sleep (may_sleep)
  bool via_node = false;           // the node passes our dialled connection's events on
  // Answers and resync pages being built for the peer: at most
  // max_building at once, later requests wait in the build queue in
  // order, so a peer that asks many times over without reading holds a
  // few pages in our memory, not one per request.
  std::uint8_t building = 0;
  std::uint32_t read_pauses = 0;
  std::uint32_t conn_gen = 0; // bumped per connection: stale replies ignored (wraps)

  // The connection (conn == 0: none).
  conn_id conn = 0;
  replica_id rid{}; // from the peer's hello (has_rid)
  std::shared_ptr<channel> ch;
  std::string conn_address;
  std::uint64_t last_rx_ms = 0;
  std::uint64_t last_tx_ms = 0;

  topic_links links; // pulled, offered, served topics, their actors and rounds

  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t entries_received = 0;
  // Read backpressure: bytes of received data messages not yet applied
  // (saturating: settings above 4 GiB act as 4 GiB).
  std::uint32_t applying_bytes = 0;
  // The last message other than a keepalive, either way, in seconds of
  // the actor clock: an inbound connection quiet for
  // settings.peer_sleep_after may sleep (may_sleep).
  std::uint32_t busy_s = 0;
  // Housekeeping ticks fall on a grid (the first tick, then every
  // settings.tick), but only on grid points where something is due; see
  // next_due_ms.
  std::uint64_t last_tick_ms = 0; // the grid point of the last tick run
  std::uint64_t tick_at_ms = 0;   // the one on its way (tick_set)

  /// Aggregator queries, both ways: rare.
  struct query_book {
    struct pending {
      caf::typed_response_promise<query_result_msg> rp;
      std::uint64_t deadline_ms = 0;
    };
    std::map<std::uint64_t, pending> asked; // queries we asked the peer, by id
    std::uint64_t next_id = 1;
    std::uint64_t window_ms = 0; // queries the peer asked us: a per-second budget
    std::uint32_t in_window = 0;
  };

  /// How the peer is reached and what went wrong last. Most peer actors
  /// are for peers that dialled us and that we never dial (followers), so
  /// this sits out of line, made on the first write (reach()); reads go
  /// through known(), which gives the empty defaults while there is none.
  struct reach_book {
    // Where the peer may be dialled: the address given with `follow`
    // first (when `given`), then those of its relay record (from
    // found_begin()).
    std::vector<std::string> addresses;
    std::string last_error;
    std::uint64_t next_lookup_ms = 0;
    std::uint64_t lookup_sent_ms = 0;
    // The tag of our dial in progress, or of the direct dial that would
    // upgrade a relayed connection (upgrading): never both at once.
    std::uint64_t dial_tag = 0;
    std::uint64_t next_dial_ms = 0;
    std::uint64_t next_upgrade_ms = 0;
    // While lingering: when the connection is closed unless pulled from
    // again (linger_ms).
    std::uint64_t linger_until_ms = 0;
    // When our own (outbound) connection came up: simultaneous_dial_window_ms.
    std::uint64_t established_ms = 0;
    std::uint32_t failures = 0;
    std::uint32_t candidate = 0; // index into candidates() of the next dial
    bool given = false;          // addresses starts with the follow's address

    std::string_view given_address() const {
      return given ? std::string_view(addresses.front()) : std::string_view();
    }
    void set_given_address(std::string a) {
      if (given)
        addresses.front() = std::move(a);
      else
        addresses.insert(addresses.begin(), std::move(a));
      given = true;
    }
    /// The relay record's addresses.
    auto found_begin() const { return addresses.begin() + (given ? 1 : 0); }
    bool found_empty() const { return found_begin() == addresses.end(); }
    bool found_equals(const std::vector<std::string>& v) const {
      return std::equal(found_begin(), addresses.end(), v.begin(), v.end());
    }
    void set_found(std::vector<std::string> v) {
      addresses.erase(addresses.begin() + (given ? 1 : 0), addresses.end());
      addresses.insert(addresses.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
    }
  };
  std::unique_ptr<reach_book> book;
  reach_book& reach() {
    if (!book)
      book = std::make_unique<reach_book>();
    return *book;
  }
  const reach_book& known() const {
    static const reach_book none;
    return book ? *book : none;
  }

  /// Work in progress on the current connection, out of line: answers
  /// waiting to be built, resyncs, unsent bytes. Made when some starts,
  /// dropped when none is left (settle_work()) and with the connection.
  struct resync_state {
    std::optional<causality::node_clock> clock;
    causality::node_clock held;
  };
  struct work_book {
    // A list, not a deque: an empty std::deque allocates ~580 bytes.
    std::list<std::variant<sync_request_msg, resync_request_msg>> build_queue;
    /// Resyncs in progress: the sender's clock at the first page, and the
    /// dots the pages carried or named as held (what the sender still held).
    std::map<std::string, resync_state> resyncs;
    // Bytes sent to the transport that it has not reported written (only
    // when it reports writes, and not on circuits), and when that last
    // went down (or up from 0).
    std::uint64_t unsent = 0;
    std::uint64_t write_progress_ms = 0;
    std::unique_ptr<query_book> queries; // made on first use (query_state())
  };
  std::unique_ptr<work_book> work;
  work_book& working() {
    if (!work)
      work = std::make_unique<work_book>();
    return *work;
  }
  /// Drops the work book once nothing is left in it.
  void settle_work() {
    if (work && work->build_queue.empty() && work->resyncs.empty() && work->unsent == 0 && !work->queries)
      work.reset();
  }
  query_book& query_state() {
    auto& w = working();
    if (!w.queries)
      w.queries = std::make_unique<query_book>();
    return *w.queries;
  }
  query_book* queries() const {
    return work ? work->queries.get() : nullptr;
  }
  std::uint64_t unsent() const {
    return work ? work->unsent : 0;
  }
  /// The resync of `topic` in progress, or nullptr.
  resync_state* resync_of(const std::string& topic) {
    if (!work)
      return nullptr;
    auto it = work->resyncs.find(topic);
    return it == work->resyncs.end() ? nullptr : &it->second;
  }
  static inline const char* name = "kith.peer";
};

using peer_impl_actor = shared_behavior_actor<peer_state, peer_actor::base>;
using peer_pointer = peer_impl_actor*;

/// The peer actor whose message this thread is handling (in handlers only).
peer_pointer peer_self() {
  return peer_impl_actor::current();
}

// One peer actor per followed peer and per peer that follows us, so its
// size is paid per relationship: CAF allocates the actor with a 64-byte
// control block in front, and the total must stay within jemalloc's
// 1,280-byte size class (the next one is 1,536; CAF's own part is 968
// bytes, which leaves 248 for the state). Move rarely used state behind a
// pointer (reach_book, work_book) rather than grow this. Checked where the layouts are
// the ones measured (libstdc++ without its debug containers, CAF 0.17).
#if defined(__GLIBCXX__) && !defined(_GLIBCXX_DEBUG) && CAF_VERSION < 1800
static_assert(sizeof(peer_impl_actor) + CAF_CACHE_LINE_SIZE <= 1280,
              "the peer actor outgrew the 1,280-byte allocation class");
#endif

std::uint64_t now_ms(peer_pointer self) {
  return clock_ms(self->clock().now());
}

void tick_by(peer_pointer self, std::uint64_t due_ms);

/// How recent our own direct connection must be for it to win over the
/// peer's relayed one that arrives meanwhile (both dialled at once).
constexpr std::uint64_t simultaneous_dial_window_ms = 5'000;

bool established(const peer_state& st) {
  return st.conn != 0 && st.ch && st.ch->state() == channel_state::established;
}

/// A message other than a keepalive, either way: the connection is in use.
void note_busy(peer_pointer self) {
  auto& st = self->state;
  st.busy_s = static_cast<std::uint32_t>(now_ms(self) / 1000);
  st.sleep_told = false;
}

/// Whether the actor could go to sleep, the node keeping its connection
/// (peer_sleep), once quiet long enough (may_sleep): an established
/// connection whose events the node passes on (inbound, or dialled
/// through the node: via_node) that neither pulls nor serves anything,
/// nothing in the works, not followed or met (a lingering co-follower may
/// sleep), not relayed.
bool sleepable(const peer_state& st) {
  return st.env->settings.peer_sleep_after.count() > 0 && established(st) && st.has_rid &&
         (!st.outbound || st.via_node) && (st.conn & circuit_conn_bit) == 0 && !st.followed && !st.member &&
         !st.upgrading && !st.dialing && !st.work && st.building == 0 && st.applying_bytes == 0 &&
         !st.read_paused && !st.links.any_flag();
}

/// When a sleepable actor may sleep: settings.peer_sleep_after after the
/// last message other than a keepalive either way (whole seconds).
std::uint64_t sleep_due_ms(const peer_state& st) {
  const auto after_s = (static_cast<std::uint64_t>(st.env->settings.peer_sleep_after.count()) + 999) / 1000;
  return (std::uint64_t{st.busy_s} + after_s) * 1000;
}

bool may_sleep(const peer_state& st, std::uint64_t now) {
  return sleepable(st) && now >= sleep_due_ms(st);
}

/// Trades the connection's state between the actor and a sleep record:
/// the one direction puts an actor to sleep, the other wakes one.
void swap_connection(peer_state& st, peer_sleep& z) {
  std::swap(st.ch, z.ch);
  std::swap(st.rid, z.rid);
  std::swap(st.conn_address, z.address);
  std::swap(st.last_rx_ms, z.last_rx_ms);
  std::swap(st.last_tx_ms, z.last_tx_ms);
  std::swap(st.bytes_in, z.bytes_in);
  std::swap(st.bytes_out, z.bytes_out);
  std::swap(st.entries_received, z.entries_received);
  std::swap(st.read_pauses, z.read_pauses);
}

std::string short_id(const std::string& id) {
  return id.substr(0, 12);
}

void log(peer_pointer self, log_level l, const std::string& what) {
  if (self->state.env->log)
    self->state.env->logf(l, "peer " + short_id(to_text(self->state.pk)) + ": " + what);
}

void emit_state(peer_pointer self, const std::string& state) {
  if (self->state.env->on_event)
    self->state.env->emit(
        nlohmann::json{{"type", "peer"}, {"id", to_text(self->state.pk)}, {"state", state}});
}

constexpr std::size_t max_building = 4;
// Every topic of one subscribe (protocol limit 4096) may ask at once.
constexpr std::size_t max_build_queue = 4096;

bool tracks_writes(const peer_state& st) {
  return st.env->transport_reports_writes && (st.conn & circuit_conn_bit) == 0;
}

/// Whether another answer may be built now: few in the works, and the
/// peer has taken most of what we sent.
bool may_build(const peer_state& st) {
  return st.building < max_building &&
         (!tracks_writes(st) || st.unsent() <= st.env->settings.max_unsent_bytes);
}

void send_raw(peer_pointer self, std::string bytes) {
  auto& st = self->state;
  if (bytes.empty() || st.conn == 0)
    return;
  st.bytes_out += bytes.size();
  st.last_tx_ms = now_ms(self);
  if (tracks_writes(st)) {
    auto& w = st.working();
    if (w.unsent == 0) {
      w.write_progress_ms = st.last_tx_ms;
      tick_by(self, w.write_progress_ms + static_cast<std::uint64_t>(st.env->settings.write_stall.count()) + 1);
    }
    w.unsent += bytes.size();
  }
  self->send(st.env->transport_for(st.conn), send_atom::value, st.conn, std::move(bytes));
}

void drop_connection(peer_pointer self, const std::string& reason, bool tell_transport,
                     bool may_quit = true);

void send_msg(peer_pointer self, const message& m) {
  auto& st = self->state;
  if (!established(st))
    return;
  const auto bytes = encode_message(m);
  auto sealed = st.ch->seal(bytes);
  if (!sealed) {
    drop_connection(self, "could not seal a " + std::string(message_name(m)) + " message: " +
                              st.ch->close_reason(),
                    true);
    return;
  }
  if (auto& c = st.env->settings.counters)
    c->count_sent(m, bytes.size());
  if (!std::holds_alternative<keepalive_msg>(m))
    note_busy(self);
  send_raw(self, std::move(*sealed));
}

/// Sends an error message, then closes.
void fail(peer_pointer self, error_code code, const std::string& reason) {
  log(self, log_level::warn, "closing: " + reason);
  send_msg(self, error_msg{code, reason});
  drop_connection(self, reason, true);
}

/// Where the peer may be dialled, in order: the address given with
/// `follow`, the addresses of its relay record, then a relayed connection.
std::vector<std::string> candidates(const peer_state& st) {
  std::vector<std::string> out;
  for (const auto& a : st.known().addresses)
    if (std::find(out.begin(), out.end(), a) == out.end())
      out.push_back(a);
  // A circuit needs the peer registered at a relay; while the relays say
  // it is not (absent), trying one only costs the relay a refusal.
  if (st.env->relays_handle && !st.absent)
    out.push_back(std::string(circuit_address_prefix) + to_text(st.pk));
  return out;
}

bool may_dial(const peer_state& st) {
  return (st.followed || st.member) &&
         (!st.known().addresses.empty() || st.env->relays_handle);
}

void schedule_redial(peer_pointer self) {
  auto& st = self->state;
  if (!may_dial(st))
    return;
  // The next candidate at once; the backoff only after all were tried.
  const auto n = candidates(st).size();
  auto& r = st.reach();
  if (n > 1 && ++r.candidate % n != 0) {
    r.next_dial_ms = now_ms(self);
    return;
  }
  r.next_dial_ms = now_ms(self) + backoff_ms(*st.env, ++r.failures);
}

void drop_connection(peer_pointer self, const std::string& reason, bool tell_transport,
                     bool may_quit) {
  auto& st = self->state;
  if (st.conn == 0)
    return;
  const bool was_up = established(st);
  if (tell_transport)
    self->send(st.env->transport_for(st.conn), close_atom::value, st.conn, reason);
  // The node passes this connection's events on: it forgets it (a
  // transport does not tell the side that closes).
  if (!st.outbound || st.via_node)
    self->send(st.node, closed_atom::value, st.conn, reason);
  st.conn = 0;
  st.lingering = false;
  st.ch.reset();
  st.has_rid = false;
  st.applying_bytes = 0;
  st.read_paused = false;
  ++st.conn_gen;
  st.building = 0;
  st.links.clear_all(topic_links::offered);
  st.links.clear_all(topic_links::mark_due);
  st.reach().last_error = reason;
  st.links.each(topic_links::serving, [&](const std::string& t, const round_timing*) {
    if (auto a = st.links.actor(t))
      self->send(*a, unsub_atom::value, caf::actor_cast<caf::actor>(self));
  });
  st.links.clear_all(topic_links::serving);
  st.links.clear_all(topic_links::asked_unheld);
  if (auto* q = st.queries()) {
    for (auto& [id, p] : q->asked)
      p.rp.deliver(query_result_msg{id, {}, {}, "the connection closed: " + reason});
  }
  st.work.reset(); // answers waiting, resyncs, unsent bytes, our queries
  if (was_up) {
    log(self, log_level::info, "disconnected: " + reason);
    self->send(st.node, peerstate_atom::value, st.pk, false);
  }
  emit_state(self, "disconnected");
  schedule_redial(self);
  tick_by(self, now_ms(self)); // dialling ticks
  if (!st.followed && !st.member && may_quit)
    self->quit(); // a follower's actor lives as long as its connection
}

/// Ends the actor, its connection closed for `why`, when nothing keeps it:
/// not followed, not met or lingering, no subscription of the peer's, no
/// pull. Returns whether it did.
bool end_if_unneeded(peer_pointer self, const std::string& why) {
  auto& st = self->state;
  if (!st.followed && !st.member && !st.lingering && !st.links.any(topic_links::serving) &&
      !st.links.any(topic_links::pulling)) {
    drop_connection(self, why, true);
    self->quit();
    return true;
  }
  return false;
}

/// Stops pulling `topic` from the peer (an unsubscribe if connected). The
/// actor ends, its connection closed for `why`, when nothing else keeps it:
/// not followed, no shared topic it writes, no subscription of its, no
/// other pull.
void stop_pulling(peer_pointer self, const std::string& topic, const std::string& why) {
  auto& st = self->state;
  st.links.clear(topic, topic_links::pulling);
  st.links.clear(topic, topic_links::offered);
  if (established(st))
    send_msg(self, unsubscribe_msg{{topic}});
  end_if_unneeded(self, why);
}

/// Calls f with the actor of a held topic (asking the node once).
template <class F>
void with_topic(peer_pointer self, const std::string& topic, F f) {
  auto& st = self->state;
  if (auto a = st.links.actor(topic)) {
    f(*a);
    return;
  }
  self->request(st.node, caf::infinite, topic_atom::value, topic)
      .then([self, topic, f](topic_actor t) {
        if (t)
          self->state.links.set_actor(topic, t);
        f(t);
      });
}

/// The wait before the next anti-entropy round of a topic after `idle`
/// rounds in a row that brought nothing.
std::uint64_t round_wait_ms(const sync_settings& s, std::uint32_t idle) {
  auto wait = static_cast<std::uint64_t>(s.anti_entropy.count());
  const auto cap = static_cast<std::uint64_t>(s.anti_entropy_idle_max.count());
  for (std::uint32_t i = 0; i < idle && wait < cap; ++i)
    wait *= 2;
  return std::max(std::min(wait, cap), static_cast<std::uint64_t>(s.anti_entropy.count()));
}

/// The wait after a round (round_wait_ms) with that round's jitter.
std::uint64_t jittered_wait_ms(const sync_settings& s, const round_timing& r) {
  const auto wait = static_cast<std::int64_t>(round_wait_ms(s, r.idle));
  return static_cast<std::uint64_t>(wait + wait * r.jitter_permille / 1000);
}

void start_round(peer_pointer self, std::string topic) {
  with_topic(self, topic, [self, topic](topic_actor t) {
    if (!t)
      return;
    self->request(t, caf::infinite, request_atom::value)
        .then([self, topic](const causality::sync_request& req) {
          send_msg(self, sync_request_msg{topic, req.clock});
        });
  });
  auto& st = self->state;
  auto& r = st.links.round(topic);
  r.started_ms = now_ms(self);
  r.brought = false;
  // Connections opened in the same second (a node starting, a network
  // healing) would otherwise run every later round in step, a burst per
  // period (docs/simulation.md, "Session 22: where the messages go").
  r.jitter_permille = static_cast<std::int16_t>(static_cast<std::int64_t>(st.env->rng->next_u64() % 201) - 100);
  r.next_ms = r.started_ms + jittered_wait_ms(st.env->settings, r);
}

/// What the answer to a round, or a push, says about the topic's next
/// round: an answer that brought nothing (judged on its last part, since
/// a large answer comes in parts) lets the wait grow (when allowed) from
/// this round on, one that brought writes sets it back, and a push with
/// new writes brings the next round within the base period (it may have
/// come over a gap).
void note_round_result(peer_pointer self, const std::string& topic, data_kind kind, bool last,
                       bool brought) {
  auto& st = self->state;
  const auto& s = st.env->settings;
  if (s.anti_entropy_idle_max <= s.anti_entropy)
    return; // rounds every anti_entropy, as always
  auto& r = st.links.round(topic);
  if (kind == data_kind::answer) {
    const bool round_brought = r.brought || brought;
    r.brought = round_brought && !last;
    if (!round_brought) {
      if (last) {
        r.idle = std::min<std::uint32_t>(r.idle + 1, 32);
        r.next_ms = std::max(r.next_ms, r.started_ms + jittered_wait_ms(s, r));
      }
      return;
    }
  }
  if (!brought)
    return;
  r.idle = 0;
  r.next_ms = std::min(r.next_ms, now_ms(self) + jittered_wait_ms(s, r));
  tick_by(self, r.next_ms);
}

/// Asks for the resync page after `after`, with our clock now: the keys
/// it covers come back named, not sent (a returning or co-following
/// replica holds most of the topic already).
void ask_resync_page(peer_pointer self, const std::string& topic, const std::string& after) {
  auto c = self->state.env->store->clock_copy(topic);
  send_msg(self, resync_request_msg{topic, after, 1024, c ? std::move(*c) : causality::node_clock{}});
}

void send_data(peer_pointer self, data_kind kind, const signed_reply& r) {
  auto parts = split_reply(r, self->state.env->settings.max_part_bytes);
  if (parts.empty())
    parts.push_back(r);
  for (std::size_t i = 0; i < parts.size(); ++i)
    send_msg(self, data_msg{kind, i + 1 == parts.size(), std::move(parts[i])});
}

/// Shared and open topics we hold that this peer may write: pulled from it
/// on every connection, whichever side dialled.
void add_shared_topics(peer_state& st) {
  for (const auto& id : st.env->store->topics()) {
    auto d = st.env->store->topic(id);
    if (!d || d->kind == topic_kind::feed)
      continue;
    const bool writer = d->kind == topic_kind::open || d->creator == st.pk ||
                        std::find(d->writers.begin(), d->writers.end(), st.pk) != d->writers.end();
    if (writer)
      st.links.set(id, topic_links::pulling);
  }
}

void on_hello(peer_pointer self, const hello_msg& h) {
  auto& st = self->state;
  if (h.version != protocol_version)
    return fail(self, error_code::version,
                "protocol version " + std::to_string(h.version) + " is not supported (we speak " +
                    std::to_string(protocol_version) + ")");
  if (h.binding.author != st.pk || !check_binding(h.binding))
    return fail(self, error_code::bad_signature,
                "hello carries a replica binding that is not signed by the channel's identity");
  st.rid = h.binding.rid;
  st.has_rid = true;
  // The channel's ticket for the next connection stays in the channel
  // until now: kept once the peer's hello says it keeps tickets too (an
  // older node would refuse a resumed opening), wiped otherwise.
  if (auto t = st.ch ? st.ch->take_ticket() : std::nullopt; t && h.resumes && st.env->tickets)
    st.env->tickets->put(*t, now_ms(self));
  log(self, log_level::info, "hello from replica " + std::to_string(st.rid.value()) + " (" + h.agent + ")");
  add_shared_topics(st);
  if (st.links.any(topic_links::pulling))
    send_msg(self, subscribe_msg{st.links.with(topic_links::pulling)});
}

void on_subscribe(peer_pointer self, const subscribe_msg& m) {
  log(self, log_level::debug, "subscribe to " + std::to_string(m.topics.size()) + " topics");
  for (const auto& topic : m.topics) {
    with_topic(self, topic, [self, topic](topic_actor t) {
      auto& st = self->state;
      if (!t && established(st) && st.links.count(topic_links::asked_unheld) < 1024)
        st.links.set(topic, topic_links::asked_unheld); // served once we hold it (pull_atom)
      if (!t || !established(st) || !st.has_rid)
        return;
      auto desc = st.env->store->topic(topic);
      if (!desc)
        return;
      st.links.set(topic, topic_links::serving);
      self->request(t, caf::infinite, subscribe_atom::value, caf::actor_cast<caf::actor>(self), st.rid)
          .then([self, d = *desc](bool new_member) {
            offer_msg o{{d}};
            if (new_member)
              o.resync.push_back(d.id);
            send_msg(self, o);
          });
    });
  }
}

void on_offer(peer_pointer self, const offer_msg& m) {
  log(self, log_level::debug, "offer of " + std::to_string(m.topics.size()) + " topics");
  for (const auto& d : m.topics) {
    if (!self->state.links.has(d.id, topic_links::pulling))
      continue; // offered without being asked: ignore
    self->request(self->state.node, caf::infinite, topic_atom::value, d)
        .then([self, id = d.id,
               resync = std::find(m.resync.begin(), m.resync.end(), d.id) != m.resync.end()](
                  topic_actor t) {
          if (!t) {
            fail(self, error_code::protocol, "offered topic " + id + " has an invalid descriptor");
            return;
          }
          auto& st = self->state;
          st.links.set_actor(id, t);
          st.links.set(id, topic_links::offered);
          st.links.round(id).idle = 0; // a new connection: the base period again
          tick_by(self, now_ms(self)); // its first round
          // A replica that holds nothing of the topic starts with a full
          // resync: anti-entropy can only name dots still in the sender's
          // dot-key map, and those of writes every member had are gone.
          auto c = st.env->store->clock_copy(id);
          if (!c || c->dot_count() == 0 || resync) {
            st.working().resyncs[id] = {};
            ask_resync_page(self, id, {});
          } else {
            start_round(self, id);
          }
        });
  }
}

/// Answers a sync request; calls `done` once the answer is sent or
/// given up.
template <class Done>
void answer_sync(peer_pointer self, sync_request_msg m, Done done) {
  const std::string topic = m.topic; // m moves into the callback below
  with_topic(self, topic, [self, m = std::move(m), done](topic_actor t) {
    auto& st = self->state;
    if (!st.has_rid)
      return done();
    if (!t) {
      send_msg(self, error_msg{error_code::unknown_topic, "no topic " + m.topic});
      return done();
    }
    causality::sync_request req{st.rid, m.clock};
    self->request(t, caf::infinite, answer_atom::value, std::move(req))
        .then(
            [self, done](const signed_reply& r) {
              send_data(self, data_kind::answer, r);
              done();
            },
            [done](caf::error&) { done(); });
  });
}

/// Sends one resync page; calls `done` once it is sent or given up.
template <class Done>
void answer_resync(peer_pointer self, resync_request_msg m, Done done) {
  const std::string topic = m.topic;
  with_topic(self, topic, [self, m = std::move(m), done](topic_actor t) {
    if (!t) {
      send_msg(self, error_msg{error_code::unknown_topic, "no topic " + m.topic});
      return done();
    }
    self->request(t, caf::infinite, page_atom::value, m.after_key, m.max_entries, m.have)
        .then(
            [self, topic = m.topic, done](const resync_page& p) {
              send_data(self, data_kind::resync, p.reply);
              send_msg(self, resync_done_msg{topic, p.next_after, p.complete, p.held});
              done();
            },
            [done](caf::error&) { done(); });
  });
}

void build_answer(peer_pointer self, std::variant<sync_request_msg, resync_request_msg> job);

/// Starts waiting answers while may_build allows.
void build_waiting(peer_pointer self) {
  auto& st = self->state;
  while (st.work && !st.work->build_queue.empty() && may_build(st)) {
    auto next = std::move(st.work->build_queue.front());
    st.work->build_queue.pop_front();
    build_answer(self, std::move(next));
  }
  st.settle_work();
}

void answer_built(peer_pointer self, std::uint64_t gen) {
  auto& st = self->state;
  if (gen != st.conn_gen)
    return; // the connection it was for is gone (its counts were reset)
  --st.building;
  build_waiting(self);
}

void build_answer(peer_pointer self, std::variant<sync_request_msg, resync_request_msg> job) {
  auto& st = self->state;
  if (!may_build(st)) {
    if (st.work && st.work->build_queue.size() >= max_build_queue)
      return fail(self, error_code::protocol,
                  "more than " + std::to_string(max_build_queue) +
                      " sync and resync requests wait for answers");
    st.working().build_queue.push_back(std::move(job));
    return;
  }
  ++st.building;
  auto done = [self, gen = st.conn_gen] { answer_built(self, gen); };
  if (auto* sync = std::get_if<sync_request_msg>(&job))
    answer_sync(self, std::move(*sync), done);
  else
    answer_resync(self, std::move(std::get<resync_request_msg>(job)), done);
}

/// `frame_bytes`: the size of the frame that carried it (read backpressure).
void on_data(peer_pointer self, data_msg m, std::size_t frame_bytes) {
  auto& st = self->state;
  if (!st.has_rid || m.reply.from != st.rid)
    return fail(self, error_code::protocol, "data claims to come from another replica");
  log(self, log_level::debug,
      std::string("data (") +
          (m.kind == data_kind::push ? "push" : m.kind == data_kind::answer ? "answer" : "resync") +
          ") for " + m.reply.topic + ": " + std::to_string(m.reply.entries.size()) + " keys");
  if (m.kind != data_kind::push && st.env->observe) // no copies when no one observes
    st.env->note({node_observation::kind::sync_reply, to_text(st.pk), m.reply.topic});
  if (!st.links.has(m.reply.topic, topic_links::offered))
    return fail(self, error_code::protocol, "data for topic " + m.reply.topic + " we did not ask for");
  auto t = st.links.actor_at(m.reply.topic);
  const std::string topic = m.reply.topic;
  const auto size = frame_bytes;
  const auto gen = st.conn_gen;
  st.applying_bytes = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(std::numeric_limits<std::uint32_t>::max(), std::uint64_t{st.applying_bytes} + size));
  if (!st.read_paused && st.applying_bytes > st.env->settings.max_applying_bytes) {
    st.read_paused = true;
    ++st.read_pauses;
    self->send(st.env->transport_for(st.conn), pause_atom::value, st.conn);
  }
  if (m.kind == data_kind::resync) {
    auto* rs = st.resync_of(topic);
    if (!rs)
      return fail(self, error_code::protocol, "resync data for " + topic + " we did not ask for");
    if (!rs->clock)
      rs->clock = m.reply.clock;
    for (const auto& e : m.reply.entries)
      for (const auto& rec : e.records)
        rs->held.add(rec.first);
  }
  self->request(t, caf::infinite, apply_atom::value, std::move(m.reply),
                caf::actor_cast<caf::actor>(self))
      .then([self, topic, size, gen, kind = m.kind, last = m.last](const apply_result& r) {
        auto& st = self->state;
        if (gen == st.conn_gen) {
          st.applying_bytes -= static_cast<std::uint32_t>(std::min<std::uint64_t>(size, st.applying_bytes));
          if (st.read_paused && st.applying_bytes <= st.env->settings.max_applying_bytes / 2) {
            st.read_paused = false;
            self->send(st.env->transport_for(st.conn), resume_atom::value, st.conn);
          }
        }
        if (!r.ok)
          return fail(self, r.code, "rejected data for " + topic + ": " + r.reason);
        self->state.entries_received += r.new_dots;
        log(self, log_level::debug,
            topic + ": applied " + std::to_string(r.new_dots) + " new writes, " +
                std::to_string(r.keys_changed) + " keys changed");
        if (gen == st.conn_gen)
          note_round_result(self, topic, kind, last, r.new_dots > 0 || r.keys_changed > 0);
        if (r.new_dots > 0) {
          self->state.links.set(topic, topic_links::mark_due);
          tick_by(self, now_ms(self));
        }
      });
}

void on_resync_done(peer_pointer self, const resync_done_msg& m) {
  auto& st = self->state;
  auto* rs = st.resync_of(m.topic);
  if (!rs)
    return fail(self, error_code::protocol, "resync end for " + m.topic + " we did not ask for");
  // Keys left out because we have them: the sender still holds their dots.
  // A lie here cannot make us drop anything: at worst it keeps writes of
  // the sender's author that it dropped, as withholding the end would.
  // An honest `held` lies within the clock we asked with, so one that
  // reaches past our clock is refused: merged pages then stay within the
  // extent of a clock we hold anyway.
  if (!m.held.empty()) {
    auto mine = st.env->store->clock_copy(m.topic);
    for (const auto& [id, e] : m.held.entries()) {
      const auto* own = mine ? mine->find(id) : nullptr;
      if (!own || e.max() > own->max())
        return fail(self, error_code::protocol,
                    "resync end for " + m.topic + " names writes we never had");
    }
  }
  rs->held.merge(m.held);
  // Ask for the next page only once this one is applied (the topic actor
  // answers the status request after the applies queued before it), so at
  // most one page per topic waits in memory.
  auto t = st.links.actor_at(m.topic);
  self->request(t, caf::infinite, status_atom::value)
      .then([self, m](const topic_info&) {
        auto& st = self->state;
        auto* rs = st.resync_of(m.topic);
        if (!rs || !established(st))
          return;
        if (!m.complete) {
          ask_resync_page(self, m.topic, m.next_after);
          return;
        }
        if (rs->clock && st.has_rid)
          self->send(st.links.actor_at(m.topic), join_atom::value, st.rid, *rs->clock,
                     std::move(rs->held));
        st.work->resyncs.erase(m.topic);
        st.settle_work();
        log(self, log_level::info, "resync of " + m.topic + " complete");
        start_round(self, m.topic);
      });
}

/// Queries are served only in aggregator mode, at most
/// max_queries_per_second per peer; each answer is bounded (answer_query).
constexpr std::uint32_t max_queries_per_second = 20;
/// A query we asked gets this long for its answer (checked by the tick).
constexpr std::uint64_t query_timeout_ms = 5'000;

void on_query(peer_pointer self, const query_msg& m) {
  auto& st = self->state;
  query_result_msg out;
  out.id = m.id;
  const auto now = now_ms(self);
  auto& book = st.query_state();
  if (now >= book.window_ms + 1000) {
    book.window_ms = now;
    book.in_window = 0;
  }
  if (!st.env->aggregate) {
    out.refused = "this node is not an aggregator";
  } else if (++book.in_window > max_queries_per_second) {
    out.refused = "too many queries: at most " + std::to_string(max_queries_per_second) +
                  " per second";
  } else {
    out = answer_query(*st.env, m);
    if (st.env->tamper_answers)
      st.env->tamper_answers(out);
  }
  log(self, log_level::debug,
      "query " + std::to_string(static_cast<int>(m.kind)) + " '" + m.arg + "': " +
          std::to_string(out.items.size()) + " items" +
          (out.refused.empty() ? "" : ", refused: " + out.refused));
  send_msg(self, out);
}

void on_query_result(peer_pointer self, query_result_msg m) {
  auto& st = self->state;
  auto* q = st.queries();
  if (!q)
    return;
  auto& asked = q->asked;
  auto it = asked.find(m.id);
  if (it == asked.end())
    return; // timed out meanwhile
  it->second.rp.deliver(std::move(m));
  asked.erase(it);
}

void on_frame(peer_pointer self, const std::string& frame) {
  auto& st = self->state;
  std::string why;
  const std::size_t frame_bytes = frame.size();
  auto m = decode_message(frame, st.env->settings.messages, &why);
  if (!m)
    return fail(self, error_code::protocol, "malformed message: " + why);
  if (!st.has_rid && !std::holds_alternative<hello_msg>(*m) && !std::holds_alternative<error_msg>(*m))
    return fail(self, error_code::protocol,
                std::string("a ") + message_name(*m) + " message before hello");
  if (!std::holds_alternative<keepalive_msg>(*m))
    note_busy(self);
  std::visit(
      [self, frame_bytes](auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        auto& st = self->state;
        if constexpr (std::is_same_v<T, hello_msg>) {
          if (st.has_rid)
            return fail(self, error_code::protocol, "a second hello");
          on_hello(self, msg);
        } else if constexpr (std::is_same_v<T, subscribe_msg>) {
          on_subscribe(self, msg);
        } else if constexpr (std::is_same_v<T, unsubscribe_msg>) {
          for (const auto& t : msg.topics)
            if (st.links.clear(t, topic_links::serving))
              self->send(st.links.actor_at(t), unsub_atom::value, caf::actor_cast<caf::actor>(self));
        } else if constexpr (std::is_same_v<T, offer_msg>) {
          on_offer(self, msg);
        } else if constexpr (std::is_same_v<T, sync_request_msg>) {
          build_answer(self, std::move(msg));
        } else if constexpr (std::is_same_v<T, data_msg>) {
          on_data(self, std::move(msg), frame_bytes);
        } else if constexpr (std::is_same_v<T, watermark_msg>) {
          if (st.links.has(msg.topic, topic_links::serving))
            self->send(st.links.actor_at(msg.topic), mark_atom::value, st.rid, std::move(msg.clock));
        } else if constexpr (std::is_same_v<T, keepalive_msg>) {
          if (!msg.reply)
            send_msg(self, keepalive_msg{msg.nonce, true});
        } else if constexpr (std::is_same_v<T, error_msg>) {
          log(self, log_level::warn, "peer closed with error: " + msg.reason);
          drop_connection(self, "peer reported: " + msg.reason, true);
        } else if constexpr (std::is_same_v<T, resync_request_msg>) {
          build_answer(self, std::move(msg));
        } else if constexpr (std::is_same_v<T, resync_done_msg>) {
          on_resync_done(self, msg);
        } else if constexpr (std::is_same_v<T, query_msg>) {
          on_query(self, msg);
        } else if constexpr (std::is_same_v<T, query_result_msg>) {
          on_query_result(self, std::move(msg));
        }
      },
      *m);
  if (st.conn != 0 && !st.sleep_told && sleepable(st)) // e.g. the peer's last unsubscribe
    tick_by(self, sleep_due_ms(st));
}

void on_established(peer_pointer self) {
  auto& st = self->state;
  if (st.book)
    st.book->failures = 0;
  st.absent = false; // evidently online; the next lookup says where
  const auto now = now_ms(self);
  if (st.outbound) // for simultaneous_dial_window_ms (an outbound peer has its book)
    st.reach().established_ms = now;
  tick_by(self, now);
  if (established(st))
    self->send(st.node, peerstate_atom::value, st.pk, true);
  log(self, log_level::info,
      std::string("connected (") + (st.outbound ? "dialled " : "accepted from ") + st.conn_address +
          (st.ch && st.ch->resumed() ? ", handshake resumed" : "") + ")");
  emit_state(self, "connected");
  hello_msg h;
  h.binding = st.env->store->binding();
  h.agent = st.env->agent;
  h.resumes = st.env->tickets != nullptr;
  send_msg(self, h);
}

void handle_output(peer_pointer self, channel_output out) {
  auto& st = self->state;
  send_raw(self, std::move(out.to_send));
  if (out.established) {
    if (!out.error && st.ch->state() == channel_state::established) {
      count_handshake(*st.env, *st.ch);
    }
    on_established(self);
  }
  for (auto& f : out.frames) {
    if (st.conn == 0)
      return;
    on_frame(self, f);
  }
  if (out.error)
    drop_connection(self, *out.error, true);
}

void dial(peer_pointer self) {
  auto& st = self->state;
  auto cands = candidates(st);
  if (cands.empty())
    return;
  st.dialing = true;
  auto& r = st.reach();
  r.dial_tag = st.env->rng->next_u64();
  const auto& to = cands[r.candidate % cands.size()];
  log(self, log_level::debug, "dialling " + to);
  emit_state(self, "connecting");
  // A peer we do not follow (a co-follower pulled from, a member met at a
  // rendezvous) is dialled with the node as the connection's owner, so the
  // connection may sleep once idle (may_sleep); a followed one directly,
  // without the extra hop per frame.
  caf::actor owner = caf::actor_cast<caf::actor>(self);
  if (!st.followed && st.env->settings.peer_sleep_after.count() > 0) {
    self->send(st.node, dial_atom::value, r.dial_tag);
    owner = caf::actor_cast<caf::actor>(st.node);
  }
  self->send(st.env->transport_to(to), dial_atom::value, to, std::move(owner), r.dial_tag);
}

/// How long a peer actor waits before asking the relays again while they
/// watch for the peer's record (absent). They send it when it comes, and
/// a watch lost with a relay session is reported (absent_atom, false), so
/// this lookup only covers what neither catches.
constexpr std::uint64_t absent_lookup_ms = 120'000;
/// A peer the relays report back (its record came after an absence) is
/// dialled within this long, at a random point: its followers all learn
/// it at once.
constexpr std::uint64_t back_dial_spread_ms = 5'000;

/// Asks the relays where the peer is (again every few minutes while it
/// cannot be reached).
void maybe_lookup(peer_pointer self) {
  auto& st = self->state;
  const auto now = now_ms(self);
  if (!st.env->relays_handle || !(st.followed || st.member) || now < st.known().next_lookup_ms)
    return;
  auto& r = st.reach();
  r.next_lookup_ms = now + (st.absent ? absent_lookup_ms : r.found_empty() ? 5'000 : 120'000);
  r.lookup_sent_ms = now;
  st.found_since_lookup = false;
  self->send(st.env->relays_handle, lookup_atom::value, st.pk, caf::actor_cast<caf::actor>(self));
}

/// Housekeeping runs only while there is something to keep: a connection,
/// or an address to dial. 10,000 followed identities with no address cost
/// no timers.
void ensure_ticking(peer_pointer self) {
  auto& st = self->state;
  if (!st.ticking) {
    st.ticking = true;
    st.tick_set = true;
    st.last_tick_ms = st.tick_at_ms = now_ms(self);
    self->send(self, tick_atom::value, st.tick_at_ms);
  }
}

/// Something may be due at once (a new address or lookup answer, a dial
/// allowed again): the next grid point ticks.
void wake(peer_pointer self) {
  ensure_ticking(self);
  tick_by(self, now_ms(self));
}

/// Makes sure a tick runs at the first grid point that is after now and
/// not before `due_ms`: where a tick every settings.tick would have acted
/// on it (a grid point equal to now counts as past: that tick would have
/// run before anything else at the same instant reached this actor). The
/// grid is the node actor's ticks (tick_board), or without a node (tests
/// of a peer actor alone) this actor's own from its first tick. Costs one
/// entry on the board, or one timer, when that is sooner than the tick
/// already set.
void tick_by(peer_pointer self, std::uint64_t due_ms) {
  auto& st = self->state;
  if (!st.ticking)
    return;
  const auto now = now_ms(self);
  // The first time allowed; after the last tick, which ran at or before now.
  const auto after = std::max(due_ms, now + 1);
  auto* board = st.env->ticks.get();
  const auto at = board ? board->point_at_or_after(after)
                        : detail::grid_point_at_or_after(
                              st.last_tick_ms,
                              std::max<std::uint64_t>(1, st.env->settings.tick.count()), after);
  if (st.tick_set && at >= st.tick_at_ms)
    return; // a tick at or before `at` is on its way
  st.tick_set = true;
  st.tick_at_ms = at;
  if (board)
    board->add(at, self->address());
  else
    self->delayed_send(self, std::chrono::milliseconds(at - now), tick_atom::value, at);
}

/// The earliest deadline of the queries we asked (none: the maximum).
std::uint64_t query_deadline(const peer_state& st) {
  auto due = std::numeric_limits<std::uint64_t>::max();
  if (const auto* qs = st.queries())
    for (const auto& [id, q] : qs->asked)
      due = std::min(due, q.deadline_ms);
  return due;
}

/// When on_tick has something to do next, as far as the peer's state
/// says: a tick at every grid point while dialling, handshaking or
/// connecting; on an established connection, at the next keepalive,
/// timeout, write-stall check, anti-entropy round, upgrade attempt or
/// query deadline. State changes that make something due sooner call
/// tick_by, so on_tick acts on the same grid points as a tick every
/// settings.tick would (the same trace), without the idle ticks.
std::uint64_t next_due_ms(const peer_state& st, std::uint64_t now) {
  if (st.links.any(topic_links::mark_due))
    return now;
  if (!established(st)) {
    if (st.conn != 0 || st.dialing || !may_dial(st))
      return now;
    // Waiting to dial (a peer that is down, often for long): the redial
    // time, but not before a lookup sent has had its 2 s to be answered,
    // and the next lookup (on_tick's disconnected branch). An answer or a
    // new address that allows an earlier dial wakes the actor (wake).
    const auto& r = st.known();
    auto dial_at = r.next_dial_ms;
    if (r.addresses.empty())
      dial_at = std::max(dial_at, st.absent ? std::numeric_limits<std::uint64_t>::max()
                                            : r.lookup_sent_ms + 2'000);
    auto due = dial_at;
    if (st.env->relays_handle && (st.followed || st.member))
      due = std::min(due, r.next_lookup_ms);
    return std::min(due, query_deadline(st));
  }
  const auto& s = st.env->settings;
  auto due = st.last_rx_ms + static_cast<std::uint64_t>(s.peer_timeout.count()) + 1;
  due = std::min(due, st.last_tx_ms + static_cast<std::uint64_t>(s.keepalive.count()));
  if (st.unsent() > 0)
    due = std::min(due, st.work->write_progress_ms + static_cast<std::uint64_t>(s.write_stall.count()) + 1);
  st.links.each(topic_links::offered, [&](const std::string&, const round_timing* r) {
    due = std::min(due, r ? r->next_ms : now);
  });
  if ((st.conn & circuit_conn_bit) != 0 && !st.upgrading)
    due = std::min(due, st.known().next_upgrade_ms);
  if (st.lingering)
    due = std::min(due, st.known().linger_until_ms);
  if (!st.sleep_told && sleepable(st))
    due = std::min(due, sleep_due_ms(st));
  return std::min(due, query_deadline(st));
}

void on_tick(peer_pointer self) {
  auto& st = self->state;
  const auto now = now_ms(self);
  const auto& s = st.env->settings;
  if (auto* qs = st.queries()) {
    auto& asked = qs->asked;
    for (auto it = asked.begin(); it != asked.end();) {
      if (now < it->second.deadline_ms) {
        ++it;
        continue;
      }
      it->second.rp.deliver(query_result_msg{it->first, {}, {}, "no answer in time"});
      it = asked.erase(it);
    }
  }
  if (st.conn != 0 && st.ch && st.ch->state() == channel_state::handshaking)
    handle_output(self, st.ch->tick(now));
  if (st.lingering && now >= st.known().linger_until_ms) {
    st.lingering = false;
    if (end_if_unneeded(self, "kept " + std::to_string(linger_ms(*st.env) / 1000) +
                                  " s for the author's next absence, unused"))
      return;
  }
  if (established(st)) {
    if (now - st.last_rx_ms > static_cast<std::uint64_t>(s.peer_timeout.count()))
      return drop_connection(self, "peer silent for " + std::to_string((now - st.last_rx_ms) / 1000) + " s",
                             true);
    if (st.unsent() > 0 && now - st.work->write_progress_ms > static_cast<std::uint64_t>(s.write_stall.count())) {
      const auto why = "peer is not reading: " + std::to_string(st.unsent()) + " bytes unsent, none taken for " +
                       std::to_string((now - st.work->write_progress_ms) / 1000) + " s";
      self->send(st.env->transport_for(st.conn), close_atom::value, st.conn, why, true); // reset
      return drop_connection(self, why, false);
    }
    if (now - st.last_tx_ms >= static_cast<std::uint64_t>(s.keepalive.count()))
      send_msg(self, keepalive_msg{st.env->rng->next_u64(), false});
    // Rounds due (a topic without timing yet is due), listed first:
    // start_round changes the links. Most ticks list none.
    std::vector<std::string> due;
    st.links.each(topic_links::offered, [&](const std::string& t, const round_timing* r) {
      if (!r || now >= r->next_ms)
        due.push_back(t);
    });
    for (auto& t : due)
      start_round(self, std::move(t));
    // On a relayed connection, try a direct address now and then (the
    // peer may have become reachable, or only we were unreachable).
    if ((st.conn & circuit_conn_bit) != 0 && !st.upgrading && now >= st.known().next_upgrade_ms) {
      auto& r = st.reach();
      r.next_upgrade_ms = now + 30'000;
      auto cands = candidates(st);
      auto direct = std::find_if(cands.begin(), cands.end(), [](const std::string& a) {
        return a.rfind(circuit_address_prefix, 0) != 0;
      });
      if (direct != cands.end()) {
        st.upgrading = true;
        r.dial_tag = st.env->rng->next_u64();
        self->send(st.env->transport_to(*direct), dial_atom::value, *direct,
                   caf::actor_cast<caf::actor>(self), r.dial_tag);
      }
    }
    st.links.each(topic_links::mark_due, [&](const std::string& t, const round_timing*) {
      if (auto c = st.env->store->clock_copy(t))
        send_msg(self, watermark_msg{t, std::move(*c)});
    });
    st.links.clear_all(topic_links::mark_due);
    if (!st.sleep_told && may_sleep(st, now)) {
      st.sleep_told = true; // once per quiet spell: the node asks back (sleep_atom)
      self->send(st.node, sleep_atom::value, st.conn);
    }
  } else if (st.conn == 0 && !st.dialing && may_dial(st)) {
    maybe_lookup(self);
    // With no address yet, give the relays a moment to answer the lookup
    // before falling back to a relayed connection.
    const auto& r = st.known();
    const bool awaiting_lookup = r.addresses.empty() && now < r.lookup_sent_ms + 2'000;
    if (now >= r.next_dial_ms && !awaiting_lookup)
      dial(self);
  }
}

/// The behavior every peer actor shares (shared_behavior_actor): built
/// once, its handlers capture nothing.
peer_actor::behavior_type peer_behavior() {
  static const peer_actor::behavior_type shared{
      [](opened_atom, conn_id c, const std::string& addr, bool outbound, std::uint64_t tag) {
        const auto self = peer_self();
        auto& st = self->state;
        if (outbound && st.upgrading && tag == st.known().dial_tag) {
          st.upgrading = false;
          if ((st.conn & circuit_conn_bit) == 0) {
            self->send(st.env->transport_for(c), close_atom::value, c, std::string("duplicate connection"));
            return;
          }
          log(self, log_level::info, "reached directly at " + addr + "; leaving the relayed connection");
          drop_connection(self, "replaced by a direct connection", true, false);
          st.dialing = true;
          // falls through to adopt this connection below (tag is dial_tag)
        }
        if (!outbound || tag != st.known().dial_tag || !st.dialing || st.conn != 0) {
          // A stale dial, or we got connected the other way meanwhile.
          self->send(st.env->transport_for(c), close_atom::value, c, std::string("duplicate connection"));
          if (self->current_sender() == caf::actor_cast<caf::strong_actor_ptr>(st.node))
            self->send(st.node, closed_atom::value, c, std::string("duplicate connection"));
          return;
        }
        st.dialing = false;
        st.conn = c;
        st.outbound = true;
        st.via_node = self->current_sender() == caf::actor_cast<caf::strong_actor_ptr>(st.node);
        tick_by(self, now_ms(self)); // handshake ticks
        st.conn_address = addr;
        st.last_rx_ms = now_ms(self);
        st.ch = std::make_shared<channel>(st.env->self, channel::role::initiator, st.env->rng->next(),
                                          now_ms(self), st.pk, st.env->settings.channel);
        offer_ticket(*st.env, *st.ch, st.pk, now_ms(self));
        send_raw(self, st.ch->start());
      },
      [](bytes_atom, conn_id c, const std::string& bytes) {
        const auto self = peer_self();
        auto& st = self->state;
        // Acknowledged once handled (or dropped): the transport reads on.
        self->send(st.env->transport_for(c), consumed_atom::value, c, std::uint64_t{bytes.size()});
        if (c != st.conn || !st.ch)
          return;
        st.bytes_in += bytes.size();
        st.last_rx_ms = now_ms(self);
        handle_output(self, st.ch->receive(bytes));
      },
      [](written_atom, conn_id c, std::uint64_t n) {
        const auto self = peer_self();
        auto& st = self->state;
        if (c != st.conn || !tracks_writes(st))
          return;
        if (st.work) {
          st.work->unsent -= std::min(n, st.work->unsent);
          st.work->write_progress_ms = now_ms(self);
        }
        build_waiting(self);
      },
      [](closed_atom, conn_id c, const std::string& reason) {
        const auto self = peer_self();
        if (c == self->state.conn)
          drop_connection(self, reason, false);
      },
      [](dialfail_atom, std::uint64_t tag, const std::string& reason) {
        const auto self = peer_self();
        auto& st = self->state;
        if (st.upgrading && tag == st.known().dial_tag) {
          st.upgrading = false; // stay on the relayed connection; try later
          tick_by(self, st.known().next_upgrade_ms);
          return;
        }
        if (tag != st.known().dial_tag)
          return;
        st.dialing = false;
        auto& r = st.reach();
        r.last_error = "dial: " + reason; // transports name the address they tried
        log(self, log_level::debug, r.last_error);
        emit_state(self, "backoff");
        schedule_redial(self);
      },
      [](adopt_atom, conn_id c, channel_handoff& h) {
        const auto self = peer_self();
        auto& st = self->state;
        const bool on_circuit = (st.conn & circuit_conn_bit) != 0;
        if (established(st) && !on_circuit && st.outbound && (c & circuit_conn_bit) != 0 &&
            now_ms(self) < st.known().established_ms + simultaneous_dial_window_ms) {
          // We dialled the peer directly while it came to us through a
          // relay (both within the window): it replaces its relayed
          // connection with our direct one (the rule below, on its side),
          // so we keep ours too. Choosing by identity here instead made
          // both ends drop what the other kept, and they redialled into the
          // same race every second. An older direct connection may be dead
          // on the peer's side: the identity rule below decides then.
          self->send(st.env->transport_for(c), close_atom::value, c,
                     std::string("duplicate connection (a direct one is up)"));
          return;
        }
        if (established(st) && on_circuit && (c & circuit_conn_bit) == 0) {
          // The peer reached us directly: prefer that to the relayed path.
          drop_connection(self, "replaced by a direct connection", true, false);
        } else if (established(st)) {
          // Both sides dialled: keep the connection opened by the smaller
          // identity, so both ends keep the same one.
          const bool keep_inbound = st.pk < st.env->self.pub();
          if (!keep_inbound || !st.outbound) {
            if (!st.outbound) {
              // The peer reconnected: its new connection replaces the old.
              drop_connection(self, "replaced by a newer connection", true, false);
            } else {
              self->send(st.env->transport_for(c), close_atom::value, c, std::string("duplicate connection"));
              return;
            }
          } else {
            drop_connection(self, "duplicate connection", true, false);
          }
        } else if (st.conn != 0) {
          drop_connection(self, "superseded by an inbound connection", true, false);
        }
        st.dialing = false;
        st.conn = c;
        st.outbound = false;
        ensure_ticking(self);
        st.conn_address = h.address;
        st.ch = std::move(h.ch);
        st.last_rx_ms = now_ms(self);
        on_established(self);
        for (auto& f : h.frames) {
          if (st.conn == 0)
            return;
          on_frame(self, f);
        }
      },
      [](adopt_atom, conn_id c, peer_sleep& z, std::vector<std::string>& frames) {
        // Woken: the node kept this connection while we slept.
        const auto self = peer_self();
        auto& st = self->state;
        if (st.conn != 0) // a connection came meanwhile (cannot happen: the node wakes us first)
          drop_connection(self, "superseded by the connection woken from sleep", true, false);
        st.dialing = false;
        st.conn = c;
        st.outbound = z.outbound;
        st.via_node = true;
        if (z.linger_until_ms != 0) {
          st.lingering = true;
          st.reach().linger_until_ms = z.linger_until_ms;
        }
        swap_connection(st, z);
        st.has_rid = true;
        note_busy(self);
        ensure_ticking(self);
        tick_by(self, now_ms(self));
        log(self, log_level::debug, "awake (the connection to " + st.conn_address + " is in use again)");
        for (auto& f : frames) {
          if (st.conn == 0)
            return;
          on_frame(self, f);
        }
      },
      [](sleep_atom) -> peer_sleep {
        // The node takes the connection over if we are still idle, and we end.
        const auto self = peer_self();
        auto& st = self->state;
        st.sleep_told = false;
        if (!may_sleep(st, now_ms(self)))
          return {};
        peer_sleep z;
        swap_connection(st, z);
        z.pk = st.pk;
        z.outbound = st.outbound;
        z.linger_until_ms = st.lingering ? std::max<std::uint64_t>(1, st.known().linger_until_ms) : 0;
        log(self, log_level::debug, "asleep (the node keeps the idle connection to " + z.address + ")");
        st.conn = 0; // the connection is the node's now: nothing to close
        st.has_rid = false;
        self->quit();
        return z;
      },
      [](push_atom, const signed_reply& r) {
        const auto self = peer_self();
        auto& st = self->state;
        if (established(st) && st.has_rid && st.links.has(r.topic, topic_links::serving) &&
            r.from != st.rid)
          send_data(self, data_kind::push, r);
      },
      [](follow_atom, const std::string& addr) {
        const auto self = peer_self();
        auto& st = self->state;
        st.followed = true;
        const auto feed = feed_topic(st.pk).id;
        if (!addr.empty() && addr != st.known().given_address()) {
          auto& r = st.reach();
          r.set_given_address(addr);
          r.candidate = 0;
          r.next_dial_ms = 0;
        }
        if (may_dial(st))
          wake(self);
        if (st.links.set(feed, topic_links::pulling) && established(st) && st.has_rid)
          send_msg(self, subscribe_msg{{feed}});
      },
      [](unfollow_atom) {
        const auto self = peer_self();
        self->state.followed = false;
        stop_pulling(self, feed_topic(self->state.pk).id, "unfollowed");
      },
      [](found_atom, std::vector<std::string>& addresses) {
        const auto self = peer_self();
        auto& st = self->state;
        st.found_since_lookup = true;
        // After an absence (the relays watched for its record, which has
        // just come), the peer is back: dial it now, not at the backoff.
        const bool back = st.absent;
        st.absent = false;
        if (st.known().found_equals(addresses) && !back)
          return;
        auto& r = st.reach();
        r.set_found(std::move(addresses));
        r.candidate = 0;
        if (st.conn == 0 && !st.dialing) {
          r.next_dial_ms = 0;
          if (back) {
            // Every follower hears of a returning peer at the same moment:
            // spread their dials over a few seconds rather than have them
            // all handshake and resync with it at once.
            r.failures = 0;
            r.next_dial_ms = now_ms(self) + st.env->rng->next_u64() % back_dial_spread_ms;
          }
          if (may_dial(st))
            wake(self);
        }
      },
      [](absent_atom, bool watching) {
        const auto self = peer_self();
        auto& st = self->state;
        if (!watching) { // the watch went with a relay session
          if (st.absent) {
            st.absent = false;
            st.reach().next_lookup_ms = 0;
            if (st.conn == 0 && !st.dialing && may_dial(st))
              wake(self);
          }
          return;
        }
        // Another relay may have had the record (relays answer a lookup
        // each): one that has it wins.
        if (st.found_since_lookup || st.absent)
          return;
        st.absent = true;
        auto& r = st.reach();
        r.candidate = 0;
        r.next_lookup_ms = std::max(r.next_lookup_ms, r.lookup_sent_ms + absent_lookup_ms);
      },
      [](meet_atom) {
        const auto self = peer_self();
        auto& st = self->state;
        if (st.member)
          return;
        st.member = true;
        st.lingering = false;
        if (st.conn == 0 && !st.dialing && may_dial(st)) {
          st.reach().next_dial_ms = 0;
          wake(self);
        }
      },
      [](unmeet_atom, bool linger) {
        const auto self = peer_self();
        auto& st = self->state;
        st.member = false;
        st.lingering = linger && st.conn != 0;
        if (st.lingering) {
          auto& r = st.reach();
          r.linger_until_ms = now_ms(self) + linger_ms(*st.env);
          tick_by(self, r.linger_until_ms);
        }
        end_if_unneeded(self, "no longer kept connected");
      },
      [](pull_atom, const std::string& topic) {
        const auto self = peer_self();
        auto& st = self->state;
        if (st.links.set(topic, topic_links::pulling) && established(st) && st.has_rid)
          send_msg(self, subscribe_msg{{topic}});
        if (st.links.clear(topic, topic_links::asked_unheld) && established(st))
          on_subscribe(self, subscribe_msg{{topic}});
      },
      [](unpull_atom, const std::string& topic) {
        const auto self = peer_self();
        if (self->state.links.has(topic, topic_links::pulling))
          stop_pulling(self, topic, "no longer pulling from this peer");
      },
      [](query_atom, query_msg& q) -> caf::result<query_result_msg> {
        const auto self = peer_self();
        auto& st = self->state;
        if (!established(st) || !st.has_rid)
          return query_result_msg{q.id, {}, {}, "not connected to " + short_id(to_text(st.pk)) + "…"};
        auto& book = st.query_state();
        if (book.asked.size() >= 64)
          return query_result_msg{q.id, {}, {}, "too many queries waiting"};
        q.id = book.next_id++;
        auto rp = self->make_response_promise<query_result_msg>();
        book.asked[q.id] = peer_state::query_book::pending{rp, now_ms(self) + query_timeout_ms};
        tick_by(self, now_ms(self) + query_timeout_ms);
        send_msg(self, q);
        return rp;
      },
      [](tick_atom, std::uint64_t at) {
        const auto self = peer_self();
        auto& st = self->state;
        if (!st.ticking || !st.tick_set || at != st.tick_at_ms)
          return; // superseded by an earlier tick
        st.tick_set = false;
        st.last_tick_ms = at;
        on_tick(self);
        if (st.conn == 0 && !st.dialing && !may_dial(st)) {
          st.ticking = false;
          return;
        }
        tick_by(self, next_due_ms(st, now_ms(self)));
      },
      [](status_atom) -> peer_info {
        const auto self = peer_self();
        auto& st = self->state;
        peer_info p;
        p.id = to_text(st.pk);
        p.followed = st.followed;
        p.state = established(st) ? "connected"
                  : st.conn != 0 || st.dialing ? "connecting"
                  : st.known().failures > 0 ? "backoff"
                                    : "idle";
        p.address = st.conn != 0 ? st.conn_address : std::string(st.known().given_address());
        p.pulling = st.links.with(topic_links::pulling);
        p.serving = st.links.with(topic_links::serving);
        p.bytes_in = st.bytes_in;
        p.bytes_out = st.bytes_out;
        p.entries_received = st.entries_received;
        p.read_pauses = st.read_pauses;
        if (established(st))
          p.handshake = st.ch->resumed() ? "resumed" : "full";
        p.last_error = st.known().last_error;
        return p;
      },
  };
  return shared;
}

peer_actor::behavior_type peer_impl(peer_pointer self, std::shared_ptr<node_env> env, public_key pk,
                                    bool followed, std::string address, node_actor node) {
  auto& st = self->state;
  st.env = std::move(env);
  st.node = std::move(node);
  st.pk = pk;
  st.followed = followed;
  if (!address.empty())
    st.reach().set_given_address(std::move(address));
  if (followed)
    st.links.set(feed_topic(pk).id, topic_links::pulling);
  ensure_ticking(self);
  return peer_behavior();
}

} // namespace

peer_actor spawn_peer(caf::actor_system& sys, std::shared_ptr<node_env> env, protocol::public_key pk,
                      bool followed, std::string address, node_actor node) {
  return sys.spawn(peer_impl, std::move(env), pk, followed, std::move(address), std::move(node));
}

} // namespace kith::actors::detail
