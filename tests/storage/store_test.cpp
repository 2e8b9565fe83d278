#include "fixture.hpp"

using namespace kith;
using namespace kith::storage;
using kith::test::backend;
using kith::test::doc_key;
using kith::test::person;
using kith::test::pull;
using kith::test::values_of;

namespace {

const auto backends = {backend::memory, backend::rocksdb};

/// Three people sharing a topic all of them may write.
struct group {
  test::temp_dir dir;
  std::vector<protocol::identity> people;
  std::vector<std::unique_ptr<store>> nodes;
  protocol::topic_descriptor topic;

  explicit group(backend b, std::size_t n = 3, protocol::topic_kind kind = protocol::topic_kind::shared) {
    for (std::size_t i = 0; i < n; ++i)
      people.push_back(person(100 + i));
    std::vector<protocol::public_key> writers;
    for (auto& p : people)
      writers.push_back(p.pub());
    topic = protocol::make_topic(people[0], kind, "group", writers, 5);
    std::vector<replica_id> members;
    for (std::size_t i = 0; i < n; ++i) {
      nodes.push_back(test::open_store(b, people[i], 1000 + i, dir));
      members.push_back(nodes.back()->self_id());
    }
    for (auto& s : nodes) {
      REQUIRE(s->add_topic(topic));
      REQUIRE(s->set_members(topic.id, members));
    }
  }
  const std::string& id() const { return topic.id; }
  void sync_all() {
    for (int round = 0; round < 2; ++round)
      for (auto& a : nodes)
        for (auto& b : nodes)
          if (a != b)
            pull(*a, *b, id());
  }
};

write_op put(std::string k, std::string v, version_vector ctx = {}) {
  return {std::move(k), std::move(v), std::move(ctx)};
}
write_op del(std::string k, version_vector ctx) {
  return {std::move(k), std::nullopt, std::move(ctx)};
}

} // namespace

TEST_CASE("a local write is readable, signed, and survives a reopen", "[store]") {
  test::temp_dir dir;
  auto me = person(1);
  std::string feed;
  std::string k = doc_key(me, "profile", "name");
  {
    auto s = test::open_store(backend::rocksdb, me, 1, dir);
    feed = s->feed_topic_id();
    auto push = s->write(feed, {put(k, "\"Ann\"")}, 1000);
    REQUIRE(push);
    CHECK(push->batches.size() == 1);
    CHECK(values_of(*s, feed, k) == std::vector<std::string>{"\"Ann\""});
    CHECK(s->check_topic(feed));
  }
  store_options o;
  o.replica_nonce = 99; // ignored: the store keeps its replica id
  {
    auto again = store::open(dir.sub("n1"), me, false, o);
    REQUIRE(again);
    CHECK(values_of(**again, feed, k) == std::vector<std::string>{"\"Ann\""});
    CHECK((*again)->clock(feed)->base((*again)->self_id()) == 1);
    CHECK((*again)->check_topic(feed));
    // While it is open, a second opener gets a clear "in use".
    auto twice = store::open(dir.sub("n1"), me, false, o);
    REQUIRE_FALSE(twice);
    CHECK(twice.err().message.find("in use") != std::string::npos);
  }
  // Another identity cannot open this store.
  auto other = store::open(dir.sub("n1"), person(2), false, o);
  REQUIRE_FALSE(other);
  CHECK(other.err().message.find("belongs to") != std::string::npos);
}

TEST_CASE("concurrent writes become siblings everywhere and a later write resolves them",
          "[store]") {
  for (auto b : backends) {
    DYNAMIC_SECTION(test::name_of(b)) {
      group g(b);
      // A shared document under the topic creator's id: all three may write.
      auto k = doc_key(g.people[0], "doc", "title");
      REQUIRE(g.nodes[0]->write(g.id(), {put(k, "\"a\"")}, 1));
      REQUIRE(g.nodes[1]->write(g.id(), {put(k, "\"b\"")}, 2));
      REQUIRE(g.nodes[2]->write(g.id(), {put(k, "\"c\"")}, 3));
      g.sync_all();
      const std::vector<std::string> all{"\"a\"", "\"b\"", "\"c\""};
      for (auto& n : g.nodes) {
        CHECK(values_of(*n, g.id(), k) == all);
        CHECK(n->check_topic(g.id()));
      }
      // Node 1 reads all three and replaces them.
      auto seen = g.nodes[1]->read(g.id(), k);
      REQUIRE(seen);
      REQUIRE(g.nodes[1]->write(g.id(), {put(k, "\"merged\"", seen->context)}, 4));
      g.sync_all();
      for (auto& n : g.nodes)
        CHECK(values_of(*n, g.id(), k) == std::vector<std::string>{"\"merged\""});
      // Every replica has seen the overwritten writes: no header is kept.
      for (auto& n : g.nodes)
        CHECK(n->superseded_count(g.id()) == 0);
    }
  }
}

