// The store's on-disk format: a store written by the previous format is
// migrated on open, also after a crash in the middle of the migration, and
// ends up holding what a store that lived its whole life in the new format
// holds.

#include "fixture.hpp"
#include "format_workload.hpp"

#include "kith/causality/codec.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

using namespace kith;
using namespace kith::storage;
namespace fw = kith::test::format;

namespace {

std::string unhex(const std::string& h) {
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<char>(nibble(h[i]) * 16 + nibble(h[i + 1])));
  return out;
}

/// The rows of tests/storage/data/<file> ("# name" then "key value" in
/// hex) loaded into fresh in-memory kvs, by name.
std::map<std::string, std::unique_ptr<kv_store>> load_fixture(const std::string& file) {
  std::ifstream in(std::string(KITH_TEST_DATA) + "/" + file);
  REQUIRE(in);
  std::map<std::string, std::unique_ptr<kv_store>> out;
  kv_store* cur = nullptr;
  kv_batch b;
  std::string line;
  auto flush = [&] {
    if (cur && !b.empty())
      REQUIRE(cur->commit(b, false));
    b = kv_batch{};
  };
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) {
      flush();
      cur = (out[line.substr(2)] = make_memory_kv()).get();
      continue;
    }
    std::istringstream fields(line);
    std::string k, v;
    fields >> k >> v;
    REQUIRE(cur);
    b.put(unhex(k), unhex(v));
  }
  flush();
  return out;
}

std::string format_of(const kv_store& kv) {
  auto v = kv.get("mformat");
  REQUIRE(v);
  REQUIRE(*v);
  return **v;
}

/// Everything a reader can see of a store, topic by topic, in one string
/// (row names aside, which depend on the order topics were numbered).
std::string observable(store& s) {
  std::ostringstream o;
  auto topics = s.topics();
  for (const auto& t : topics) {
    o << "topic " << t << "\n";
    INFO(t);
    CHECK(s.check_topic(t));
    auto keys = s.read_prefix(t, "");
    REQUIRE(keys);
    for (const auto& [k, v] : *keys) {
      o << " key " << k.size() << ":" << k;
      for (const auto& sib : v.siblings)
        o << " " << sib.d.id.value() << "." << sib.d.n.value() << "=" << sib.value;
      o << " ctx " << v.context.size() << "\n";
    }
    auto clk = s.clock_copy(t);
    REQUIRE(clk);
    for (const auto& [id, e] : clk->entries())
      o << " clock " << id.value() << ":" << e.base() << "/" << e.bits().size() << "\n";
    auto members = s.members(t);
    REQUIRE(members);
    for (auto m : *members)
      o << " member " << m.value() << "\n";
    for (auto d : s.kept_dots(t))
      o << " kept " << d.id.value() << "." << d.n.value() << "\n";
    auto md = s.metadata(t);
    REQUIRE(md);
    o << " meta " << md->members << " " << md->dot_map_entries << " " << md->unstripped_keys
      << "\n";
  }
  auto hits = [&](const char* what, const result<std::vector<index_hit>>& r) {
    REQUIRE(r);
    for (const auto& h : r.value())
      o << what << " " << h.topic << " " << h.key.size() << ":" << h.key << " " << h.time_ms
        << " " << h.d.id.value() << "." << h.d.n.value() << "\n";
  };
  for (const auto& who : {fw::ann(), fw::bob()}) {
    hits("author", s.by_author(who.pub(), 100));
    hits("mention", s.by_mention(who.pub(), 100));
  }
  for (const char* tag : {"kith", "more", "reply"})
    hits("tag", s.by_tag(tag, 100));
  auto trend = s.trending(0, 100000, 10);
  REQUIRE(trend);
  for (const auto& t : *trend)
    o << "trend " << t.tag << " " << t.count << "\n";
  auto rows = s.index_rows();
  REQUIRE(rows);
  o << "index rows " << rows->size() << "\n";
  return o.str();
}

