// The end of a full resync (store::join_sender_entry): what the sender's
// own clock entry may vouch for, and what it must not claim. Both cases
// were found by the simulator with store losses
// (sim/scenarios/repro-store-loss-resurrect.toml and
// repro-late-reply-store-loss.toml, seed 1).

#include "fixture.hpp"

#include "kith/storage/documents.hpp"

using namespace kith;
using namespace kith::storage;
using kith::test::backend;
using kith::test::values_of;

namespace {

/// Every page of `from`'s topic applied at `to`, then the sender's entry
/// joined, as the peer actor does: the clock of the first page and every
/// dot the pages carried or named as held. With `have`, each page is asked
/// with `to`'s clock at the time; without `summaries`, the writer
/// summaries the last page carries are left out (to see the end of the
/// resync at work alone). Returns the number of entries sent.
std::size_t resync(store& to, store& from, const std::string& topic, bool have = false,
                   bool summaries = true, bool trust_writers = false) {
  causality::node_clock held;
  std::optional<causality::node_clock> clock;
  std::string after;
  std::size_t sent = 0;
  for (;;) {
    auto mine = to.clock_copy(topic);
    REQUIRE(mine);
    auto p = from.page(topic, after, 1, store::default_page_bytes, have ? &*mine : nullptr);
    REQUIRE(p);
    sent += p->reply.entries.size();
    held.merge(p->held);
    if (!have)
      CHECK(p->held.empty());
    if (!clock)
      clock = p->reply.clock;
    if (!summaries)
      p->reply.summaries.clear();
    auto applied = to.apply(p->reply);
    INFO((applied ? std::string() : applied.err().message));
    REQUIRE(applied);
    for (const auto& e : p->reply.entries)
      for (const auto& rec : e.records)
        held.add(rec.first);
    if (p->complete)
      break;
    after = p->next_after;
  }
  REQUIRE(to.join_sender_entry(topic, from.self_id(), *clock, &held, trust_writers));
  return sent;
}

write_op put(std::string k, std::string v, version_vector ctx = {}) {
  return {std::move(k), std::move(v), std::move(ctx)};
}

/// Ann (the creator), Bob and Cat, writers of one shared topic, each with
/// a store; Ann and Bob count the other two as members (Cat has none).
struct three_writers {
  test::temp_dir dir;
  protocol::identity ann, bob, cat;
  protocol::topic_descriptor topic;
  std::unique_ptr<store> a, b, c;
  three_writers(std::uint64_t first, std::uint64_t topic_nonce)
      : ann(test::person(first)), bob(test::person(first + 1)), cat(test::person(first + 2)),
        topic(protocol::make_topic(ann, protocol::topic_kind::shared, "kv",
                                   {ann.pub(), bob.pub(), cat.pub()}, topic_nonce)),
        a(test::open_store(backend::memory, ann, first, dir)),
        b(test::open_store(backend::memory, bob, first + 1, dir)),
        c(test::open_store(backend::memory, cat, first + 2, dir)) {
    for (auto* s : {a.get(), b.get(), c.get()})
      REQUIRE(s->add_topic(topic));
    REQUIRE(a->set_members(topic.id, {b->self_id(), c->self_id()}));
    REQUIRE(b->set_members(topic.id, {a->self_id(), c->self_id()}));
  }
};

} // namespace

TEST_CASE("a resync from an author that lost its store drops posts it deleted under its new id",
          "[store][resync]") {
  test::temp_dir dir;
  auto ann = test::person(1), bob = test::person(2);
  auto old_ann = test::open_store(backend::memory, ann, 1, dir);
  auto b = test::open_store(backend::memory, bob, 2, dir);
  const auto feed = old_ann->feed_topic_id();
  storage::documents d_old(*old_ann), db(*b);
  auto kept = d_old.post("kept", 1000);
  auto gone = d_old.post("deleted after the store loss", 1001);
  REQUIRE(kept);
  REQUIRE(gone);
  REQUIRE(b->add_topic(*old_ann->topic(feed)));
  resync(*b, *old_ann, feed);
  REQUIRE_FALSE(db.get(*gone, feed)->is_null());

  // Ann loses her store: a new replica id, the same identity. She fetches
  // her feed back from Bob, then deletes a post her old replica wrote.
  auto ann2 = test::open_store(backend::memory, ann, 3, dir);
  REQUIRE(ann2->self_id() != old_ann->self_id());
  resync(*ann2, *b, feed);
  storage::documents d_new(*ann2);
  REQUIRE_FALSE(d_new.get(*gone, feed)->is_null());
  REQUIRE(d_new.del(*gone, std::nullopt, 2000));
  // No other member waits for the delete: its record is gone at once.
  CHECK(ann2->superseded_count(feed) == 0);

  // Bob resyncs from her new replica. Her entry covers the delete, which
  // Bob never received; she vouches first-hand for her own writes, under
  // any of her replica ids, so the post she no longer holds goes.
  resync(*b, *ann2, feed);
  test::check_only_kept(*b, db, feed, *gone, *kept, ann);
  REQUIRE(b->check_topic(feed));
}