TEST_CASE("deletes propagate and leave no record once every replica has them", "[store]") {
  for (auto b : backends) {
    DYNAMIC_SECTION(test::name_of(b)) {
      group g(b);
      auto k1 = doc_key(g.people[0], "statuses/1", "text");
      auto k2 = doc_key(g.people[0], "statuses/1", "time");
      REQUIRE(g.nodes[0]->write(g.id(), {put(k1, "\"hi #cats\""), put(k2, "5")}, 10));
      g.sync_all();
      CHECK(values_of(*g.nodes[2], g.id(), k1).size() == 1);
      auto c1 = g.nodes[0]->read(g.id(), k1);
      auto c2 = g.nodes[0]->read(g.id(), k2);
      REQUIRE(g.nodes[0]->write(g.id(), {del(k1, c1->context), del(k2, c2->context)}, 11));
      // Before anyone else has seen it, the delete's header is kept.
      CHECK(g.nodes[0]->superseded_count(g.id()) == 2);
      pull(*g.nodes[1], *g.nodes[0], g.id());
      CHECK(values_of(*g.nodes[1], g.id(), k1).empty());
      // Node 2 learns the delete second-hand, from node 1.
      pull(*g.nodes[2], *g.nodes[1], g.id());
      CHECK(values_of(*g.nodes[2], g.id(), k1).empty());
      CHECK(values_of(*g.nodes[2], g.id(), k2).empty());
      g.sync_all();
      for (auto& n : g.nodes) {
        CHECK(n->superseded_count(g.id()) == 0);
        CHECK(n->check_topic(g.id()));
        auto tagged = n->by_tag("cats", 10);
        REQUIRE(tagged);
        CHECK(tagged->empty());
      }
    }
  }
}

TEST_CASE("an anti-entropy round that brings nothing new writes nothing", "[store]") {
  // Most rounds of a long run find the two replicas in sync: the answer
  // and its application must not rewrite the clock and watermark rows.
  auto kv_a = make_memory_kv(), kv_b = make_memory_kv();
  std::uint64_t commits_a = 0, commits_b = 0;
  store_options o;
  o.sync = false;
  o.replica_nonce = 1;
  auto opened_a = store::open(std::make_unique<test::format::borrowed_kv>(*kv_a, -1, &commits_a),
                              person(1), o);
  o.replica_nonce = 2;
  auto opened_b = store::open(std::make_unique<test::format::borrowed_kv>(*kv_b, -1, &commits_b),
                              person(2), o);
  REQUIRE(opened_a);
  REQUIRE(opened_b);
  auto& a = **opened_a;
  auto& b = **opened_b;
  const auto feed = a.feed_topic_id();
  REQUIRE(b.add_topic(*a.topic(feed)));
  REQUIRE(a.set_members(feed, {b.self_id()})); // Bob's reports count at Ann's
  auto k1 = doc_key(person(1), "statuses/1", "text");
  REQUIRE(a.write(feed, {put(k1, "\"first\"")}, 10));
  pull(b, a, feed);
  pull(b, a, feed); // Ann records the clock Bob reached
  CHECK(values_of(b, feed, k1) == std::vector<std::string>{"\"first\""});

  const auto ca = commits_a, cb = commits_b;
  for (int round = 0; round < 3; ++round)
    pull(b, a, feed);
  CHECK(commits_a == ca);
  CHECK(commits_b == cb);

  // A new write: Bob stores it, and his next report is recorded.
  auto k2 = doc_key(person(1), "statuses/2", "text");
  REQUIRE(a.write(feed, {put(k2, "\"second\"")}, 11));
  const auto ca2 = commits_a;
  pull(b, a, feed);
  CHECK(commits_b > cb);
  CHECK(values_of(b, feed, k2) == std::vector<std::string>{"\"second\""});
  pull(b, a, feed);
  CHECK(commits_a > ca2);
  CHECK(a.check_topic(feed));
  CHECK(b.check_topic(feed));
}

