// Key actors (one per active subject-predicate key) on CAF's deterministic
// testing scheduler: spawned on first use, serving the key, seeing merges
// from a peer, stopping after the idle period, respawned from the store.

#include "world.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <optional>

using namespace kith;
using namespace kith::actors;
using nlohmann::json;

namespace {

/// The actor tests' world, with watchers of keys and topic shortcuts.
struct key_world : kith::actors_test::world {
  using world::world;
  std::vector<caf::actor> watchers;

  ~key_world() {
    for (auto& w : watchers)
      caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
  }

  topic_actor topic_of(node& n, const std::string& topic) {
    auto t = ask<topic_actor>(n.actor, topic_atom::value, topic);
    REQUIRE(t);
    return t;
  }
  topic_info info(const topic_actor& t) { return ask<topic_info>(t, status_atom::value); }

  /// An actor recording every change event of the keys it watches.
  caf::actor watcher(std::shared_ptr<std::vector<key_state>> events) {
    // The unused int: CAF 0.17 dereferences an empty argument tuple when a
    // function actor takes no arguments (UBSan reports it).
    auto w = sys->spawn([events](caf::event_based_actor*, int) -> caf::behavior {
      return {[events](kchange_atom, const key_state& s) { events->push_back(s); }};
    }, 0);
    watchers.push_back(w);
    return w;
  }
};

std::string key_of(const std::string& subject, const std::string& predicate) {
  return subject + std::string(1, '\0') + predicate;
}

/// The newest live value of a key state (JSON text), or "" when none.
std::string value_of(const key_state& s) {
  if (s.view.siblings.empty())
    return {};
  const auto* best = &s.view.siblings.front();
  for (const auto& sib : s.view.siblings)
    if (sib.time_ms > best->time_ms)
      best = &sib;
  return best->value;
}

} // namespace

TEST_CASE("a key actor is spawned on first use, follows merges, stops when idle and "
          "comes back from the store",
          "[actors][keys]") {
  const std::uint64_t seed = 4242;
  INFO("seed " << seed);
  key_world w(seed);
  auto& a = w.add(0);
  auto& b = w.add(1);
  const auto idle = a.env->settings.key_idle;
  REQUIRE(idle == b.env->settings.key_idle);
  const std::string subject = w.id_of(a) + "/profile";
  const std::string name_key = key_of(subject, "name");
  const std::string feed = protocol::feed_topic(a.env->self.pub()).id;

  REQUIRE(w.api(a, "put", {{"subject", subject}, {"doc", {{"name", "ann"}, {"city", "oslo"}}}})
              .status == 200);
  auto ta = w.topic_of(a, feed);
  CHECK(w.info(ta).key_actors == 0); // writes through the topic spawn no key actor

  // First use: a read spawns the key's actor, which serves the stored value.
  auto s = w.ask<key_state>(ta, kget_atom::value, name_key);
  CHECK(s.error.empty());
  CHECK(value_of(s) == "\"ann\"");
  CHECK(w.info(ta).key_actors == 1);
  CHECK(w.info(ta).key_activations == 1);

  // B follows A and receives the document.
  REQUIRE(w.api(b, "follow", {{"id", w.id_of(a)}, {"address", a.address}}).status == 200);
  REQUIRE(w.run_until(
      [&] {
        auto v = b.env->store->read(feed, name_key);
        return v && !v->siblings.empty();
      },
      std::chrono::seconds(20)));
  auto tb = w.topic_of(b, feed);
  CHECK(w.info(tb).key_actors == 0); // the merge activated nothing
  s = w.ask<key_state>(tb, kget_atom::value, name_key);
  CHECK(value_of(s) == "\"ann\"");
  REQUIRE(w.info(tb).key_actors == 1);
  auto events = std::make_shared<std::vector<key_state>>();
  caf::anon_send(tb, kwatch_atom::value, name_key, w.watcher(events));

  // A local single-key write through A's key actor; B's active key actor
  // sees the merge (its watcher hears of it, and it serves the new value
  // without being respawned).
  auto wr = w.ask<api_result>(ta, kwrite_atom::value, name_key, std::string("\"bob\""), false,
                              ++w.wall_ms);
  INFO(wr.json);
  REQUIRE(wr.status == 200);
  CHECK(value_of(w.ask<key_state>(ta, kget_atom::value, name_key)) == "\"bob\"");
  CHECK(w.info(ta).key_activations == 1);
  REQUIRE(w.run_until([&] { return !events->empty() && value_of(events->back()) == "\"bob\""; },
                      std::chrono::seconds(20)));
  s = w.ask<key_state>(tb, kget_atom::value, name_key);
  CHECK(value_of(s) == "\"bob\"");
  CHECK(s.view.siblings.size() == 1); // the write replaced what A's key actor held
  CHECK(w.info(tb).key_activations == 1);
  // The other property of the document was never used on B: no actor.
  CHECK(w.info(tb).key_actors == 1);

  // A watched key stays active past the idle period.
  const auto watched_from = w.sched->clock().now();
  w.run_until([&] { return w.sched->clock().now() - watched_from > 2 * idle; });
  CHECK(w.info(tb).key_actors == 1);

  // Unwatched and unused, both stop after the idle period (not before).
  caf::anon_send(tb, kunwatch_atom::value, name_key, w.watchers.back());
  w.sched->run();
  const auto last_use = w.sched->clock().now();
  REQUIRE(w.run_until([&] { return w.info(ta).key_actors == 0 && w.info(tb).key_actors == 0; },
                      4 * idle));
  CHECK(w.sched->clock().now() - last_use >= idle);
  CHECK(w.sched->clock().now() - last_use < 3 * idle);

  // Next use respawns it, with its state from the store.
  s = w.ask<key_state>(tb, kget_atom::value, name_key);
  CHECK(value_of(s) == "\"bob\"");
  CHECK(w.info(tb).key_actors == 1);
  CHECK(w.info(tb).key_activations == 2);
}

