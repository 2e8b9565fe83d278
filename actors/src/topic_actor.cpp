// The topic actor: the single writer of one topic in the store. Local
// document writes, verified merges of received data, anti-entropy answers
// and watermark reports of the topic all pass through it, so the topic's
// clock, dot-key map and watermark have one owner. It also keeps the
// registry of its active keys' actors (key_actor.cpp): requests about one
// key go to that key's actor, spawned on first use, and every commit that
// changes an active key sends the key's new state to its actor.

#include "internal.hpp"
#include "tick_board.hpp"

#include "kith/protocol/topic_name.hpp"
#include "kith/storage/bundle.hpp"
#include "kith/storage/documents.hpp"

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

namespace kith::actors::detail {

namespace {

using nlohmann::json;

/// An active key: its actor and the requests forwarded to it (compared
/// with the count in its idle report: equal means none is in flight).
struct key_entry {
  key_actor handle;
  std::uint64_t forwarded = 0;
};

struct topic_state {
  std::shared_ptr<node_env> env;
  protocol::topic_name topic; // shared with every other holder of the id
  node_actor node;
  /// Peer actors subscribed to pushes, with their replica ids.
  std::map<caf::actor_addr, std::pair<caf::actor, causality::replica_id>> subscribers;
  /// Actors of the active keys; inactive keys have no entry and cost nothing.
  std::unordered_map<std::string, key_entry> keys;
  std::uint64_t key_activations = 0;
  /// When each member was last heard from, in ms of the actor clock: its
  /// subscribe, requests, reports and data, or the end of its
  /// subscription. A member first seen by the periodic check counts from
  /// then (a restart gives every member a full period).
  std::map<causality::replica_id, std::uint64_t> heard_ms;
  /// Replicas this actor retired (a later subscribe counts as a return),
  /// sorted. A vector, not a set: it keeps the topic actor within
  /// jemalloc's 1,280-byte class (checked below).
  std::vector<causality::replica_id> retired;
  static inline const char* name = "kith.topic";
};

using topic_impl_actor = shared_behavior_actor<topic_state, topic_actor::base>;
using topic_pointer = topic_impl_actor*;

// One topic actor per held topic: CAF allocates it with a 64-byte control
// block in front, and the total stays within jemalloc's 1,280-byte class
// (the next is 1,536). Checked where the layouts are the ones measured.
#if defined(__GLIBCXX__) && !defined(_GLIBCXX_DEBUG) && CAF_VERSION < 1800
static_assert(sizeof(topic_impl_actor) + CAF_CACHE_LINE_SIZE <= 1280,
              "the topic actor outgrew the 1,280-byte allocation class");
#endif

/// The topic actor whose message this thread is handling (in handlers only).
topic_pointer topic_self() {
  return topic_impl_actor::current();
}

std::uint64_t now_ms(topic_pointer self) {
  return clock_ms(self->clock().now());
}

/// Records that a replica spoke about this topic now.
void heard(topic_pointer self, causality::replica_id rid) {
  if (rid != self->state.env->store->self_id())
    self->state.heard_ms[rid] = now_ms(self);
}

/// A replica's own report of its clock (a sync request or a watermark
/// report). It confirms a member's resync once it covers our writes up to
/// the base we had when the member joined: the member then holds, or saw
/// superseded, everything we pruned while it was away.
void reported(topic_pointer self, causality::replica_id rid, const causality::node_clock& c) {
  heard(self, rid);
  auto& st = self->state;
  if (auto s = st.env->store->settle_resync(st.topic, rid, c); !s)
    st.env->logf(log_level::warn, "topic " + st.topic + ": " + s.err().message);
}

/// Whether silent members of this topic are retired (retire_silent).
bool retires(const node_env& env, const protocol::topic_descriptor& desc) {
  return desc.kind == protocol::topic_kind::feed ||
         (desc.kind == protocol::topic_kind::shared && env.settings.retire_shared);
}

/// The retirement period of a feed's co-followers at this node, 0 if none
/// applies (we are the feed's author, or it is off).
std::uint64_t co_follower_period(topic_pointer self, const protocol::topic_descriptor& desc) {
  const auto& st = self->state;
  if (desc.creator == st.env->self.pub())
    return 0;
  return static_cast<std::uint64_t>(st.env->settings.co_follower_retire_after.count());
}

/// Retires the members silent for settings.retire_after that are not
/// subscribed now, in one store commit, which also prunes what only they
/// held back. Never retires this replica. Retiring only removes them from
/// the watermark: their clock entries stay (close_retired is for ids whose
/// store is gone for good; a silent peer may come back with writes we have
/// not seen, and those must still be accepted).
///
/// Feed topics, and shared topics with settings.retire_shared. A
/// returning member's full resync drops the stale copies it holds of the
/// sender's own writes (store::join_sender_entry trusts a sender
/// first-hand only); in a feed every write is the author's, so a resync
/// from the author (or anti-entropy with an author that kept the records
/// for it) removes every deleted or overwritten post. In a shared topic a
/// writer's resync also drops third parties' values on keys it may write
/// and joins the writer's whole clock (store::join_sender_entry with
/// trust_writers), and writer summaries cover the rest; kith-sim's kv
/// workload passes at periods from 10 s (docs/architecture.md, "Topic
/// membership"). Off by default: the sender's clock is not signed, so a
/// writer could drop a value at one returning replica only, unseen.
/// TODO(design): open topics (anyone writes; nobody can vouch for others).
void retire_silent(topic_pointer self) {
  auto& st = self->state;
  const auto after = static_cast<std::uint64_t>(st.env->settings.retire_after.count());
  auto desc = st.env->store->topic(st.topic);
  if (!desc || !retires(*st.env, *desc) || after == 0)
    return;
  const auto co_after = co_follower_period(self, *desc);
  auto members = st.env->store->members(st.topic);
  if (!members)
    return;
  const auto now = now_ms(self);
  const auto me = st.env->store->self_id();
  std::set<causality::replica_id> subscribed;
  for (const auto& [addr, sub] : st.subscribers)
    subscribed.insert(sub.second);
  std::vector<causality::replica_id> keep, gone;
  for (auto rid : *members) {
    if (rid == me)
      continue; // store::set_members adds it back
    if (subscribed.count(rid) != 0) {
      keep.push_back(rid);
      continue;
    }
    auto limit = after;
    if (co_after > 0 && co_after < after) {
      auto a = st.env->store->author_of(rid);
      if (a && *a != desc->creator) // unknown: not a replica that wrote the feed
        limit = co_after;
    }
    auto [it, first] = st.heard_ms.emplace(rid, now);
    if (!first && now - it->second >= limit)
      gone.push_back(rid);
    else
      keep.push_back(rid);
  }
  // Forget what we heard from replicas that are not members.
  for (auto i = st.heard_ms.begin(); i != st.heard_ms.end();)
    i = std::find(members->begin(), members->end(), i->first) == members->end()
            ? st.heard_ms.erase(i)
            : std::next(i);
  if (gone.empty())
    return;
  if (auto s = st.env->store->set_members(st.topic, keep); !s) {
    st.env->logf(log_level::warn, "topic " + st.topic + ": retiring members: " + s.err().message);
    return;
  }
  for (auto rid : gone) {
    st.heard_ms.erase(rid);
    if (auto at = std::lower_bound(st.retired.begin(), st.retired.end(), rid);
        at == st.retired.end() || *at != rid)
      st.retired.insert(at, rid);
    if (st.env->observe)
      st.env->note({node_observation::kind::retired, std::to_string(rid.value()), st.topic});
  }
  if (auto& c = st.env->settings.counters)
    c->retirements += gone.size();
  st.env->logf(log_level::info, "topic " + st.topic + ": retired " + std::to_string(gone.size()) +
                                    " member(s) silent for " + std::to_string(after / 1000) +
                                    " s (co-followers: " + std::to_string(co_after / 1000) +
                                    " s); they resync in full if they come back");
}

/// Arms the next membership check: a quarter of the retirement period
/// (at least a second), so a member is retired 1 to 1.25 periods after it
/// fell silent.
void schedule_retire_check(topic_pointer self) {
  const auto after = self->state.env->settings.retire_after;
  auto desc = self->state.env->store->topic(self->state.topic);
  if (after.count() <= 0 || !desc || !retires(*self->state.env, *desc))
    return; // retire_silent says why
  auto shortest = after;
  if (auto co = std::chrono::milliseconds(co_follower_period(self, *desc)); co.count() > 0)
    shortest = std::min(shortest, co);
  const auto period = std::max<std::chrono::milliseconds>(shortest / 4, std::chrono::seconds(1));
  const auto at = now_ms(self) + static_cast<std::uint64_t>(period.count());
  if (auto* board = self->state.env->ticks.get())
    board->add(board->point_at_or_after(at), self->address());
  else
    self->delayed_send(self, period, tick_atom::value, at);
}

/// Change events for the API stream: one per changed key.
void emit_changes(const node_env& env, const protocol::signed_reply& r, const char* origin) {
  if (!env.on_event)
    return;
  for (const auto& e : r.entries) {
    auto nul = e.key.find('\0');
    json ev{{"type", "change"},
            {"topic", r.topic},
            {"subject", e.key.substr(0, nul)},
            {"predicate", nul == std::string::npos ? std::string{} : e.key.substr(nul + 1)},
            {"origin", origin}};
    env.emit(ev);
  }
}

/// The same signed data, re-addressed as coming from this replica (a peer
/// only trusts `from` when it is the replica that sent the message).
protocol::signed_reply readdress(const node_env& env, protocol::signed_reply r) {
  r.from = env.store->self_id();
  if (auto c = env.store->clock_copy(r.topic))
    r.clock = std::move(*c);
  return r;
}

void push_to(topic_pointer self, const protocol::signed_reply& r, const caf::actor_addr& except) {
  for (const auto& [addr, sub] : self->state.subscribers)
    if (addr != except)
      self->send(caf::actor_cast<peer_actor>(sub.first), push_atom::value, r);
}

/// Why `key` cannot name a document property, or nullopt if it can.
std::optional<std::string> bad_key(const std::string& key) {
  const auto nul = key.find('\0');
  if (nul == std::string::npos)
    return "a key is \"<subject>\\0<predicate>\" (no NUL separator found)";
  if (auto s = storage::check_subject(key.substr(0, nul)); !s)
    return s.err().message;
  const auto pred = std::string_view(key).substr(nul + 1);
  if (pred.empty() || pred.size() > 256 || pred.find('\0') != std::string_view::npos)
    return "a predicate is 1-256 bytes without NUL";
  return std::nullopt;
}

/// The key's actor, spawned on first use.
key_entry& activate(topic_pointer self, const std::string& key) {
  auto& st = self->state;
  auto i = st.keys.find(key);
  if (i == st.keys.end()) {
    auto h = spawn_key(self->system(), st.env, st.topic, key, caf::actor_cast<topic_actor>(self));
    ++st.key_activations;
    i = st.keys.emplace(key, key_entry{std::move(h), 0}).first;
  }
  ++i->second.forwarded;
  return i->second;
}

/// After a commit: the new state of every changed key that has an actor
/// (except `except`, which gets it in its commit's answer). One store read
/// per active changed key; nothing for inactive ones.
template <class Keys>
void refresh_keys(topic_pointer self, const Keys& changed, const caf::actor_addr& except) {
  auto& st = self->state;
  if (st.keys.empty())
    return;
  for (const auto& e : changed) {
    auto i = st.keys.find(e.key);
    if (i != st.keys.end() && i->second.handle.address() != except)
      self->send(i->second.handle, kupdate_atom::value, read_key_state(*st.env, st.topic, e.key));
  }
}

/// Verifies and commits received data of this topic (one atomic change),
/// emits change events and pushes it to the other subscribers.
apply_result apply_reply(topic_pointer self, const protocol::signed_reply& r,
                         const caf::actor& from, const caf::actor_addr& except_key) {
  auto& st = self->state;
  apply_result out;
  if (r.topic != st.topic) {
    out.ok = false;
    out.reason = "data for topic " + r.topic + " sent to " + st.topic;
    return out;
  }
  auto stats = st.env->store->apply(r);
  if (!stats) {
    out.ok = false;
    const auto& e = stats.err();
    out.code = e.code == storage::errc::bad_signature  ? protocol::error_code::bad_signature
               : e.code == storage::errc::unauthorized ? protocol::error_code::unauthorized
               : e.code == storage::errc::invalid      ? protocol::error_code::protocol
                                                       : protocol::error_code::internal;
    out.reason = e.message;
    return out;
  }
  out.keys_changed = stats->keys_changed;
  out.new_dots = stats->new_dots;
  if (stats->keys_changed > 0)
    refresh_keys(self, r.entries, except_key);
  if (stats->new_dots > 0) {
    emit_changes(*st.env, r, "peer");
    push_to(self, readdress(*st.env, r), from.address());
  }
  return out;
}

api_result run_doc_op(topic_pointer self, const std::string& op, const json& p,
                      std::uint64_t time_ms) {
  auto& st = self->state;
  std::vector<protocol::signed_reply> pushes;
  storage::documents docs(*st.env->store,
                          [&](const protocol::signed_reply& r) { pushes.push_back(r); });
  api_result out;
  if (op == "put") {
    auto r = docs.put(p.at("subject").get<std::string>(), p.at("doc"), time_ms, st.topic,
                      p.value("contexts", json::object()));
    if (!r)
      return storage_error(r.err());
    json dots = json::array();
    for (auto d : *r)
      dots.push_back(json{{"replica", d.id.value()}, {"counter", d.n.value()}});
    out = json_result(200, json{{"subject", p.at("subject")}, {"topic", st.topic}, {"dots", dots}});
  } else if (op == "put_many") {
    // [{"subject", "doc"}, ...] in one signed batch (documents::put_many).
    const auto& list = p.at("docs");
    if (!list.is_array())
      return error_result(400, "invalid", "field 'docs' must be an array");
    std::vector<std::pair<std::string, json>> batch;
    for (const auto& d : list)
      batch.emplace_back(d.at("subject").get<std::string>(), d.at("doc"));
    auto r = docs.put_many(batch, time_ms, st.topic);
    if (!r)
      return storage_error(r.err());
    out = json_result(200, json{{"topic", st.topic}, {"documents", batch.size()}, {"writes", r->size()}});
  } else if (op == "del") {
    std::optional<std::string> pred;
    if (p.contains("predicate") && p["predicate"].is_string())
      pred = p["predicate"].get<std::string>();
    auto r = docs.del(p.at("subject").get<std::string>(), pred, time_ms, st.topic);
    if (!r)
      return storage_error(r.err());
    out = json_result(200, json{{"subject", p.at("subject")}, {"deleted", *r}});
  } else if (op == "post") {
    auto r = docs.post(p.at("text").get<std::string>(), time_ms,
                       p.value("reply_to", std::string{}));
    if (!r)
      return storage_error(r.err());
    out = json_result(200, json{{"subject", *r}, {"topic", st.topic}});
  } else {
    return error_result(400, "invalid", "unknown document operation '" + op + "'");
  }
  for (const auto& push : pushes) {
    refresh_keys(self, push.entries, caf::actor_addr{});
    emit_changes(*st.env, push, "local");
    push_to(self, push, caf::actor_addr{});
  }
  return out;
}

/// The behavior every topic actor shares (shared_behavior_actor): built
/// once, its handlers capture nothing.
topic_actor::behavior_type topic_behavior() {
  static const topic_actor::behavior_type shared{
      [](tick_atom, std::uint64_t) {
        const auto self = topic_self();
        retire_silent(self);
        schedule_retire_check(self);
      },
      [](doc_atom, const std::string& op, const std::string& params,
         std::uint64_t time_ms) -> api_result {
        const auto self = topic_self();
        json p = json::parse(params, nullptr, false);
        if (p.is_discarded() || !p.is_object())
          return error_result(400, "invalid", "parameters are not a JSON object");
        try {
          return run_doc_op(self, op, p, time_ms);
        } catch (const json::exception& e) {
          return error_result(400, "invalid", std::string("bad parameters: ") + e.what());
        } catch (const std::exception& e) {
          // A bug, but one request must not take the actor (and its topic) down.
          self->state.env->logf(log_level::error, std::string("operation failed: ") + e.what());
          return error_result(500, "internal", std::string("internal error: ") + e.what());
        }
      },
      [](answer_atom, const causality::sync_request& req) -> caf::result<protocol::signed_reply> {
        const auto self = topic_self();
        reported(self, req.from, req.clock);
        auto r = self->state.env->store->answer(self->state.topic, req);
        if (!r) {
          self->state.env->logf(log_level::warn,
                                "topic " + self->state.topic + ": answer failed: " + r.err().message);
          protocol::signed_reply empty;
          empty.topic = self->state.topic;
          empty.from = self->state.env->store->self_id();
          return empty;
        }
        return std::move(*r);
      },
      [](request_atom) -> causality::sync_request {
        const auto self = topic_self();
        auto r = self->state.env->store->make_request(self->state.topic);
        if (!r) {
          causality::sync_request empty;
          empty.from = self->state.env->store->self_id();
          return empty;
        }
        return std::move(*r);
      },
      [](apply_atom, const protocol::signed_reply& r, const caf::actor& from) -> apply_result {
        const auto self = topic_self();
        heard(self, r.from);
        return apply_reply(self, r, from, caf::actor_addr{});
      },
      [](subscribe_atom, const caf::actor& peer, causality::replica_id rid) -> bool {
        const auto self = topic_self();
        auto& st = self->state;
        if (st.subscribers.count(peer.address()) == 0)
          self->monitor(peer);
        st.subscribers[peer.address()] = {peer, rid};
        heard(self, rid);
        // Pruning waits for subscribed replicas: they are members, until
        // silent for settings.retire_after (retire_silent). A replica
        // that is not a member (new, or retired) must do a full resync:
        // what we pruned meanwhile no longer reaches it by anti-entropy.
        // The debt is stored (store::join_member): a restart of this node
        // in the middle of the resync must not forget it.
        auto joined = st.env->store->join_member(st.topic, rid);
        if (!joined) {
          // Not a member then; a resync does no harm and may be needed.
          st.env->logf(log_level::warn, "topic " + st.topic + ": " + joined.err().message);
          return true;
        }
        if (*joined) {
          if (auto& c = st.env->settings.counters)
            ++(std::binary_search(st.retired.begin(), st.retired.end(), rid) ? c->returning_members
                                                                             : c->new_members);
          return true;
        }
        if (st.env->store->owes_resync(st.topic, rid)) {
          // Asked before, not confirmed since: the resync may have been cut.
          if (auto& c = st.env->settings.counters)
            ++c->repeated_resyncs;
          return true;
        }
        return false;
      },
      [](unsub_atom, const caf::actor& peer) {
        const auto self = topic_self();
        auto& subs = self->state.subscribers;
        if (auto i = subs.find(peer.address()); i != subs.end()) {
          heard(self, i->second.second); // subscribed until now
          subs.erase(i);
        }
        self->demonitor(peer);
      },
      [](mark_atom, causality::replica_id rid, const causality::node_clock& c) {
        const auto self = topic_self();
        reported(self, rid, c);
        if (auto s = self->state.env->store->observe(self->state.topic, rid, c); !s)
          self->state.env->logf(log_level::warn, "topic " + self->state.topic + ": " + s.err().message);
      },
      [](page_atom, const std::string& after, std::uint32_t max,
         const causality::node_clock& have) -> resync_page {
        const auto self = topic_self();
        auto& st = self->state;
        resync_page out;
        auto r = st.env->store->page(st.topic, after,
                                     std::max<std::uint32_t>(1, std::min<std::uint32_t>(max, 4096)),
                                     storage::store::default_page_bytes, &have);
        if (!r) {
          st.env->logf(log_level::warn, "topic " + st.topic + ": resync page failed: " + r.err().message);
          out.reply.topic = st.topic;
          out.reply.from = st.env->store->self_id();
          out.next_after = after;
          out.complete = true;
          return out;
        }
        out.reply = std::move(r->reply);
        out.next_after = std::move(r->next_after);
        out.complete = r->complete;
        out.held = std::move(r->held);
        if (auto& c = st.env->settings.counters) {
          // What the page costs on the wire (before the channel's framing).
          ++c->resync_pages;
          c->resyncs_completed += out.complete ? 1 : 0;
          // The page's data, its end marker (with `held`) and the request
          // (with `have`).
          c->resync_bytes +=
              protocol::encode_message(protocol::data_msg{protocol::data_kind::resync, true, out.reply})
                  .size() +
              protocol::encode_message(protocol::resync_done_msg{st.topic, out.next_after, out.complete, out.held})
                  .size() +
              protocol::encode_message(protocol::resync_request_msg{st.topic, after, max, have}).size();
        }
        return out;
      },
      [](join_atom, causality::replica_id sender, const causality::node_clock& c,
         const causality::node_clock& held) {
        const auto self = topic_self();
        auto& st = self->state;
        heard(self, sender);
        if (auto s = st.env->store->join_sender_entry(st.topic, sender, c, &held,
                                                       st.env->settings.retire_shared);
            !s) {
          st.env->logf(log_level::warn, "topic " + st.topic + ": " + s.err().message);
          return;
        }
        // Writes the sender no longer held may have been dropped: active
        // keys read their state again.
        for (const auto& [key, k] : st.keys)
          self->send(k.handle, kupdate_atom::value, read_key_state(*st.env, st.topic, key));
      },
      [](bundle_atom) -> api_result {
        const auto self = topic_self();
        auto& st = self->state;
        auto r = storage::export_bundle(*st.env->store, st.env->self, st.topic);
        if (!r)
          return storage_error(r.err());
        return api_result{200, std::move(*r), true};
      },
      [](bundle_atom, const std::shared_ptr<const protocol::bundle>& b) -> api_result {
        const auto self = topic_self();
        auto& st = self->state;
        if (!b || b->topic.id != st.topic)
          return error_result(400, "invalid", "bundle is not of topic " + st.topic);
        auto r = storage::import_bundle(*st.env->store, *b);
        if (!r)
          return storage_error(r.err());
        if (r->new_dots > 0) {
          // Subscribers get the imported data now rather than at their next
          // anti-entropy round.
          for (const auto& page : b->pages) {
            refresh_keys(self, page.entries, caf::actor_addr{});
            emit_changes(*st.env, page, "bundle");
            push_to(self, readdress(*st.env, page), caf::actor_addr{});
          }
        }
        st.env->logf(log_level::info, "topic " + st.topic + ": imported a bundle of " +
                                          protocol::to_text(b->exporter.author) + ": " +
                                          std::to_string(r->new_dots) + " new writes");
        return json_result(200, json{{"topic", r->topic},
                                     {"exporter", protocol::to_text(b->exporter.author)},
                                     {"pages", r->pages},
                                     {"entries", r->entries},
                                     {"keys_changed", r->keys_changed},
                                     {"new_writes", r->new_dots}});
      },
      [](status_atom) -> topic_info {
        const auto self = topic_self();
        auto& st = self->state;
        topic_info t;
        t.id = st.topic;
        if (auto d = st.env->store->topic(st.topic))
          t.name = d->name;
        if (auto c = st.env->store->clock_copy(st.topic))
          t.dots = c->dot_count();
        t.subscribers = st.subscribers.size();
        if (auto m = st.env->store->members(st.topic))
          t.members = m->size();
        t.kept_headers = st.env->store->superseded_count(st.topic);
        t.key_actors = st.keys.size();
        t.key_activations = st.key_activations;
        return t;
      },
      // --- key actors -----------------------------------------------------
      [](kget_atom, const std::string& key) -> caf::result<key_state> {
        const auto self = topic_self();
        if (auto why = bad_key(key)) {
          key_state s;
          s.topic = self->state.topic;
          s.key = key;
          s.error = *why;
          return s;
        }
        return self->delegate(activate(self, key).handle, kget_atom::value);
      },
      [](kwrite_atom, const std::string& key, const std::string& value, bool deleted,
         std::uint64_t time_ms) -> caf::result<api_result> {
        const auto self = topic_self();
        if (auto why = bad_key(key))
          return error_result(400, "invalid", *why);
        if (!deleted && json::parse(value, nullptr, false).is_discarded())
          return error_result(400, "invalid", "the value is not JSON text (a string is \"...\")");
        return self->delegate(activate(self, key).handle, kwrite_atom::value, value, deleted,
                              time_ms);
      },
      [](kapply_atom, const protocol::signed_reply& r,
         const caf::actor& from) -> caf::result<apply_result> {
        const auto self = topic_self();
        apply_result bad;
        bad.ok = false;
        if (r.topic != self->state.topic)
          bad.reason = "data for topic " + r.topic + " sent to " + self->state.topic;
        else if (r.entries.size() != 1)
          bad.reason = "a one-key merge carries exactly one key, not " +
                       std::to_string(r.entries.size());
        else if (auto why = bad_key(r.entries.front().key))
          bad.reason = *why;
        if (!bad.reason.empty())
          return bad;
        return self->delegate(activate(self, r.entries.front().key).handle, kapply_atom::value, r,
                              from);
      },
      [](kwatch_atom, const std::string& key, const caf::actor& watcher) {
        const auto self = topic_self();
        if (bad_key(key) || !watcher)
          return;
        self->send(activate(self, key).handle, kwatch_atom::value, watcher);
      },
      [](kunwatch_atom, const std::string& key, const caf::actor& watcher) {
        const auto self = topic_self();
        // Unwatching an inactive key has nothing to do (and spawns nothing).
        auto i = self->state.keys.find(key);
        if (i == self->state.keys.end())
          return;
        ++i->second.forwarded;
        self->send(i->second.handle, kunwatch_atom::value, watcher);
      },
      [](kcommit_atom, const storage::write_op& op, std::uint64_t time_ms) -> key_commit {
        const auto self = topic_self();
        auto& st = self->state;
        key_commit out;
        auto r = st.env->store->write(st.topic, {op}, time_ms);
        if (!r) {
          out.write = storage_error(r.err());
        } else {
          json dots = json::array();
          for (const auto& e : r->entries)
            for (const auto& [d, body] : e.records)
              dots.push_back(json{{"replica", d.id.value()}, {"counter", d.n.value()}});
          const auto nul = op.key.find('\0');
          out.write = json_result(200, json{{"subject", op.key.substr(0, nul)},
                                            {"predicate", op.key.substr(nul + 1)},
                                            {"topic", st.topic},
                                            {"dots", dots}});
          emit_changes(*st.env, *r, "local");
          push_to(self, *r, caf::actor_addr{});
        }
        out.state = read_key_state(*st.env, st.topic, op.key);
        return out;
      },
      [](kcommit_atom, const protocol::signed_reply& r, const caf::actor& from) -> key_commit {
        const auto self = topic_self();
        auto& st = self->state;
        key_commit out;
        const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        heard(self, r.from);
        out.merge = apply_reply(self, r, from, sender);
        if (!r.entries.empty())
          out.state = read_key_state(*st.env, st.topic, r.entries.front().key);
        return out;
      },
      [](kidle_atom, const std::string& key, std::uint64_t seen) {
        const auto self = topic_self();
        auto& st = self->state;
        auto i = st.keys.find(key);
        const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        // Stop it only if it is the registered actor and has seen every
        // request sent to it; later requests spawn a new one, which loads
        // the key from the store.
        if (i == st.keys.end() || i->second.handle.address() != sender ||
            i->second.forwarded != seen)
          return;
        self->send(i->second.handle, stop_atom::value);
        st.keys.erase(i);
      },
  };
  return shared;
}

topic_actor::behavior_type topic_impl(topic_pointer self, std::shared_ptr<node_env> env,
                                      std::string topic, node_actor node) {
  self->state.env = std::move(env);
  self->state.topic = std::move(topic);
  self->state.node = std::move(node);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& subs = self->state.subscribers;
    if (auto i = subs.find(dm.source); i != subs.end()) {
      heard(self, i->second.second); // connected until now
      subs.erase(i);
    }
  });
  schedule_retire_check(self);
  return topic_behavior();
}

} // namespace

topic_actor spawn_topic(caf::actor_system& sys, std::shared_ptr<node_env> env, std::string topic,
                        node_actor node) {
  return sys.spawn(topic_impl, std::move(env), std::move(topic), std::move(node));
}

} // namespace kith::actors::detail