TEST_CASE("a write is refused to anyone the topic does not allow", "[store][security]") {
  for (auto b : backends) {
    DYNAMIC_SECTION(test::name_of(b)) {
      test::temp_dir dir;
      auto ann = person(1), bob = person(2), eve = person(3);
      auto sa = test::open_store(b, ann, 1, dir);
      auto se = test::open_store(b, eve, 3, dir);
      // Eve cannot write to Ann's feed, locally...
      REQUIRE(se->add_topic(protocol::feed_topic(ann.pub())));
      auto w = se->write(sa->feed_topic_id(), {put(doc_key(ann, "statuses/1", "text"), "\"x\"")}, 1);
      REQUIRE_FALSE(w);
      CHECK(w.err().code == errc::unauthorized);
      // ...nor by handing Ann her own signed push for Ann's feed.
      REQUIRE(se->add_topic(protocol::feed_topic(eve.pub())));
      auto forged = se->write(se->feed_topic_id(), {put(doc_key(eve, "statuses/1", "text"), "\"x\"")}, 1);
      REQUIRE(forged);
      forged->topic = sa->feed_topic_id();
      for (auto& sb : forged->batches)
        sb.topic = forged->topic;
      auto applied = sa->apply(*forged);
      REQUIRE_FALSE(applied);
      CHECK(applied.err().code == errc::unauthorized);
      // A shared topic admits only its allow-list.
      auto club = protocol::make_topic(ann, protocol::topic_kind::shared, "club", {bob.pub()}, 1);
      REQUIRE(se->add_topic(club));
      auto ew = se->write(club.id, {put(doc_key(eve, "x", "y"), "1")}, 1);
      REQUIRE_FALSE(ew);
      CHECK(ew.err().code == errc::unauthorized);
      // In an open topic Eve may write her own documents, never Ann's.
      auto open = protocol::make_topic(ann, protocol::topic_kind::open, "cats", {}, 2);
      REQUIRE(se->add_topic(open));
      REQUIRE(sa->add_topic(open));
      CHECK(se->write(open.id, {put(doc_key(eve, "statuses/1", "text"), "\"mine\"")}, 1));
      auto over = se->write(open.id, {put(doc_key(ann, "statuses/1", "text"), "\"yours\"")}, 1);
      REQUIRE_FALSE(over);
      CHECK(over.err().code == errc::unauthorized);
      auto clk = sa->clock(open.id);
      REQUIRE(clk);
      CHECK(clk->entries().empty());
    }
  }
}