TEST_CASE("a watch that reaches a key actor while it reports idle keeps it alive",
          "[actors][keys]") {
  const std::uint64_t seed = 77;
  INFO("seed " << seed);
  key_world w(seed);
  auto& a = w.add(0);
  const auto idle = a.env->settings.key_idle;
  const std::string k = key_of(w.id_of(a) + "/note", "text");
  const std::string feed = protocol::feed_topic(a.env->self.pub()).id;
  auto ta = w.topic_of(a, feed);
  REQUIRE(w.ask<api_result>(ta, kwrite_atom::value, k, std::string("\"x\""), false, ++w.wall_ms)
              .status == 200);
  REQUIRE(w.info(ta).key_actors == 1);
  const auto used = w.sched->clock().now();
  auto* topic_job = dynamic_cast<caf::resumable*>(caf::actor_cast<caf::abstract_actor*>(ta));
  REQUIRE(topic_job != nullptr);
  auto is_key_actor = [](caf::resumable* r) {
    auto* x = dynamic_cast<caf::scheduled_actor*>(r);
    return x != nullptr && std::string(x->name()) == "kith.key";
  };
  auto events = std::make_shared<std::vector<key_state>>();
  auto watcher = w.watcher(events);
  // Step timers until the key actor's idle check is due, then let the topic
  // forward a watch before the key actor runs: the key actor reports idle
  // (its check runs first) and then receives the watch.
  bool raced = false;
  while (!raced && w.sched->clock().now() - used <= 2 * idle) {
    w.sched->run();
    if (!w.sched->trigger_timeout())
      break;
    const bool key_due = std::any_of(w.sched->jobs.begin(), w.sched->jobs.end(), is_key_actor);
    if (key_due && w.sched->clock().now() - used >= idle) {
      caf::anon_send(ta, kwatch_atom::value, k, watcher);
      w.sched->run_jobs_filtered([&](caf::resumable* r) { return r == topic_job; });
      raced = true;
    }
  }
  REQUIRE(raced);
  w.sched->run();
  // The topic refused the report (a request was in flight): same actor,
  // and the watch holds.
  auto info = w.info(ta);
  CHECK(info.key_actors == 1);
  CHECK(info.key_activations == 1);
  REQUIRE(w.ask<api_result>(ta, kwrite_atom::value, k, std::string("\"y\""), false, ++w.wall_ms)
              .status == 200);
  w.sched->run();
  REQUIRE(!events->empty());
  CHECK(value_of(events->back()) == "\"y\"");
  // Unwatched and left alone, it stops.
  caf::anon_send(ta, kunwatch_atom::value, k, watcher);
  REQUIRE(w.run_until([&] { return w.info(ta).key_actors == 0; }, 4 * idle));
}

TEST_CASE("key requests with bad input get a clear error and spawn nothing", "[actors][keys]") {
  const std::uint64_t seed = 5;
  INFO("seed " << seed);
  key_world w(seed);
  auto& a = w.add(0);
  const std::string feed = protocol::feed_topic(a.env->self.pub()).id;
  auto ta = w.topic_of(a, feed);

  auto s = w.ask<key_state>(ta, kget_atom::value, std::string("no separator"));
  CHECK(s.error.find("NUL") != std::string::npos);
  s = w.ask<key_state>(ta, kget_atom::value, key_of("not-an-id/x", "p"));
  CHECK_FALSE(s.error.empty());
  s = w.ask<key_state>(ta, kget_atom::value, key_of(w.id_of(a) + "/x", ""));
  CHECK(s.error.find("predicate") != std::string::npos);

  const std::string k = key_of(w.id_of(a) + "/x", "p");
  auto r = w.ask<api_result>(ta, kwrite_atom::value, k, std::string("not json"), false, ++w.wall_ms);
  CHECK(r.status == 400);
  CHECK(r.json.find("not JSON") != std::string::npos);
  CHECK(w.info(ta).key_actors == 0);

  // Someone else's document: the key actor exists (the key is well formed)
  // but the store refuses the write, and nothing is stored.
  auto other = protocol::identity::from_seed(seed_for(seed, 99));
  const std::string foreign = key_of(protocol::to_text(other.pub()) + "/x", "p");
  r = w.ask<api_result>(ta, kwrite_atom::value, foreign, std::string("1"), false, ++w.wall_ms);
  CHECK(r.status >= 400);
  CHECK(w.ask<key_state>(ta, kget_atom::value, foreign).view.siblings.empty());

  // A one-key merge must carry one key of this topic.
  protocol::signed_reply two;
  two.topic = feed;
  two.entries.resize(2);
  two.entries[0].key = k;
  two.entries[1].key = key_of(w.id_of(a) + "/x", "q");
  auto m = w.ask<apply_result>(ta, kapply_atom::value, two, caf::actor{});
  CHECK_FALSE(m.ok);
  CHECK(m.reason.find("exactly one key") != std::string::npos);
  protocol::signed_reply elsewhere;
  elsewhere.topic = "another topic";
  elsewhere.entries.resize(1);
  elsewhere.entries[0].key = k;
  m = w.ask<apply_result>(ta, kapply_atom::value, elsewhere, caf::actor{});
  CHECK_FALSE(m.ok);
  CHECK(w.info(ta).key_actors == 1); // only the foreign key's actor
}
