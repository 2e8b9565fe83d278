// The node actor: the supervisor of one node. It spawns a topic actor per
// held topic and a peer actor per followed identity (and per follower that
// connects), runs the responder side of inbound handshakes until the
// identity is proved, then routes the connection's bytes to that peer's
// actor, and runs the local API's operations.

#include "internal.hpp"
#include "tick_board.hpp"

#include "kith/protocol/topic_name.hpp"
#include "kith/storage/documents.hpp"

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include <boost/container/flat_set.hpp>

#include <algorithm>
#include <functional>
#include <random>
#include <map>
#include <set>
#include <tuple>
#include <sodium.h>

namespace kith::actors {

protocol::key_seed entropy::next() {
  const std::uint64_t n = counter_.fetch_add(1);
  std::string ctr(reinterpret_cast<const char*>(&n), sizeof n);
  return protocol::hash_of(
      std::string_view(reinterpret_cast<const char*>(seed_.data()), seed_.size()), ctr);
}

std::uint64_t entropy::next_u64() {
  auto h = next();
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | h[static_cast<std::size_t>(i)];
  return v;
}

// Data messages take the last two slots for answers and resync pages;
// their own slot counts pushes.
std::size_t membership_counters::sent_kind_of(const protocol::message& m) {
  constexpr std::size_t alternatives = std::variant_size_v<protocol::message>;
  if (const auto* d = std::get_if<protocol::data_msg>(&m)) {
    if (d->kind == protocol::data_kind::answer)
      return alternatives;
    if (d->kind == protocol::data_kind::resync)
      return alternatives + 1;
  }
  return m.index();
}

const char* membership_counters::sent_kind_name(std::size_t slot) {
  constexpr std::size_t alternatives = std::variant_size_v<protocol::message>;
  if (slot == alternatives)
    return "data_answer";
  if (slot == alternatives + 1)
    return "data_resync";
  if (slot == protocol::message{protocol::data_msg{}}.index())
    return "data_push";
  return protocol::message_name(slot);
}

void membership_counters::count_sent(const protocol::message& m, std::size_t bytes) {
  const auto slot = sent_kind_of(m);
  sent_messages[slot].fetch_add(1, std::memory_order_relaxed);
  sent_bytes[slot].fetch_add(bytes, std::memory_order_relaxed);
}

namespace detail {

std::uint64_t backoff_ms(const node_env& env, std::uint32_t failures) {
  const auto& s = env.settings;
  const auto max = static_cast<std::uint64_t>(s.backoff_max.count());
  std::uint64_t base = static_cast<std::uint64_t>(s.backoff_min.count());
  for (std::uint32_t i = 1; i < failures && base < max; ++i)
    base *= 2;
  base = std::min(base, max);
  return base / 2 + env.rng->next_u64() % (base / 2 + 1);
}

} // namespace detail

protocol::key_seed seed_for(std::uint64_t seed, std::uint64_t n) {
  protocol::key_seed s{};
  std::mt19937_64 g(seed * 1000003u + n);
  for (auto& b : s)
    b = static_cast<std::uint8_t>(g());
  return s;
}

std::uint64_t clock_ms(const caf::actor_clock::time_point& t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

namespace detail {

using nlohmann::json;

api_result json_result(int status, const json& body) {
  return api_result{status, body.dump(), false};
}

api_result error_result(int status, const std::string& code, const std::string& msg) {
  return json_result(status, json{{"error", json{{"code", code}, {"message", msg}}}});
}

api_result storage_error(const storage::error& e) {
  using storage::errc;
  switch (e.code) {
    case errc::not_found:
      return error_result(404, "not_found", e.message);
    case errc::unauthorized:
      return error_result(403, "unauthorized", e.message);
    case errc::invalid:
    case errc::format_mismatch:
      return error_result(400, "invalid", e.message);
    case errc::already_exists:
      return error_result(409, "conflict", e.message);
    case errc::bad_signature:
      return error_result(400, "bad_signature", e.message);
    default:
      return error_result(500, "internal", e.message);
  }
}

namespace {

struct pending_conn {
  std::shared_ptr<protocol::channel> ch;
  std::string address;
  bool role_decided = false; // the pipe preamble may still come
  std::string early;         // bytes held until the role is decided
};

bool is_loopback(const std::string& address) {
  return address.rfind("127.", 0) == 0 || address.rfind("[::1]", 0) == 0 ||
         address.rfind("::1:", 0) == 0 || address.rfind("::ffff:127.", 0) == 0 ||
         address.rfind("localhost:", 0) == 0;
}

/// Decides the handshake role of an inbound connection from its first
/// bytes: responder, unless a local `kith sync --stdio` sent the pipe
/// preamble. Returns the bytes the channel should see next, or nullopt
/// while undecided.
std::optional<std::string> decide_role(pending_conn& pc, const std::string& bytes,
                                       const node_env& env, std::uint64_t now,
                                       std::string& to_send) {
  if (pc.role_decided)
    return bytes;
  pc.early += bytes;
  const auto& pre = pipe_initiate_preamble;
  const auto n = std::min(pc.early.size(), pre.size());
  if (pc.early.compare(0, n, pre.substr(0, n)) == 0 && pc.early.size() < pre.size())
    return std::nullopt; // could still be the preamble
  pc.role_decided = true;
  std::string rest = std::move(pc.early);
  if (rest.compare(0, pre.size(), pre) == 0 && is_loopback(pc.address)) {
    pc.ch = std::make_shared<protocol::channel>(env.self, protocol::channel::role::initiator,
                                                env.rng->next(), now, std::nullopt,
                                                env.settings.channel);
    to_send = pc.ch->start();
    rest.erase(0, pre.size());
  }
  return rest;
}

/// A few peer ids per feed (at most max_co_followers): a sorted vector,
/// half the memory of a std::set's tree nodes, with the same order.
using key_set = boost::container::flat_set<protocol::public_key>;

struct node_state {
  std::shared_ptr<node_env> env;
  std::map<protocol::public_key, peer_actor> peers;
  std::map<protocol::topic_name, topic_actor, std::less<>> topics;
  std::map<conn_id, pending_conn> handshaking;
  /// Connections whose events the node passes on to a peer actor: every
  /// inbound one once its handshake is done, and those a peer actor
  /// dialled through the node (outbound; see `dials`), which may sleep.
  struct route {
    peer_actor peer;
    bool outbound = false;
  };
  std::map<conn_id, route> routed;
  /// Dials a peer actor made with the node as the connection's owner, by
  /// tag: their opened/dialfail events go to it.
  std::map<std::uint64_t, peer_actor> dials;
  /// Inbound connections whose peer actor sleeps (peer_sleep): the node
  /// answers their keepalives and wakes an actor for anything else.
  std::map<conn_id, peer_sleep> asleep;
  std::map<protocol::public_key, std::string> follows; // id -> address
  std::uint64_t inbound_refused = 0;
  /// Aggregator mode: identities followed because they were met in the
  /// public directory (not follow documents).
  std::set<protocol::public_key> crawled;
  bool crawl_full_logged = false;
  /// Feeds we follow whose rendezvous we joined at the relays, and other
  /// followers of each met there (co-followers): when the author cannot be
  /// reached, its feed is pulled from them (it verifies the same: every
  /// write carries the author's signature).
  std::set<protocol::topic_name, std::less<>> feed_rendezvous;
  std::map<protocol::topic_name, key_set, std::less<>> co_followers;
  std::map<protocol::topic_name, key_set, std::less<>> pulling_from;
  /// Co-followers pulled from that were not connected at the last
  /// checks, with how many in a row (feed -> id -> misses).
  std::map<protocol::topic_name, std::map<protocol::public_key, std::uint32_t>, std::less<>> pull_missed;
  /// Co-followers passed over while pulled (out of reach): the next
  /// choices skip them until every other has been passed over too. Always
  /// a subset of co_followers (feed -> ids).
  std::map<protocol::topic_name, key_set, std::less<>> passed_over;
  /// Feed rendezvous whose joined/left events we asked the relays to stop
  /// sending (update_feed_watch).
  std::set<protocol::topic_name, std::less<>> unwatched_feeds;
  /// Peers met (kept connected) for a reason other than co-following:
  /// writers of shared topics we hold, aggregators. A co-follower passed
  /// over is released (unmeet) unless it is one of these.
  std::set<protocol::public_key> kept_met;
  /// Feeds whose author was not connected at the last check (every 5 s):
  /// a second such check in a row starts the pulls from co-followers.
  std::set<protocol::topic_name, std::less<>> author_away;
  /// Peers whose actor reports an established channel (peerstate_atom),
  /// and the feed topic id of each followed author (hashing it anew at
  /// every check cost more than the check; dropped on unfollow).
  std::set<protocol::public_key> linked;
  std::map<protocol::public_key, protocol::topic_name> feed_ids;
  std::uint64_t next_co_check_ms = 0;
  std::uint64_t next_rotate_ms = 0; // settings.co_follower_rotate
  /// The co-follower each pulled feed's last turn brought in: the next
  /// turn goes on from there (rotate_co_followers).
  std::map<protocol::topic_name, protocol::public_key, std::less<>> rotated_to;
  /// Started with an empty own feed (a new store for an old identity, e.g.
  /// after losing a device): the feed is fetched back from followers met
  /// at its rendezvous.
  bool restore_own_feed = false;
  /// Status gathers waiting for replies (gather()), by id: each delivers
  /// once, at its last reply or its deadline (due_atom).
  std::map<std::uint64_t, std::function<void()>> gathers;
  std::uint64_t next_gather = 1;
  static inline const char* name = "kith.node";
};

using node_pointer = node_actor::stateful_pointer<node_state>;

std::string me_text(node_pointer self) {
  return protocol::to_text(self->state.env->self.pub());
}

std::string follows_prefix(node_pointer self) {
  return me_text(self) + "/follows/";
}

topic_actor ensure_topic(node_pointer self, const std::string& id) {
  auto& st = self->state;
  if (auto it = st.topics.find(id); it != st.topics.end())
    return it->second;
  if (!st.env->store->topic(id))
    return {};
  auto t = spawn_topic(self->system(), st.env, id, self);
  st.topics.emplace(id, t);
  return t;
}

// --- sleeping peers (sync_settings::peer_sleep_after) ----------------------------

using sleeper_iter = std::map<conn_id, peer_sleep>::iterator;

sleeper_iter sleeper_of(node_state& st, const protocol::public_key& pk) {
  return std::find_if(st.asleep.begin(), st.asleep.end(), [&](const auto& e) { return e.second.pk == pk; });
}

/// A new peer actor takes up the sleeping connection `it` and handles
/// `frames` (decrypted here: the first that was not a keepalive, and on).
peer_actor wake_sleeper(node_pointer self, sleeper_iter it, std::vector<std::string> frames) {
  auto& st = self->state;
  const auto c = it->first;
  auto z = std::move(it->second);
  st.asleep.erase(it);
  auto p = spawn_peer(self->system(), st.env, z.pk, false, {}, self);
  self->monitor(p);
  st.peers.emplace(z.pk, p);
  st.routed.emplace(c, node_state::route{p, z.outbound});
  self->send(p, adopt_atom::value, c, std::move(z), std::move(frames));
  return p;
}

/// Ends a sleeping peer's connection, as its actor would have.
void drop_sleeper(node_pointer self, sleeper_iter it, const std::string& reason, bool tell_transport) {
  auto& st = self->state;
  const auto c = it->first;
  const auto id = protocol::to_text(it->second.pk);
  if (tell_transport)
    self->send(st.env->transport_for(c), close_atom::value, c, reason);
  st.linked.erase(it->second.pk);
  st.asleep.erase(it);
  st.env->logf(log_level::info, "peer " + id.substr(0, 12) + ": disconnected: " + reason);
  if (st.env->on_event)
    st.env->emit(json{{"type", "peer"}, {"id", id}, {"state", "disconnected"}});
}

/// Seals and sends `m` on a sleeping peer's channel; false if it cannot.
bool sleeper_send(node_pointer self, conn_id c, peer_sleep& z, const protocol::message& m) {
  auto& st = self->state;
  const auto bytes = protocol::encode_message(m);
  auto sealed = z.ch->seal(bytes);
  if (!sealed)
    return false;
  if (auto& k = st.env->settings.counters)
    k->count_sent(m, bytes.size());
  z.bytes_out += sealed->size();
  z.last_tx_ms = clock_ms(self->clock().now());
  self->send(st.env->transport_for(c), send_atom::value, c, std::move(*sealed));
  return true;
}

/// Bytes of a sleeping peer's connection: keepalives are answered here,
/// anything else wakes an actor.
void on_sleeper_bytes(node_pointer self, sleeper_iter it, const std::string& bytes) {
  auto& st = self->state;
  const auto c = it->first;
  auto& z = it->second;
  self->send(st.env->transport_for(c), consumed_atom::value, c, std::uint64_t{bytes.size()});
  z.bytes_in += bytes.size();
  z.last_rx_ms = clock_ms(self->clock().now());
  auto out = z.ch->receive(bytes);
  if (!out.to_send.empty()) {
    z.bytes_out += out.to_send.size();
    self->send(st.env->transport_for(c), send_atom::value, c, std::move(out.to_send));
  }
  for (std::size_t i = 0; i < out.frames.size(); ++i) {
    std::string why;
    auto m = protocol::decode_message(out.frames[i], st.env->settings.messages, &why);
    const auto* ka = m ? std::get_if<protocol::keepalive_msg>(&*m) : nullptr;
    if (!ka) {
      // The actor handles it (a malformed one too: it says why and closes).
      std::vector<std::string> rest(std::make_move_iterator(out.frames.begin() + static_cast<std::ptrdiff_t>(i)),
                                    std::make_move_iterator(out.frames.end()));
      auto p = wake_sleeper(self, it, std::move(rest));
      if (out.error) {
        self->send(st.env->transport_for(c), close_atom::value, c, *out.error);
        self->send(p, closed_atom::value, c, *out.error);
        st.routed.erase(c);
      }
      return;
    }
    if (!ka->reply && !sleeper_send(self, c, z, protocol::keepalive_msg{ka->nonce, true}))
      return drop_sleeper(self, it, "could not seal a keepalive: " + z.ch->close_reason(), true);
  }
  if (out.error)
    drop_sleeper(self, it, *out.error, true);
}

/// Keepalives and the peer timeout of sleeping connections, as their
/// actors' ticks would do.
void tick_sleepers(node_pointer self, std::uint64_t now) {
  auto& st = self->state;
  const auto& s = st.env->settings;
  for (auto it = st.asleep.begin(); it != st.asleep.end();) {
    auto next = std::next(it);
    auto& z = it->second;
    if (z.linger_until_ms != 0 && now >= z.linger_until_ms)
      drop_sleeper(self, it,
                   "kept " + std::to_string(linger_ms(*st.env) / 1000) + " s for the author's next absence, unused",
                   true);
    else if (now - z.last_rx_ms > static_cast<std::uint64_t>(s.peer_timeout.count()))
      drop_sleeper(self, it, "peer silent for " + std::to_string((now - z.last_rx_ms) / 1000) + " s", true);
    else if (now - z.last_tx_ms >= static_cast<std::uint64_t>(s.keepalive.count()) &&
             !sleeper_send(self, it->first, z, protocol::keepalive_msg{st.env->rng->next_u64(), false}))
      drop_sleeper(self, it, "could not seal a keepalive: " + z.ch->close_reason(), true);
    it = next;
  }
}

peer_actor ensure_peer(node_pointer self, const protocol::public_key& pk, bool followed,
                       const std::string& address) {
  auto& st = self->state;
  if (auto it = st.peers.find(pk); it != st.peers.end()) {
    if (followed)
      self->send(it->second, follow_atom::value, address);
    return it->second;
  }
  if (!st.asleep.empty()) {
    if (auto z = sleeper_of(st, pk); z != st.asleep.end()) {
      auto p = wake_sleeper(self, z, {});
      if (followed)
        self->send(p, follow_atom::value, address);
      return p;
    }
  }
  auto p = spawn_peer(self->system(), st.env, pk, followed, address, self);
  self->monitor(p);
  st.peers.emplace(pk, p);
  return p;
}

/// The followed identities, from the follow documents in our feed.
void load_follows(node_pointer self) {
  auto& st = self->state;
  auto rows = st.env->store->read_prefix(st.env->store->feed_topic_id(), follows_prefix(self));
  if (!rows) {
    st.env->logf(log_level::error, "cannot read follows: " + rows.err().message);
    return;
  }
  for (const auto& [key, view] : *rows) {
    if (view.siblings.empty())
      continue;
    const auto rest = key.substr(follows_prefix(self).size());
    const auto id = rest.substr(0, rest.find('\0'));
    if (auto pk = protocol::parse_id(id)) {
      auto a = st.env->addresses.find(id);
      st.follows[*pk] = a == st.env->addresses.end() ? std::string{} : a->second;
    }
  }
}

const char* kind_name(protocol::topic_kind k) {
  switch (k) {
    case protocol::topic_kind::feed:
      return "feed";
    case protocol::topic_kind::shared:
      return "shared";
    case protocol::topic_kind::open:
      return "open";
  }
  return "?";
}

/// A topic descriptor as JSON, to hand to the people who should join it.
json descriptor_json(const protocol::topic_descriptor& d) {
  json writers = json::array();
  for (const auto& w : d.writers)
    writers.push_back(protocol::to_text(w));
  return json{{"id", d.id},
              {"kind", kind_name(d.kind)},
              {"creator", protocol::to_text(d.creator)},
              {"name", d.name},
              {"writers", writers},
              {"nonce", std::to_string(d.nonce)},
              {"sig", protocol::to_hex(d.sig.view())}};
}

/// The inverse of descriptor_json; the result still has to pass
/// protocol::check_topic.
std::optional<protocol::topic_descriptor> descriptor_from_json(const json& j, std::string& why) {
  protocol::topic_descriptor d;
  auto text = [&](const char* k) -> std::optional<std::string> {
    if (!j.contains(k) || !j[k].is_string()) {
      why = std::string("descriptor field '") + k + "' must be a string";
      return std::nullopt;
    }
    return j[k].get<std::string>();
  };
  auto id = text("id"), kind = text("kind"), creator = text("creator"), name = text("name"),
       nonce = text("nonce"), sig = text("sig");
  if (!id || !kind || !creator || !name || !nonce || !sig)
    return std::nullopt;
  d.id = *id;
  d.name = *name;
  if (*kind == "shared")
    d.kind = protocol::topic_kind::shared;
  else if (*kind == "open")
    d.kind = protocol::topic_kind::open;
  else if (*kind == "feed")
    d.kind = protocol::topic_kind::feed;
  else
    return why = "unknown topic kind '" + *kind + "'", std::nullopt;
  auto pk = protocol::parse_id(*creator, &why);
  if (!pk)
    return std::nullopt;
  d.creator = *pk;
  if (j.contains("writers")) {
    if (!j["writers"].is_array())
      return why = "descriptor field 'writers' must be an array", std::nullopt;
    for (const auto& w : j["writers"]) {
      auto wk = w.is_string() ? protocol::parse_id(w.get<std::string>(), &why) : std::nullopt;
      if (!wk)
        return why = "bad writer: " + why, std::nullopt;
      d.writers.push_back(*wk);
    }
  }
  try {
    std::size_t used = 0;
    d.nonce = std::stoull(*nonce, &used);
    if (used != nonce->size())
      throw std::invalid_argument("trailing characters");
  } catch (const std::exception&) {
    return why = "descriptor field 'nonce' must be a decimal number", std::nullopt;
  }
  if (sig->size() != 2 * d.sig.bytes.size())
    return why = "descriptor field 'sig' must be 128 hex digits", std::nullopt;
  for (std::size_t i = 0; i < d.sig.bytes.size(); ++i) {
    auto nib = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = nib((*sig)[2 * i]), lo = nib((*sig)[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return why = "descriptor field 'sig' must be hex", std::nullopt;
    d.sig.bytes[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return d;
}

/// Registers a (checked) topic, spawns its actor and has connected peers
/// that may write it pull it.
topic_actor hold_topic(node_pointer self, const protocol::topic_descriptor& d, std::string& why) {
  auto& st = self->state;
  if (!protocol::check_topic(d, &why))
    return {};
  if (!st.env->store->topic(d.id)) {
    if (auto s = st.env->store->add_topic(d); !s) {
      why = s.err().message;
      return {};
    }
  }
  auto t = ensure_topic(self, d.id);
  if (d.kind != protocol::topic_kind::feed && st.env->relays_handle)
    self->send(st.env->relays_handle, meet_atom::value, d.id);
  if (d.kind != protocol::topic_kind::feed) {
    // Sleeping peers that may write it wake first (they pull it too).
    std::vector<conn_id> wake;
    for (const auto& [c, z] : st.asleep)
      if (d.kind == protocol::topic_kind::open || protocol::may_write(d, z.pk))
        wake.push_back(c);
    for (auto c : wake)
      wake_sleeper(self, st.asleep.find(c), {});
  }
  if (d.kind != protocol::topic_kind::feed)
    for (auto& [pk, p] : st.peers)
      if (d.kind == protocol::topic_kind::open || protocol::may_write(d, pk))
        self->send(p, pull_atom::value, d.id);
  return t;
}

/// Orders posts (documents with doc.time) newest first.
bool newest_first(const json& a, const json& b) {
  auto time_of = [](const json& d) {
    const auto& doc = d.value("doc", json::object());
    return doc.contains("time") && doc["time"].is_number() ? doc["time"].get<std::uint64_t>()
                                                            : std::uint64_t{0};
  };
  return time_of(a) > time_of(b);
}

std::string resolve_subject(node_pointer self, const std::string& s) {
  if (s.rfind("me/", 0) == 0)
    return me_text(self) + s.substr(2);
  return s;
}

constexpr std::chrono::seconds gather_timeout{10};

/// Runs and forgets the delivery of gather `id`, unless it ran already.
void finish_gather(node_pointer self, std::uint64_t id) {
  auto& gs = self->state.gathers;
  auto it = gs.find(id);
  if (it == gs.end())
    return;
  auto deliver = std::move(it->second);
  gs.erase(it);
  deliver();
}

/// Gathers one reply from each actor in `targets` and delivers f(results),
/// or f of the replies that came once gather_timeout has passed. One
/// deadline per gather, not one per target: CAF keeps a request's timeout
/// in its clock until it falls due, answered or not, and a node with
/// thousands of peers (or the simulator, asking every node at one virtual
/// instant) would hold one per peer.
template <class Result, class Handle, class F>
caf::result<api_result> gather(node_pointer self, std::vector<Handle> targets, F f) {
  auto rp = self->make_response_promise<api_result>();
  if (targets.empty()) {
    rp.deliver(f(std::vector<Result>{}));
    return rp;
  }
  struct progress {
    std::vector<Result> acc;
    std::size_t left = 0;
  };
  auto g = std::make_shared<progress>();
  g->left = targets.size();
  auto& st = self->state;
  const auto id = st.next_gather++;
  st.gathers.emplace(id, [g, rp, f]() mutable { rp.deliver(f(g->acc)); });
  self->delayed_send(self, gather_timeout, due_atom::value, id);
  for (auto& t : targets) {
    self->request(t, caf::infinite, status_atom::value)
        .then(
            [self, id, g](const Result& r) {
              g->acc.push_back(r);
              if (--g->left == 0)
                finish_gather(self, id);
            },
            [self, id, g](caf::error&) {
              if (--g->left == 0)
                finish_gather(self, id);
            });
  }
  return rp;
}

// --- co-followers -------------------------------------------------------------------

/// Feed rendezvous joined per node: a relay caps the topics one connection
/// joins (relay_limits::max_topics_per_connection, 64 by default), and
/// shared topics and the directory come first.
constexpr std::size_t max_feed_rendezvous = 32;
/// Co-followers remembered per feed, and pulled from at once when its
/// author is out of reach.
constexpr std::size_t max_co_followers = 8;
constexpr std::size_t max_pull_from_co_followers = 2;
/// How often followed authors out of reach are looked at.
constexpr std::uint64_t co_check_period_ms = 5'000;

void join_feed_rendezvous(node_pointer self, const protocol::public_key& author) {
  auto& st = self->state;
  if (!st.env->relays_handle || st.feed_rendezvous.size() >= max_feed_rendezvous)
    return;
  auto feed = protocol::feed_topic(author).id;
  if (st.feed_rendezvous.insert(feed).second)
    self->send(st.env->relays_handle, meet_atom::value, feed);
}

/// Watches `feed`'s rendezvous only while it may bring a co-follower we
/// would take: the list is not full, or holds some passed over (a
/// newcomer takes the place of one). With max_co_followers usable ones
/// known, the joined/left events of every other follower, each fanned
/// out by the relay to every watcher, would change nothing; unwatching
/// then took about a tenth of the messages off a churning network
/// (docs/simulation.md, session 20). The node stays a member, so others
/// still find it. A known co-follower that leaves is no longer reported:
/// it is found out of reach when pulled from and passed over, which
/// watches the rendezvous again (the relays list its members anew).
void update_feed_watch(node_pointer self, const std::string& feed) {
  auto& st = self->state;
  if (!st.env->relays_handle || st.feed_rendezvous.count(feed) == 0)
    return;
  const auto cf = st.co_followers.find(feed);
  const auto po = st.passed_over.find(feed);
  const bool full = cf != st.co_followers.end() && cf->second.size() >= max_co_followers &&
                    (po == st.passed_over.end() || po->second.empty());
  if (full ? !st.unwatched_feeds.insert(feed).second : st.unwatched_feeds.erase(feed) == 0)
    return;
  self->send(st.env->relays_handle, rwatch_atom::value, feed, !full);
}

/// Pulls `feed` from up to max_pull_from_co_followers of its co-followers,
/// skipping those passed over; when that leaves none to pull from, every
/// one is tried again (round by round, as they are found out of reach).
void pull_feed_from_co_followers(node_pointer self, const std::string& feed, const char* why,
                                 const protocol::public_key* just_passed_over = nullptr) {
  auto& st = self->state;
  auto& pulling = st.pulling_from[feed];
  const auto& met = st.co_followers[feed];
  auto& skipped = st.passed_over[feed];
  if (pulling.empty() && !skipped.empty() &&
      std::all_of(met.begin(), met.end(),
                  [&](const protocol::public_key& pk) { return skipped.count(pk) > 0; })) {
    skipped.clear();
    // Not the one just released (its actor is ending): the next check
    // may take it again.
    if (just_passed_over && met.count(*just_passed_over) > 0)
      skipped.insert(*just_passed_over);
  }
  for (const auto& pk : met) {
    if (pulling.size() >= max_pull_from_co_followers)
      break;
    if (skipped.count(pk) > 0 || !pulling.insert(pk).second)
      continue;
    st.env->logf(log_level::info, "feed " + feed.substr(0, 17) + "…: " + why +
                                      "; pulling it from co-follower " +
                                      protocol::to_text(pk).substr(0, 12));
    // Met (kept connected, as a writer of a shared topic would be) and
    // pulled from: after the pull stops, the connection stays for the
    // author's next absence.
    auto p = ensure_peer(self, pk, false, {});
    self->send(p, meet_atom::value);
    self->send(p, pull_atom::value, feed);
  }
  // Empty sets are as good as none (every reader looks them up with
  // find), and a map entry with a feed's id costs about 200 bytes.
  if (pulling.empty())
    st.pulling_from.erase(feed);
  if (skipped.empty())
    st.passed_over.erase(feed);
}

/// A co-follower met only to pull feeds from, and no longer pulled for
/// any: not a shared topic's writer or an aggregator kept anyway.
bool releasable_co_follower(const node_state& st, const protocol::public_key& pk) {
  return st.kept_met.count(pk) == 0 &&
         std::none_of(st.pulling_from.begin(), st.pulling_from.end(),
                      [&](const auto& entry) { return entry.second.count(pk) > 0; });
}

/// Stops pulling `feed` from co-followers: its author is connected again
/// and serves the feed itself (they get an unsubscribe; their
/// connections stay).
void stop_pulling_from_co_followers(node_pointer self, const std::string& feed) {
  auto& st = self->state;
  auto it = st.pulling_from.find(feed);
  if (it == st.pulling_from.end())
    return;
  if (it->second.empty()) {
    st.pulling_from.erase(it);
    return;
  }
  const auto pulled = std::move(it->second);
  st.pulling_from.erase(it);
  st.pull_missed.erase(feed);
  for (const auto& pk : pulled) {
    auto p = st.peers.find(pk);
    if (p == st.peers.end())
      continue;
    self->send(p->second, unpull_atom::value, feed);
    // The connection stays for the author's next absence, but is not
    // redialled once it closes: a node would otherwise keep dialling
    // every co-follower it ever pulled from.
    if (releasable_co_follower(st, pk))
      self->send(p->second, unmeet_atom::value, true);
  }
  st.env->logf(log_level::info, "feed " + feed.substr(0, 17) +
                                    "…: author back in reach; stopped pulling it from " +
                                    std::to_string(pulled.size()) + " co-follower(s)");
}

/// For each feed pulled from co-followers while others are known, one
/// turn of a round robin over the known ones in id order
/// (settings.co_follower_rotate): the next one not pulled after the last
/// one brought in comes in, and the pulled one that has waited longest
/// (the first pulled after that mark, round the list) makes way; a
/// pulled one no longer known goes before it. Every known co-follower,
/// passed-over ones included, comes back in turn; a pulled one never
/// stays for good while others wait.
void rotate_co_followers(node_pointer self) {
  auto& st = self->state;
  // Marks of feeds no longer pulled go.
  for (auto it = st.rotated_to.begin(); it != st.rotated_to.end();)
    it = st.pulling_from.count(it->first) != 0 ? std::next(it) : st.rotated_to.erase(it);
  // Gathered first: the changes below touch pulling_from.
  std::vector<std::pair<std::string, std::pair<protocol::public_key, protocol::public_key>>> turns;
  for (const auto& [feed, pulling] : st.pulling_from) {
    auto met = st.co_followers.find(feed);
    if (pulling.empty() || met == st.co_followers.end() || met->second.size() <= pulling.size())
      continue;
    const auto& known = met->second;
    auto mark = st.rotated_to.find(feed);
    const protocol::public_key from = mark != st.rotated_to.end() ? mark->second : *pulling.rbegin();
    std::optional<protocol::public_key> in, out;
    // One pulled but no longer known (it left the rendezvous and is still
    // reached) has no place in the round: it makes way first.
    for (const auto& pk : pulling)
      if (known.count(pk) == 0) {
        out = pk;
        break;
      }
    auto it = known.upper_bound(from);
    for (std::size_t k = 0; k < known.size() && !(in && out); ++k, ++it) {
      if (it == known.end())
        it = known.begin();
      auto& slot = pulling.count(*it) != 0 ? out : in;
      if (!slot)
        slot = *it;
    }
    if (!in)
      continue;
    turns.emplace_back(feed, std::make_pair(out.value_or(*pulling.begin()), *in));
  }
  for (const auto& [feed, turn] : turns) {
    const auto& [out, in] = turn;
    if (auto p = st.peers.find(out); p != st.peers.end())
      self->send(p->second, unpull_atom::value, feed);
    st.pulling_from[feed].erase(out);
    st.pull_missed[feed].erase(out);
    if (auto p = st.peers.find(out); p != st.peers.end() && releasable_co_follower(st, out))
      self->send(p->second, unmeet_atom::value, true);
    if (auto po = st.passed_over.find(feed); po != st.passed_over.end()) {
      po->second.erase(in);
      if (po->second.empty())
        st.passed_over.erase(po);
    }
    st.pulling_from[feed].insert(in);
    st.rotated_to.insert_or_assign(feed, in);
    st.env->logf(log_level::info, "feed " + feed.substr(0, 17) + "…: pulling it from co-follower " +
                                      protocol::to_text(in).substr(0, 12) + " in place of " +
                                      protocol::to_text(out).substr(0, 12) + " (its turn)");
    auto p = ensure_peer(self, in, false, {});
    self->send(p, meet_atom::value);
    self->send(p, pull_atom::value, feed);
  }
}

/// A co-follower pulled from was out of reach at two checks in a row: stop
/// pulling from it, pass it over, and pull from another. Without this, a
/// node would wait on the first co-followers it met even when they are
/// gone for good.
void pass_over_co_follower(node_pointer self, const std::string& feed,
                           const protocol::public_key& pk) {
  auto& st = self->state;
  if (auto p = st.peers.find(pk); p != st.peers.end())
    self->send(p->second, unpull_atom::value, feed);
  st.pulling_from[feed].erase(pk);
  st.pull_missed[feed].erase(pk);
  if (st.co_followers[feed].count(pk) > 0)
    st.passed_over[feed].insert(pk);
  st.env->logf(log_level::info, "feed " + feed.substr(0, 17) + "…: co-follower " +
                                    protocol::to_text(pk).substr(0, 12) +
                                    " out of reach; passed over");
  // Stop keeping it connected (dialling it on every backoff).
  if (auto p = st.peers.find(pk); p != st.peers.end() && releasable_co_follower(st, pk))
    self->send(p->second, unmeet_atom::value, false);
  pull_feed_from_co_followers(self, feed, "a co-follower was out of reach", &pk);
}

/// A pulled co-follower's state at a check: connected, or missed once
/// more (settings.co_follower_pass_over_checks in a row pass it over).
void on_pulled_status(node_pointer self, const std::string& feed, const protocol::public_key& pk,
                      bool connected) {
  auto& st = self->state;
  auto pf = st.pulling_from.find(feed);
  if (pf == st.pulling_from.end() || pf->second.count(pk) == 0)
    return; // no longer pulled (the author came back, or already passed over)
  auto& missed = st.pull_missed[feed];
  if (connected) {
    missed.erase(pk);
    return;
  }
  if (++missed[pk] < std::max<std::uint32_t>(1, st.env->settings.co_follower_pass_over_checks))
    return;
  // Passed over only while no other co-follower pulled for this feed may
  // be serving it (each missed at its last check too): one that serves is
  // enough, and every co-follower pulled from becomes a member of the
  // feed at its node, holding its delete records back until retired.
  const bool other_may_serve = std::any_of(pf->second.begin(), pf->second.end(), [&](const auto& other) {
    return other != pk && missed.count(other) == 0;
  });
  if (!other_may_serve)
    pass_over_co_follower(self, feed, pk);
}

/// Checks each co-follower pulled from: connected, or missed once more.
/// Runs from the node's 5 s check only, so two misses are 5 s apart.
void check_pulled_co_followers(node_pointer self) {
  auto& st = self->state;
  // Gathered first: a miss may pass a co-follower over, which changes
  // pulling_from.
  std::vector<std::tuple<std::string, protocol::public_key, bool>> seen;
  for (const auto& [feed, pulling] : st.pulling_from)
    for (const auto& pk : pulling)
      if (st.peers.count(pk) > 0) // else its actor ended: the down handler dropped it
        seen.emplace_back(feed, pk, st.linked.count(pk) > 0);
  for (const auto& [feed, pk, connected] : seen)
    on_pulled_status(self, feed, pk, connected);
}

const std::string& feed_id_of(node_state& st, const protocol::public_key& author) {
  auto& id = st.feed_ids[author];
  if (id.empty())
    id = protocol::feed_topic(author).id;
  return id;
}

/// For each followed author: while its peer actor is out of reach (not
/// connected at two checks in a row), pulls the author's feed from up to
/// max_pull_from_co_followers co-followers; once it is connected again,
/// stops those pulls. Also pulls our own feed
/// from its followers when restoring it.
void pull_from_co_followers(node_pointer self) {
  auto& st = self->state;
  if (st.restore_own_feed)
    pull_feed_from_co_followers(self, st.env->store->feed_topic_id(),
                                "this node's own feed is being restored");
  // Gathered first: pulling and stopping change the maps looked at.
  std::vector<std::pair<std::string, bool>> seen;
  for (const auto& [author, addr] : st.follows) {
    const auto& feed = feed_id_of(st, author);
    if (st.co_followers.count(feed) == 0 || st.peers.count(author) == 0)
      continue; // no co-follower known, or the author's actor ended (unfollowed)
    seen.emplace_back(feed, st.linked.count(author) > 0);
  }
  for (const auto& [feed, connected] : seen) {
    // Out of reach: not connected at two checks in a row (5 s apart),
    // whatever the peer actor is doing meanwhile (dialling, backing off,
    // flapping). One check is not enough: at a node's start, or right
    // after a connection race, the author is about to be reached and
    // every feed would be pulled from co-followers.
    if (connected) {
      st.author_away.erase(feed);
      stop_pulling_from_co_followers(self, feed);
    } else if (!st.author_away.insert(feed).second) {
      pull_feed_from_co_followers(self, feed, "author out of reach");
    }
  }
}

// --- aggregators -------------------------------------------------------------------

std::string known_address(const node_env& env, const protocol::public_key& pk) {
  auto a = env.addresses.find(protocol::to_text(pk));
  return a == env.addresses.end() ? std::string{} : a->second;
}

/// The peer actor of an aggregator, kept connected (like a member of a
/// shared topic: no feed is pulled from it).
peer_actor aggregator_peer(node_pointer self, const protocol::public_key& pk) {
  self->state.kept_met.insert(pk);
  auto p = ensure_peer(self, pk, false, known_address(*self->state.env, pk));
  self->send(p, meet_atom::value);
  return p;
}

struct agg_answer {
  std::string id;
  protocol::query_result_msg result;
};

/// Sends q to every configured aggregator and calls f(answers) once all
/// answered, failed or timed out.
template <class F>
caf::result<api_result> ask_aggregators(node_pointer self, const protocol::query_msg& q, F f) {
  auto rp = self->make_response_promise<api_result>();
  const auto& aggs = self->state.env->aggregators;
  if (aggs.empty()) {
    rp.deliver(f(std::vector<agg_answer>{}));
    return rp;
  }
  auto acc = std::make_shared<std::vector<agg_answer>>();
  auto left = std::make_shared<std::size_t>(aggs.size());
  for (const auto& pk : aggs) {
    const auto id = protocol::to_text(pk);
    self->request(aggregator_peer(self, pk), std::chrono::seconds(8), query_atom::value, q)
        .then(
            [=](const protocol::query_result_msg& r) mutable {
              acc->push_back({id, r});
              if (--*left == 0)
                rp.deliver(f(*acc));
            },
            [=](caf::error& e) mutable {
              acc->push_back({id, protocol::query_result_msg{
                                      0, {}, {}, "no answer: " + caf::to_string(e)}});
              if (--*left == 0)
                rp.deliver(f(*acc));
            });
  }
  return rp;
}

/// Adds the verified posts of every answer that are not in `posts` yet
/// (by subject), each marked with its aggregator, and says per
/// aggregator what came back. `keep` filters and annotates a post.
template <class Keep>
json merge_answers(json posts, const std::vector<agg_answer>& answers, json& sources, Keep keep) {
  std::set<std::string> seen;
  for (const auto& d : posts)
    seen.insert(d.value("subject", std::string{}));
  for (const auto& a : answers) {
    std::vector<std::string> refusals;
    auto verified = verified_posts(a.result, "aggregator:" + a.id, refusals);
    json src{{"id", a.id}, {"items", a.result.items.size()}, {"verified", verified.size()}};
    if (!a.result.refused.empty())
      src["error"] = a.result.refused;
    if (!refusals.empty())
      src["refused_items"] = refusals;
    sources.push_back(std::move(src));
    for (auto& d : verified)
      if (keep(d) && seen.insert(d.value("subject", std::string{})).second)
        posts.push_back(std::move(d));
  }
  return posts;
}

/// {"posts": the newest `limit` posts, "sources": what each aggregator
/// answered (left out when none was asked)}.
api_result posts_result(json posts, json sources, std::size_t limit) {
  std::stable_sort(posts.begin(), posts.end(), newest_first);
  if (posts.size() > limit)
    posts.erase(posts.begin() + static_cast<std::ptrdiff_t>(limit), posts.end());
  json out{{"posts", std::move(posts)}};
  if (!sources.empty())
    out["sources"] = std::move(sources);
  return json_result(200, out);
}

std::optional<protocol::query_kind> query_kind_of(const std::string& k) {
  using protocol::query_kind;
  if (k == "mentions")
    return query_kind::mentions;
  if (k == "thread")
    return query_kind::thread;
  if (k == "tag")
    return query_kind::tag;
  if (k == "trending")
    return query_kind::trending;
  return std::nullopt;
}

json tags_json(const std::vector<protocol::tag_count_msg>& tags) {
  json out = json::array();
  for (const auto& t : tags)
    out.push_back(json{{"tag", t.tag}, {"count", t.count}});
  return out;
}

/// The identity `id` names, when this node may follow it; else the
/// API's refusal.
std::variant<protocol::public_key, api_result> followable(node_pointer self, const std::string& id) {
  std::string why;
  auto pk = protocol::parse_id(id, &why);
  if (!pk)
    return error_result(400, "invalid", "not an identity: " + why);
  if (*pk == self->state.env->self.pub())
    return error_result(400, "invalid", "a node does not follow itself");
  return *pk;
}

/// Starts following `pk` (text form `id`): remembers it and its address,
/// spawns or tells its peer actor, joins its feed's rendezvous. Returns
/// the follow document to write in our feed ({"subject", "doc"}).
json start_following(node_pointer self, const protocol::public_key& pk, const std::string& id,
                     const std::string& address, std::uint64_t time_ms) {
  auto& st = self->state;
  st.follows[pk] = address;
  if (!address.empty() && st.env->remember_address)
    st.env->remember_address(id, address);
  ensure_peer(self, pk, true, address);
  join_feed_rendezvous(self, pk);
  return json{{"subject", follows_prefix(self) + id}, {"doc", json{{"id", id}, {"since", time_ms}}}};
}

caf::result<api_result> run_api(node_pointer self, const std::string& op, const json& p,
                                const std::string& body, std::uint64_t time_ms) {
  auto& st = self->state;
  auto& store = *st.env->store;
  storage::documents docs(store);
  const auto limit = static_cast<std::size_t>(p.value("limit", 20));

  if (op == "status") {
    json out{{"id", me_text(self)},
             {"replica", store.self_id().value()},
             {"topics", st.topics.size()},
             {"peers", st.peers.size()},
             {"follows", st.follows.size()},
             {"agent", st.env->agent}};
    if (st.env->aggregate)
      out["aggregator"] = json{{"following", st.crawled.size()},
                               {"max_follows", st.env->aggregate_max_follows}};
    if (!st.env->aggregators.empty()) {
      json aggs = json::array();
      for (const auto& pk : st.env->aggregators)
        aggs.push_back(protocol::to_text(pk));
      out["aggregators"] = aggs;
    }
    return json_result(200, out);
  }
  if (op == "peers") {
    std::vector<peer_actor> ps;
    for (auto& [pk, p] : st.peers)
      ps.push_back(p);
    std::vector<peer_info> sleeping; // as their actors would say, and asleep
    for (const auto& [c, z] : st.asleep) {
      peer_info i;
      i.id = protocol::to_text(z.pk);
      i.state = "connected";
      i.address = z.address;
      i.bytes_in = z.bytes_in;
      i.bytes_out = z.bytes_out;
      i.entries_received = z.entries_received;
      i.read_pauses = z.read_pauses;
      i.handshake = z.ch->resumed() ? "resumed" : "full";
      i.asleep = true;
      sleeping.push_back(std::move(i));
    }
    return gather<peer_info>(self, ps, [sleeping](std::vector<peer_info> infos) {
      infos.insert(infos.end(), sleeping.begin(), sleeping.end());
      json arr = json::array();
      for (const auto& i : infos)
        arr.push_back(json{{"id", i.id},
                           {"asleep", i.asleep},
                           {"followed", i.followed},
                           {"state", i.state},
                           {"address", i.address},
                           {"pulling", i.pulling},
                           {"serving", i.serving},
                           {"bytes_in", i.bytes_in},
                           {"bytes_out", i.bytes_out},
                           {"entries_received", i.entries_received},
                           {"read_pauses", i.read_pauses},
                           {"handshake", i.handshake},
                           {"last_error", i.last_error}});
      std::sort(arr.begin(), arr.end(),
                [](const json& a, const json& b) { return a["id"] < b["id"]; });
      return json_result(200, json{{"peers", arr}});
    });
  }
  if (op == "relays") {
    if (!st.env->relays_handle)
      return json_result(200, json{{"relays", json::array()}});
    auto rp = self->make_response_promise<api_result>();
    self->request(st.env->relays_handle, std::chrono::seconds(10), status_atom::value)
        .then(
            [rp](const std::vector<relay_info>& infos) mutable {
              json arr = json::array();
              for (const auto& i : infos)
                arr.push_back(json{{"address", i.address},
                                   {"id", i.id},
                                   {"state", i.state},
                                   {"announced", i.announced},
                                   {"lookups", i.lookups},
                                   {"circuits_open", i.circuits_open},
                                   {"topics_joined", i.topics_joined},
                                   {"topics_watched", i.topics_watched},
                                   {"last_error", i.last_error}});
              rp.deliver(json_result(200, json{{"relays", arr}}));
            },
            [rp](caf::error&) mutable {
              rp.deliver(error_result(503, "not_ready", "the relays actor did not answer"));
            });
    return rp;
  }
  if (op == "topics") {
    std::vector<topic_actor> ts;
    for (auto& [id, t] : st.topics)
      ts.push_back(t);
    return gather<topic_info>(self, ts, [](const std::vector<topic_info>& infos) {
      json arr = json::array();
      for (const auto& i : infos)
        arr.push_back(json{{"id", i.id},
                           {"name", i.name},
                           {"writes", i.dots},
                           {"subscribers", i.subscribers},
                           {"members", i.members},
                           {"kept_headers", i.kept_headers},
                           {"key_actors", i.key_actors},
                           {"key_activations", i.key_activations}});
      std::sort(arr.begin(), arr.end(),
                [](const json& a, const json& b) { return a["id"] < b["id"]; });
      return json_result(200, json{{"topics", arr}});
    });
  }
  if (op == "follow" && p.contains("follows")) {
    // A list of follows: their documents go into our feed as one signed
    // batch (one signature, one stored batch at every replica of the
    // feed) instead of one each. Checked whole before anything is done.
    const auto& list = p["follows"];
    if (!list.is_array() || list.empty() ||
        list.size() > storage::documents::max_documents_per_batch)
      return error_result(400, "invalid",
                          "field 'follows' must be an array of 1 to " +
                              std::to_string(storage::documents::max_documents_per_batch) +
                              " {\"id\", \"address\"?} objects");
    std::vector<std::tuple<protocol::public_key, std::string, std::string>> wanted;
    std::set<protocol::public_key> seen;
    for (const auto& f : list) {
      if (!f.is_object() || !f.contains("id") || !f["id"].is_string() ||
          (f.contains("address") && !f["address"].is_string()))
        return error_result(400, "invalid", "each follow is {\"id\": string, \"address\"?: string}");
      const auto id = f["id"].get<std::string>();
      auto pk = followable(self, id);
      if (auto* refused = std::get_if<api_result>(&pk))
        return *refused;
      const auto& key = std::get<protocol::public_key>(pk);
      if (!seen.insert(key).second)
        return error_result(400, "invalid", id + " is listed twice");
      wanted.emplace_back(key, id, f.value("address", std::string{}));
    }
    auto feed = ensure_topic(self, store.feed_topic_id());
    json docs = json::array();
    for (const auto& [pk, id, address] : wanted)
      docs.push_back(start_following(self, pk, id, address, time_ms));
    return self->delegate(feed, doc_atom::value, std::string("put_many"),
                          json{{"docs", std::move(docs)}}.dump(), time_ms);
  }
  if (op == "follow" || op == "unfollow") {
    const auto id = p.value("id", std::string{});
    auto target = followable(self, id);
    if (auto* refused = std::get_if<api_result>(&target))
      return *refused;
    const auto* pk = &std::get<protocol::public_key>(target);
    const auto address = p.value("address", std::string{});
    const std::string subject = follows_prefix(self) + id;
    auto feed = ensure_topic(self, store.feed_topic_id());
    json params;
    std::string doc_op;
    if (op == "follow") {
      doc_op = "put";
      params = start_following(self, *pk, id, address, time_ms);
    } else {
      st.follows.erase(*pk);
      if (auto it = st.peers.find(*pk); it != st.peers.end())
        self->send(it->second, unfollow_atom::value);
      const auto feed_id = protocol::feed_topic(*pk).id;
      stop_pulling_from_co_followers(self, feed_id);
      st.author_away.erase(feed_id);
      st.feed_ids.erase(*pk); // kept for current follows only
      doc_op = "del";
      params = json{{"subject", subject}};
    }
    return self->delegate(feed, doc_atom::value, doc_op, params.dump(), time_ms);
  }
  if (op == "put" || op == "del") {
    if (!p.contains("subject") || !p["subject"].is_string())
      return error_result(400, "invalid", "field 'subject' must be a string");
    json q = p;
    q["subject"] = resolve_subject(self, p["subject"].get<std::string>());
    if (auto s = storage::check_subject(q["subject"]); !s)
      return storage_error(s.err());
    std::string topic = p.value("topic", std::string{});
    if (topic.empty()) {
      const auto subj = q["subject"].get<std::string>();
      topic = protocol::feed_topic(*protocol::parse_id(subj.substr(0, subj.find('/')))).id;
    }
    auto t = ensure_topic(self, topic);
    if (!t)
      return error_result(404, "not_found", "this node does not hold topic " + topic);
    return self->delegate(t, doc_atom::value, op, q.dump(), time_ms);
  }
  if (op == "post") {
    auto t = ensure_topic(self, store.feed_topic_id());
    return self->delegate(t, doc_atom::value, op, p.dump(), time_ms);
  }
  if (op == "get" && !p.value("predicate", std::string{}).empty()) {
    // One property: served by its key actor (activated on first use).
    const auto subject = resolve_subject(self, p.value("subject", std::string{}));
    const auto predicate = p["predicate"].get<std::string>();
    if (auto s = storage::check_subject(subject); !s)
      return storage_error(s.err());
    std::string topic = p.value("topic", std::string{});
    if (topic.empty())
      topic = protocol::feed_topic(*protocol::parse_id(subject.substr(0, subject.find('/')))).id;
    auto t = ensure_topic(self, topic);
    if (!t)
      return error_result(404, "not_found", "this node does not hold topic " + topic);
    auto rp = self->make_response_promise<api_result>();
    self->request(t, std::chrono::seconds(10), kget_atom::value,
                  subject + std::string(1, '\0') + predicate)
        .then(
            [=](key_state& ks) mutable {
              if (!ks.error.empty()) {
                rp.deliver(error_result(400, "invalid", ks.error));
                return;
              }
              if (ks.view.siblings.empty()) {
                rp.deliver(error_result(404, "not_found",
                                        "no property " + predicate + " of " + subject));
                return;
              }
              auto& sibs = ks.view.siblings;
              std::sort(sibs.begin(), sibs.end(), [](const auto& a, const auto& b) {
                return a.time_ms != b.time_ms ? a.time_ms > b.time_ms : b.d < a.d;
              });
              json values = json::array();
              for (const auto& sv : sibs) {
                auto j = json::parse(sv.value, nullptr, false);
                values.push_back(j.is_discarded() ? json(sv.value) : j);
              }
              rp.deliver(json_result(200, json{{"subject", subject},
                                               {"predicate", predicate},
                                               {"topic", topic},
                                               {"value", values[0]},
                                               {"siblings", values},
                                               {"context", storage::context_to_json(ks.view.context)}}));
            },
            [=](caf::error& e) mutable {
              rp.deliver(error_result(500, "internal", "key read failed: " + caf::to_string(e)));
            });
    return rp;
  }
  if (op == "get") {
    const auto subject = resolve_subject(self, p.value("subject", std::string{}));
    auto r = docs.get(subject, p.value("topic", std::string{}));
    if (!r)
      return storage_error(r.err());
    if (r->is_null())
      return error_result(404, "not_found", "no document " + subject);
    return json_result(200, *r);
  }
  if (op == "feed") {
    std::vector<protocol::public_key> authors;
    if (p.contains("author") && p["author"].is_string() && !p["author"].get<std::string>().empty()) {
      std::string why;
      auto a = p["author"].get<std::string>();
      auto pk = protocol::parse_id(a == "me" ? me_text(self) : a, &why);
      if (!pk)
        return error_result(400, "invalid", "not an identity: " + why);
      authors.push_back(*pk);
    } else {
      authors.push_back(st.env->self.pub());
      for (const auto& [pk, addr] : st.follows)
        authors.push_back(pk);
    }
    const auto before = p.value("before", std::uint64_t{0});
    const auto cursor = p.value("cursor", std::string{});
    json all = json::array();
    for (const auto& a : authors) {
      auto r = docs.feed(a, limit, before, cursor);
      if (!r)
        return storage_error(r.err());
      for (auto& d : *r)
        all.push_back(std::move(d));
    }
    // The order of the index rows, across authors: newest first, then by
    // dot, so that a cursor continues every author's page at the same place.
    auto place = [](const json& d) {
      auto c = storage::parse_cursor(d.value("cursor", std::string{}));
      return c ? std::make_tuple(~c->first, c->second.id.value(), c->second.n.value())
               : std::make_tuple(~std::uint64_t{0}, std::uint64_t{0}, std::uint64_t{0});
    };
    std::stable_sort(all.begin(), all.end(),
                     [&](const json& a, const json& b) { return place(a) < place(b); });
    if (all.size() > limit)
      all.erase(all.begin() + static_cast<std::ptrdiff_t>(limit), all.end());
    json out{{"posts", all}};
    if (!all.empty() && all.size() == limit)
      out["next"] = all.back().value("cursor", std::string{});
    return json_result(200, out);
  }
  if (op == "thread") {
    const auto subject = resolve_subject(self, p.value("subject", std::string{}));
    auto r = docs.thread(subject, std::min<std::size_t>(limit == 20 ? 200 : limit, 1000));
    if (!r)
      return storage_error(r.err());
    protocol::query_msg q{0, protocol::query_kind::thread, subject, 100, 0, 0};
    return ask_aggregators(self, q, [local = std::move(*r), subject](
                                        const std::vector<agg_answer>& answers) {
      json t = local;
      json sources = json::array();
      json root = t["root"];
      json replies = merge_answers(t["replies"], answers, sources, [&](json& d) {
        if (d.value("subject", std::string{}) != subject)
          return true;
        if (root.is_null())
          root = d; // the root came only from an aggregator
        return false;
      });
      std::stable_sort(replies.begin(), replies.end(),
                       [](const json& a, const json& b) { return newest_first(b, a); });
      if (root.is_null() && replies.empty())
        return error_result(404, "not_found", "no status " + subject);
      t["root"] = root;
      t["replies"] = replies;
      if (!sources.empty())
        t["sources"] = sources;
      return json_result(200, t);
    });
  }
  if (op == "notifications") {
    // Mentions of me and replies to my statuses, newest first, each once.
    auto m = docs.mentioning(st.env->self.pub(), limit);
    if (!m)
      return storage_error(m.err());
    auto r = docs.replies_to_author(st.env->self.pub(), limit);
    if (!r)
      return storage_error(r.err());
    json all = json::array();
    std::set<std::string> seen;
    const auto me = me_text(self);
    for (auto* list : {&*m, &*r})
      for (auto& d : *list) {
        const auto sub = d.value("subject", std::string{});
        if (sub.rfind(me + "/", 0) == 0 || !seen.insert(sub).second)
          continue; // my own posts are not notifications
        d["reason"] = list == &*m ? "mention" : "reply";
        all.push_back(std::move(d));
      }
    // Mentions and replies by people outside our follows come from the
    // aggregators, verified.
    protocol::query_msg q{0, protocol::query_kind::mentions, me, 50, 0, 0};
    return ask_aggregators(self, q, [all = std::move(all), me, limit](
                                        const std::vector<agg_answer>& answers) {
      json sources = json::array();
      json posts = merge_answers(all, answers, sources, [&](json& d) {
        if (d.value("subject", std::string{}).rfind(me + "/", 0) == 0)
          return false;
        const auto& doc = d["doc"];
        const bool mentions_me = doc.contains("mentions") && doc["mentions"].is_array() &&
                                 std::find(doc["mentions"].begin(), doc["mentions"].end(),
                                           json(me)) != doc["mentions"].end();
        const bool replies_to_me = doc.contains("reply_to") && doc["reply_to"].is_string() &&
                                   doc["reply_to"].get<std::string>().rfind(me + "/", 0) == 0;
        if (!mentions_me && !replies_to_me)
          return false; // an aggregator's answer must be about us
        d["reason"] = mentions_me ? "mention" : "reply";
        return true;
      });
      return posts_result(std::move(posts), std::move(sources), limit);
    });
  }
  if (op == "tag") {
    const auto tag = p.value("tag", std::string{});
    auto r = docs.tagged(tag, limit);
    if (!r)
      return storage_error(r.err());
    protocol::query_msg q{0, protocol::query_kind::tag, tag,
                          static_cast<std::uint32_t>(std::min<std::size_t>(limit, 100)), 0, 0};
    return ask_aggregators(self, q, [local = std::move(*r), tag, limit](
                                        const std::vector<agg_answer>& answers) {
      json sources = json::array();
      json posts = merge_answers(local, answers, sources, [&](json& d) {
        const auto& tags = d["doc"].value("tags", json::array());
        return std::find(tags.begin(), tags.end(), json(tag)) != tags.end();
      });
      return posts_result(std::move(posts), std::move(sources), limit);
    });
  }
  if (op == "trending") {
    // Tags of the posts this node holds over the window, and each
    // aggregator's counts over the same window (its claim: counts are
    // not signed).
    const auto window = p.value("window_ms", std::uint64_t{24} * 3600 * 1000);
    const auto since = time_ms > window ? time_ms - window : 0;
    auto local = store.trending(since, std::numeric_limits<std::uint64_t>::max(),
                                std::min<std::size_t>(limit, 100));
    if (!local)
      return storage_error(local.err());
    json mine = json::array();
    for (const auto& t : *local)
      mine.push_back(json{{"tag", t.tag}, {"count", t.count}});
    protocol::query_msg q{0, protocol::query_kind::trending, "",
                          static_cast<std::uint32_t>(std::min<std::size_t>(limit, 100)), since, 0};
    return ask_aggregators(self, q, [mine, since](const std::vector<agg_answer>& answers) {
      json sources = json::array();
      for (const auto& a : answers) {
        json src{{"id", a.id}, {"tags", tags_json(a.result.tags)}};
        if (!a.result.refused.empty())
          src["error"] = a.result.refused;
        sources.push_back(std::move(src));
      }
      return json_result(200, json{{"since_ms", since}, {"tags", mine}, {"sources", sources}});
    });
  }
  if (op == "query") {
    // One query, asked of one aggregator (or of this node's own store when
    // no aggregator is named), with every item verified.
    auto kind = query_kind_of(p.value("kind", std::string{}));
    if (!kind)
      return error_result(400, "invalid", "kind must be mentions, thread, tag or trending");
    protocol::query_msg q{0, *kind, p.value("arg", std::string{}),
                          static_cast<std::uint32_t>(std::min<std::size_t>(limit, 100)),
                          p.value("since_ms", std::uint64_t{0}), p.value("until_ms", std::uint64_t{0})};
    if (*kind == protocol::query_kind::mentions && q.arg == "me")
      q.arg = me_text(self);
    auto shape = [](const protocol::query_result_msg& r, const std::string& source) {
      std::vector<std::string> refusals;
      json out{{"source", source},
               {"posts", verified_posts(r, source, refusals)},
               {"tags", tags_json(r.tags)},
               {"items", r.items.size()}};
      if (!r.refused.empty())
        out["error"] = r.refused;
      if (!refusals.empty())
        out["refused_items"] = refusals;
      return out;
    };
    const auto agg = p.value("aggregator", std::string{});
    if (agg.empty())
      return json_result(200, shape(answer_query(*st.env, q), "local"));
    std::string why;
    auto pk = protocol::parse_id(agg, &why);
    if (!pk)
      return error_result(400, "invalid", "aggregator: not an identity: " + why);
    auto rp = self->make_response_promise<api_result>();
    self->request(aggregator_peer(self, *pk), std::chrono::seconds(8), query_atom::value, q)
        .then(
            [=](const protocol::query_result_msg& r) mutable {
              rp.deliver(json_result(200, shape(r, "aggregator:" + agg)));
            },
            [=](caf::error& e) mutable {
              rp.deliver(error_result(504, "unavailable",
                                      "no answer from aggregator " + agg + ": " + caf::to_string(e)));
            });
    return rp;
  }
  if (op == "topic_create") {
    std::vector<protocol::public_key> writers;
    for (const auto& w : p.value("writers", json::array())) {
      std::string why;
      auto pk = w.is_string() ? protocol::parse_id(w.get<std::string>(), &why) : std::nullopt;
      if (!pk)
        return error_result(400, "invalid", "writers must be identities: " + why);
      if (*pk != st.env->self.pub())
        writers.push_back(*pk);
    }
    auto d = protocol::make_topic(st.env->self, protocol::topic_kind::shared,
                                  p.at("name").get<std::string>(), std::move(writers),
                                  st.env->rng->next_u64());
    std::string why;
    if (!hold_topic(self, d, why))
      return error_result(400, "invalid", "cannot create the topic: " + why);
    return json_result(200, json{{"topic", d.id}, {"descriptor", descriptor_json(d)}});
  }
  if (op == "topic_join") {
    std::string why;
    auto d = descriptor_from_json(p.at("descriptor"), why);
    if (!d)
      return error_result(400, "invalid", "bad topic descriptor: " + why);
    if (!hold_topic(self, *d, why))
      return error_result(400, "invalid", "cannot join topic " + d->id + ": " + why);
    return json_result(200, json{{"topic", d->id}, {"descriptor", descriptor_json(*d)}});
  }
  if (op == "topic_get") {
    const auto id = p.value("topic", std::string{});
    auto d = store.topic(id == "me" ? store.feed_topic_id() : id);
    if (!d)
      return error_result(404, "not_found", "this node does not hold topic " + id);
    return json_result(200, json{{"topic", d->id}, {"descriptor", descriptor_json(*d)}});
  }
  if (op == "bundle_export") {
    auto id = p.value("topic", std::string{});
    if (id == "me")
      id = store.feed_topic_id();
    auto t = ensure_topic(self, id);
    if (!t)
      return error_result(404, "not_found", "this node does not hold topic " + id);
    return self->delegate(t, bundle_atom::value);
  }
  if (op == "bundle_import") {
    std::string why;
    auto b = protocol::read_bundle(body, protocol::bundle_limits{}, &why);
    if (!b)
      return error_result(400, "invalid", "bundle refused: " + why);
    auto t = hold_topic(self, b->topic, why);
    if (!t)
      return error_result(400, "invalid", "bundle's topic refused: " + why);
    return self->delegate(t, bundle_atom::value,
                          std::shared_ptr<const protocol::bundle>(
                              std::make_shared<protocol::bundle>(std::move(*b))));
  }
  return error_result(404, "not_found", "unknown operation '" + op + "'");
}

node_actor::behavior_type node_impl(node_pointer self, std::shared_ptr<node_env> env) {
  auto& st = self->state;
  st.env = std::move(env);
  // Before any peer or topic actor exists: they read ticks from env. The
  // grid starts now, with the first tick sent at the end of this setup.
  st.env->ticks = std::make_shared<tick_board>(clock_ms(self->clock().now()),
                                               static_cast<std::uint64_t>(st.env->settings.tick.count()));
  if (!st.env->relays.empty()) {
    // Before any peer actor exists: they read relays_handle from env.
    st.env->relays_handle = spawn_relays(self->system(), st.env, self);
    self->link_to(st.env->relays_handle);
  }
  for (const auto& t : st.env->store->topics()) {
    ensure_topic(self, t);
    // Meet the other replicas of shared topics at the relays (hashed names).
    auto d = st.env->store->topic(t);
    if (st.env->relays_handle && d && d->kind != protocol::topic_kind::feed)
      self->send(st.env->relays_handle, meet_atom::value, t);
  }
  load_follows(self);
  for (const auto& [pk, addr] : st.follows)
    ensure_peer(self, pk, true, addr);
  // The public directory: nodes join it so aggregators find them; an
  // aggregator also watches it (the relays actor decides which).
  if (st.env->relays_handle && (st.env->directory || st.env->aggregate))
    self->send(st.env->relays_handle, meet_atom::value, std::string(directory_topic));
  for (const auto& pk : st.env->aggregators)
    if (pk != st.env->self.pub())
      aggregator_peer(self, pk);
  for (const auto& [pk, addr] : st.follows)
    join_feed_rendezvous(self, pk);
  if (st.env->restore_own_feed && st.env->relays_handle) {
    st.restore_own_feed = true;
    st.env->logf(log_level::info,
                 "a new store for an existing identity: asking its followers for its own feed");
    join_feed_rendezvous(self, st.env->self.pub());
  }
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    // Every peer actor is in `peers` from its spawn to its down (nothing
    // else erases or replaces one), so a scan finds it: no second map
    // from actor to key (80 bytes per peer), as `routed` is scanned too.
    auto pit = std::find_if(st.peers.begin(), st.peers.end(),
                            [&](const auto& entry) { return entry.second.address() == dm.source; });
    if (pit == st.peers.end())
      return;
    const auto pk = pit->first;
    st.peers.erase(pit);
    st.linked.erase(pk);
    for (auto r = st.routed.begin(); r != st.routed.end();)
      r = r->second.peer.address() == dm.source ? st.routed.erase(r) : std::next(r);
    for (auto d = st.dials.begin(); d != st.dials.end();)
      d = d->second.address() == dm.source ? st.dials.erase(d) : std::next(d);
    // A co-follower whose actor ended (its connection closed) is no longer
    // pulled from, and is passed over by the next check's choice.
    for (auto& [feed, pulling] : st.pulling_from) {
      if (pulling.erase(pk) == 0)
        continue;
      st.pull_missed[feed].erase(pk);
      if (st.co_followers[feed].count(pk) > 0)
        st.passed_over[feed].insert(pk);
    }
  });
  self->send(self, tick_atom::value);
  return {
      [self](opened_atom, conn_id c, const std::string& addr, bool outbound, std::uint64_t tag) {
        auto& st = self->state;
        if (outbound) {
          auto d = st.dials.find(tag);
          if (d == st.dials.end()) {
            self->send(st.env->transport_for(c), close_atom::value, c, std::string("not dialled by this actor"));
            return;
          }
          auto p = d->second;
          st.dials.erase(d);
          st.routed.emplace(c, node_state::route{p, true});
          self->send(p, opened_atom::value, c, addr, true, tag);
          return;
        }
        // Each inbound connection may cost a resync page in flight: their
        // number bounds the memory many sessions can take.
        const auto inbound = st.handshaking.size() +
            static_cast<std::size_t>(std::count_if(st.routed.begin(), st.routed.end(),
                                                   [](const auto& r) { return !r.second.outbound; })) +
            static_cast<std::size_t>(std::count_if(st.asleep.begin(), st.asleep.end(),
                                                   [](const auto& z) { return !z.second.outbound; }));
        if (inbound >= st.env->settings.max_inbound_connections) {
          if (st.inbound_refused++ % 100 == 0)
            st.env->logf(log_level::warn,
                         "refusing inbound connections from " + addr + " and others: " +
                             std::to_string(st.env->settings.max_inbound_connections) +
                             " are open (sync_settings::max_inbound_connections)");
          self->send(st.env->transport_for(c), close_atom::value, c,
                     std::string("too many connections"));
          return;
        }
        const auto now = clock_ms(self->clock().now());
        auto ch = std::make_shared<protocol::channel>(st.env->self, protocol::channel::role::responder,
                                                      st.env->rng->next(), now, std::nullopt,
                                                      st.env->settings.channel);
        accept_tickets(*st.env, *ch, now);
        st.handshaking.emplace(c, pending_conn{std::move(ch), addr, false, {}});
      },
      [self](bytes_atom, conn_id c, std::string& bytes) {
        auto& st = self->state;
        if (auto z = st.asleep.find(c); z != st.asleep.end())
          return on_sleeper_bytes(self, z, bytes);
        if (auto r = st.routed.find(c); r != st.routed.end()) {
          // Moved, not copied: under a flood every chunk passes here.
          self->send(r->second.peer, bytes_atom::value, c, std::move(bytes));
          return; // the peer actor acknowledges them
        }
        self->send(st.env->transport_for(c), consumed_atom::value, c, std::uint64_t{bytes.size()});
        auto it = st.handshaking.find(c);
        if (it == st.handshaking.end())
          return;
        std::string opening;
        auto next = decide_role(it->second, bytes, *st.env, clock_ms(self->clock().now()), opening);
        if (!opening.empty())
          self->send(st.env->transport_for(c), send_atom::value, c, std::move(opening));
        if (!next)
          return;
        auto out = it->second.ch->receive(*next);
        if (!out.to_send.empty())
          self->send(st.env->transport_for(c), send_atom::value, c, std::move(out.to_send));
        if (out.error) {
          st.env->logf(log_level::warn, "inbound " + it->second.address + ": " + *out.error);
          self->send(st.env->transport_for(c), close_atom::value, c, *out.error);
          st.handshaking.erase(it);
          return;
        }
        if (it->second.ch->state() == protocol::channel_state::established) {
          count_handshake(*st.env, *it->second.ch);
          auto pk = *it->second.ch->peer();
          auto peer = ensure_peer(self, pk, false, {});
          channel_handoff h{std::move(it->second.ch), std::move(out.frames), it->second.address};
          st.handshaking.erase(it);
          st.routed.emplace(c, node_state::route{peer, false});
          self->send(peer, adopt_atom::value, c, std::move(h));
        }
      },
      [self](written_atom, conn_id c, std::uint64_t n) {
        auto& st = self->state;
        if (auto r = st.routed.find(c); r != st.routed.end())
          self->send(r->second.peer, written_atom::value, c, n);
      },
      [self](closed_atom, conn_id c, const std::string& reason) {
        auto& st = self->state;
        if (auto z = st.asleep.find(c); z != st.asleep.end())
          return drop_sleeper(self, z, reason, false);
        st.handshaking.erase(c);
        if (auto r = st.routed.find(c); r != st.routed.end()) {
          self->send(r->second.peer, closed_atom::value, c, reason);
          st.routed.erase(r);
        }
      },
      [self](dialfail_atom, std::uint64_t tag, const std::string& reason) {
        auto& st = self->state;
        if (auto d = st.dials.find(tag); d != st.dials.end()) {
          self->send(d->second, dialfail_atom::value, tag, reason);
          st.dials.erase(d);
        }
      },
      [self](dial_atom, std::uint64_t tag) {
        // A peer actor dials with the node as the owner (so that its
        // connection may sleep): this dial's events are its.
        auto& st = self->state;
        st.dials[tag] = caf::actor_cast<peer_actor>(self->current_sender());
      },
      [self](api_atom, const std::string& op, const std::string& params, const std::string& body,
             std::uint64_t time_ms) -> caf::result<api_result> {
        json p = params.empty() ? json::object() : json::parse(params, nullptr, false);
        if (p.is_discarded() || !p.is_object())
          return error_result(400, "invalid", "parameters are not a JSON object");
        try {
          return run_api(self, op, p, body, time_ms);
        } catch (const json::exception& e) {
          return error_result(400, "invalid", std::string("bad parameters: ") + e.what());
        } catch (const std::exception& e) {
          // A bug, but one request must not take the actor (and its topic) down.
          self->state.env->logf(log_level::error, std::string("operation failed: ") + e.what());
          return error_result(500, "internal", std::string("internal error: ") + e.what());
        }
      },
      [self](topic_atom, const std::string& id) -> topic_actor { return ensure_topic(self, id); },
      [self](topic_atom, const protocol::topic_descriptor& d) -> topic_actor {
        auto& st = self->state;
        if (!st.env->store->topic(d.id)) {
          if (auto s = st.env->store->add_topic(d); !s) {
            st.env->logf(log_level::warn, "refused topic " + d.id + ": " + s.err().message);
            return {};
          }
        }
        return ensure_topic(self, d.id);
      },
      [self](peerstate_atom, const protocol::public_key& pk, bool up) {
        auto& st = self->state;
        // Only from the peer's current actor: an ended one's last word
        // must not undo its successor's.
        auto p = st.peers.find(pk);
        if (p == st.peers.end() || p->second.address() != self->current_sender())
          return;
        if (up)
          st.linked.insert(pk);
        else
          st.linked.erase(pk);
      },
      [self](found_atom, std::vector<std::string>& own) {
        if (self->state.env->relays_handle)
          self->send(self->state.env->relays_handle, found_atom::value, std::move(own));
      },
      [self](meet_atom, const std::string& topic, const protocol::public_key& pk) {
        auto& st = self->state;
        if (topic == directory_topic) {
          // Aggregator mode: follow whoever is listed, within the limit.
          if (!st.env->aggregate || pk == st.env->self.pub() || st.follows.count(pk) > 0 ||
              st.crawled.count(pk) > 0)
            return;
          if (st.crawled.size() >= st.env->aggregate_max_follows) {
            if (!st.crawl_full_logged)
              st.env->logf(log_level::warn,
                           "aggregator: following " + std::to_string(st.crawled.size()) +
                               " identities, the configured maximum; others met are ignored");
            st.crawl_full_logged = true;
            return;
          }
          st.crawled.insert(pk);
          st.env->emit(json{{"type", "crawl"}, {"id", protocol::to_text(pk)}});
          ensure_peer(self, pk, true, known_address(*st.env, pk));
          return;
        }
        if (st.feed_rendezvous.count(topic) > 0) {
          // Another follower of a feed we follow (the relay's word: what it
          // serves is verified like anything else).
          auto& cf = st.co_followers[topic];
          if (pk != st.env->self.pub() && protocol::feed_topic(pk).id != topic &&
              cf.count(pk) == 0) {
            auto skipped = st.passed_over.find(topic);
            if (cf.size() >= max_co_followers && skipped != st.passed_over.end() &&
                !skipped->second.empty()) {
              // Full: a newcomer takes the place of one passed over.
              cf.erase(*skipped->second.begin());
              skipped->second.erase(skipped->second.begin());
              if (skipped->second.empty())
                st.passed_over.erase(skipped);
            }
            if (cf.size() < max_co_followers)
              cf.insert(pk);
          }
          update_feed_watch(self, topic);
          if (st.restore_own_feed && topic == st.env->store->feed_topic_id())
            pull_from_co_followers(self);
          return;
        }
        // A writer of a shared topic we hold: keep a connection to it. Others
        // met at the rendezvous (the relay's word only) are ignored.
        auto d = self->state.env->store->topic(topic);
        if (!d || d->kind == protocol::topic_kind::feed || pk == self->state.env->self.pub())
          return;
        if (d->kind != protocol::topic_kind::open && !protocol::may_write(*d, pk))
          return;
        self->state.env->emit(json{{"type", "met"}, {"topic", topic}, {"id", protocol::to_text(pk)}});
        self->state.kept_met.insert(pk);
        self->send(ensure_peer(self, pk, false, {}), meet_atom::value);
      },
      [self](left_atom, const std::string& topic, const protocol::public_key& pk) {
        // A co-follower left the feed's rendezvous (its relay connection
        // closed): forget it, making room for others. If it is pulled
        // from, the next checks pass it over unless it is still reached.
        auto& st = self->state;
        if (auto cf = st.co_followers.find(topic); cf != st.co_followers.end())
          cf->second.erase(pk);
        if (auto po = st.passed_over.find(topic); po != st.passed_over.end()) {
          po->second.erase(pk);
          if (po->second.empty())
            st.passed_over.erase(po);
        }
      },
      [self](due_atom, std::uint64_t id) { finish_gather(self, id); },
      [self](sleep_atom, conn_id c) {
        // An idle actor of an inbound connection: ask it for the
        // connection, handling nothing else meanwhile (await), so that no
        // message reaches it once it has answered and ended.
        auto& st = self->state;
        auto r = st.routed.find(c);
        if (r == st.routed.end() || r->second.peer.address() != self->current_sender())
          return;
        auto p = r->second.peer;
        self->request(p, caf::infinite, sleep_atom::value)
            .await(
                [self, c, p](peer_sleep& z) {
                  if (!z.ch)
                    return; // busy again
                  auto& st = self->state;
                  st.routed.erase(c);
                  if (auto it = st.peers.find(z.pk); it != st.peers.end() && it->second == p)
                    st.peers.erase(it); // its down finds no entry: not a disconnection
                  st.asleep.emplace(c, std::move(z));
                },
                [](caf::error&) {});
      },
      [self](tick_atom) {
        auto& st = self->state;
        const auto now = clock_ms(self->clock().now());
        st.env->ticks->fire(now);
        if ((!st.co_followers.empty() || st.restore_own_feed) && now >= st.next_co_check_ms) {
          st.next_co_check_ms = now + co_check_period_ms;
          check_pulled_co_followers(self);
          pull_from_co_followers(self);
          const auto rotate = static_cast<std::uint64_t>(st.env->settings.co_follower_rotate.count());
          if (rotate > 0 && now >= st.next_rotate_ms) {
            if (st.next_rotate_ms != 0)
              rotate_co_followers(self);
            st.next_rotate_ms = now + rotate;
          }
          // Passed over since, or left: watch again where that made room.
          for (const auto& feed : st.feed_rendezvous)
            update_feed_watch(self, feed);
        }
        for (auto it = st.handshaking.begin(); it != st.handshaking.end();) {
          auto out = it->second.ch->tick(now);
          if (out.error) {
            st.env->logf(log_level::warn, "inbound " + it->second.address + ": " + *out.error);
            self->send(st.env->transport_for(it->first), close_atom::value, it->first, *out.error);
            it = st.handshaking.erase(it);
          } else {
            ++it;
          }
        }
        tick_sleepers(self, now);
        self->delayed_send(self, st.env->settings.tick, tick_atom::value);
      },
      [self](stop_atom) {
        auto& st = self->state;
        for (auto& [pk, p] : st.peers)
          self->send_exit(p, caf::exit_reason::user_shutdown);
        for (auto& [id, t] : st.topics)
          self->send_exit(t, caf::exit_reason::user_shutdown);
        if (st.env->relays_handle)
          self->send_exit(st.env->relays_handle, caf::exit_reason::user_shutdown);
        for (auto& [c, h] : st.handshaking)
          self->send(st.env->transport_for(c), close_atom::value, c, std::string("node shutting down"));
        for (auto& [c, z] : st.asleep)
          self->send(st.env->transport_for(c), close_atom::value, c, std::string("node shutting down"));
        st.asleep.clear();
        st.peers.clear();
        st.topics.clear();
        self->quit();
      },
  };
}

} // namespace

void offer_ticket(const node_env& env, protocol::channel& ch, const protocol::public_key& peer,
                  std::uint64_t now_ms) {
  if (env.tickets)
    if (auto t = env.tickets->take_for(peer, now_ms))
      ch.offer_ticket(*t);
}

void accept_tickets(const node_env& env, protocol::channel& ch, std::uint64_t now_ms) {
  // `now_ms` is when the connection was accepted: msg1 comes within the
  // handshake timeout, and a ticket put since counts as just put.
  if (auto tickets = env.tickets)
    ch.accept_tickets([tickets, now_ms](const protocol::resume_ticket::ticket_id& id) {
      return tickets->take_id(id, now_ms);
    });
}

void count_handshake(const node_env& env, const protocol::channel& ch) {
  if (auto& c = env.settings.counters)
    ++(ch.resumed() ? c->handshakes_resumed : c->handshakes_full);
}

} // namespace detail

node_actor spawn_node(caf::actor_system& sys, std::shared_ptr<node_env> env) {
  // A new process: no tickets from the last one. The tables' hash keys
  // come from the identity's seed: secret, and no draw from env->rng.
  env->tickets.reset();
  env->relay_tickets.reset();
  if (env->settings.resume_tickets > 0) {
    auto cache = [&](std::string_view purpose) {
      const auto& seed = env->self.seed();
      const auto h = protocol::hash_of(
          purpose, std::string_view(reinterpret_cast<const char*>(seed.data()), seed.size()));
      protocol::ticket_cache::hash_key key{};
      std::copy_n(h.begin(), key.size(), key.begin());
      return std::make_shared<protocol::ticket_cache>(
          env->settings.resume_tickets,
          static_cast<std::uint64_t>(env->settings.resume_ticket_lifetime.count()), key);
    };
    env->tickets = cache("kith/ticket-cache/peers");
    env->relay_tickets = cache("kith/ticket-cache/relays");
  }
  return sys.spawn(detail::node_impl, std::move(env));
}

} // namespace kith::actors