/// Every row but the derived index and the topic numbers, with each
/// topic number turned back into the topic's id (through the store's own
/// n rows): the same for two stores that hold the same things, however
/// each numbered its topics.
std::map<std::string, std::string> rows_by_topic_id(const kv_store& kv) {
  std::map<std::string, std::string> ids; // 4-byte number -> id
  REQUIRE(kv.scan("n", "o", [&](std::string_view k, std::string_view v) {
    ids[std::string(v)] = std::string(k.substr(1));
    return true;
  }));
  std::map<std::string, std::string> out;
  REQUIRE(kv.scan("", "", [&](std::string_view k, std::string_view v) {
    const char kind = k[0];
    if (kind == 'i' || kind == 'n')
      return true;
    std::string name(k);
    if (std::string("cudsbvokw").find(kind) != std::string::npos) {
      auto id = ids.find(std::string(k.substr(1, 4)));
      REQUIRE(id != ids.end());
      name = std::string(1, kind) + id->second;
      if (kind != 'k' && kind != 'w')
        name += std::string(1, '\0') + std::string(k.substr(5));
    }
    out[name] = std::string(v);
    return true;
  }));
  return out;
}

std::string varint(std::uint64_t v) {
  causality::writer w;
  w.varint(v);
  return w.take();
}

struct pair_of_stores {
  std::unique_ptr<kv_store> ann_kv = make_memory_kv();
  std::unique_ptr<kv_store> bob_kv = make_memory_kv();
};

} // namespace

TEST_CASE("a format-1 store is migrated on open and holds what a new store holds",
          "[store][format]") {
  pair_of_stores fresh;
  fw::run(*fresh.ann_kv, *fresh.bob_kv);
  auto old = load_fixture("format1.txt");
  REQUIRE(old.count("ann") == 1);
  REQUIRE(old.count("bob") == 1);
  // The fixture really is format 1 (varint 1) and names topics by id.
  CHECK(format_of(*old["ann"]) == std::string(1, '\x01'));
  const std::string feed = protocol::feed_topic(fw::ann().pub()).id;
  bool by_id = false;
  REQUIRE(old["ann"]->scan("c", "d", [&](std::string_view k, std::string_view) {
    by_id = by_id || k.substr(1, feed.size()) == feed;
    return true;
  }));
  CHECK(by_id);

  for (const char* who : {"ann", "bob"}) {
    INFO(who);
    const bool is_ann = std::string(who) == "ann";
    auto& fresh_kv = is_ann ? *fresh.ann_kv : *fresh.bob_kv;
    auto id = is_ann ? fw::ann() : fw::bob();
    auto migrated = fw::open(*old[who], id, 1234); // the nonce of a new store; unused here
    auto reference = fw::open(fresh_kv, id, 1234);
    CHECK(format_of(*old[who]) == std::string(1, static_cast<char>(format_version)));
    CHECK(migrated->self_id() == reference->self_id());
    const auto seen = observable(*migrated);
    CHECK(seen == observable(*reference));
    // Row by row: every row arrived under its new name, with its value.
    CHECK(rows_by_topic_id(*old[who]) == rows_by_topic_id(fresh_kv));
    // The history left kept headers at Ann (Bob has not seen her last
    // changes) and index rows at both.
    CHECK((seen.find("kept") != std::string::npos) == is_ann);
    CHECK(seen.find("tag") != std::string::npos);
    // No row still names a topic by id.
    std::size_t old_rows = 0;
    REQUIRE(old[who]->scan("", "", [&](std::string_view k, std::string_view) {
      const char kind = k.empty() ? 0 : k[0];
      if (std::string("cudsbvokw").find(kind) != std::string::npos && k.size() > 1 && k[1] != 0)
        ++old_rows;
      return true;
    }));
    CHECK(old_rows == 0);
  }

  // Both go on in step: a new write by Ann, pulled by Bob.
  auto a = fw::open(*old["ann"], fw::ann(), 1);
  auto b = fw::open(*old["bob"], fw::bob(), 2);
  auto fa = fw::open(*fresh.ann_kv, fw::ann(), 1);
  auto fb = fw::open(*fresh.bob_kv, fw::bob(), 2);
  for (store* s : {a.get(), fa.get()}) {
    documents d(*s);
    REQUIRE(d.post("after the migration #kith", 2000));
  }
  fw::pull(*b, *a, feed);
  fw::pull(*fb, *fa, feed);
  CHECK(observable(*a) == observable(*fa));
  CHECK(observable(*b) == observable(*fb));
}

