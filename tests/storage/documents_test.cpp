#include "fixture.hpp"

#include "kith/storage/documents.hpp"

#include <fstream>
#include <limits>
#include <set>

using namespace kith;
using namespace kith::storage;
using kith::test::backend;

TEST_CASE("a document is split into keys and reassembled", "[documents]") {
  for (auto b : {backend::memory, backend::rocksdb}) {
    DYNAMIC_SECTION(test::name_of(b)) {
      test::temp_dir dir;
      auto me = test::person(1);
      auto s = test::open_store(b, me, 1, dir);
      documents docs(*s);
      const std::string subject = protocol::to_text(me.pub()) + "/profile";
      json profile{{"name", "Ann"}, {"bio", "likes #cats"}, {"links", {"a", "b"}}};
      auto dots = docs.put(subject, profile, 100);
      REQUIRE(dots);
      CHECK(dots->size() == 3);
      auto got = docs.get(subject);
      REQUIRE(got);
      CHECK((*got)["doc"] == profile);
      CHECK((*got)["conflicts"].empty());
      // A later put replaces one property, keeps the others.
      REQUIRE(docs.put(subject, json{{"name", "Ann B."}}, 101));
      got = docs.get(subject);
      CHECK((*got)["doc"]["name"] == "Ann B.");
      CHECK((*got)["doc"]["bio"] == "likes #cats");
      // Deleting a property, then the document.
      REQUIRE(docs.del(subject, std::string("bio"), 102));
      got = docs.get(subject);
      CHECK_FALSE((*got)["doc"].contains("bio"));
      auto n = docs.del(subject, std::nullopt, 103);
      REQUIRE(n);
      CHECK(*n == 2);
      got = docs.get(subject);
      REQUIRE(got);
      CHECK(got->is_null());
      // Bad input is refused with a reason.
      CHECK_FALSE(docs.put("nobody/x", json{{"a", 1}}, 1));
      CHECK_FALSE(docs.put(subject, json::array({1, 2}), 1));
      CHECK_FALSE(docs.put(subject, json{{"a", 1}}, 1, {}, json{{"a", "nonsense"}}));
      CHECK_FALSE(docs.put(subject, json{{std::string("a\0b", 3), 1}}, 1));
    }
  }
}

TEST_CASE("concurrent edits show as conflicts with a context that resolves them",
          "[documents]") {
  test::temp_dir dir;
  auto me = test::person(1);
  // Two replicas of one person (laptop and phone), same identity.
  auto laptop = test::open_store(backend::memory, me, 1, dir);
  auto phone = test::open_store(backend::memory, me, 2, dir);
  const auto feed = laptop->feed_topic_id();
  REQUIRE(laptop->set_members(feed, {phone->self_id()}));
  REQUIRE(phone->set_members(feed, {laptop->self_id()}));
  documents dl(*laptop), dp(*phone);
  const std::string subject = protocol::to_text(me.pub()) + "/profile";
  REQUIRE(dl.put(subject, json{{"name", "laptop"}}, 10));
  REQUIRE(dp.put(subject, json{{"name", "phone"}}, 11));
  test::pull(*laptop, *phone, feed);
  test::pull(*phone, *laptop, feed);
  for (auto* d : {&dl, &dp}) {
    auto got = d->get(subject);
    REQUIRE(got);
    CHECK((*got)["doc"]["name"] == "phone"); // newest shown first
    CHECK((*got)["conflicts"]["name"] == json::array({"phone", "laptop"}));
  }
  // Resolving with the context the read returned replaces both.
  auto seen = dl.get(subject);
  REQUIRE(dl.put(subject, json{{"name", "Ann"}}, 12, {}, (*seen)["context"]));
  test::pull(*phone, *laptop, feed);
  auto got = dp.get(subject);
  CHECK((*got)["doc"]["name"] == "Ann");
  CHECK((*got)["conflicts"].empty());
}

