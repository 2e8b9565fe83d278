#include "fixture.hpp"

#include "kith/storage/bundle.hpp"
#include "kith/storage/documents.hpp"

using namespace kith;
using namespace kith::test;
using storage::json;

namespace {

/// A feed with posts, an overwrite and a delete, exported as a bundle.
struct exported {
  temp_dir dir;
  protocol::identity ann = person(1);
  std::unique_ptr<storage::store> src = open_store(backend::memory, ann, 11, dir);
  std::string bytes;

  explicit exported(std::size_t page_keys = 4) {
    storage::documents docs(*src);
    for (int i = 0; i < 12; ++i)
      REQUIRE(docs.post("post " + std::to_string(i) + " #bundle", 1000 + i));
    const auto profile = protocol::to_text(ann.pub()) + "/profile";
    REQUIRE(docs.put(profile, json{{"name", "Ann"}}, 2000));
    REQUIRE(docs.put(profile, json{{"name", "Ann B."}}, 2001));
    auto first = docs.feed(ann.pub(), 100);
    REQUIRE(first);
    REQUIRE(docs.del(first->back()["subject"].get<std::string>(), std::nullopt, 2002));
    auto b = storage::export_bundle(*src, ann, src->feed_topic_id(), page_keys);
    REQUIRE(b);
    bytes = *b;
  }
};

std::size_t posts_of(storage::store& s, const protocol::public_key& who) {
  storage::documents docs(s);
  auto r = docs.feed(who, 1000);
  REQUIRE(r);
  return r->size();
}

} // namespace

TEST_CASE("a bundle carries a feed to a store that never met its author", "[bundle]") {
  exported e;
  auto parsed = protocol::read_bundle(e.bytes);
  REQUIRE(parsed);
  CHECK(parsed->pages.size() > 1); // paged
  CHECK(parsed->exporter.author == e.ann.pub());

  temp_dir d;
  auto dst = open_store(backend::memory, person(2), 22, d);
  auto stats = storage::import_bundle(*dst, *parsed);
  REQUIRE(stats);
  CHECK(stats->new_dots > 0);
  CHECK(posts_of(*dst, e.ann.pub()) == 11);
  storage::documents docs(*dst);
  auto profile = docs.get(protocol::to_text(e.ann.pub()) + "/profile");
  REQUIRE(profile);
  CHECK((*profile)["doc"]["name"] == "Ann B.");
  CHECK(dst->check_topic(e.src->feed_topic_id()));

  // The importer's clock now covers the exporter's own entry (overwritten
  // and deleted dots included), as after a live resync: a pull from the
  // source afterwards has nothing to ship.
  CHECK(dst->clock_copy(e.src->feed_topic_id())->dot_count() ==
        e.src->clock_copy(e.src->feed_topic_id())->dot_count());
  auto req = dst->make_request(e.src->feed_topic_id());
  REQUIRE(req);
  auto ans = e.src->answer(e.src->feed_topic_id(), *req);
  REQUIRE(ans);
  CHECK(ans->entries.empty());

  // Importing the same bundle again changes nothing.
  auto again = storage::import_bundle(*dst, *parsed);
  REQUIRE(again);
  CHECK(again->new_dots == 0);
}