TEST_CASE("a forged or altered write is refused and nothing is stored", "[store][security]") {
  for (auto b : backends) {
    DYNAMIC_SECTION(test::name_of(b)) {
      group g(b);
      auto k = doc_key(g.people[0], "doc", "title");
      auto push = g.nodes[0]->write(g.id(), {put(k, "\"real\"")}, 1);
      REQUIRE(push);
      auto before = *g.nodes[1]->clock(g.id());

      SECTION("value swapped after signing") {
        auto bad = *push;
        auto body = *protocol::decode_body(bad.entries[0].records[0].second);
        body.value = "\"fake\"";
        bad.entries[0].records[0].second = protocol::encode_body(body);
        auto r = g.nodes[1]->apply(bad);
        REQUIRE_FALSE(r);
        CHECK(r.err().code == errc::bad_signature);
      }
      SECTION("read context widened after signing (to delete more)") {
        auto bad = *push;
        auto body = *protocol::decode_body(bad.entries[0].records[0].second);
        body.context.raise(g.nodes[2]->self_id(), 100);
        bad.entries[0].records[0].second = protocol::encode_body(body);
        auto r = g.nodes[1]->apply(bad);
        REQUIRE_FALSE(r);
        CHECK(r.err().code == errc::bad_signature);
      }
      SECTION("batch re-signed by another key") {
        auto bad = *push;
        bad.batches[0].sig = g.people[1].sign(protocol::batch_message(bad.batches[0]));
        auto r = g.nodes[1]->apply(bad);
        REQUIRE_FALSE(r);
        CHECK(r.err().code == errc::bad_signature);
      }
      SECTION("replica binding claimed by another key") {
        auto bad = *push;
        auto fake = protocol::bind_replica(g.people[2], 1);
        fake.rid = bad.bindings[0].rid;
        bad.bindings[0] = fake;
        auto r = g.nodes[1]->apply(bad);
        REQUIRE_FALSE(r);
        CHECK(r.err().code == errc::bad_signature);
      }
      SECTION("write without its batch") {
        auto bad = *push;
        bad.batches.clear();
        bad.bindings.clear();
        auto r = g.nodes[1]->apply(bad);
        REQUIRE_FALSE(r);
        CHECK(r.err().code == errc::bad_signature);
      }
      SECTION("record moved to another key") {
        auto bad = *push;
        bad.entries[0].key = doc_key(g.people[0], "doc", "other");
        auto r = g.nodes[1]->apply(bad);
        REQUIRE_FALSE(r);
        CHECK(r.err().code == errc::bad_signature);
      }
      CHECK(*g.nodes[1]->clock(g.id()) == before);
      CHECK(values_of(*g.nodes[1], g.id(), k).empty());
      CHECK(g.nodes[1]->check_topic(g.id()));
    }
  }
}

TEST_CASE("a peer lying about its clock cannot make another drop data", "[store][security]") {
  for (auto b : backends) {
    DYNAMIC_SECTION(test::name_of(b)) {
      group g(b);
      auto k = doc_key(g.people[0], "doc", "title");
      REQUIRE(g.nodes[0]->write(g.id(), {put(k, "\"keep me\"")}, 1));
      pull(*g.nodes[1], *g.nodes[0], g.id());
      // Node 2 (the liar) claims a clock covering everything and sends an
      // answer that lists the key with no writes: under plain NDC the
      // receiver would fill the empty container with the claimed bases and
      // delete its value.
      signed_reply lie;
      lie.topic = g.id();
      lie.from = g.nodes[2]->self_id();
      for (auto& n : g.nodes)
        lie.clock.join_entry(n->self_id(), causality::clock_entry{1000, {}});
      lie.entries.push_back({k, {}, {}});
      REQUIRE(g.nodes[1]->apply(lie));
      CHECK(values_of(*g.nodes[1], g.id(), k) == std::vector<std::string>{"\"keep me\""});
      // Nor by claiming node 1 saw dots it never saw: node 1's clock is
      // its own and only covers verified writes.
      CHECK(g.nodes[1]->clock(g.id())->base(g.nodes[2]->self_id()) == 0);
      CHECK(g.nodes[1]->check_topic(g.id()));
    }
  }
}

TEST_CASE("withheld writes are not marked as seen and arrive later from an honest peer",
          "[store][security]") {
  for (auto b : backends) {
    DYNAMIC_SECTION(test::name_of(b)) {
      group g(b);
      auto k1 = doc_key(g.people[0], "statuses/1", "text");
      auto k2 = doc_key(g.people[0], "statuses/2", "text");
      REQUIRE(g.nodes[0]->write(g.id(), {put(k1, "\"one\"")}, 1));
      REQUIRE(g.nodes[0]->write(g.id(), {put(k2, "\"two\"")}, 2));
      pull(*g.nodes[2], *g.nodes[0], g.id());
      // Node 2 answers node 1 but withholds k2 while claiming its full clock.
      auto req = g.nodes[1]->make_request(g.id());
      auto ans = g.nodes[2]->answer(g.id(), *req);
      REQUIRE(ans);
      auto& es = ans->entries;
      es.erase(std::remove_if(es.begin(), es.end(), [&](const auto& e) { return e.key == k2; }),
               es.end());
      REQUIRE(g.nodes[1]->apply(*ans));
      CHECK(values_of(*g.nodes[1], g.id(), k1) == std::vector<std::string>{"\"one\""});
      CHECK(values_of(*g.nodes[1], g.id(), k2).empty());
      CHECK_FALSE(g.nodes[1]->clock(g.id())->contains(
          causality::dot{g.nodes[0]->self_id(), causality::counter{2}}));
      // The honest author fills the gap.
      pull(*g.nodes[1], *g.nodes[0], g.id());
      CHECK(values_of(*g.nodes[1], g.id(), k2) == std::vector<std::string>{"\"two\""});
    }
  }
}