TEST_CASE("posts are indexed by author and tag, newest first, and reindex agrees",
          "[documents][index]") {
  for (auto b : {backend::memory, backend::rocksdb}) {
    DYNAMIC_SECTION(test::name_of(b)) {
      test::temp_dir dir;
      auto ann = test::person(1), bob = test::person(2);
      auto sa = test::open_store(b, ann, 1, dir);
      auto sb = test::open_store(b, bob, 2, dir);
      REQUIRE(sa->add_topic(protocol::feed_topic(bob.pub())));
      REQUIRE(sb->set_members(sb->feed_topic_id(), {sa->self_id()}));
      REQUIRE(sa->set_members(sb->feed_topic_id(), {sb->self_id()}));
      documents da(*sa), db(*sb);
      test::rng g(test::base_seed());
      std::vector<std::string> ann_posts;
      for (int i = 0; i < 60; ++i) {
        std::string tag = test::chance(g, 0.5) ? "#Cats" : "#dogs";
        auto s1 = da.post("ann " + std::to_string(i) + " " + tag, 1000 + i);
        REQUIRE(s1);
        ann_posts.push_back(*s1);
        REQUIRE(db.post("bob " + std::to_string(i) + " #cats @" + protocol::to_text(ann.pub()),
                        1000 + i));
      }
      test::pull(*sa, *sb, sb->feed_topic_id());
      auto cats = da.tagged("#CATS", 32);
      REQUIRE(cats);
      REQUIRE(cats->size() == 32);
      std::uint64_t last = UINT64_MAX;
      for (const auto& d : *cats) {
        auto t = d["doc"]["time"].get<std::uint64_t>();
        CHECK(t <= last);
        last = t;
        CHECK(d["doc"]["tags"].get<std::vector<std::string>>() ==
              std::vector<std::string>{"cats"});
      }
      auto feed = da.feed(ann.pub(), 5);
      REQUIRE(feed);
      REQUIRE(feed->size() == 5);
      CHECK((*feed)[0]["subject"] == ann_posts.back());
      auto bobs = da.feed(bob.pub(), 100);
      REQUIRE(bobs);
      CHECK(bobs->size() == 60);
      CHECK((*bobs)[0]["doc"]["mentions"][0] == protocol::to_text(ann.pub()));
      // Deleting and editing posts keeps the index exact.
      REQUIRE(da.del(ann_posts[59], std::nullopt, 2000));
      REQUIRE(da.put(ann_posts[58], json{{"text", "now about #birds"}}, 2001));
      auto birds = da.tagged("birds", 10);
      REQUIRE(birds);
      CHECK(birds->size() == 1);
      auto before = sa->index_rows();
      REQUIRE(before);
      auto rebuilt = sa->reindex();
      REQUIRE(rebuilt);
      auto after = sa->index_rows();
      REQUIRE(after);
      CHECK(*rebuilt == after->size());
      CHECK(*before == *after);
      CHECK(after->size() > 100);
    }
  }
}

TEST_CASE("bad stores give a clear error, never a crash", "[store][badinput]") {
  test::temp_dir dir;
  auto me = test::person(1);
  store_options o;
  o.replica_nonce = 1;
  SECTION("no store") {
    auto s = store::open(dir.sub("missing"), me, false, o);
    REQUIRE_FALSE(s);
    CHECK(s.err().code == errc::not_found);
    CHECK(s.err().message.find("kith init") != std::string::npos);
  }
  SECTION("unknown format version") {
    {
      auto kv = open_rocksdb(dir.sub("v"), true);
      REQUIRE(kv);
      kv_batch b;
      b.put("mformat", std::string(1, '\x63'));
      REQUIRE((*kv)->commit(b, true));
    }
    auto s = store::open(dir.sub("v"), me, false, o);
    REQUIRE_FALSE(s);
    CHECK(s.err().code == errc::format_mismatch);
    CHECK(s.err().message.find("format version 99") != std::string::npos);
  }
  SECTION("a corrupted value") {
    std::string feed, key = test::doc_key(me, "profile", "name");
    {
      auto s = store::open(dir.sub("c"), me, true, o);
      REQUIRE(s);
      feed = (*s)->feed_topic_id();
      REQUIRE((*s)->write(feed, {{key, "\"x\"", {}}}, 1));
    }
    {
      auto kv = open_rocksdb(dir.sub("c"), false);
      REQUIRE(kv);
      // The key's container row, found without knowing the row layout:
      // the only 'c' row that ends with the key.
      std::vector<std::string> rows;
      REQUIRE((*kv)->scan("c", "d", [&](std::string_view k, std::string_view) {
        if (k.size() > key.size() && k.substr(k.size() - key.size()) == key)
          rows.emplace_back(k);
        return true;
      }));
      REQUIRE(rows.size() == 1);
      kv_batch b;
      b.put(rows.front(), "\xff\xff\xff garbage");
      REQUIRE((*kv)->commit(b, true));
    }
    auto s = store::open(dir.sub("c"), me, false, o);
    REQUIRE(s);
    auto r = (*s)->read(feed, key);
    REQUIRE_FALSE(r);
    CHECK(r.err().code == errc::corrupt);
    auto w = (*s)->write(feed, {{key, "\"y\"", {}}}, 2);
    REQUIRE_FALSE(w);
    CHECK(w.err().code == errc::corrupt);
    CHECK_FALSE((*s)->check_topic(feed));
  }
  SECTION("a truncated directory") {
    {
      auto s = store::open(dir.sub("t"), me, true, o);
      REQUIRE(s);
    }
    for (const auto& e : std::filesystem::directory_iterator(dir.sub("t")))
      if (e.path().filename().string().rfind("MANIFEST", 0) == 0)
        std::filesystem::remove(e.path());
    auto s = store::open(dir.sub("t"), me, false, o);
    REQUIRE_FALSE(s);
    CHECK(s.err().code == errc::corrupt);
    CHECK(s.err().message.find("incomplete") != std::string::npos);
    // Nor is a new store created over the remains.
    for (const auto& e : std::filesystem::directory_iterator(dir.sub("t")))
      if (e.path().filename() == "CURRENT")
        std::filesystem::remove(e.path());
    auto c = store::open(dir.sub("t"), me, true, o);
    REQUIRE_FALSE(c);
    CHECK(c.err().message.find("no CURRENT") != std::string::npos);
  }
  SECTION("a file where the directory should be") {
    std::ofstream(dir.sub("f")) << "not a store";
    auto s = store::open(dir.sub("f"), me, true, o);
    REQUIRE_FALSE(s);
    CHECK_FALSE(s.err().message.empty());
  }
}

