#include "group.hpp"
#include "kith/causality/codec.hpp"
#include "support/seed.hpp"

using namespace kith::causality;
using kith::test::pick;

TEST_CASE("varints round-trip at every width", "[causality][codec]") {
  for (std::uint64_t v : {0ull, 1ull, 127ull, 128ull, 16383ull, 16384ull, ~0ull}) {
    writer w;
    w.varint(v);
    CHECK(w.size() == varint_size(v));
    reader r{w.str()};
    CHECK(r.varint() == v);
    CHECK(r.at_end());
    CHECK_FALSE(r.failed());
  }
}

TEST_CASE("an empty clock entry costs two bytes and a dense gap run is run-length coded",
          "[causality][codec]") {
  CHECK(encoded_size(clock_entry{}) == 2);
  clock_entry sparse;
  sparse.add(100000); // one dot far above the base: 1 set bit after 99999 clear
  CHECK(encoded_size(sparse) < 10);
  clock_entry back;
  REQUIRE(decode_all(std::string{[&] { writer w; encode(w, sparse); return w.take(); }()}, back));
  CHECK(back == sparse);
}

TEST_CASE("clocks, containers and sync messages round-trip", "[causality][codec]") {
  const auto seed = kith::test::base_seed() + 20;
  for (int i = 0; i < kith::test::cases(2000); ++i) {
    kith::test::rng g{seed + static_cast<std::uint64_t>(i)};
    CAPTURE(seed, i);
    kith::test::group grp(3);
    for (int s = 0; s < 20; ++s) {
      const auto r = static_cast<std::size_t>(pick(g, 0, 2));
      const key_type k = "k" + std::to_string(pick(g, 0, 4));
      delta d = kith::test::chance(g, 0.2) ? grp[r].erase(k, grp[r].read(k).context)
                                           : grp[r].put(k, std::string(pick(g, 0, 40), 'x'), {});
      const auto to = static_cast<std::size_t>(pick(g, 0, 2));
      if (to != r && kith::test::chance(g, 0.5))
        grp[to].receive(d);
      writer w;
      encode(w, d);
      delta back;
      REQUIRE(decode_all(w.str(), back));
      REQUIRE(back.from == d.from);
      REQUIRE(back.clock == d.clock);
      REQUIRE(back.entries == d.entries);
      REQUIRE(split_of(d).total() == w.size());
    }
    const auto req = grp[0].make_request();
    const auto reply = grp[1].answer(req);
    writer wq, wr;
    encode(wq, req);
    encode(wr, reply);
    sync_request req2;
    sync_reply reply2;
    REQUIRE(decode_all(wq.str(), req2));
    REQUIRE(decode_all(wr.str(), reply2));
    REQUIRE(req2.clock == req.clock);
    REQUIRE(reply2.changes.entries == reply.changes.entries);
    REQUIRE(reply2.changes.clock == reply.changes.clock);
    REQUIRE(reply2.marks.rows() == reply.marks.rows());
    REQUIRE(split_of(reply).total() == wr.size());
  }
}

TEST_CASE("truncated and corrupted messages are rejected, never crash", "[causality][codec]") {
  kith::test::group grp(2);
  for (int i = 0; i < 10; ++i)
    grp[1].receive(grp[0].put("key" + std::to_string(i), "value", {}));
  writer w;
  encode(w, grp[0].snapshot());
  const std::string good = w.take();
  for (std::size_t n = 0; n < good.size(); ++n) {
    sync_reply out;
    CHECK_FALSE(decode_all(good.substr(0, n), out));
  }
  const auto seed = kith::test::base_seed() + 21;
  kith::test::rng g{seed};
  CAPTURE(seed);
  for (int i = 0; i < kith::test::cases(20000); ++i) {
    std::string bad = good;
    const auto flips = pick(g, 1, 4);
    for (std::uint64_t f = 0; f < flips; ++f)
      bad[pick(g, 0, bad.size() - 1)] = static_cast<char>(pick(g, 0, 255));
    sync_reply out;
    (void)decode_all(bad, out); // must not crash, hang or allocate wildly
    std::string junk(pick(g, 0, 64), '\0');
    for (auto& ch : junk)
      ch = static_cast<char>(pick(g, 0, 255));
    delta d;
    (void)decode_all(junk, d);
  }
}

TEST_CASE("decode limits refuse huge counts before allocating", "[causality][codec]") {
  writer w;
  w.varint(0);              // from
  w.varint(1);              // one clock entry
  w.varint(7);              // id
  w.varint(0);              // base
  w.varint((1ull << 40) << 1); // a raw bitmap of 1 TiB
  delta d;
  CHECK_FALSE(decode_all(w.str(), d));
  writer v;
  v.varint(1ull << 50); // a version vector with 2^50 entries
  version_vector vv;
  CHECK_FALSE(decode_all(v.str(), vv));
}