TEST_CASE("a resync asked with the asker's clock sends only the keys it lacks, names the rest by "
          "their dots, and still drops the posts the author deleted",
          "[store][resync]") {
  test::temp_dir dir;
  auto ann = test::person(21), bob = test::person(22), cat = test::person(23);
  auto a = test::open_store(backend::memory, ann, 21, dir);
  auto b = test::open_store(backend::memory, bob, 22, dir);
  auto c = test::open_store(backend::memory, cat, 23, dir);
  const auto feed = a->feed_topic_id();
  storage::documents da(*a), db(*b), dc(*c);
  std::vector<std::string> posts;
  for (int i = 0; i < 5; ++i) {
    auto p = da.post("post " + std::to_string(i), 1000 + i);
    REQUIRE(p);
    posts.push_back(*p);
  }
  REQUIRE(b->add_topic(*a->topic(feed)));
  REQUIRE(c->add_topic(*a->topic(feed)));
  const auto full = resync(*b, *a, feed);
  CHECK(full > 5);
  // Cat holds a copy too (her reference: a resync without her clock).
  resync(*c, *a, feed);

  // Ann deletes one post and writes a new one; no member waits for the
  // delete, so no record of it is left to send.
  REQUIRE(da.del(posts[1], std::nullopt, 2000));
  auto fresh = da.post("after", 2001);
  REQUIRE(fresh);
  CHECK(a->superseded_count(feed) == 0);

  // Bob resyncs with his clock: only the new post's keys travel.
  const auto sent = resync(*b, *a, feed, true);
  CHECK(sent > 0);
  CHECK(sent * 5 <= full);
  const auto sent_full = resync(*c, *a, feed);
  CHECK(sent_full > sent);
  // Both end with the same posts: the deleted one gone, the others kept.
  for (auto* d : {&db, &dc}) {
    CHECK(d->get(posts[1], feed)->is_null());
    CHECK_FALSE(d->get(*fresh, feed)->is_null());
    for (std::size_t i : {0u, 2u, 3u, 4u})
      CHECK_FALSE(d->get(posts[i], feed)->is_null());
  }
  CHECK(db.feed(ann.pub(), 100)->size() == 5);
  CHECK(dc.feed(ann.pub(), 100)->size() == 5);
  REQUIRE(b->check_topic(feed));

  // Asked again with a clock that covers everything, no key travels.
  CHECK(resync(*b, *a, feed, true) == 0);
  CHECK_FALSE(db.get(posts[0], feed)->is_null());
}

