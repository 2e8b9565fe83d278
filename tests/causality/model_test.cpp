// Random partitions, loss, duplication and reordering against a naive model
// that keeps the full history of every key. The model's answer for a key is
// every write no other write's read context covers; deletes are not values.
#include "group.hpp"
#include "support/seed.hpp"

#include <algorithm>
#include <map>
#include <set>

using namespace kith::causality;
using kith::test::chance;
using kith::test::pick;

namespace {

struct event {
  dot d;
  key_type key;
  bool deleted;
  std::string value;
  version_vector ctx; // the read context the write replaced
};

struct naive_model {
  std::vector<event> events;

  /// Live values of k among the events `known` admits, sorted.
  template <class Known>
  std::vector<std::string> live(const key_type& k, Known&& known) const {
    std::vector<std::string> out;
    for (const auto& e : events) {
      if (e.key != k || e.deleted || !known(e.d))
        continue;
      const bool covered = std::any_of(events.begin(), events.end(), [&](const event& o) {
        return o.key == k && o.d != e.d && known(o.d) && o.ctx.covers(e.d);
      });
      if (!covered)
        out.push_back(e.value);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

std::vector<std::string> sorted_values(const replica& r, const key_type& k) {
  auto v = r.read(k).values;
  std::sort(v.begin(), v.end());
  return v;
}

struct in_flight {
  std::size_t to;
  delta d;
};

struct scenario {
  kith::test::rng g;
  kith::test::group grp;
  naive_model model;
  std::vector<in_flight> queue;
  std::vector<key_type> keys;
  std::map<std::pair<std::size_t, key_type>, version_vector> old_reads;
  double loss;
  int writes = 0;

  explicit scenario(std::uint64_t seed)
    : g(seed), grp(static_cast<std::size_t>(pick(g, 2, 4))), loss(pick(g, 0, 5) / 10.0) {
    const auto nk = pick(g, 1, 4);
    for (std::uint64_t i = 0; i < nk; ++i)
      keys.push_back("k" + std::to_string(i));
  }

  std::size_t any_node() { return static_cast<std::size_t>(pick(g, 0, grp.nodes.size() - 1)); }

  void write() {
    const auto r = any_node();
    const auto& k = keys[pick(g, 0, keys.size() - 1)];
    version_vector ctx;
    const auto how = pick(g, 0, 9);
    if (how < 6)
      ctx = grp[r].read(k).context; // a fresh read here
    else if (how < 8)
      ctx = old_reads[{r, k}]; // a stale read here
    else if (how < 9)
      ctx = grp[any_node()].read(k).context; // a read at another replica
    old_reads[{r, k}] = grp[r].read(k).context;
    const bool del = chance(g, 0.25);
    const std::string value = "v" + std::to_string(++writes);
    delta out = del ? grp[r].erase(k, ctx) : grp[r].put(k, value, ctx);
    REQUIRE(out.entries.size() == 1);
    const dot made{grp[r].id(), counter{grp[r].clock().base(grp[r].id())}};
    model.events.push_back({made, k, del, value, ctx});
    for (std::size_t to = 0; to < grp.nodes.size(); ++to) {
      if (to == r || chance(g, loss))
        continue;
      queue.push_back({to, out});
      if (chance(g, 0.1))
        queue.push_back({to, out}); // duplicated
    }
  }

  void deliver_one() {
    if (queue.empty())
      return;
    const auto i = static_cast<std::size_t>(pick(g, 0, queue.size() - 1)); // any order
    grp[queue[i].to].receive(queue[i].d);
    const std::size_t to = queue[i].to;
    queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(i));
    check_node(to);
  }

  void check_node(std::size_t r) {
    const auto& rep = grp[r];
    CAPTURE(rep.id());
    REQUIRE(rep.check_invariant());
    for (const auto& k : keys) {
      CAPTURE(k);
      // No resurrection and nothing invented: what a replica shows is live
      // among the events it knows.
      const auto shown = sorted_values(rep, k);
      const auto allowed = model.live(k, [&](dot d) { return rep.clock().contains(d); });
      for (const auto& v : shown)
        REQUIRE(std::binary_search(allowed.begin(), allowed.end(), v));
    }
  }

  void run() {
    const auto steps = pick(g, 5, 40);
    for (std::uint64_t s = 0; s < steps; ++s) {
      const auto op = pick(g, 0, 99);
      if (op < 40)
        write();
      else if (op < 75)
        deliver_one();
      else if (op < 90) {
        const auto a = any_node(), b = any_node();
        if (a != b) {
          grp.pull(a, b);
          check_node(a);
        }
      } else
        grp[any_node()].restrip();
    }
    // Heal: some in-flight messages arrive late (stale), the rest are lost.
    while (!queue.empty())
      if (chance(g, 0.5))
        deliver_one();
      else
        queue.pop_back();
    grp.heal();
  }
};

} // namespace

TEST_CASE("random loss, duplication and reordering converge to the naive model",
          "[causality][property][model]") {
  const auto seed = kith::test::base_seed() + 10;
  for (int i = 0; i < kith::test::cases(10000); ++i) {
    const auto case_seed = seed + static_cast<std::uint64_t>(i);
    CAPTURE(case_seed);
    scenario sc{case_seed};
    sc.run();
    kith::test::check_converged(sc.grp);
    // No lost concurrent write, no resurrection: every replica holds exactly
    // the model's live values, and deleted keys are absent.
    for (const auto& r : sc.grp.nodes)
      for (const auto& k : sc.keys) {
        CAPTURE(r.id(), k);
        const auto expect = sc.model.live(k, [](dot) { return true; });
        REQUIRE(sorted_values(r, k) == expect);
        REQUIRE(r.store().count(k) == (expect.empty() ? 0u : 1u));
      }
  }
}

TEST_CASE("random partitions heal into equal replicas with empty contexts",
          "[causality][property][model]") {
  const auto seed = kith::test::base_seed() + 11;
  for (int i = 0; i < kith::test::cases(10000); ++i) {
    const auto case_seed = seed + static_cast<std::uint64_t>(i);
    CAPTURE(case_seed);
    kith::test::rng g{case_seed};
    kith::test::group grp(static_cast<std::size_t>(pick(g, 3, 5)));
    // Two sides; writes and pulls only within a side; then heal.
    std::vector<int> side(grp.nodes.size());
    for (auto& s : side)
      s = static_cast<int>(pick(g, 0, 1));
    for (int step = 0; step < 30; ++step) {
      const auto r = static_cast<std::size_t>(pick(g, 0, grp.nodes.size() - 1));
      const key_type k = "k" + std::to_string(pick(g, 0, 5));
      const auto ctx = grp[r].read(k).context;
      if (chance(g, 0.3))
        grp[r].erase(k, ctx);
      else
        grp[r].put(k, "v" + std::to_string(step), ctx);
      const auto o = static_cast<std::size_t>(pick(g, 0, grp.nodes.size() - 1));
      if (o != r && side[o] == side[r])
        grp.pull(o, r);
    }
    grp.heal();
    kith::test::check_converged(grp);
  }
}

TEST_CASE("replacing a replica that lost its store leaves metadata naming only live ids",
          "[causality][property][churn]") {
  const auto seed = kith::test::base_seed() + 12;
  for (int i = 0; i < kith::test::cases(10000); ++i) {
    const auto case_seed = seed + static_cast<std::uint64_t>(i);
    CAPTURE(case_seed);
    kith::test::rng g{case_seed};
    kith::test::group grp(static_cast<std::size_t>(pick(g, 2, 4)));
    std::vector<replica_id> live;
    for (const auto& r : grp.nodes)
      live.push_back(r.id());
    std::vector<replica_id> retired;
    std::uint64_t next_id = 100;
    const auto steps = pick(g, 10, 40);
    for (std::uint64_t s = 0; s < steps; ++s) {
      const auto r = static_cast<std::size_t>(pick(g, 0, grp.nodes.size() - 1));
      const auto op = pick(g, 0, 99);
      if (op < 60) {
        const key_type k = "k" + std::to_string(pick(g, 0, 4));
        const auto ctx = grp[r].read(k).context;
        delta d = chance(g, 0.25) ? grp[r].erase(k, ctx) : grp[r].put(k, "v" + std::to_string(s), ctx);
        for (std::size_t to = 0; to < grp.nodes.size(); ++to)
          if (to != r && chance(g, 0.6))
            grp[to].receive(d);
      } else if (op < 85) {
        const auto o = static_cast<std::size_t>(pick(g, 0, grp.nodes.size() - 1));
        if (o != r)
          grp.pull(r, o);
      } else if (op < 92) {
        grp[r].restrip();
      } else {
        // r loses its store and comes back under a fresh id.
        const replica_id old = grp[r].id();
        const replica_id fresh{next_id++};
        std::replace(live.begin(), live.end(), old, fresh);
        retired.push_back(old);
        grp.nodes[r] = replica{fresh};
        for (auto& n : grp.nodes) {
          n.set_members(live);
          n.retire(old);
        }
        const auto donor = (r + 1) % grp.nodes.size();
        grp[r].apply_snapshot(grp[donor].snapshot());
        REQUIRE(grp[r].check_invariant());
      }
    }
    grp.heal();
    for (auto old : retired)
      for (auto& n : grp.nodes)
        n.close_retired(old);
    grp.heal();
    kith::test::check_converged(grp);
    for (const auto& n : grp.nodes) {
      CAPTURE(n.id());
      REQUIRE(n.marks().members() == [&] { auto v = live; std::sort(v.begin(), v.end()); return v; }());
      for (auto old : retired) {
        REQUIRE(n.dkm().rows().count(old) == 0);
        for (const auto& [origin, cols] : n.marks().rows())
          REQUIRE(cols.count(old) == 0);
        for (const auto& [k, c] : n.store())
          REQUIRE(c.context().get(old) == 0);
      }
    }
  }
}
