#include "kith/causality/container.hpp"

#include <catch2/catch.hpp>

using namespace kith::causality;

namespace {
const replica_id a{1};
const replica_id b{2};
const replica_id c{3};
dot d(replica_id id, std::uint64_t n) {
  return {id, counter{n}};
}
} // namespace

TEST_CASE("fill raises the context to the clock's bases", "[causality]") {
  node_clock clock;
  clock.add(d(a, 1));
  clock.add(d(a, 2));
  clock.add(d(b, 5)); // a gap: base for b stays 0
  container x;
  x.fill(clock);
  CHECK(x.context() == version_vector{{a, 2}});
}

TEST_CASE("strip drops what the clock's base already implies", "[causality]") {
  node_clock clock;
  clock.add(d(a, 1));
  clock.add(d(b, 3));
  container x;
  x.add(d(a, 1), sibling::value("v"));
  x.add(d(b, 3), sibling::value("w"));
  x.strip(clock);
  CHECK(x.context() == version_vector{{b, 3}});
  CHECK(x.dots().size() == 2);
}

TEST_CASE("discard drops dots the reader had seen and keeps the rest", "[causality]") {
  container x;
  x.add(d(a, 1), sibling::value("v1"));
  x.add(d(b, 1), sibling::value("v2"));
  x.discard(version_vector{{a, 1}});
  CHECK(x.values() == std::vector<std::string>{"v2"});
  CHECK(x.context() == version_vector{{a, 1}, {b, 1}});
}

TEST_CASE("sync keeps concurrent dots and drops covered ones", "[causality]") {
  container x, y;
  x.add(d(a, 1), sibling::value("v1"));
  x.add(d(b, 1), sibling::value("v2"));
  y.add(d(c, 1), sibling::value("v3"));
  y.context().raise(a, 1); // y saw (a,1) and overwrote it
  const auto r = container::sync(x, y);
  CHECK(r.values() == std::vector<std::string>{"v2", "v3"});
  CHECK(r.context() == version_vector{{a, 1}, {b, 1}, {c, 1}});
  CHECK(r == container::sync(y, x));
}

TEST_CASE("delete markers replicate but are not stored", "[causality]") {
  container x;
  x.add(d(a, 2), sibling::tombstone());
  CHECK_FALSE(x.has_live_value());
  CHECK(x.values().empty());
  x.drop_delete_markers();
  CHECK(x.dots().empty());
  CHECK(x.context() == version_vector{{a, 2}});
}