TEST_CASE("a resync does not make the clock claim an overwrite whose effect it did not carry; "
          "trusting writers, a shared topic's writer drops the overwritten value",
          "[store][resync]") {
  // Ann holds Bob's value w158 on a key of the topic's creator (Ann), which
  // every writer may write. Cat overwrites it (w176, having read it) and
  // overwrites her own value again (w179); Cat has no other member, so she
  // forgets w176 at once. Bob got both writes and keeps the record of w176
  // for Ann. Ann then resyncs from Cat: the pages carry w179, whose
  // context names w176 only, and Cat's clock covers w158 and w176. Cat may
  // delete any value of that key, so her complete resync drops w158 (she
  // covers it and no longer holds it), and her entry (w176 included) is
  // joined with its effect in place, when the receiver trusts writers
  // (sync_settings::retire_shared). Otherwise w158 stays until
  // anti-entropy with Bob, and Cat's entry, which would claim w176 without
  // its effect, is not joined meanwhile.
  for (bool trust : {false, true}) {
    INFO("trust writers: " << trust);
    three_writers t(11, 7);
    auto &a = t.a, &b = t.b, &c = t.c;
    const auto& topic = t.topic;
    const std::string k = test::doc_key(t.ann, "kv/k2", "v");

    auto w158 = b->write(topic.id, {put(k, "\"w158\"")}, 1000);
    REQUIRE(w158);
    REQUIRE(a->apply(*w158));
    REQUIRE(c->apply(*w158));
    auto read = c->read(topic.id, k);
    REQUIRE(read);
    auto w176 = c->write(topic.id, {put(k, "\"w176\"", read->context)}, 2000);
    REQUIRE(w176);
    REQUIRE(b->apply(*w176));
    read = c->read(topic.id, k);
    REQUIRE(read);
    auto w179 = c->write(topic.id, {put(k, "\"w179\"", read->context)}, 3000);
    REQUIRE(w179);
    REQUIRE(b->apply(*w179));
    const causality::dot overwrite{c->self_id(), causality::counter{1}};
    CHECK(c->superseded_count(topic.id) == 0); // Cat forgot w176
    CHECK(b->superseded_count(topic.id) >= 1); // Bob keeps it for Ann
    CHECK(values_of(*b, topic.id, k) == std::vector<std::string>{"\"w179\""});

    resync(*a, *c, topic.id, false, true, trust);
    if (trust) {
      CHECK(values_of(*a, topic.id, k) == std::vector<std::string>{"\"w179\""});
      CHECK(a->clock(topic.id)->contains(overwrite));
      CHECK(*a->clock(topic.id)->find(c->self_id()) == *c->clock(topic.id)->find(c->self_id()));
      // The trusted writer's whole clock is joined (our own entry aside).
      for (const auto& [id, e] : c->clock(topic.id)->entries())
        if (id != a->self_id())
          CHECK(a->clock(topic.id)->contains(causality::dot{id, causality::counter{e.max()}}));
    } else {
      CHECK(values_of(*a, topic.id, k) == std::vector<std::string>{"\"w158\"", "\"w179\""});
      CHECK_FALSE(a->clock(topic.id)->contains(overwrite));
    }
    REQUIRE(a->check_topic(topic.id));
    // Anti-entropy with Bob brings the overwrite's record (and, without
    // trust, its effect).
    test::pull(*a, *b, topic.id);
    CHECK(values_of(*a, topic.id, k) == std::vector<std::string>{"\"w179\""});
    CHECK(a->clock(topic.id)->contains(overwrite));
    REQUIRE(a->check_topic(topic.id));
    // Once nothing is left unexplained, a later resync joins Cat's entry.
    resync(*a, *c, topic.id, false, true, trust);
    CHECK(*a->clock(topic.id)->find(c->self_id()) == *c->clock(topic.id)->find(c->self_id()));
    CHECK(values_of(*a, topic.id, k) == std::vector<std::string>{"\"w179\""});
  }
}

