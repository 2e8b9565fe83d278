#pragma once

// A small in-memory replication group for tests: replicas by index, a pull
// between two of them, and the convergence checks of ndc-reference.md.

#include "kith/causality/replica.hpp"

#include <catch2/catch.hpp>

#include <vector>

namespace kith::test {

using namespace kith::causality;

struct group {
  std::vector<replica> nodes;

  explicit group(std::size_t n) {
    std::vector<replica_id> ids;
    for (std::size_t i = 0; i < n; ++i)
      ids.emplace_back(i + 1);
    for (auto id : ids)
      nodes.emplace_back(id);
    for (auto& r : nodes)
      r.set_members(ids);
  }

  replica& operator[](std::size_t i) { return nodes[i]; }

  /// nodes[to] pulls from nodes[from].
  void pull(std::size_t to, std::size_t from) {
    nodes[to].apply(nodes[from].answer(nodes[to].make_request()));
  }

  /// Every ordered pair pulls, twice (the second pass spreads watermarks),
  /// then every replica re-strips.
  void heal() {
    for (int pass = 0; pass < 3; ++pass)
      for (std::size_t i = 0; i < nodes.size(); ++i)
        for (std::size_t j = 0; j < nodes.size(); ++j)
          if (i != j)
            pull(i, j);
    for (auto& r : nodes)
      r.restrip();
  }
};

/// The convergence checks: equal stores, empty contexts, empty dot-key maps.
inline void check_converged(const group& g) {
  for (const auto& r : g.nodes) {
    CAPTURE(r.id());
    CHECK(r.check_invariant());
    CHECK(r.store() == g.nodes.front().store());
    CHECK(r.clock() == g.nodes.front().clock());
    CHECK(r.unstripped().empty());
    for (const auto& [k, c] : r.store()) {
      CHECK(c.context().empty());
      CHECK(c.has_live_value());
    }
    CHECK(r.dkm().empty());
  }
}

} // namespace kith::test
