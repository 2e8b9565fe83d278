#include "group.hpp"

using namespace kith::causality;
using kith::test::group;

namespace {
dot d(std::uint64_t id, std::uint64_t n) {
  return {replica_id{id}, counter{n}};
}
} // namespace

TEST_CASE("scenario 1: a pull repairs a write that reached only one peer", "[causality][scenario]") {
  group g(3); // A=0, B=1, C=2
  auto w = g[0].put("k", "v1", {});
  g[1].receive(w);
  g.pull(2, 0);
  const auto* c = &g[2].store().at("k");
  CHECK(c->dots().size() == 1);
  CHECK(c->dots()[0].first == d(1, 1));
  CHECK(c->values() == std::vector<std::string>{"v1"});
  CHECK(c->context().empty());
}

TEST_CASE("scenario 2: concurrent writes become siblings and a later write replaces both",
          "[causality][scenario]") {
  group g(3);
  auto w1 = g[0].put("k", "v1", {});
  g[1].receive(w1);
  g[2].receive(w1);
  auto w2 = g[1].put("k", "v2", g[1].read("k").context);
  auto w3 = g[2].put("k", "v3", g[2].read("k").context);
  for (std::size_t i = 0; i < 3; ++i) {
    if (i != 1)
      g[i].receive(w2);
    if (i != 2)
      g[i].receive(w3);
  }
  for (std::size_t i = 0; i < 3; ++i) {
    auto values = g[i].read("k").values;
    std::sort(values.begin(), values.end());
    CHECK(values == std::vector<std::string>{"v2", "v3"});
  }
  auto w4 = g[0].put("k", "v4", g[0].read("k").context);
  g[1].receive(w4);
  g[2].receive(w4);
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(g[i].read("k").values == std::vector<std::string>{"v4"});
  g.heal();
  kith::test::check_converged(g);
}

TEST_CASE("scenario 3: a delete whose push was lost still wins through a pull",
          "[causality][scenario]") {
  group g(3);
  auto w1 = g[0].put("k", "v1", {});
  g[1].receive(w1);
  g[2].receive(w1);
  auto del = g[0].erase("k", g[0].read("k").context);
  CHECK(g[0].store().count("k") == 0); // no tombstone at the deleter
  g.pull(1, 0);                       // the push to B was lost
  CHECK(g[1].store().count("k") == 0);
  CHECK(g[1].clock().contains(d(1, 2)));
  g[1].receive(w1); // a stale redelivery is ignored
  CHECK(g[1].store().count("k") == 0);
  g[2].receive(del);
  g[2].receive(w1);
  CHECK(g[2].store().count("k") == 0);
  g.heal();
  kith::test::check_converged(g);
  CHECK(g[0].store().empty());
}

TEST_CASE("out-of-order delivery keeps a context until the gap fills, then strips",
          "[causality]") {
  group g(2);
  auto w1 = g[0].put("k", "v1", {});
  auto w2 = g[0].put("k", "v2", g[0].read("k").context);
  g[1].receive(w2); // (A,2) before (A,1)
  REQUIRE(g[1].store().count("k") == 1);
  CHECK(g[1].store().at("k").context() == version_vector{{replica_id{1}, 2}});
  CHECK(g[1].unstripped().count("k") == 1);
  g[1].receive(w1); // the gap fills: (A,1) is covered and dropped
  CHECK(g[1].read("k").values == std::vector<std::string>{"v2"});
  CHECK(g[1].restrip() == 1);
  CHECK(g[1].store().at("k").context().empty());
  CHECK(g[1].unstripped().empty());
}

TEST_CASE("a delete that arrives before the write it deletes leaves nothing",
          "[causality]") {
  group g(2);
  auto w1 = g[0].put("k", "v1", {});
  auto del = g[0].erase("k", g[0].read("k").context);
  g[1].receive(del);
  CHECK(g[1].read("k").values.empty());
  g[1].receive(w1);
  CHECK(g[1].read("k").values.empty());
  g[1].restrip();
  CHECK(g[1].store().empty());
}

TEST_CASE("an in-sync pull ships no keys", "[causality]") {
  group g(2);
  g[1].receive(g[0].put("k", "v", {}));
  const auto reply = g[1].answer(g[0].make_request());
  CHECK(reply.changes.entries.empty());
}

TEST_CASE("the dot-key map is pruned once every member has a dot", "[causality]") {
  group g(3);
  auto w = g[0].put("k", "v", {});
  CHECK(g[0].dkm().size() == 1);
  g[1].receive(w);
  g.pull(0, 1); // A learns B has it, but not C
  CHECK(g[0].dkm().size() == 1);
  g[2].receive(w);
  g.pull(0, 2);
  CHECK(g[0].dkm().empty());
}

TEST_CASE("a returning replica resyncs from a snapshot and drops what was deleted",
          "[causality]") {
  group g(2);
  auto w1 = g[0].put("k", "v1", {});
  auto w2 = g[0].put("j", "j1", {});
  g[1].receive(w1);
  g[1].receive(w2);
  g[0].erase("k", g[0].read("k").context); // B misses it
  g[0].put("m", "m1", {});
  g[1].apply_snapshot(g[0].snapshot());
  CHECK(g[1].store().count("k") == 0);
  CHECK(g[1].read("j").values == std::vector<std::string>{"j1"});
  CHECK(g[1].read("m").values == std::vector<std::string>{"m1"});
  CHECK(g[1].clock() == g[0].clock());
  CHECK(g[1].check_invariant());
}

TEST_CASE("retiring a replica id leaves per-key metadata naming only live ids",
          "[causality][churn]") {
  group g(3); // C (id 3) will lose its store
  const replica_id c_old{3};
  g[0].put("a", "a1", {});
  auto wc1 = g[2].put("k", "c1", {});
  auto wc2 = g[2].put("k2", "c2", {});
  g[0].receive(wc2); // (C,2) reached A; (C,1) never left C
  // C loses its store and comes back as id 4.
  const replica_id c_new{4};
  g.nodes[2] = replica{c_new};
  for (auto& r : g.nodes) {
    r.set_members({replica_id{1}, replica_id{2}, c_new});
    r.retire(c_old);
  }
  g[2].apply_snapshot(g[0].snapshot());
  g[2].put("k3", "new", {});
  g.heal();
  // (C,1) is lost with C's store: every clock has a gap for C below 2, so the
  // context of k2 still names C until the retired id is closed.
  CHECK(g[0].store().at("k2").context() == version_vector{{c_old, 2}});
  for (auto& r : g.nodes)
    r.close_retired(c_old);
  g.heal(); // spreads the closed bases so the watermark prunes C's row
  for (auto& r : g.nodes) {
    CAPTURE(r.id());
    CHECK(r.check_invariant());
    for (const auto& [k, cont] : r.store())
      for (const auto& [id, n] : cont.context().entries())
        CHECK(id != c_old);
    CHECK(r.dkm().rows().count(c_old) == 0);
    for (const auto& [origin, cols] : r.marks().rows())
      CHECK(cols.count(c_old) == 0);
    CHECK(r.read("k2").values == std::vector<std::string>{"c2"});
  }
  kith::test::check_converged(g);
  (void)wc1;
}