TEST_CASE("a resync does not make the clock claim writes whose effect it did not carry when the "
          "sender may not write the key of a value it dropped",
          "[store][resync]") {
  // Bob's own document: only Bob may write it. Ann holds Bob's w158 there;
  // Bob deletes it, and Cat (a writer, but not of Bob's documents) gets the
  // delete while Ann does not; Bob keeps its record for Ann. (Bob's signed
  // summary, which Cat relays, would drop w158 on its own: the resync here
  // leaves summaries out to show the end of the resync alone.) Cat also
  // overwrote a value of her own (c1 by c2) and, with no other member,
  // forgot c1. Ann resyncs from Cat: w158 is covered by Cat's clock and
  // not carried, but Cat cannot vouch for a key she may not write, so it
  // stays, and Cat's entry (which would claim c1, a write Ann never saw)
  // is not joined while something is unexplained. Anti-entropy with Bob
  // then brings the delete; a later resync joins Cat's entry.
  three_writers t(31, 9);
  auto &a = t.a, &b = t.b, &c = t.c;
  const auto& topic = t.topic;
  const std::string kb = test::doc_key(t.bob, "notes/n1", "v");
  const std::string kc = test::doc_key(t.cat, "notes/n1", "v");

  auto w158 = b->write(topic.id, {put(kb, "\"w158\"")}, 1000);
  REQUIRE(w158);
  REQUIRE(a->apply(*w158));
  REQUIRE(c->apply(*w158));
  auto read = b->read(topic.id, kb);
  REQUIRE(read);
  auto del = b->write(topic.id, {write_op{kb, std::nullopt, read->context}}, 2000);
  REQUIRE(del);
  REQUIRE(c->apply(*del));
  auto c1 = c->write(topic.id, {put(kc, "\"c1\"")}, 2100);
  REQUIRE(c1);
  read = c->read(topic.id, kc);
  REQUIRE(read);
  REQUIRE(c->write(topic.id, {put(kc, "\"c2\"", read->context)}, 2200));
  CHECK(c->superseded_count(topic.id) == 0); // Cat keeps no record
  CHECK(b->superseded_count(topic.id) >= 1); // Bob keeps the delete's for Ann
  const causality::dot first_of_cat{c->self_id(), causality::counter{1}};

  resync(*a, *c, topic.id, false, false, true);
  CHECK(values_of(*a, topic.id, kb) == std::vector<std::string>{"\"w158\""});
  CHECK(values_of(*a, topic.id, kc) == std::vector<std::string>{"\"c2\""});
  CHECK_FALSE(a->clock(topic.id)->contains(first_of_cat));

  test::pull(*a, *b, topic.id);
  CHECK(values_of(*a, topic.id, kb).empty());
  REQUIRE(a->check_topic(topic.id));
  resync(*a, *c, topic.id, false, false, true);
  CHECK(*a->clock(topic.id)->find(c->self_id()) == *c->clock(topic.id)->find(c->self_id()));
  CHECK(values_of(*a, topic.id, kc) == std::vector<std::string>{"\"c2\""});
}

TEST_CASE_METHOD(test::author_and_follower,
                 "the end of a resync strips the contexts its joined clock entry now covers",
                 "[store][resync]") {
  // Found by the simulator (strip_limit_s with retirement): keys stored
  // during a resync keep a context while the clock has the gaps of writes
  // the pages did not carry (deleted posts); the sender's entry, joined at
  // the end, fills the gaps, and nothing stripped them afterwards.
  std::vector<std::string> posts;
  for (int n = 0; n < 6; ++n) {
    auto p = da.post("post " + std::to_string(n), 1000 + n);
    REQUIRE(p);
    posts.push_back(*p);
  }
  REQUIRE(da.del(posts[1], std::nullopt, 2000));
  REQUIRE(da.del(posts[2], std::nullopt, 2001));
  REQUIRE(a->metadata(feed)->unstripped_keys == 0); // Ann's own clock has no gap
  REQUIRE(b->add_topic(*a->topic(feed)));
  resync(*b, *a, feed);
  auto m = b->metadata(feed);
  REQUIRE(m);
  CHECK(m->unstripped_keys == 0);
  REQUIRE(b->check_topic(feed));
  // And the contents are Ann's.
  for (int n : {0, 3, 4, 5})
    CHECK_FALSE(db.get(posts[n], feed)->is_null());
  for (int n : {1, 2})
    CHECK(db.get(posts[n], feed)->is_null());
}

