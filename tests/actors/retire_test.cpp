// Retirement of silent topic members (sync_settings::retire_after): the
// real node, peer and topic actors on CAF's testing scheduler, virtual time.

#include "world.hpp"

using namespace kith;
using namespace kith::actors;
using nlohmann::json;
using namespace std::chrono_literals;

using kith::actors_test::world;

namespace {

/// Short periods so that a test spans a few virtual minutes.
void short_periods(world& w, const std::shared_ptr<membership_counters>& counters) {
  w.configure = [counters](node_env& e) {
    e.settings.anti_entropy = 5s;
    e.settings.retire_after = 60s;
    e.settings.counters = counters;
  };
}

std::size_t members_of(world::node& n, const std::string& topic) {
  auto m = n.env->store->members(topic);
  REQUIRE(m);
  return m->size();
}

/// The value of property "v" of a document of a shared topic at node n
/// ("" when the node does not hold the document).
std::string value_at(world& w, world::node& n, const std::string& subject,
                     const std::string& topic) {
  auto r = w.api(n, "get", {{"subject", subject}, {"topic", topic}});
  if (r.status == 404)
    return {};
  REQUIRE(r.status == 200);
  auto j = json::parse(r.json);
  if (j["conflicts"].contains("v"))
    return j["conflicts"]["v"].dump(); // siblings: shown as their list
  return j["doc"].value("v", std::string{});
}

} // namespace

