#include "kith/protocol/signed_write.hpp"

#include "support/seed.hpp"

#include <catch2/catch.hpp>

using namespace kith::protocol;

namespace {

key_seed seed_of(std::uint64_t n) {
  key_seed s{};
  for (int i = 0; i < 8; ++i)
    s[i] = static_cast<std::uint8_t>(n >> (8 * i));
  return s;
}

} // namespace

TEST_CASE("an identity derived from a seed is reproducible and signs verifiably", "[identity]") {
  auto a = identity::from_seed(seed_of(1));
  auto b = identity::from_seed(seed_of(1));
  auto c = identity::from_seed(seed_of(2));
  CHECK(a.pub() == b.pub());
  CHECK(a.pub() != c.pub());
  auto sig = a.sign("hello");
  CHECK(verify(a.pub(), "hello", sig));
  CHECK_FALSE(verify(a.pub(), "hellO", sig));
  CHECK_FALSE(verify(c.pub(), "hello", sig));
  CHECK(identity::generate().pub() != identity::generate().pub());
}

TEST_CASE("the text form of an id round-trips and its checksum catches typos", "[identity]") {
  kith::test::rng g(kith::test::base_seed());
  for (int i = 0; i < 200; ++i) {
    auto id = identity::from_seed(seed_of(g()));
    std::string text = to_text(id.pub());
    CAPTURE(text);
    REQUIRE(text.size() == 57);
    REQUIRE(text[0] == 'k');
    auto back = parse_id(text);
    REQUIRE(back);
    CHECK(*back == id.pub());
    // Upper case is accepted (people retype ids).
    std::string upper = text;
    for (auto& ch : upper)
      ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    upper[0] = 'k';
    CHECK(parse_id(upper) == back);
    // Any single substituted character is caught.
    std::string typo = text;
    std::size_t at = 1 + kith::test::pick(g, 0, 55);
    typo[at] = typo[at] == 'a' ? 'b' : 'a';
    std::string why;
    CHECK_FALSE(parse_id(typo, &why));
    CHECK_FALSE(why.empty());
  }
  std::string why;
  auto text = to_text(identity::from_seed(seed_of(3)).pub());
  CHECK_FALSE(parse_id(text.substr(0, 50), &why));
  CHECK(why.find("truncated") != std::string::npos);
  CHECK_FALSE(parse_id("x" + text.substr(1), &why));
  CHECK_FALSE(parse_id(text.substr(0, 56) + "!", &why));
  CHECK_FALSE(parse_id("", &why));
}

TEST_CASE("a replica binding ties a replica id to its identity", "[identity]") {
  auto a = identity::from_seed(seed_of(10));
  auto m = identity::from_seed(seed_of(11));
  auto b = bind_replica(a, 42);
  CHECK(check_binding(b));
  CHECK(b.rid == derive_replica_id(a.pub(), 42));
  CHECK(bind_replica(a, 43).rid != b.rid);
  // Claiming a's replica id for another key fails the derivation.
  auto forged = bind_replica(m, 42);
  forged.rid = b.rid;
  CHECK_FALSE(check_binding(forged));
  // Re-signing a's binding with another key fails the signature.
  auto stolen = b;
  stolen.sig = m.sign("anything");
  CHECK_FALSE(check_binding(stolen));
  // Encoding round trip.
  kith::causality::writer w;
  encode(w, b);
  kith::causality::reader r(w.str());
  replica_binding back;
  REQUIRE(decode(r, back));
  CHECK(back.rid == b.rid);
  CHECK(check_binding(back));
}

TEST_CASE("topic descriptors carry their write rule and cannot be altered", "[identity]") {
  auto owner = identity::from_seed(seed_of(20));
  auto friend_ = identity::from_seed(seed_of(21));
  auto stranger = identity::from_seed(seed_of(22));
  auto feed = feed_topic(owner.pub());
  CHECK(feed.id == "feed/" + to_text(owner.pub()));
  CHECK(check_topic(feed));
  CHECK(may_write(feed, owner.pub()));
  CHECK_FALSE(may_write(feed, friend_.pub()));

  auto shared = make_topic(owner, topic_kind::shared, "book club", {friend_.pub()}, 7);
  CHECK(check_topic(shared));
  CHECK(shared.id.rfind("topic/", 0) == 0);
  CHECK(may_write(shared, owner.pub()));
  CHECK(may_write(shared, friend_.pub()));
  CHECK_FALSE(may_write(shared, stranger.pub()));
  // Adding oneself to the allow-list breaks the signature or the id.
  auto tampered = shared;
  tampered.writers.push_back(stranger.pub());
  std::string why;
  CHECK_FALSE(check_topic(tampered, &why));
  auto open = make_topic(owner, topic_kind::open, "cats", {}, 8);
  CHECK(check_topic(open));
  CHECK(may_write(open, stranger.pub()));
}