TEST_CASE("a follower that missed a delete drops the post when a co-follower relays the author's "
          "signed summary",
          "[store][resync][summary]") {
  // Bob was away when Ann deleted a post. Cat got the delete, and nobody
  // keeps its record (neither has other members). Cat's own clock entry
  // cannot vouch for Ann's writes; Ann's summary, signed by her and
  // relayed by Cat, can.
  test::temp_dir dir;
  auto ann = test::person(21), bob = test::person(22), cat = test::person(23);
  auto a = test::open_store(backend::memory, ann, 21, dir);
  auto b = test::open_store(backend::memory, bob, 22, dir);
  auto c = test::open_store(backend::memory, cat, 23, dir);
  const auto feed = a->feed_topic_id();
  storage::documents da(*a), db(*b), dc(*c);
  auto kept = da.post("kept", 1000);
  auto gone = da.post("deleted while Bob was away", 1001);
  REQUIRE(kept);
  REQUIRE(gone);
  REQUIRE(b->add_topic(*a->topic(feed)));
  REQUIRE(c->add_topic(*a->topic(feed)));
  resync(*b, *a, feed);
  resync(*c, *a, feed);
  REQUIRE(da.del(*gone, std::nullopt, 2000));
  test::pull(*c, *a, feed);
  REQUIRE(dc.get(*gone, feed)->is_null());
  REQUIRE_FALSE(db.get(*gone, feed)->is_null());

  SECTION("in a full resync from the co-follower") { resync(*b, *c, feed); }
  SECTION("in an anti-entropy answer from the co-follower") { test::pull(*b, *c, feed); }
  test::check_only_kept(*b, db, feed, *gone, *kept, ann);
  REQUIRE(b->check_topic(feed));
  // Bob now holds the summary and relays it in turn to an asker whose
  // clock misses some of the counters it speaks of: Cat's misses the
  // delete's own dots (she dropped the post by the summary, and Ann kept
  // no record to send). Ann's clock has them all: not sent to her.
  auto from_cat = c->make_request(feed);
  REQUIRE(from_cat);
  auto to_cat = b->answer(feed, *from_cat);
  REQUIRE(to_cat);
  CHECK(to_cat->summaries.size() == 1);
  auto from_ann = a->make_request(feed);
  REQUIRE(from_ann);
  auto to_ann = b->answer(feed, *from_ann);
  REQUIRE(to_ann);
  CHECK(to_ann->summaries.empty());
}

TEST_CASE("a writer's new replica vouches for the old one's posts it deletes; followers that missed "
          "the delete drop them",
          "[store][resync][summary]") {
  // Ann wrote two posts, then lost her store. Her new replica restored
  // her feed from Cat and deleted one of the old replica's posts. Cat got
  // the delete; Bob was away, and nobody kept the delete's record. The
  // old replica is gone and never signed a summary; the new one's summary
  // of its own writes does not speak of the old one's (churn-lifecycle
  // seed 22, docs/simulation.md). The new replica vouches for the old:
  // a summary of the old replica's counters, signed with Ann's key.
  test::temp_dir dir;
  auto ann = test::person(51), bob = test::person(52), cat = test::person(53),
       dan = test::person(54);
  auto a1 = test::open_store(backend::memory, ann, 51, dir);
  auto b = test::open_store(backend::memory, bob, 52, dir);
  auto c = test::open_store(backend::memory, cat, 53, dir);
  auto d = test::open_store(backend::memory, dan, 54, dir);
  const auto feed = a1->feed_topic_id();
  storage::documents da1(*a1), db(*b), dc(*c), dd(*d);
  auto kept = da1.post("kept", 1000);
  auto gone = da1.post("deleted by the new replica", 1001);
  REQUIRE(kept);
  REQUIRE(gone);
  for (auto* s : {b.get(), c.get(), d.get()})
    REQUIRE(s->add_topic(*a1->topic(feed)));
  // Dan is a member at Bob: Bob keeps what Dan has not seen yet.
  REQUIRE(b->set_members(feed, {d->self_id()}));
  resync(*b, *a1, feed);
  resync(*c, *a1, feed);
  resync(*d, *a1, feed);
  const auto old_id = a1->self_id();
  a1.reset(); // the store is lost

  auto a2 = test::open_store(backend::memory, ann, 55, dir);
  REQUIRE(a2->self_id() != old_id);
  resync(*a2, *c, feed);
  storage::documents da2(*a2);
  REQUIRE(da2.del(*gone, std::nullopt, 2000));
  auto vouched = a2->summary(feed, old_id, a2->self_id());
  REQUIRE(vouched);
  CHECK(vouched->by_upto == a2->clock_copy(feed)->base(a2->self_id()));
  CHECK(vouched->vouched());
  // It drops the deleted post's counters, and nothing else.
  std::uint64_t dropped = 0;
  for (std::uint64_t n = 1; n <= vouched->upto; ++n)
    dropped += vouched->drops(causality::dot{old_id, causality::counter{n}}) ? 1 : 0;
  CHECK(dropped >= 1);
  CHECK(dropped < vouched->upto);
  CHECK_FALSE(a2->summary(feed, a2->self_id())); // it overwrote nothing of its own
  test::pull(*c, *a2, feed);
  REQUIRE(dc.get(*gone, feed)->is_null());
  REQUIRE_FALSE(db.get(*gone, feed)->is_null());
  CHECK(c->superseded_count(feed) == 0); // Cat has no members: no record kept

  SECTION("in a full resync from the co-follower") { resync(*b, *c, feed); }
  SECTION("in an anti-entropy answer from the co-follower") { test::pull(*b, *c, feed); }
  test::check_only_kept(*b, db, feed, *gone, *kept, ann);
  REQUIRE(b->check_topic(feed));
  REQUIRE(b->summary(feed, old_id, a2->self_id()));

  // Dan still holds the post and never saw the delete: Bob passes the
  // vouched summary on (Dan's clock misses the new replica's counters),
  // and Dan drops it. Ann's new replica has every counter it speaks of.
  auto from_dan = d->make_request(feed);
  REQUIRE(from_dan);
  auto to_dan = b->answer(feed, *from_dan);
  REQUIRE(to_dan);
  CHECK(to_dan->summaries.size() == 1);
  REQUIRE(d->apply(*to_dan));
  test::check_only_kept(*d, dd, feed, *gone, *kept, ann);
  auto from_ann = a2->make_request(feed);
  REQUIRE(from_ann);
  auto to_ann = b->answer(feed, *from_ann);
  REQUIRE(to_ann);
  CHECK(to_ann->summaries.empty());
}