TEST_CASE("replies form threads, mentions are indexed, feeds page by time, and reindex agrees",
          "[documents]") {
  test::temp_dir dir;
  auto ann = test::person(1), bob = test::person(2), cat = test::person(3);
  auto a = test::open_store(backend::memory, ann, 1, dir);
  auto b = test::open_store(backend::memory, bob, 2, dir);
  documents da(*a), db(*b);
  const auto ann_id = protocol::to_text(ann.pub());
  const auto cat_id = protocol::to_text(cat.pub());
  auto root = da.post("picnic on saturday?", 1000);
  REQUIRE(root);
  for (int i = 0; i < 5; ++i)
    REQUIRE(da.post("ann post " + std::to_string(i), 2000 + i));
  // bob holds ann's feed and replies, mentioning cat; then a reply to the reply.
  REQUIRE(b->add_topic(*a->topic(a->feed_topic_id())));
  auto page = a->page(a->feed_topic_id(), "", 1000);
  REQUIRE(page);
  REQUIRE(b->apply(page->reply));
  auto r1 = db.post("yes! bringing @" + cat_id + " too", 3000, *root);
  REQUIRE(r1);
  auto r2 = db.post("and cake", 3001, *r1);
  REQUIRE(r2);
  CHECK_FALSE(db.post("bad", 3002, "not a subject"));
  CHECK_FALSE(db.post("bad", 3002, ann_id + "/profile"));

  auto t = db.thread(*root, 100);
  REQUIRE(t);
  CHECK((*t)["root"]["subject"] == *root);
  REQUIRE((*t)["replies"].size() == 2);
  CHECK((*t)["replies"][0]["subject"] == *r1); // oldest first
  CHECK((*t)["replies"][1]["subject"] == *r2);
  CHECK((*t)["replies"][0]["doc"]["reply_to"] == *root);

  auto m = db.mentioning(cat.pub(), 10);
  REQUIRE(m);
  REQUIRE(m->size() == 1);
  CHECK((*m)[0]["subject"] == *r1);
  auto to_ann = db.replies_to_author(ann.pub(), 10);
  REQUIRE(to_ann);
  REQUIRE(to_ann->size() == 1);
  CHECK((*to_ann)[0]["subject"] == *r1);

  // Paging: 3 newest, then the next 3 older than the last one seen.
  auto p1 = db.feed(ann.pub(), 3);
  REQUIRE(p1);
  REQUIRE(p1->size() == 3);
  const auto last = (*p1)[2]["doc"]["time"].get<std::uint64_t>();
  auto p2 = db.feed(ann.pub(), 3, last);
  REQUIRE(p2);
  REQUIRE(p2->size() == 3);
  CHECK((*p2)[0]["doc"]["time"].get<std::uint64_t>() < last);
  auto p3 = db.feed(ann.pub(), 3, (*p2)[2]["doc"]["time"].get<std::uint64_t>());
  REQUIRE(p3);
  CHECK(p3->empty());

  // The incremental index equals a rebuild.
  auto before = b->index_rows();
  REQUIRE(before);
  REQUIRE(b->reindex());
  auto after = b->index_rows();
  REQUIRE(after);
  CHECK(*before == *after);
}

