// The same convergence scenarios against every scheme behind the common
// interface: all must converge; they differ in the metadata they carry.
#include "kith/causality/scheme.hpp"
#include "support/seed.hpp"

#include <catch2/catch.hpp>

using namespace kith::causality;
using kith::test::chance;
using kith::test::pick;

namespace {

struct scheme_group {
  std::vector<std::unique_ptr<replica_scheme>> nodes;

  scheme_group(scheme_kind kind, std::size_t n) {
    std::vector<replica_id> ids;
    for (std::size_t i = 0; i < n; ++i)
      ids.emplace_back(i + 1);
    scheme_options opts;
    opts.merkle_leaves = 256;
    for (auto id : ids)
      nodes.push_back(make_scheme(kind, id, opts));
    for (auto& r : nodes)
      r->set_members(ids);
  }

  byte_split pull(std::size_t to, std::size_t from) {
    byte_split bytes;
    message m = nodes[to]->sync_start();
    bool at_from = true;
    for (int rounds = 0; rounds < 64; ++rounds) {
      bytes += m.split;
      REQUIRE(m.split.total() == m.bytes.size());
      auto next = (at_from ? nodes[from] : nodes[to])->sync_step(m);
      if (!next)
        return bytes;
      m = std::move(*next);
      at_from = !at_from;
    }
    FAIL("anti-entropy did not terminate");
    return bytes;
  }

  void heal() {
    for (int pass = 0; pass < 3; ++pass)
      for (std::size_t i = 0; i < nodes.size(); ++i)
        for (std::size_t j = 0; j < nodes.size(); ++j)
          if (i != j)
            pull(i, j);
    for (auto& r : nodes)
      r->tick();
  }
};

} // namespace

TEST_CASE("every scheme converges after loss and partitions", "[causality][schemes]") {
  for (auto kind : {scheme_kind::ndc, scheme_kind::dvv, scheme_kind::vv}) {
    const auto seed = kith::test::base_seed() + 30;
    for (int i = 0; i < kith::test::cases(300); ++i) {
      const auto case_seed = seed + static_cast<std::uint64_t>(i);
      CAPTURE(to_string(kind), case_seed);
      kith::test::rng g{case_seed};
      scheme_group grp{kind, static_cast<std::size_t>(pick(g, 2, 4))};
      std::vector<std::pair<std::size_t, message>> queue;
      for (int step = 0; step < 40; ++step) {
        const auto r = static_cast<std::size_t>(pick(g, 0, grp.nodes.size() - 1));
        const key_type k = "k" + std::to_string(pick(g, 0, 5));
        const auto seen = grp.nodes[r]->read(k);
        const auto ctx = chance(g, 0.8) ? seen.context : std::string{};
        auto m = chance(g, 0.25) ? grp.nodes[r]->write(k, std::nullopt, ctx)
                                 : grp.nodes[r]->write(k, "v" + std::to_string(step), ctx);
        REQUIRE(m.split.total() == m.bytes.size());
        for (std::size_t to = 0; to < grp.nodes.size(); ++to)
          if (to != r && chance(g, 0.6))
            queue.emplace_back(to, m);
        if (!queue.empty() && chance(g, 0.5)) {
          const auto q = static_cast<std::size_t>(pick(g, 0, queue.size() - 1));
          REQUIRE(grp.nodes[queue[q].first]->deliver(queue[q].second));
          queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(q));
        }
      }
      grp.heal();
      const auto first = grp.nodes.front()->contents();
      for (auto& r : grp.nodes)
        REQUIRE(r->contents() == first);
    }
  }
}

TEST_CASE("ndc holds no tombstones after deletes where the baselines keep them",
          "[causality][schemes]") {
  for (auto kind : {scheme_kind::ndc, scheme_kind::dvv, scheme_kind::vv}) {
    CAPTURE(to_string(kind));
    scheme_group grp{kind, 3};
    for (int i = 0; i < 20; ++i) {
      const key_type k = "k" + std::to_string(i);
      auto m = grp.nodes[0]->write(k, "v", {});
      grp.nodes[1]->deliver(m);
      grp.nodes[2]->deliver(m);
      auto del = grp.nodes[0]->write(k, std::nullopt, grp.nodes[0]->read(k).context);
      grp.nodes[1]->deliver(del);
      grp.nodes[2]->deliver(del);
    }
    grp.heal();
    for (auto& r : grp.nodes) {
      CHECK(r->contents().empty());
      if (kind == scheme_kind::ndc) {
        CHECK(r->stats().tombstones == 0);
        CHECK(r->stats().keys == 0);
      } else {
        CHECK(r->stats().tombstones == 20);
      }
    }
  }
}

TEST_CASE("an in-sync ndc pull costs one round trip of clocks", "[causality][schemes]") {
  scheme_group grp{scheme_kind::ndc, 2};
  for (int i = 0; i < 100; ++i)
    grp.nodes[1]->deliver(grp.nodes[0]->write("k" + std::to_string(i), "v", {}));
  const auto bytes = grp.pull(1, 0);
  CHECK(bytes.data == 0);
  CHECK(bytes.key_meta == 0);
  CHECK(bytes.sync_meta < 64);
}
