#include "kith/causality/node_clock.hpp"

#include <catch2/catch.hpp>

using namespace kith::causality;

namespace {
const replica_id a{1};
const replica_id b{2};

clock_entry entry(std::uint64_t base, std::uint64_t bits) {
  return clock_entry::from_word(base, bits);
}
} // namespace

TEST_CASE("normalising (5, 0b11) gives (7, 0)", "[causality][vectors]") {
  const auto e = entry(5, 0b11);
  CHECK(e.base() == 7);
  CHECK(e.bits().empty());
}

TEST_CASE("values of (2, 0b101) are 1, 2, 3 and 5", "[causality][vectors]") {
  CHECK(entry(2, 0b101).values() == std::vector<std::uint64_t>{1, 2, 3, 5});
}

TEST_CASE("(12, 0) is missing 6, 10, 11 and 12 from (5, 0b1110)", "[causality][vectors]") {
  CHECK(entry(12, 0).missing_from(entry(5, 0b1110)) == std::vector<std::uint64_t>{6, 10, 11, 12});
}

TEST_CASE("joining (5, 0b11) with (2, 0b100) gives (7, 0)", "[causality][vectors]") {
  auto e = entry(5, 0b11);
  e.join(entry(2, 0b100));
  CHECK(e == entry(7, 0));
  auto f = entry(2, 0b100);
  f.join(entry(5, 0b11));
  CHECK(f == entry(7, 0));
}

TEST_CASE("adding dot 8 to an empty entry gives (0, 0b10000000)", "[causality][vectors]") {
  clock_entry e;
  e.add(8);
  CHECK(e.base() == 0);
  REQUIRE(e.bits().size() == 1);
  CHECK(e.bits()[0] == 0b10000000);
}

TEST_CASE("bitmaps longer than one word shift and normalise correctly", "[causality]") {
  clock_entry e;
  for (std::uint64_t n = 2; n <= 200; ++n)
    e.add(n);
  CHECK(e.base() == 0);
  CHECK(e.count() == 199);
  CHECK(e.max() == 200);
  e.add(1);
  CHECK(e.base() == 200);
  CHECK(e.bits().empty());
  e.add(300);
  CHECK(e.contains(300));
  CHECK_FALSE(e.contains(299));
  CHECK(e.missing_from(entry(200, 0)) == std::vector<std::uint64_t>{300});
  e.raise_base(250);
  CHECK(e.base() == 250);
  CHECK(e.contains(300));
  CHECK(e.normalised());
}

TEST_CASE("a node clock's own events are contiguous", "[causality]") {
  node_clock c;
  CHECK(c.event(a) == dot{a, counter{1}});
  CHECK(c.event(a) == dot{a, counter{2}});
  c.add(dot{b, counter{3}});
  CHECK(c.base(a) == 2);
  CHECK(c.base(b) == 0);
  CHECK(c.contains(dot{b, counter{3}}));
  CHECK_FALSE(c.contains(dot{b, counter{2}}));
  CHECK(c.dot_count() == 3);
  const auto base = c.base_only();
  CHECK(base.size() == 1);
  CHECK(base.base(a) == 2);
  CHECK(c.check_invariant());
}

TEST_CASE("missing dots of a clock name every replica", "[causality]") {
  node_clock x, y;
  x.add({a, counter{1}});
  x.add({a, counter{2}});
  x.add({b, counter{2}});
  y.add({a, counter{1}});
  CHECK(x.missing_from(y) == std::vector<dot>{{a, counter{2}}, {b, counter{2}}});
  CHECK(y.missing_from(x).empty());
}