TEST_CASE("a truncated, altered or foreign-signed bundle is refused before anything is stored",
          "[bundle]") {
  exported e(64);
  const auto& b = e.bytes;
  std::string why;

  SECTION("every truncation") {
    for (std::size_t n = 0; n < b.size(); ++n) {
      CAPTURE(n);
      CHECK_FALSE(protocol::read_bundle(std::string_view(b).substr(0, n), {}, &why));
    }
  }
  SECTION("a flipped bit anywhere") {
    rng g(base_seed() ^ 0xb0d1e);
    CAPTURE(base_seed());
    for (int i = 0; i < 300; ++i) {
      auto x = b;
      const auto at = pick(g, 0, x.size() - 1);
      x[at] = static_cast<char>(x[at] ^ (1 << pick(g, 0, 7)));
      CAPTURE(at);
      CHECK_FALSE(protocol::read_bundle(x, {}, &why));
    }
  }
  SECTION("re-signed by someone else") {
    // A valid bundle whose file signature is by a different identity than
    // the exporter named inside: rebuild it with a stranger's writer.
    auto parsed = protocol::read_bundle(b);
    REQUIRE(parsed);
    auto stranger = person(9);
    protocol::bundle_writer w(stranger, parsed->exporter, parsed->topic);
    for (const auto& p : parsed->pages)
      w.add(p);
    auto forged = w.finish();
    CHECK_FALSE(protocol::read_bundle(forged, {}, &why));
    CHECK(why.find("signature") != std::string::npos);
  }
  SECTION("an entry altered and the file re-signed by its exporter") {
    // The file signature checks out, but an entry no longer matches its
    // author's signature: the import stores nothing of that page.
    auto parsed = protocol::read_bundle(b);
    REQUIRE(parsed);
    REQUIRE(parsed->pages.size() == 1);
    auto page = parsed->pages.front();
    REQUIRE(!page.entries.empty());
    REQUIRE(!page.entries.front().records.empty());
    auto& value = page.entries.front().records.front().second;
    value.back() = static_cast<char>(value.back() ^ 1);
    protocol::bundle_writer w(e.ann, parsed->exporter, parsed->topic);
    w.add(page);
    auto resigned = protocol::read_bundle(w.finish());
    REQUIRE(resigned);
    temp_dir d;
    auto dst = open_store(backend::memory, person(3), 33, d);
    auto r = storage::import_bundle(*dst, *resigned);
    CHECK_FALSE(r);
    CHECK(posts_of(*dst, e.ann.pub()) == 0);
  }
  SECTION("not a bundle at all") {
    CHECK_FALSE(protocol::read_bundle("hello world, this is not a bundle of anything at all"
                                      "................................................", {}, &why));
    CHECK(why.find("not a kith bundle") != std::string::npos);
  }
}

TEST_CASE("a second, different batch for counters already signed is refused as equivocation",
          "[store]") {
  // Two stores of one identity with the same replica id: the same counter
  // signed twice over different writes (found by fuzz_signed).
  temp_dir dir;
  const auto ann = person(1);
  auto a1 = open_store(backend::memory, ann, 11, dir);
  auto a2 = open_store(backend::memory, ann, 11, dir);
  REQUIRE(a1->self_id() == a2->self_id());
  const auto subject = protocol::to_text(ann.pub()) + "/notes/1";
  REQUIRE(storage::documents(*a1).put(subject, json{{"title", "first"}}, 1));
  REQUIRE(storage::documents(*a2).put(subject, json{{"title", "other"}}, 2));

  auto bob = open_store(backend::memory, person(2), 22, dir);
  const auto topic = a1->feed_topic_id();
  REQUIRE(bob->add_topic(*a1->topic(topic)));
  // Full-state pages (anti-entropy would not name dots every member has).
  auto first = a1->page(topic, "", 100);
  REQUIRE(first);
  REQUIRE(bob->apply(first->reply));
  auto forged = a2->page(topic, "", 100);
  REQUIRE(forged);
  REQUIRE_FALSE(forged->reply.entries.empty());
  auto r = bob->apply(forged->reply);
  REQUIRE_FALSE(r);
  CHECK(r.err().code == storage::errc::bad_signature);
  CHECK(r.err().message.find("two different batches") != std::string::npos);
  CHECK(bob->check_topic(topic));
  auto doc = storage::documents(*bob).get(subject);
  REQUIRE(doc);
  CHECK((*doc)["doc"]["title"] == "first");
}

TEST_CASE("a context naming a replica id beyond 64 bits is refused, not thrown", "[documents]") {
  temp_dir dir;
  const auto ann = person(1);
  auto s = open_store(backend::memory, ann, 11, dir);
  storage::documents docs(*s);
  const auto subject = protocol::to_text(ann.pub()) + "/notes/1";
  auto r = docs.put(subject, json{{"title", "x"}}, 1, {},
                    json{{"title", {{"99999999999999999999", 1}}}});
  CHECK_FALSE(r);
}