TEST_CASE("a write the writer's held summary says was superseded is not stored again from a stale "
          "peer",
          "[store][summary]") {
  // Dan copied Ann's feed before she deleted a post and never heard of
  // the delete. Eve starts from Cat, who holds Ann's summary, then pulls
  // from Dan: Dan sends the post (Eve's clock lacks its dots), and Eve
  // must not store it.
  test::temp_dir dir;
  auto ann = test::person(41), cat = test::person(43), dan = test::person(44),
       eve = test::person(45);
  auto a = test::open_store(backend::memory, ann, 41, dir);
  auto c = test::open_store(backend::memory, cat, 43, dir);
  auto d = test::open_store(backend::memory, dan, 44, dir);
  auto e = test::open_store(backend::memory, eve, 45, dir);
  const auto feed = a->feed_topic_id();
  storage::documents da(*a), de(*e);
  auto kept = da.post("kept", 1000);
  auto gone = da.post("deleted, still at Dan", 1001);
  REQUIRE(kept);
  REQUIRE(gone);
  for (auto* s : {c.get(), d.get(), e.get()})
    REQUIRE(s->add_topic(*a->topic(feed)));
  // Eve is a member at Dan, so Dan keeps the dot-key rows to serve her.
  REQUIRE(d->set_members(feed, {e->self_id()}));
  resync(*d, *a, feed);
  REQUIRE(da.del(*gone, std::nullopt, 2000));
  resync(*c, *a, feed);
  resync(*e, *c, feed);
  REQUIRE(e->summary(feed, a->self_id()));
  REQUIRE(de.get(*gone, feed)->is_null());

  auto req = e->make_request(feed);
  REQUIRE(req);
  auto stale = d->answer(feed, *req);
  REQUIRE(stale);
  REQUIRE_FALSE(stale->entries.empty()); // Dan does send the post
  REQUIRE(e->apply(*stale));
  test::check_only_kept(*e, de, feed, *gone, *kept, ann);
  REQUIRE(e->check_topic(feed));
  // Its dots are in Eve's clock now: Dan has nothing more to send her.
  auto again = e->make_request(feed);
  REQUIRE(again);
  auto nothing = d->answer(feed, *again);
  REQUIRE(nothing);
  CHECK(nothing->entries.empty());
}

