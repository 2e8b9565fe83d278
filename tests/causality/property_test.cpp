// Algebraic laws of the clock and the container, on many seeded random cases.
#include "kith/causality/container.hpp"
#include "kith/causality/dot_key_map.hpp"
#include "support/seed.hpp"

#include <catch2/catch.hpp>

#include <set>

using namespace kith::causality;
using kith::test::chance;
using kith::test::pick;

namespace {

clock_entry random_entry(kith::test::rng& g) {
  const auto base = pick(g, 0, 3) == 0 ? 0 : pick(g, 0, 300);
  std::vector<std::uint64_t> words(pick(g, 0, 3));
  const double density = std::uniform_real_distribution<double>{0, 1}(g);
  for (auto& w : words)
    for (int i = 0; i < 64; ++i)
      if (chance(g, density))
        w |= std::uint64_t{1} << i;
  return clock_entry{base, std::move(words)};
}

node_clock random_clock(kith::test::rng& g) {
  node_clock c;
  const auto ids = pick(g, 0, 4);
  for (std::uint64_t i = 0; i < ids; ++i)
    c.join_entry(replica_id{pick(g, 1, 5)}, random_entry(g));
  return c;
}

std::set<std::uint64_t> as_set(const clock_entry& e) {
  auto v = e.values();
  return {v.begin(), v.end()};
}

} // namespace

TEST_CASE("clock entry join is commutative, associative, idempotent and normalised",
          "[causality][property]") {
  const auto seed = kith::test::base_seed();
  for (int i = 0; i < kith::test::cases(10000); ++i) {
    kith::test::rng g{seed + static_cast<std::uint64_t>(i)};
    CAPTURE(seed, i);
    const auto a = random_entry(g), b = random_entry(g), c = random_entry(g);
    auto ab = a, ba = b;
    ab.join(b);
    ba.join(a);
    REQUIRE(ab == ba);
    auto ab_c = ab, bc = b;
    ab_c.join(c);
    bc.join(c);
    auto a_bc = a;
    a_bc.join(bc);
    REQUIRE(ab_c == a_bc);
    auto aa = a;
    aa.join(a);
    REQUIRE(aa == a);
    REQUIRE(ab.normalised());
    // Join is set union.
    auto u = as_set(a);
    for (auto n : as_set(b))
      u.insert(n);
    REQUIRE(as_set(ab) == u);
  }
}

TEST_CASE("missing dots are exactly the set difference", "[causality][property]") {
  const auto seed = kith::test::base_seed() + 1;
  for (int i = 0; i < kith::test::cases(10000); ++i) {
    kith::test::rng g{seed + static_cast<std::uint64_t>(i)};
    CAPTURE(seed, i);
    const auto a = random_entry(g), b = random_entry(g);
    std::vector<std::uint64_t> expect;
    const auto sb = as_set(b);
    for (auto n : a.values())
      if (sb.count(n) == 0)
        expect.push_back(n);
    REQUIRE(a.missing_from(b) == expect);
    for (auto n : a.values())
      REQUIRE(a.contains(n));
    REQUIRE(a.count() == a.values().size());
  }
}

TEST_CASE("node clock merge is commutative, associative and idempotent",
          "[causality][property]") {
  const auto seed = kith::test::base_seed() + 2;
  for (int i = 0; i < kith::test::cases(10000); ++i) {
    kith::test::rng g{seed + static_cast<std::uint64_t>(i)};
    CAPTURE(seed, i);
    const auto a = random_clock(g), b = random_clock(g), c = random_clock(g);
    auto ab = a, ba = b;
    ab.merge(b);
    ba.merge(a);
    REQUIRE(ab == ba);
    auto ab_c = ab, bc = b;
    ab_c.merge(c);
    bc.merge(c);
    auto a_bc = a;
    a_bc.merge(bc);
    REQUIRE(ab_c == a_bc);
    auto aa = a;
    aa.merge(a);
    REQUIRE(aa == a);
    REQUIRE(ab.check_invariant());
    // Nothing of a is missing from a merge that contains it.
    REQUIRE(a.missing_from(ab).empty());
  }
}

