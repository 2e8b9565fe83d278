// Random workloads on a group of stores, mirrored on the in-memory NDC
// replica of the causality library: the signed store, whose discarding
// contexts come only from signed headers, must end in the same state as
// the reference that trusts its peers' clocks.

#include "fixture.hpp"

#include "kith/causality/replica.hpp"
#include "kith/storage/documents.hpp"

using namespace kith;
using namespace kith::storage;
using kith::test::backend;

namespace {

struct world {
  test::temp_dir dir;
  std::vector<protocol::identity> people;
  std::vector<std::unique_ptr<store>> nodes;
  std::vector<causality::replica> refs;
  protocol::topic_descriptor topic;
  std::vector<std::string> keys;

  world(backend b, std::size_t n, std::size_t nkeys) {
    for (std::size_t i = 0; i < n; ++i)
      people.push_back(test::person(200 + i));
    std::vector<protocol::public_key> writers;
    for (auto& p : people)
      writers.push_back(p.pub());
    topic = protocol::make_topic(people[0], protocol::topic_kind::shared, "t", writers, 9);
    std::vector<replica_id> members;
    for (std::size_t i = 0; i < n; ++i) {
      nodes.push_back(test::open_store(b, people[i], 500 + i, dir));
      members.push_back(nodes.back()->self_id());
    }
    for (std::size_t i = 0; i < n; ++i) {
      REQUIRE(nodes[i]->add_topic(topic));
      REQUIRE(nodes[i]->set_members(topic.id, members));
      refs.emplace_back(members[i]);
      refs.back().set_members(members);
    }
    for (std::size_t k = 0; k < nkeys; ++k)
      keys.push_back(test::doc_key(people[0], "doc/" + std::to_string(k), "p"));
  }

  // The reference's context for a read at node i, in the store's ids.
  void write(std::size_t i, const std::string& k, std::optional<std::string> v, bool blind,
             std::uint64_t t) {
    version_vector ctx;
    version_vector ref_ctx;
    if (!blind) {
      auto r = nodes[i]->read(topic.id, k);
      REQUIRE(r);
      ctx = r->context;
      ref_ctx = refs[i].read(k).context;
    }
    REQUIRE(nodes[i]->write(topic.id, {{k, v, ctx}}, t));
    if (v)
      (void) refs[i].put(k, *v, ref_ctx);
    else
      (void) refs[i].erase(k, ref_ctx);
  }

  void pull(std::size_t a, std::size_t b) {
    test::pull(*nodes[a], *nodes[b], topic.id);
    refs[a].apply(refs[b].answer(refs[a].make_request()));
  }

  void check_same() {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      for (const auto& k : keys) {
        auto got = test::values_of(*nodes[i], topic.id, k);
        auto want = refs[i].read(k).values;
        std::sort(want.begin(), want.end());
        CAPTURE(i, k);
        CHECK(got == want);
      }
  }
};

void run_case(backend b, std::uint64_t seed, int steps) {
  CAPTURE(seed);
  test::rng g(seed);
  const std::size_t n = 2 + test::pick(g, 0, 2);
  world w(b, n, 1 + test::pick(g, 0, 5));
  for (int step = 0; step < steps; ++step) {
    const std::size_t i = test::pick(g, 0, n - 1);
    const auto& k = w.keys[test::pick(g, 0, w.keys.size() - 1)];
    switch (test::pick(g, 0, 5)) {
      case 0:
      case 1:
        w.write(i, k, "v" + std::to_string(step), false, step);
        break;
      case 2:
        w.write(i, k, "b" + std::to_string(step), true, step);
        break;
      case 3:
        w.write(i, k, std::nullopt, false, step);
        break;
      default: {
        std::size_t j = test::pick(g, 0, n - 1);
        if (j != i)
          w.pull(i, j);
      }
    }
    // Along the way, the two agree node by node.
    w.check_same();
  }
  // Full exchange: everyone converges, and nothing is kept for others.
  for (int round = 0; round < 3; ++round)
    for (std::size_t a = 0; a < n; ++a)
      for (std::size_t c = 0; c < n; ++c)
        if (a != c)
          w.pull(a, c);
  w.check_same();
  for (const auto& k : w.keys) {
    auto first = test::values_of(*w.nodes[0], w.topic.id, k);
    for (auto& node : w.nodes)
      CHECK(test::values_of(*node, w.topic.id, k) == first);
  }
  for (auto& node : w.nodes) {
    CHECK(node->check_topic(w.topic.id));
    CHECK(node->superseded_count(w.topic.id) == 0);
  }
}

} // namespace

