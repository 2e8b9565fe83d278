// The key actor: one active subject-predicate key of a topic. It owns the
// key's committed state in memory (loaded from the store when spawned,
// replaced by the topic actor after every commit that touches the key),
// serves reads of it, keeps the key's watchers, builds the write for a
// local single-key write (the context it holds: "replace what I have
// seen"), and stops after settings.key_idle without requests. The topic
// actor remains the single committer: clock and containers change in one
// atomic store commit there (docs/architecture.md, "Key actors").

#include "internal.hpp"

#include <caf/send.hpp>

#include <map>

namespace kith::actors::detail {

namespace {

struct key_data {
  std::shared_ptr<node_env> env;
  topic_actor topic;
  key_state current;
  std::map<caf::actor_addr, caf::actor> watchers;
  caf::actor_clock::time_point last_use;
  /// Requests received from the topic actor: echoed in an idle report so
  /// the topic stops this actor only when none is in flight.
  std::uint64_t seen = 0;
  /// Commits asked of the topic actor and not answered yet.
  std::size_t pending = 0;
  static inline const char* name = "kith.key";
};

using key_impl_actor = shared_behavior_actor<key_data, key_actor::base>;
using key_pointer = key_impl_actor*;

/// The key actor whose message this thread is handling (in handlers only).
key_pointer key_self() {
  return key_impl_actor::current();
}

bool same_view(const storage::key_view& a, const storage::key_view& b) {
  if (a.context != b.context || a.siblings.size() != b.siblings.size())
    return false;
  for (std::size_t i = 0; i < a.siblings.size(); ++i)
    if (a.siblings[i].d != b.siblings[i].d || a.siblings[i].value != b.siblings[i].value ||
        a.siblings[i].time_ms != b.siblings[i].time_ms)
      return false;
  return true;
}

/// A request from the topic actor: the key is in use.
void touch(key_pointer self) {
  self->state.last_use = self->clock().now();
  ++self->state.seen;
}

/// Takes the committed state; watchers hear of a change of the key.
void set_state(key_pointer self, const key_state& s) {
  auto& st = self->state;
  if (!s.error.empty()) {
    // The topic could not read the key back: keep what we have and say so.
    st.env->logf(log_level::warn, "topic " + st.current.topic + ": key state not refreshed: " +
                                      s.error);
    return;
  }
  if (same_view(st.current.view, s.view))
    return;
  st.current = s;
  // Watchers are untyped (any actor), hence anon_send.
  for (const auto& [addr, w] : st.watchers)
    caf::anon_send(w, kchange_atom::value, st.current);
}

/// The behavior every key actor shares (shared_behavior_actor): built
/// once, its handlers capture nothing.
key_actor::behavior_type key_behavior() {
  static const key_actor::behavior_type shared{
      [](kget_atom) -> key_state {
        const auto self = key_self();
        touch(self);
        return self->state.current;
      },
      [](kwrite_atom, const std::string& value, bool deleted,
         std::uint64_t time_ms) -> caf::result<api_result> {
        const auto self = key_self();
        touch(self);
        auto& st = self->state;
        // The write replaces every sibling this actor holds.
        storage::write_op op{st.current.key,
                             deleted ? std::nullopt : std::optional<std::string>(value),
                             st.current.view.context};
        ++st.pending;
        auto rp = self->make_response_promise<api_result>();
        self->request(st.topic, caf::infinite, kcommit_atom::value, std::move(op), time_ms)
            .then(
                [self, rp](const key_commit& c) mutable {
                  --self->state.pending;
                  set_state(self, c.state);
                  rp.deliver(c.write);
                },
                [self, rp](caf::error& e) mutable {
                  --self->state.pending;
                  rp.deliver(error_result(500, "internal",
                                          "the topic actor did not commit the write: " +
                                              self->system().render(e)));
                });
        return rp;
      },
      [](kapply_atom, const protocol::signed_reply& r,
         const caf::actor& from) -> caf::result<apply_result> {
        const auto self = key_self();
        touch(self);
        auto& st = self->state;
        ++st.pending;
        auto rp = self->make_response_promise<apply_result>();
        self->request(st.topic, caf::infinite, kcommit_atom::value, r, from)
            .then(
                [self, rp](const key_commit& c) mutable {
                  --self->state.pending;
                  set_state(self, c.state);
                  rp.deliver(c.merge);
                },
                [self, rp](caf::error& e) mutable {
                  --self->state.pending;
                  apply_result out;
                  out.ok = false;
                  out.code = protocol::error_code::internal;
                  out.reason = "the topic actor did not commit the merge: " +
                               self->system().render(e);
                  rp.deliver(out);
                });
        return rp;
      },
      [](kwatch_atom, const caf::actor& w) {
        const auto self = key_self();
        touch(self);
        if (!w)
          return;
        if (self->state.watchers.emplace(w.address(), w).second)
          self->monitor(w);
      },
      [](kunwatch_atom, const caf::actor& w) {
        const auto self = key_self();
        touch(self);
        if (w && self->state.watchers.erase(w.address()) > 0)
          self->demonitor(w);
      },
      [](kupdate_atom, const key_state& s) {
        const auto self = key_self();
        set_state(self, s);
      },
      [](tick_atom) {
        const auto self = key_self();
        auto& st = self->state;
        const auto idle =
            std::chrono::duration_cast<caf::actor_clock::duration_type>(st.env->settings.key_idle);
        const auto since = self->clock().now() - st.last_use;
        if (st.watchers.empty() && st.pending == 0 && since >= idle) {
          // The topic stops us unless a request is on its way; then we
          // check again one idle period later.
          self->send(st.topic, kidle_atom::value, st.current.key, st.seen);
          self->delayed_send(self, idle, tick_atom::value);
        } else {
          self->delayed_send(self, since >= idle ? idle : idle - since, tick_atom::value);
        }
      },
      [](stop_atom) {
        const auto self = key_self();
        self->quit();
      },
  };
  return shared;
}

key_actor::behavior_type key_impl(key_pointer self, std::shared_ptr<node_env> env,
                                  std::string topic_id, std::string key, topic_actor topic) {
  auto& st = self->state;
  st.env = std::move(env);
  st.topic = std::move(topic);
  st.current = read_key_state(*st.env, topic_id, key);
  st.last_use = self->clock().now();
  self->monitor(st.topic);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (dm.source == self->state.topic.address())
      self->quit(dm.reason); // the topic actor ended: so do its keys
    else
      self->state.watchers.erase(dm.source);
  });
  self->delayed_send(self, st.env->settings.key_idle, tick_atom::value);
  return key_behavior();
}

} // namespace

key_state read_key_state(const node_env& env, const std::string& topic, const std::string& key) {
  key_state s;
  s.topic = topic;
  s.key = key;
  auto v = env.store->read(topic, key);
  if (!v)
    s.error = v.err().message;
  else
    s.view = std::move(*v);
  return s;
}

key_actor spawn_key(caf::actor_system& sys, std::shared_ptr<node_env> env, std::string topic,
                    std::string key, topic_actor topic_handle) {
  return sys.spawn(key_impl, std::move(env), std::move(topic), std::move(key),
                   std::move(topic_handle));
}

} // namespace kith::actors::detail