TEST_CASE("a writer summary that does not verify is refused with the data it came with",
          "[store][summary]") {
  test::temp_dir dir;
  auto ann = test::person(31), bob = test::person(32);
  auto a = test::open_store(backend::memory, ann, 31, dir);
  auto b = test::open_store(backend::memory, bob, 32, dir);
  const auto feed = a->feed_topic_id();
  storage::documents da(*a), db(*b);
  auto kept = da.post("kept", 1000);
  auto gone = da.post("deleted", 1001);
  REQUIRE(kept);
  REQUIRE(gone);
  REQUIRE(b->add_topic(*a->topic(feed)));
  resync(*b, *a, feed);
  const std::string text = std::string(1, '\0') + "text";
  auto kept_at_b = b->read(feed, *kept + text);
  auto gone_at_b = b->read(feed, *gone + text);
  REQUIRE(kept_at_b);
  REQUIRE(gone_at_b);
  REQUIRE(kept_at_b->siblings.size() == 1);
  REQUIRE(gone_at_b->siblings.size() == 1);
  REQUIRE(da.del(*gone, std::nullopt, 2000));
  auto req = b->make_request(feed);
  REQUIRE(req);
  auto rep = a->answer(feed, *req);
  REQUIRE(rep);
  REQUIRE(rep->summaries.size() == 1);
  const auto& genuine = rep->summaries[0];
  CHECK(genuine.upto == a->clock_copy(feed)->base(a->self_id())); // up to the delete
  CHECK(genuine.live_at(kept_at_b->siblings[0].d));
  CHECK_FALSE(genuine.live_at(gone_at_b->siblings[0].d));

  auto forged = *rep;
  forged.summaries[0].live.clear(); // "none of my posts is left": not what Ann signed
  auto r = b->apply(forged);
  REQUIRE_FALSE(r);
  CHECK(r.err().code == errc::bad_signature);
  auto other = *rep;
  other.summaries[0].live.clear();
  protocol::sign_summary(bob, other.summaries[0]); // Bob's key, Ann's replica
  r = b->apply(other);
  REQUIRE_FALSE(r);
  CHECK(r.err().code == errc::bad_signature);
  CHECK(values_of(*b, feed, *kept + text).size() == 1);
  CHECK_FALSE(db.get(*gone, feed)->is_null()); // nothing of either was stored

  // A summary by someone who may not write the topic (Bob, in Ann's
  // feed), however well signed, is refused too.
  auto outsider = *rep;
  protocol::writer_summary bobs;
  bobs.topic = feed;
  bobs.rid = b->self_id();
  bobs.upto = 5;
  protocol::sign_summary(bob, bobs);
  outsider.summaries.push_back(bobs);
  outsider.bindings.push_back(b->binding());
  r = b->apply(outsider);
  CHECK(r); // our own replica's: skipped
  CHECK_FALSE(db.get(*kept, feed)->is_null());
  auto c = test::open_store(backend::memory, test::person(33), 33, dir);
  REQUIRE(c->add_topic(*a->topic(feed)));
  r = c->apply(outsider);
  REQUIRE_FALSE(r);
  CHECK(r.err().code == errc::unauthorized);

  REQUIRE(b->apply(*rep));
  test::check_only_kept(*b, db, feed, *gone, *kept, ann);
}

TEST_CASE("answers carry at most 64 writer summaries and go round the rest from one answer to the "
          "next",
          "[store][summary]") {
  test::temp_dir dir;
  auto xena = test::person(500);
  auto x = test::open_store(backend::memory, xena, 500, dir);
  const auto topic = protocol::make_topic(xena, protocol::topic_kind::open, "many writers", {}, 3);
  REQUIRE(x->add_topic(topic));
  // 70 writers, each overwriting its own value once: 70 summaries.
  constexpr std::size_t writers = 70;
  for (std::size_t i = 0; i < writers; ++i) {
    auto who = test::person(600 + i);
    auto w = test::open_store(backend::memory, who, 600 + i, dir);
    REQUIRE(w->add_topic(topic));
    const auto k = test::doc_key(who, "note", "text");
    REQUIRE(w->write(topic.id, {{k, std::string("first"), {}}}, 1000));
    auto seen = w->read(topic.id, k);
    REQUIRE(seen);
    REQUIRE(w->write(topic.id, {{k, std::string("second"), seen->context}}, 1001));
    test::pull(*x, *w, topic.id);
    REQUIRE(x->summary(topic.id, w->self_id()));
  }
  // An asker with an empty clock misses every summary's counters.
  auto y = test::open_store(backend::memory, test::person(501), 501, dir);
  REQUIRE(y->add_topic(topic));
  auto req = y->make_request(topic.id);
  REQUIRE(req);
  std::set<std::uint64_t> sent;
  for (int round = 0; round < 2; ++round) {
    auto a = x->answer(topic.id, *req);
    REQUIRE(a);
    CHECK(a->summaries.size() == store::max_summaries_per_reply);
    for (const auto& ws : a->summaries)
      sent.insert(ws.rid.value());
  }
  CHECK(sent.size() == writers); // every one within two answers
}
