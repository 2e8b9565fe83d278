// The topic actor: the single writer of one topic in the store. Local
// document writes, verified merges of received data, anti-entropy answers
// and watermark reports of the topic all pass through it, so the topic's
// clock, dot-key map and watermark have one owner.

#include "internal.hpp"

#include "kith/storage/bundle.hpp"
#include "kith/storage/documents.hpp"

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <map>

namespace kith::actors::detail {

namespace {

using nlohmann::json;

struct topic_state {
  std::shared_ptr<node_env> env;
  std::string topic;
  node_actor node;
  /// Peer actors subscribed to pushes, with their replica ids.
  std::map<caf::actor_addr, std::pair<caf::actor, causality::replica_id>> subscribers;
  static inline const char* name = "kith.topic";
};

using topic_pointer = topic_actor::stateful_pointer<topic_state>;

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
    emit_changes(*st.env, push, "local");
    push_to(self, push, caf::actor_addr{});
  }
  return out;
}

topic_actor::behavior_type topic_impl(topic_pointer self, std::shared_ptr<node_env> env,
                                      std::string topic, node_actor node) {
  self->state.env = std::move(env);
  self->state.topic = std::move(topic);
  self->state.node = std::move(node);
  self->set_down_handler([self](caf::down_msg& dm) { self->state.subscribers.erase(dm.source); });
  return {
      [self](doc_atom, const std::string& op, const std::string& params,
             std::uint64_t time_ms) -> api_result {
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
      [self](answer_atom, const causality::sync_request& req) -> caf::result<protocol::signed_reply> {
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
      [self](request_atom) -> causality::sync_request {
        auto r = self->state.env->store->make_request(self->state.topic);
        if (!r) {
          causality::sync_request empty;
          empty.from = self->state.env->store->self_id();
          return empty;
        }
        return std::move(*r);
      },
      [self](apply_atom, const protocol::signed_reply& r, const caf::actor& from) -> apply_result {
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
        if (stats->new_dots > 0) {
          emit_changes(*st.env, r, "peer");
          push_to(self, readdress(*st.env, r), from.address());
        }
        return out;
      },
      [self](subscribe_atom, const caf::actor& peer, causality::replica_id rid) -> bool {
        auto& st = self->state;
        if (st.subscribers.count(peer.address()) == 0)
          self->monitor(peer);
        st.subscribers[peer.address()] = {peer, rid};
        // Pruning waits for subscribed replicas: they are members.
        // TODO(design): retire members silent for a long period (issue 6
        // measures the trade-off); today a member stays until unfollowed.
        auto members = st.env->store->members(st.topic);
        if (members && std::find(members->begin(), members->end(), rid) == members->end()) {
          members->push_back(rid);
          if (auto s = st.env->store->set_members(st.topic, *members); !s)
            st.env->logf(log_level::warn, "topic " + st.topic + ": " + s.err().message);
          return true;
        }
        return false;
      },
      [self](unsub_atom, const caf::actor& peer) {
        self->state.subscribers.erase(peer.address());
        self->demonitor(peer);
      },
      [self](mark_atom, causality::replica_id rid, const causality::node_clock& c) {
        if (auto s = self->state.env->store->observe(self->state.topic, rid, c); !s)
          self->state.env->logf(log_level::warn, "topic " + self->state.topic + ": " + s.err().message);
      },
      [self](page_atom, const std::string& after, std::uint32_t max) -> resync_page {
        auto& st = self->state;
        resync_page out;
        auto r = st.env->store->page(st.topic, after, std::max<std::uint32_t>(1, std::min<std::uint32_t>(max, 4096)));
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
        return out;
      },
      [self](join_atom, causality::replica_id sender, const causality::node_clock& c) {
        auto& st = self->state;
        if (auto s = st.env->store->join_sender_entry(st.topic, sender, c); !s)
          st.env->logf(log_level::warn, "topic " + st.topic + ": " + s.err().message);
      },
      [self](bundle_atom) -> api_result {
        auto& st = self->state;
        auto r = storage::export_bundle(*st.env->store, st.env->self, st.topic);
        if (!r)
          return storage_error(r.err());
        return api_result{200, std::move(*r), true};
      },
      [self](bundle_atom, const std::shared_ptr<const protocol::bundle>& b) -> api_result {
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
      [self](status_atom) -> topic_info {
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
        return t;
      },
  };
}

} // namespace

topic_actor spawn_topic(caf::actor_system& sys, std::shared_ptr<node_env> env, std::string topic,
                        node_actor node) {
  return sys.spawn(topic_impl, std::move(env), std::move(topic), std::move(node));
}

} // namespace kith::actors::detail
