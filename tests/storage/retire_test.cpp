// Retiring a topic member from the watermark (store::set_members without
// it): what only it held back is pruned in the same commit.

#include "fixture.hpp"

#include "kith/storage/documents.hpp"

using namespace kith;
using test::backend;

TEST_CASE("retiring a silent member prunes the dot-key map and the kept delete records it held "
          "back",
          "[store][retire]") {
  for (auto be : {backend::memory, backend::rocksdb}) {
    INFO(test::name_of(be));
    test::temp_dir dir;
    auto ann = test::person(1), bob = test::person(2), cat = test::person(3);
    auto a = test::open_store(be, ann, 1, dir);
    auto b = test::open_store(be, bob, 2, dir);
    auto c = test::open_store(be, cat, 3, dir);
    storage::documents da(*a);
    const auto feed = a->feed_topic_id();
    REQUIRE(b->add_topic(*a->topic(feed)));
    REQUIRE(c->add_topic(*a->topic(feed)));
    REQUIRE(a->set_members(feed, {b->self_id(), c->self_id()}));
    auto gone = da.post("deleted later", 1000);
    REQUIRE(gone);
    REQUIRE(da.post("kept", 1001));
    test::pull(*b, *a, feed); // a answer observes the asker's clock
    test::pull(*c, *a, feed);
    REQUIRE(da.del(*gone, std::nullopt, 2000));
    test::pull(*b, *a, feed); // b has the delete; c does not
    test::pull(*b, *a, feed); // ... and a knows it (the asker's clock is its report)

    // c is silent: the deleted write's header and the delete's dot wait for it.
    const auto kept = a->superseded_count(feed);
    CHECK(kept > 0);
    auto dots = a->kept_dots(feed);
    CHECK(dots.size() == kept);
    for (auto d : dots)
      CHECK(d.id == a->self_id());
    auto before = a->metadata(feed);
    REQUIRE(before);
    CHECK(before->members == 3);
    CHECK(before->dot_map_entries > 0);

    // Retired, it no longer counts: b has everything, so everything goes.
    REQUIRE(a->set_members(feed, {b->self_id()}));
    CHECK(a->superseded_count(feed) == 0);
    CHECK(a->kept_dots(feed).empty());
    auto after = a->metadata(feed);
    REQUIRE(after);
    CHECK(after->members == 2);
    CHECK(after->dot_map_entries == 0);
    // A report of a retired replica changes nothing.
    REQUIRE(a->observe(feed, c->self_id(), *c->clock_copy(feed)));
    CHECK(a->metadata(feed)->members == 2);
    REQUIRE(a->check_topic(feed));

    // c's anti-entropy no longer hears of the delete record; a's signed
    // summary in the answer still tells c that the post went. Without it
    // only a full resync (the topic actor asks a returning member for
    // one) would reach c.
    auto req = c->make_request(feed);
    REQUIRE(req);
    auto answer = a->answer(feed, *req);
    REQUIRE(answer);
    CHECK(answer->entries.empty());
    REQUIRE(answer->summaries.size() == 1);
    storage::documents dc(*c);
    auto bare = *answer;
    bare.summaries.clear();
    REQUIRE(c->apply(bare));
    CHECK_FALSE(dc.get(*gone, feed)->is_null());
    REQUIRE(c->apply(*answer));
    CHECK(dc.get(*gone, feed)->is_null());
    CHECK(a->metadata(feed)->members == 2); // a pull does not make it a member
  }
}

TEST_CASE("a full resync owed by a joining member is kept in the store until a report of its "
          "clock covers our base, and retiring the member clears it",
          "[store][retire]") {
  for (auto be : {backend::memory, backend::rocksdb}) {
    INFO(test::name_of(be));
    test::temp_dir dir;
    auto ann = test::person(1), bob = test::person(2);
    auto a = test::open_store(be, ann, 1, dir);
    auto b = test::open_store(be, bob, 2, dir);
    const auto feed = a->feed_topic_id();
    REQUIRE(b->add_topic(*a->topic(feed)));
    {
      storage::documents da(*a);
      REQUIRE(da.post("one", 1000));
      REQUIRE(da.post("two", 1001));
    }
    const auto base = a->clock_copy(feed)->base(a->self_id());
    REQUIRE(base > 0);
    auto joined = a->join_member(feed, b->self_id());
    REQUIRE(joined);
    CHECK(*joined);
    CHECK(a->owes_resync(feed, b->self_id()));
    CHECK(a->metadata(feed)->members == 2);
    auto again = a->join_member(feed, b->self_id());
    REQUIRE(again);
    CHECK_FALSE(*again); // already a member: nothing changes
    CHECK(a->metadata(feed)->members == 2);

    // A report that does not cover our writes up to the base leaves the debt.
    REQUIRE(a->settle_resync(feed, b->self_id(), *b->clock_copy(feed)));
    CHECK(a->owes_resync(feed, b->self_id()));
    // A restart of the node (a reopen of its store) keeps it.
    if (be == backend::rocksdb) {
      a.reset();
      a = test::open_store(be, ann, 1, dir);
      CHECK(a->owes_resync(feed, b->self_id()));
      CHECK(a->metadata(feed)->members == 2);
      REQUIRE(a->check_topic(feed));
    }
    // Writes after the join are not part of the debt.
    {
      storage::documents da(*a);
      REQUIRE(da.post("three", 1002));
    }
    auto partial = *b->clock_copy(feed);
    for (std::uint64_t n = 1; n < base; ++n)
      partial.add(causality::dot{a->self_id(), causality::counter{n}});
    REQUIRE(a->settle_resync(feed, b->self_id(), partial));
    CHECK(a->owes_resync(feed, b->self_id())); // one short
    partial.add(causality::dot{a->self_id(), causality::counter{base}});
    REQUIRE(a->settle_resync(feed, b->self_id(), partial));
    CHECK_FALSE(a->owes_resync(feed, b->self_id()));
    if (be == backend::rocksdb) {
      a.reset();
      a = test::open_store(be, ann, 1, dir);
      CHECK_FALSE(a->owes_resync(feed, b->self_id()));
    }

    // Retired and back: a new debt; retiring it again clears the debt, in
    // memory and in the store.
    REQUIRE(a->set_members(feed, {}));
    joined = a->join_member(feed, b->self_id());
    REQUIRE(joined);
    CHECK(*joined);
    CHECK(a->owes_resync(feed, b->self_id()));
    REQUIRE(a->set_members(feed, {}));
    CHECK_FALSE(a->owes_resync(feed, b->self_id()));
    CHECK(a->metadata(feed)->members == 1);
    if (be == backend::rocksdb) {
      a.reset();
      a = test::open_store(be, ann, 1, dir);
      CHECK_FALSE(a->owes_resync(feed, b->self_id()));
      CHECK(a->metadata(feed)->members == 1);
    }
  }
}