TEST_CASE("random workloads on signed stores match the reference replica (memory)",
          "[store][property]") {
  const int cases = test::cases(300);
  for (int c = 0; c < cases; ++c)
    run_case(backend::memory, test::base_seed() * 7919 + c, 40);
}

TEST_CASE("random workloads on signed stores match the reference replica (rocksdb)",
          "[store][property]") {
  const int cases = std::max(1, test::cases(300) / 30);
  for (int c = 0; c < cases; ++c)
    run_case(backend::rocksdb, test::base_seed() * 104729 + c, 40);
}


TEST_CASE_METHOD(test::author_and_follower,
                 "a complete resync from the author drops an old copy of a post the author deleted",
                 "[store][resync]") {
  auto kept = da.post("kept", 1000);
  auto gone = da.post("deleted later", 1001);
  REQUIRE(kept);
  REQUIRE(gone);
  // Bob got both (say from another follower), then ann deleted one and,
  // with no other member waiting, forgot the delete at once.
  REQUIRE(b->add_topic(*a->topic(feed)));
  auto first = a->page(feed, "", 100);
  REQUIRE(first);
  REQUIRE(b->apply(first->reply));
  REQUIRE(da.del(*gone, std::nullopt, 2000));
  CHECK(a->superseded_count(feed) == 0);

  // Bob resyncs from ann herself: every page, then her own entry vouched.
  auto resync = [&](bool pass_held) {
    causality::node_clock held;
    std::string after;
    std::optional<causality::node_clock> clock;
    for (;;) {
      auto p = a->page(feed, after, 1);
      REQUIRE(p);
      if (!clock)
        clock = p->reply.clock;
      // Without ann's signed summary, which would drop the post on its
      // own (resync_test.cpp): this is the sender's entry at work.
      auto reply = p->reply;
      reply.summaries.clear();
      REQUIRE(b->apply(reply));
      for (const auto& e : p->reply.entries)
        for (const auto& rec : e.records)
          if (rec.first.id == a->self_id())
            held.add(rec.first);
      if (p->complete)
        break;
      after = p->next_after;
    }
    REQUIRE(b->join_sender_entry(feed, a->self_id(), *clock, pass_held ? &held : nullptr));
  };
  resync(false); // what a resync did before: the old copy stays
  CHECK_FALSE(db.get(*gone, feed)->is_null());
  resync(true); // the writes ann no longer holds are dropped
  test::check_only_kept(*b, db, feed, *gone, *kept, ann);
  REQUIRE(b->check_topic(feed));
}

TEST_CASE_METHOD(test::author_and_follower, "resync pages stop at their byte budget and together carry every key",
                 "[store][resync]") {
  const std::string big(100'000, 'x');
  std::vector<std::string> posts;
  for (int i = 0; i < 25; ++i) {
    auto p = da.post(std::to_string(i) + big, 1000 + i);
    REQUIRE(p);
    posts.push_back(*p);
  }
  REQUIRE(b->add_topic(*a->topic(feed)));
  // Every post's record is over 100 kB: a 1 MB budget takes about ten.
  std::string after;
  std::size_t pages = 0, keys = 0;
  for (;;) {
    auto p = a->page(feed, after, 1000, 1'000'000);
    REQUIRE(p);
    ++pages;
    keys += p->reply.entries.size();
    std::size_t bytes = 0;
    for (const auto& e : p->reply.entries)
      for (const auto& rec : e.records)
        bytes += rec.second.size();
    CHECK(p->reply.entries.size() >= 1);
    CHECK(bytes < 1'000'000 + 2 * big.size()); // at most one key past the budget
    REQUIRE(b->apply(p->reply));
    if (p->complete)
      break;
    after = p->next_after;
    REQUIRE(pages < 100);
  }
  CHECK(pages >= 3);
  CHECK(keys >= posts.size());
  for (const auto& id : posts) {
    auto got = db.get(id, feed);
    REQUIRE(got);
    CHECK_FALSE(got->is_null());
  }
  // A single key over the budget still makes progress.
  auto one = a->page(feed, "", 1000, 1);
  REQUIRE(one);
  CHECK(one->reply.entries.size() == 1);
  CHECK_FALSE(one->complete);
}