TEST_CASE("trending counts a window's tags from the index and follows deletes", "[documents]") {
  test::temp_dir dir;
  auto ann = test::person(1);
  auto a = test::open_store(backend::memory, ann, 1, dir);
  documents da(*a);
  REQUIRE(da.post("#a and #b", 1000));
  auto second = da.post("more #a", 2000);
  REQUIRE(second);
  REQUIRE(da.post("#c then #a", 3000));
  REQUIRE(da.post("just #b", 4000));

  auto counts = [&](std::uint64_t since, std::uint64_t until, std::size_t limit) {
    auto t = a->trending(since, until, limit);
    REQUIRE(t);
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (const auto& tc : *t)
      out.emplace_back(tc.tag, tc.count);
    return out;
  };
  using v = std::vector<std::pair<std::string, std::uint64_t>>;
  const auto all = std::numeric_limits<std::uint64_t>::max();
  CHECK(counts(0, all, 10) == v{{"a", 3}, {"b", 2}, {"c", 1}});
  CHECK(counts(1500, 3500, 10) == v{{"a", 2}, {"c", 1}});
  CHECK(counts(0, all, 2) == v{{"a", 3}, {"b", 2}});
  CHECK(counts(5000, all, 10).empty());
  REQUIRE(da.del(*second, std::nullopt, 5000, a->feed_topic_id()));
  CHECK(counts(0, all, 10) == v{{"a", 2}, {"b", 2}, {"c", 1}});
}

TEST_CASE("a stored document comes with the proofs to verify it standalone", "[documents]") {
  test::temp_dir dir;
  auto ann = test::person(1), bob = test::person(2);
  auto a = test::open_store(backend::memory, ann, 1, dir);
  documents da(*a);
  for (int i = 0; i < 3; ++i)
    REQUIRE(da.post("filler " + std::to_string(i), 100 + i));
  auto s = da.post("the one #kith", 1000);
  REQUIRE(s);
  auto proof = a->prove_prefix(a->feed_topic_id(), *s + std::string(1, '\0'), 64);
  REQUIRE(proof);
  // Only the document's own keys, each with its writes.
  REQUIRE_FALSE(proof->entries.empty());
  for (const auto& e : proof->entries)
    CHECK(e.key.rfind(*s + std::string(1, '\0'), 0) == 0);
  std::string why;
  auto writes = protocol::verify_standalone(*proof, ann.pub(), &why);
  INFO(why);
  REQUIRE(writes);
  bool has_text = false;
  for (const auto& w : *writes)
    has_text = has_text || w.body.value == "\"the one #kith\"";
  CHECK(has_text);
  CHECK_FALSE(protocol::verify_standalone(*proof, bob.pub()));
  // Nothing for a subject that is not stored.
  auto none = a->prove_prefix(a->feed_topic_id(), *s + "x" + std::string(1, '\0'), 64);
  REQUIRE(none);
  CHECK(none->entries.empty());
}

TEST_CASE("a feed cursor pages through posts that share a millisecond without skipping any",
          "[documents]") {
  test::temp_dir dir;
  auto ann = test::person(1);
  auto a = test::open_store(backend::memory, ann, 1, dir);
  documents da(*a);
  REQUIRE(da.post("older", 500));
  for (int i = 0; i < 5; ++i)
    REQUIRE(da.post("same ms " + std::to_string(i), 1000));
  REQUIRE(da.post("newest", 2000));

  std::set<std::string> seen;
  std::string cursor;
  std::vector<std::uint64_t> times;
  for (int page = 0; page < 10; ++page) {
    auto r = da.feed(ann.pub(), 2, 0, cursor);
    REQUIRE(r);
    if (r->empty())
      break;
    for (const auto& d : *r) {
      CHECK(seen.insert(d["subject"].get<std::string>()).second); // never twice
      times.push_back(d["doc"]["time"].get<std::uint64_t>());
    }
    cursor = r->back()["cursor"].get<std::string>();
  }
  CHECK(seen.size() == 7);
  CHECK(std::is_sorted(times.rbegin(), times.rend())); // newest first throughout
  // The time-only cursor loses the posts that share the page's last millisecond.
  auto first = da.feed(ann.pub(), 3);
  REQUIRE(first);
  auto by_time = da.feed(ann.pub(), 10, (*first)[2]["doc"]["time"].get<std::uint64_t>());
  REQUIRE(by_time);
  CHECK(by_time->size() == 1); // only "older": three posts at 1000 ms were skipped
  CHECK_FALSE(da.feed(ann.pub(), 2, 0, "not-a-cursor"));
}