TEST_CASE("a migration cut short by a crash at any commit resumes on the next open",
          "[store][format]") {
  pair_of_stores fresh;
  fw::run(*fresh.ann_kv, *fresh.bob_kv);
  auto reference = fw::open(*fresh.bob_kv, fw::bob(), 2);
  const auto want = observable(*reference);
  bool finished_uncut = false;
  int cut_in_migration = 0, cut_in_reindex = 0;
  for (int allowed = 0; allowed < 100 && !finished_uncut; ++allowed) {
    INFO("commits before the crash: " << allowed);
    auto old = load_fixture("format1.txt");
    {
      store_options o;
      o.sync = false;
      auto cut = store::open(std::make_unique<fw::borrowed_kv>(*old["bob"], allowed), fw::bob(), o);
      if (cut) {
        finished_uncut = true; // the whole migration took fewer commits
      } else {
        // Cut before the migration began (format 1), while renaming rows
        // (marked as migrating: a kith that reads format 1 only must not
        // open a half-renamed store, and refuses any other record), or
        // while rebuilding the index after the format record changed.
        CHECK(cut.err().code == errc::io);
        const auto f = format_of(*old["bob"]);
        CHECK((f == varint(1) || f == varint(format_migrating_from_1) ||
               f == varint(format_version)));
        CHECK((f == varint(1)) == (allowed == 0));
        ++(f == varint(format_version) ? cut_in_reindex : cut_in_migration);
      }
    }
    auto resumed = fw::open(*old["bob"], fw::bob(), 2);
    CHECK(format_of(*old["bob"]) == std::string(1, static_cast<char>(format_version)));
    CHECK(observable(*resumed) == want);
  }
  CHECK(finished_uncut);
  CHECK(cut_in_migration >= 3); // numbering, rows of two topics, the format record
  CHECK(cut_in_reindex >= 1);
}

TEST_CASE("a store whose topic numbers are damaged gives a clear error", "[store][format]") {
  pair_of_stores s;
  fw::run(*s.ann_kv, *s.bob_kv);
  const std::string feed = protocol::feed_topic(fw::bob().pub()).id;
  SECTION("a number row that is not a number") {
    kv_batch b;
    b.put("n" + feed, "xyz");
    REQUIRE(s.bob_kv->commit(b, false));
  }
  SECTION("two topics with one number") {
    auto n = s.bob_kv->get("n" + feed);
    REQUIRE(n);
    REQUIRE(*n);
    kv_batch b;
    b.put("n" + protocol::feed_topic(fw::ann().pub()).id, **n);
    REQUIRE(s.bob_kv->commit(b, false));
  }
  SECTION("a topic without a number") {
    kv_batch b;
    b.del("n" + feed);
    REQUIRE(s.bob_kv->commit(b, false));
    store_options o;
    auto opened = store::open(std::make_unique<fw::borrowed_kv>(*s.bob_kv), fw::bob(), o);
    REQUIRE(opened); // found when the topic is used
    auto r = (*opened)->make_request(feed);
    REQUIRE_FALSE(r);
    CHECK(r.err().code == errc::corrupt);
    CHECK(r.err().message.find("has no number") != std::string::npos);
    // The index rows of the lost topic name a number nothing maps: the
    // queries say so, and the reindex they advise leaves those rows out,
    // so the other topics' posts can be queried again.
    auto before = (*opened)->by_author(fw::bob().pub(), 10);
    REQUIRE_FALSE(before);
    CHECK(before.err().message.find("reindex") != std::string::npos);
    REQUIRE((*opened)->reindex());
    auto bobs = (*opened)->by_author(fw::bob().pub(), 10);
    REQUIRE(bobs);
    CHECK(bobs->empty()); // Bob's posts were in the lost topic
    auto anns = (*opened)->by_author(fw::ann().pub(), 10);
    REQUIRE(anns);
    CHECK(anns->size() == 2); // Ann's feed as Bob holds it: posts 1 and 2 (3 deleted, 4 unseen)
    return;
  }
  store_options o;
  auto opened = store::open(std::make_unique<fw::borrowed_kv>(*s.bob_kv), fw::bob(), o);
  REQUIRE_FALSE(opened);
  CHECK(opened.err().code == errc::corrupt);
  CHECK(opened.err().message.find("topic numbers") != std::string::npos);
}