TEST_CASE("a watermark covers a member's clock exactly when observing it raises nothing",
          "[causality][property]") {
  const auto seed = kith::test::base_seed() + 5;
  for (int i = 0; i < kith::test::cases(10000); ++i) {
    kith::test::rng g{seed + static_cast<std::uint64_t>(i)};
    CAPTURE(seed, i);
    watermark w;
    std::vector<replica_id> members;
    for (std::uint64_t id = 1; id <= 5; ++id)
      if (chance(g, 0.6))
        members.push_back(replica_id{id});
    w.set_members(members);
    for (int k = 0; k < 3; ++k)
      w.observe(replica_id{pick(g, 1, 5)}, random_clock(g));
    const replica_id member{pick(g, 1, 5)};
    // Often a clock already reported, or one below it, as repeated
    // anti-entropy rounds send.
    auto c = random_clock(g);
    if (chance(g, 0.5)) {
      watermark seen = w;
      seen.observe(member, c);
      w = seen;
    }
    watermark after = w;
    after.observe(member, c);
    const bool unchanged = after.rows() == w.rows() && after.members() == w.members();
    REQUIRE(w.covers(member, c) == unchanged);
  }
}

namespace {

// Containers over a shared universe of dots, each dot with one value (a dot
// names one write). Each container holds a random context and a random
// subset of the dots it covers, as filled containers do.
container random_container(kith::test::rng& g) {
  container c;
  for (std::uint64_t id = 1; id <= 3; ++id)
    if (chance(g, 0.8))
      c.context().raise(replica_id{id}, pick(g, 1, 6));
  for (const auto& [id, n] : std::vector<version_vector::entry>(c.context().entries()))
    for (std::uint64_t k = 1; k <= n; ++k)
      if (chance(g, 0.3)) {
        const dot d{id, counter{k}};
        c.add(d, chance(g, 0.2) ? sibling::tombstone()
                                : sibling::value(std::to_string(id.value() * 100 + k)));
      }
  return c;
}

// A dot's sibling is a function of the dot (tombstone-ness included) so
// that two containers holding a dot agree on what it wrote.
container canonical(container c) {
  container out;
  for (const auto& [d, s] : c.dots()) {
    const bool del = (d.id.value() + d.n.value()) % 5 == 0;
    out.add(d, del ? sibling::tombstone() : sibling::value(std::to_string(d.id.value() * 100 + d.n.value())));
  }
  out.context() = c.context();
  return out;
}

} // namespace

TEST_CASE("container sync is commutative, associative and idempotent",
          "[causality][property]") {
  const auto seed = kith::test::base_seed() + 3;
  for (int i = 0; i < kith::test::cases(10000); ++i) {
    kith::test::rng g{seed + static_cast<std::uint64_t>(i)};
    CAPTURE(seed, i);
    const auto a = canonical(random_container(g));
    const auto b = canonical(random_container(g));
    const auto c = canonical(random_container(g));
    REQUIRE(a.covers_own_dots());
    const auto ab = container::sync(a, b);
    REQUIRE(ab == container::sync(b, a));
    REQUIRE(container::sync(ab, c) == container::sync(a, container::sync(b, c)));
    REQUIRE(container::sync(a, a) == a);
    REQUIRE(ab.covers_own_dots());
    REQUIRE(ab.check_invariant());
    // A dot survives exactly when no side that lacks it has seen it.
    for (const auto& [d, s] : a.dots())
      REQUIRE(ab.holds(d) == (b.holds(d) || !b.context().covers(d)));
  }
}

TEST_CASE("strip then fill with the same clock restores a filled container",
          "[causality][property]") {
  const auto seed = kith::test::base_seed() + 4;
  for (int i = 0; i < kith::test::cases(10000); ++i) {
    kith::test::rng g{seed + static_cast<std::uint64_t>(i)};
    CAPTURE(seed, i);
    const auto clock = random_clock(g);
    auto c = canonical(random_container(g));
    c.fill(clock);
    auto s = c;
    s.strip(clock);
    for (const auto& [id, n] : s.context().entries())
      REQUIRE(n > clock.base(id));
    s.fill(clock);
    REQUIRE(s == c);
  }
}