TEST_CASE("a batch signature covers every field of every write in it", "[identity]") {
  auto a = identity::from_seed(seed_of(30));
  auto rid = derive_replica_id(a.pub(), 1);
  std::vector<write_header> hs;
  std::vector<hash256> leaves;
  for (std::uint64_t n = 1; n <= 5; ++n) {
    write_body body{n == 3, 1000 + n, {}, "v" + std::to_string(n)};
    body.context.raise(rid, n - 1);
    hs.push_back(header_of("k" + std::to_string(n), dot{rid, kith::causality::counter{n}}, body));
    leaves.push_back(leaf_hash("feed/x", hs.back()));
  }
  auto b = sign_batch(a, "feed/x", rid, 1, leaves);
  CHECK(check_batch(b, a.pub()));
  for (const auto& h : hs)
    CHECK(b.leaf(h.d) == leaf_hash("feed/x", h));
  // Each field changes the leaf.
  auto h = hs[0];
  auto base = leaf_hash("feed/x", h);
  CHECK(leaf_hash("feed/y", h) != base);
  auto v = h; v.key = "other"; CHECK(leaf_hash("feed/x", v) != base);
  v = h; v.d.n = kith::causality::counter{9}; CHECK(leaf_hash("feed/x", v) != base);
  v = h; v.deleted = !v.deleted; CHECK(leaf_hash("feed/x", v) != base);
  v = h; v.time_ms += 1; CHECK(leaf_hash("feed/x", v) != base);
  v = h; v.context.raise(rid, 7); CHECK(leaf_hash("feed/x", v) != base);
  v = h; v.value_hash[0] ^= 1; CHECK(leaf_hash("feed/x", v) != base);
  // And the batch signature covers the leaves, range and topic.
  auto t = b; t.leaves[2][0] ^= 1; CHECK_FALSE(check_batch(t, a.pub()));
  t = b; t.first = 2; CHECK_FALSE(check_batch(t, a.pub()));
  t = b; t.topic = "feed/y"; CHECK_FALSE(check_batch(t, a.pub()));
  t = b; t.leaves.pop_back(); CHECK_FALSE(check_batch(t, a.pub()));
  CHECK_FALSE(check_batch(b, identity::from_seed(seed_of(31)).pub()));
}

TEST_CASE("signed structures reject truncated and garbage encodings", "[identity]") {
  auto a = identity::from_seed(seed_of(40));
  auto t = make_topic(a, topic_kind::shared, "x", {identity::from_seed(seed_of(41)).pub()}, 1);
  auto b = sign_batch(a, t.id, derive_replica_id(a.pub(), 1), 1, {hash256{}, hash256{}});
  kith::causality::writer w1, w2;
  encode(w1, t);
  encode(w2, b);
  for (std::size_t cut = 0; cut < w1.str().size(); ++cut) {
    kith::causality::reader r(std::string_view(w1.str()).substr(0, cut));
    topic_descriptor out;
    CHECK_FALSE((decode(r, out) && !r.failed()));
  }
  for (std::size_t cut = 0; cut < w2.str().size(); ++cut) {
    kith::causality::reader r(std::string_view(w2.str()).substr(0, cut));
    signed_batch out;
    CHECK_FALSE((decode(r, out) && !r.failed()));
  }
  // A huge leaf count is refused before anything is allocated.
  kith::causality::writer w;
  w.bytes("feed/x");
  w.varint(1);
  w.varint(1);
  w.varint(1ull << 40);
  kith::causality::reader r(w.str());
  signed_batch out;
  CHECK_FALSE(decode(r, out));
  CHECK_FALSE(decode_body("\x05garbage"));
}

TEST_CASE("a verify memo answers good signatures once checked and never passes a forged one",
          "[identity]") {
  auto a = identity::from_seed(seed_of(40));
  auto c = identity::from_seed(seed_of(41));
  auto sig = a.sign("batch");
  auto forged = sig;
  forged.bytes[5] ^= 1;
  verify_memo memo(3);
  use_verify_memo(&memo);
  CHECK(verify(a.pub(), "batch", sig));
  CHECK(memo.figures().misses == 1);
  CHECK(verify(a.pub(), "batch", sig));
  CHECK(memo.figures().hits == 1);
  // Any byte of key, message or signature changed: checked again, refused,
  // and not remembered (refused twice, two more misses).
  for (int round = 0; round < 2; ++round) {
    CHECK_FALSE(verify(a.pub(), "batcH", sig));
    CHECK_FALSE(verify(c.pub(), "batch", sig));
    CHECK_FALSE(verify(a.pub(), "batch", forged));
  }
  CHECK(memo.figures().misses == 7);
  CHECK(memo.figures().hits == 1);
  CHECK(memo.figures().entries == 1);
  // Full: it forgets everything and goes on answering correctly.
  for (int n = 0; n < 4; ++n) {
    const std::string msg = "m" + std::to_string(n);
    CHECK(verify(a.pub(), msg, a.sign(msg)));
  }
  CHECK(memo.figures().clears == 1);
  CHECK(memo.figures().entries == 2);
  CHECK(verify(a.pub(), "batch", sig));
  CHECK(memo.figures().hits == 1); // forgotten: a miss again
  // verify_once (handshake transcripts) checks without the memo: right
  // answers, and the figures and entries stay as they were.
  const auto before = memo.figures();
  CHECK(verify_once(a.pub(), "batch", sig));
  CHECK_FALSE(verify_once(a.pub(), "batch", forged));
  CHECK(verify_once(a.pub(), "transcript", a.sign("transcript")));
  CHECK(memo.figures().hits == before.hits);
  CHECK(memo.figures().misses == before.misses);
  CHECK(memo.figures().entries == before.entries);
  CHECK(verify(a.pub(), "transcript", a.sign("transcript")));
  CHECK(memo.figures().misses == before.misses + 1); // not remembered by verify_once
  use_verify_memo(nullptr);
  CHECK(verify(a.pub(), "batch", sig));
  CHECK_FALSE(verify(a.pub(), "batch", forged));
  CHECK(memo.figures().misses == 13);
}