TEST_CASE("a format-1 RocksDB store is migrated by `store::open` on its directory",
          "[store][format]") {
  pair_of_stores fresh;
  fw::run(*fresh.ann_kv, *fresh.bob_kv);
  const auto want = observable(*fw::open(*fresh.ann_kv, fw::ann(), 1));
  test::temp_dir dir;
  auto old = load_fixture("format1.txt");
  {
    auto kv = open_rocksdb(dir.sub("ann"), true);
    REQUIRE(kv);
    kv_batch b;
    REQUIRE(old["ann"]->scan("", "", [&](std::string_view k, std::string_view v) {
      b.put(std::string(k), std::string(v));
      return true;
    }));
    REQUIRE((*kv)->commit(b, true));
  }
  for (int i = 0; i < 2; ++i) { // migrated once, then opened as it is
    auto s = store::open(dir.sub("ann"), fw::ann(), false);
    INFO((s ? std::string() : s.err().message));
    REQUIRE(s);
    CHECK(observable(**s) == want);
  }
}

TEST_CASE("a damaged format-1 store is migrated or refused with an error, never a crash",
          "[store][format][badinput]") {
  const auto seed = test::base_seed() ^ 0x666f726d61743121ull;
  INFO("seed " << seed);
  test::rng g(seed);
  const int n = test::cases(300);
  int opened = 0, refused = 0;
  for (int i = 0; i < n; ++i) {
    auto old = load_fixture("format1.txt");
    auto& kv = *old[test::chance(g, 0.5) ? "ann" : "bob"];
    std::vector<std::pair<std::string, std::string>> rows;
    REQUIRE(kv.scan("", "", [&](std::string_view k, std::string_view v) {
      rows.emplace_back(k, v);
      return true;
    }));
    // One to three damages: a flipped byte in a key or a value, a row
    // dropped, or a row's value cut short.
    kv_batch b;
    for (auto d = test::pick(g, 1, 3); d > 0; --d) {
      auto [k, v] = rows[test::pick(g, 0, rows.size() - 1)];
      switch (test::pick(g, 0, 3)) {
      case 0:
        b.del(k);
        if (!k.empty())
          k[test::pick(g, 0, k.size() - 1)] ^= static_cast<char>(test::pick(g, 1, 255));
        b.put(k, v);
        break;
      case 1:
        if (!v.empty())
          v[test::pick(g, 0, v.size() - 1)] ^= static_cast<char>(test::pick(g, 1, 255));
        b.put(k, v);
        break;
      case 2: b.del(k); break;
      default: b.put(k, v.substr(0, test::pick(g, 0, v.size()))); break;
      }
    }
    REQUIRE(kv.commit(b, false));
    store_options o;
    o.sync = false;
    auto s = store::open(std::make_unique<fw::borrowed_kv>(kv),
                         &kv == old["ann"].get() ? fw::ann() : fw::bob(), o);
    if (!s) {
      ++refused;
      CHECK_FALSE(s.err().message.empty());
      continue;
    }
    ++opened;
    // Whatever opened answers every read with a value or an error.
    for (const auto& t : (*s)->topics()) {
      (void) (*s)->check_topic(t);
      (void) (*s)->read_prefix(t, "");
      (void) (*s)->make_request(t);
    }
    (void) (*s)->by_author(fw::ann().pub(), 10);
    (void) (*s)->by_tag("kith", 10);
  }
  // What must hold is above: no crash, no exception, an error that says
  // something. The split is printed to show both paths were taken.
  std::cout << "[format] damaged format-1 stores: " << opened << " opened, " << refused
            << " refused\n";
}