TEST_CASE("a replayed old write does not resurrect overwritten data", "[store][security]") {
  for (auto b : backends) {
    DYNAMIC_SECTION(test::name_of(b)) {
      group g(b);
      auto k = doc_key(g.people[0], "doc", "title");
      auto old_push = g.nodes[0]->write(g.id(), {put(k, "\"old\"")}, 1);
      REQUIRE(old_push);
      auto seen = g.nodes[0]->read(g.id(), k);
      REQUIRE(g.nodes[0]->write(g.id(), {put(k, "\"new\"", seen->context)}, 2));
      pull(*g.nodes[1], *g.nodes[0], g.id());
      CHECK(values_of(*g.nodes[1], g.id(), k) == std::vector<std::string>{"\"new\""});
      // The old push is validly signed; replaying it changes nothing.
      REQUIRE(g.nodes[1]->apply(*old_push));
      CHECK(values_of(*g.nodes[1], g.id(), k) == std::vector<std::string>{"\"new\""});
      // Even to a node that never saw it, once the overwrite arrived.
      pull(*g.nodes[2], *g.nodes[1], g.id());
      REQUIRE(g.nodes[2]->apply(*old_push));
      CHECK(values_of(*g.nodes[2], g.id(), k) == std::vector<std::string>{"\"new\""});
    }
  }
}

TEST_CASE("an overwrite learned second-hand removes the old value through its kept header",
          "[store]") {
  for (auto b : backends) {
    DYNAMIC_SECTION(test::name_of(b)) {
      group g(b);
      auto k = doc_key(g.people[0], "doc", "title");
      // w1 by node 0 reaches node 2 only; w2 (node 1) replaces w1; w3
      // (node 0) replaces w2. Node 2 then hears from node 0, which holds
      // only w3 whose signed context names w2, not w1: w2's kept header
      // (context naming w1) is what lets node 2 drop w1.
      REQUIRE(g.nodes[0]->write(g.id(), {put(k, "\"w1\"")}, 1));
      pull(*g.nodes[2], *g.nodes[0], g.id());
      pull(*g.nodes[1], *g.nodes[0], g.id());
      auto s1 = g.nodes[1]->read(g.id(), k);
      REQUIRE(g.nodes[1]->write(g.id(), {put(k, "\"w2\"", s1->context)}, 2));
      pull(*g.nodes[0], *g.nodes[1], g.id());
      auto s0 = g.nodes[0]->read(g.id(), k);
      REQUIRE(g.nodes[0]->write(g.id(), {put(k, "\"w3\"", s0->context)}, 3));
      pull(*g.nodes[2], *g.nodes[0], g.id());
      CHECK(values_of(*g.nodes[2], g.id(), k) == std::vector<std::string>{"\"w3\""});
      g.sync_all();
      for (auto& n : g.nodes) {
        CHECK(values_of(*n, g.id(), k) == std::vector<std::string>{"\"w3\""});
        CHECK(n->superseded_count(g.id()) == 0);
      }
    }
  }
}