TEST_CASE("a property too large for peers to accept is refused when written", "[documents]") {
  test::temp_dir dir;
  auto ann = test::person(1);
  auto a = test::open_store(backend::memory, ann, 1, dir);
  documents da(*a);
  const std::string subject = protocol::to_text(ann.pub()) + "/files/big";
  // What is stored is the value's JSON text (n + 2 bytes for a string of
  // n characters) with its time and context: it must fit the limit whole.
  const std::size_t limit = protocol::signed_limits{}.base.max_value_bytes;
  auto big = da.put(subject, nlohmann::json{{"data", std::string(limit - 8, 'x')}}, 1000);
  CHECK_FALSE(big);
  if (!big) {
    CHECK(big.err().code == errc::invalid);
    CHECK(big.err().message.find("limit") != std::string::npos);
  }
  CHECK(da.get(subject)->is_null()); // nothing stored
  auto fits = da.put(subject, nlohmann::json{{"data", std::string(limit - 64, 'x')}}, 1000);
  REQUIRE(fits);
  // What was stored can be served: a resync page of it decodes on the wire.
  auto page = a->page(a->feed_topic_id(), "", 10);
  REQUIRE(page);
  auto bytes = protocol::encode_message(protocol::data_msg{protocol::data_kind::resync, true, page->reply});
  CHECK(protocol::decode_message(bytes));
}

TEST_CASE("put_many writes several documents as one signed batch, all or nothing", "[documents]") {
  for (auto b : {backend::memory, backend::rocksdb}) {
    DYNAMIC_SECTION(test::name_of(b)) {
      test::temp_dir dir_a, dir_b;
      auto ann = test::person(1), bob = test::person(2);
      auto sa = test::open_store(b, ann, 1, dir_a);
      auto sb = test::open_store(b, bob, 2, dir_b);
      std::vector<signed_reply> pushes;
      documents da(*sa, [&](const signed_reply& r) { pushes.push_back(r); });
      const auto feed = sa->feed_topic_id();
      const std::string me = protocol::to_text(ann.pub());
      std::vector<std::pair<std::string, json>> follows;
      for (int i = 2; i < 12; ++i) {
        const auto id = protocol::to_text(test::person(i).pub());
        follows.emplace_back(me + "/follows/" + id, json{{"id", id}, {"since", 100}});
      }
      const auto before = sa->batch_count(feed);
      auto dots = da.put_many(follows, 100);
      REQUIRE(dots);
      CHECK(dots->size() == 20); // two properties per document
      CHECK(sa->batch_count(feed) == before + 1);
      REQUIRE(pushes.size() == 1);
      CHECK(pushes[0].batches.size() == 1); // one signature for the twenty writes
      for (const auto& [subject, doc] : follows)
        CHECK((*da.get(subject))["doc"] == doc);

      // Another replica verifies the batch and holds every document.
      REQUIRE(sb->add_topic(protocol::feed_topic(ann.pub())));
      auto applied = sb->apply(pushes[0]);
      REQUIRE(applied);
      CHECK(applied->new_dots == 20);
      documents db(*sb);
      for (const auto& [subject, doc] : follows)
        CHECK((*db.get(subject))["doc"] == doc);

      // Refused whole: nothing of a refused batch is stored.
      const auto other = protocol::to_text(bob.pub());
      const std::string fresh = me + "/follows/fresh";
      const auto refused = [&](std::vector<std::pair<std::string, json>> docs) {
        const auto n = sa->batch_count(feed);
        auto r = da.put_many(docs, 200);
        const bool nothing = sa->batch_count(feed) == n && (*da.get(fresh)).is_null();
        return !r && nothing;
      };
      CHECK(refused({{fresh, json{{"a", 1}}}, {fresh, json{{"b", 2}}}}));      // a subject twice
      CHECK(refused({{fresh, json{{"a", 1}}}, {me + "/x", json::array()}}));   // not an object
      CHECK(refused({{fresh, json{{"a", 1}}}, {other + "/x", json{{"a", 1}}}})); // another's feed
      CHECK(refused({}));
      std::vector<std::pair<std::string, json>> too_many;
      for (std::size_t i = 0; i <= documents::max_documents_per_batch; ++i)
        too_many.emplace_back(me + "/n/" + std::to_string(i), json{{"a", 1}});
      CHECK(refused(too_many));
      too_many.pop_back();
      CHECK(da.put_many(too_many, 300));
    }
  }
}