TEST_CASE("a follower silent longer than the retirement period is retired, pruning proceeds, and "
          "on its return it resyncs without the post deleted meanwhile",
          "[actors][sync][retire]") {
  const std::uint64_t seed = 61;
  INFO("seed " << seed);
  world w(seed);
  auto counters = std::make_shared<membership_counters>();
  short_periods(w, counters);
  auto& a = w.add(0);
  auto& b = w.add(1);
  auto& c = w.add(2);
  const auto feed = protocol::feed_topic(a.env->self.pub()).id;
  const auto gone =
      w.api_json(a, "post", {{"text", "deleted while c is away"}})["subject"].get<std::string>();
  w.api_json(a, "post", {{"text", "kept"}});
  for (auto* f : {&b, &c})
    w.api_json(*f, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  REQUIRE(w.run_until(
      [&] {
        return w.feed_size(b, w.id_of(a)) == 2 && w.feed_size(c, w.id_of(a)) == 2 &&
               members_of(a, feed) == 3;
      },
      30s));
  CHECK(counters->new_members == 2);

  // c goes away holding the post; a deletes it and b applies the delete.
  // The delete record (the deleted write's kept header) waits for c.
  w.net->set_link(a.address, c.address, false);
  const auto cut_at = w.sched->clock().now();
  w.api_json(a, "del", {{"subject", gone}});
  REQUIRE(w.run_until([&] { return w.feed_size(b, w.id_of(a)) == 1; }, 10s));
  w.run_until([] { return false; }, 30s);
  CHECK(members_of(a, feed) == 3);
  CHECK(a.env->store->superseded_count(feed) > 0);
  CHECK(a.env->store->kept_dots(feed).size() == a.env->store->superseded_count(feed));
  CHECK(w.feed_size(c, w.id_of(a)) == 2);

  // After the period (checked every quarter of it) c is retired, and the
  // delete record and the dot-key map entries go with the next commit.
  REQUIRE(w.run_until([&] { return members_of(a, feed) == 2; }, 60s));
  CHECK(w.elapsed_since(cut_at) >= 60s);
  CHECK(w.elapsed_since(cut_at) <= 60s + 15s + 2s);
  CHECK(counters->retirements >= 1);
  CHECK(a.env->store->superseded_count(feed) == 0);
  auto meta = a.env->store->metadata(feed);
  REQUIRE(meta);
  CHECK(meta->members == 2);
  CHECK(meta->dot_map_entries == 0);

  // c comes back: no longer a member, it does a full resync. Its old copy
  // of the deleted post goes (the author's complete resync vouches for its
  // own writes); nothing comes back.
  w.net->set_link(a.address, c.address, true);
  REQUIRE(w.run_until(
      [&] { return members_of(a, feed) == 3 && w.feed_size(c, w.id_of(a)) == 1; }, 3min));
  CHECK(counters->returning_members == 1);
  CHECK(counters->resyncs_completed >= 3); // b, c, and c again
  CHECK(w.api(c, "get", {{"subject", gone}}).status == 404);
  CHECK(w.api(b, "get", {{"subject", gone}}).status == 404);
  CHECK(w.api(a, "get", {{"subject", gone}}).status == 404);
  // Its reports confirm the resync; pruning waits for it again, then ends.
  REQUIRE(w.run_until(
      [&] {
        return a.env->store->metadata(feed)->dot_map_entries == 0 &&
               c.env->store->superseded_count(feed) == 0;
      },
      2min));
  REQUIRE(c.env->store->check_topic(feed));
  INFO(w.log_text());
  CHECK(w.log_text().find("retired 1 member(s)") != std::string::npos);
}

TEST_CASE("in a shared topic a silent writer is not retired: back after the period it catches "
          "up by anti-entropy, its writes made meanwhile arrive and a key deleted meanwhile stays "
          "deleted",
          "[actors][sync][retire]") {
  // Retirement is for feeds only (topic_actor.cpp, retire_silent): a
  // resync from one writer cannot drop a stale copy of another writer's
  // value whose supersession record was pruned.
  const std::uint64_t seed = 62;
  INFO("seed " << seed);
  world w(seed);
  auto counters = std::make_shared<membership_counters>();
  short_periods(w, counters);
  auto& a = w.add(0);
  auto& c = w.add(1);
  auto created = w.api_json(a, "topic_create",
                            {{"name", "shared"}, {"writers", json::array({w.id_of(c)})}});
  const auto topic = created["topic"].get<std::string>();
  w.api_json(c, "topic_join", {{"descriptor", created["descriptor"]}});
  w.api_json(a, "follow", {{"id", w.id_of(c)}, {"address", c.address}});
  w.api_json(c, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  auto subject = [&](const std::string& k) { return w.id_of(a) + "/kv/" + k; };
  auto put = [&](world::node& n, const std::string& k, const std::string& v) {
    w.api_json(n, "put", {{"subject", subject(k)}, {"doc", {{"v", v}}}, {"topic", topic}});
  };
  put(a, "k1", "v1");
  put(a, "k2", "v2");
  REQUIRE(w.run_until(
      [&] {
        return value_at(w, c, subject("k1"), topic) == "v1" &&
               value_at(w, c, subject("k2"), topic) == "v2" && members_of(a, topic) == 2 &&
               members_of(c, topic) == 2;
      },
      30s));

  // Apart for three periods: a deletes k1; c overwrites k2 and writes k3.
  w.net->set_link(a.address, c.address, false);
  w.api_json(a, "del", {{"subject", subject("k1")}, {"topic", topic}});
  put(c, "k2", "v2 by c");
  put(c, "k3", "v3 by c");
  w.run_until([] { return false; }, 3min);
  CHECK(members_of(a, topic) == 2);
  CHECK(members_of(c, topic) == 2);
  CHECK(a.env->store->superseded_count(topic) > 0); // the delete record waits for c
  CHECK(value_at(w, c, subject("k1"), topic) == "v1"); // c's old copy

  w.net->set_link(a.address, c.address, true);
  auto agree = [&] {
    for (const char* k : {"k1", "k2", "k3"})
      if (value_at(w, a, subject(k), topic) != value_at(w, c, subject(k), topic))
        return false;
    return true;
  };
  REQUIRE(w.run_until(agree, 3min));
  // (Their feeds, which each follows, did retire the other meanwhile.)
  CHECK(counters->retirements == 2);
  CHECK(value_at(w, a, subject("k1"), topic).empty()); // not resurrected
  CHECK(value_at(w, a, subject("k2"), topic) == "v2 by c");
  CHECK(value_at(w, a, subject("k3"), topic) == "v3 by c"); // not lost
  REQUIRE(a.env->store->check_topic(topic));
  REQUIRE(c.env->store->check_topic(topic));
}

TEST_CASE("with retirement off a silent member stays and holds the delete record",
          "[actors][sync][retire]") {
  world w(63);
  auto counters = std::make_shared<membership_counters>();
  w.configure = [counters](node_env& e) {
    e.settings.anti_entropy = 5s;
    e.settings.retire_after = 0s;
    e.settings.counters = counters;
  };
  auto& a = w.add(0);
  auto& c = w.add(1);
  const auto feed = protocol::feed_topic(a.env->self.pub()).id;
  const auto gone = w.api_json(a, "post", {{"text", "x"}})["subject"].get<std::string>();
  w.api_json(c, "follow", {{"id", w.id_of(a)}, {"address", a.address}});
  REQUIRE(w.run_until([&] { return w.feed_size(c, w.id_of(a)) == 1 && members_of(a, feed) == 2; },
                      30s));
  w.net->set_link(a.address, c.address, false);
  w.api_json(a, "del", {{"subject", gone}});
  w.run_until([] { return false; }, 5min);
  CHECK(members_of(a, feed) == 2);
  CHECK(a.env->store->superseded_count(feed) > 0);
  CHECK(counters->retirements == 0);
  // Back, it catches up by anti-entropy: no resync.
  w.net->set_link(a.address, c.address, true);
  REQUIRE(w.run_until([&] { return w.feed_size(c, w.id_of(a)) == 0; }, 3min));
  CHECK(counters->returning_members == 0);
  CHECK(counters->new_members == 1);
}