TEST_CASE("signed batches that prove nothing held are dropped; those of kept headers stay until "
          "every member has them",
          "[store]") {
  for (auto b : backends) {
    DYNAMIC_SECTION(test::name_of(b)) {
      group g(b);
      auto k = doc_key(g.people[0], "doc", "title");
      std::optional<protocol::signed_reply> push41;
      auto overwrite = [&](int i) {
        auto seen = g.nodes[0]->read(g.id(), k);
        REQUIRE(seen);
        auto push = g.nodes[0]->write(
            g.id(), {put(k, "\"v" + std::to_string(i) + "\"", seen->context)}, static_cast<std::uint64_t>(i + 1));
        REQUIRE(push);
        if (i == 41)
          push41 = *push;
      };
      REQUIRE(g.nodes[0]->write(g.id(), {put(k, "\"v0\"")}, 1));
      // Forty overwrites nobody else has seen: each superseded write is a
      // kept header, and its batch (one per write here) must stay to prove it.
      for (int i = 1; i <= 40; ++i)
        overwrite(i);
      REQUIRE(g.nodes[0]->sweep_batches(g.id()));
      CHECK(g.nodes[0]->superseded_count(g.id()) == 40);
      CHECK(g.nodes[0]->batch_count(g.id()) == 41);
      CHECK(g.nodes[0]->check_topic(g.id()));
      // So a peer pulling now gets every header with its proof.
      pull(*g.nodes[1], *g.nodes[0], g.id());
      CHECK(values_of(*g.nodes[1], g.id(), k) == std::vector<std::string>{"\"v40\""});
      // Once every member has every dot the headers go, and a sweep leaves
      // the one batch that proves the value held.
      g.sync_all();
      for (auto& n : g.nodes) {
        CHECK(n->superseded_count(g.id()) == 0);
        REQUIRE(n->sweep_batches(g.id()));
        CHECK(n->batch_count(g.id()) == 1);
        CHECK(n->check_topic(g.id()));
        CHECK(values_of(*n, g.id(), k) == std::vector<std::string>{"\"v40\""});
      }
      // Without being asked: as writes go by, spent batches do not pile up.
      for (int i = 41; i <= 100; ++i) {
        overwrite(i);
        g.sync_all();
      }
      for (auto& n : g.nodes) {
        CHECK(n->batch_count(g.id()) <= store::min_batches_per_sweep + 1);
        CHECK(n->check_topic(g.id()));
        CHECK(values_of(*n, g.id(), k) == std::vector<std::string>{"\"v100\""});
      }
      // A spent write replayed after its batch went changes nothing.
      REQUIRE(push41);
      REQUIRE(g.nodes[2]->apply(*push41));
      CHECK(values_of(*g.nodes[2], g.id(), k) == std::vector<std::string>{"\"v100\""});
      CHECK(g.nodes[2]->check_topic(g.id()));
    }
  }
}

TEST_CASE("in-memory stores sharing a value pool hold each value once and let it go with its "
          "last holder",
          "[store][kv]") {
  auto pool = std::make_shared<value_pool>();
  auto a = make_memory_kv(pool);
  auto b = make_memory_kv(pool);
  const std::string big(100, 'x'), other(100, 'y'), small = "tiny";
  auto put = [](kv_store& kv, const std::string& k, const std::string& v) {
    kv_batch batch;
    batch.put(k, v);
    REQUIRE(kv.commit(batch, false));
  };
  auto del = [](kv_store& kv, const std::string& k) {
    kv_batch batch;
    batch.del(k);
    REQUIRE(kv.commit(batch, false));
  };
  put(*a, "k1", big);
  put(*b, "k9", big);
  put(*a, "k2", small);
  CHECK(pool->size() == 1); // big once; small values are copied, not shared
  CHECK(pool->bytes() == 100);
  CHECK(a->get("k1").value() == big);
  CHECK(b->get("k9").value() == big);
  CHECK(a->get("k2").value() == small);

  // Overwriting one holder's copy leaves the other's intact.
  put(*a, "k1", other);
  CHECK(pool->size() == 2);
  CHECK(a->get("k1").value() == other);
  CHECK(b->get("k9").value() == big);
  std::vector<std::string> seen;
  REQUIRE(b->scan("", "", [&](std::string_view k, std::string_view v) {
    seen.push_back(std::string(k) + "=" + std::string(v.substr(0, 1)));
    return true;
  }));
  CHECK(seen == std::vector<std::string>{"k9=x"});

  // The last holder's delete releases the value; a later put makes it anew.
  del(*b, "k9");
  CHECK(pool->size() == 1);
  CHECK(pool->bytes() == 100);
  put(*b, "k3", big);
  CHECK(pool->size() == 2);
  a.reset(); // a store dropped with its values
  CHECK(pool->size() == 1);
  CHECK(b->get("k3").value() == big);
}
