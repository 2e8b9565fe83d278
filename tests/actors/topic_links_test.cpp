// The peer actor's per-topic record (actors/src/topic_links.hpp) against a
// naive model: one std::set per flag and std::maps for the actors and the
// round timings, which is what the peer actor held before session 17.

#include "topic_links.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>

using kith::actors::topic_actor;
using kith::actors::detail::round_timing;
using kith::actors::detail::topic_links;

namespace {

constexpr topic_links::flag all_flags[] = {topic_links::pulling, topic_links::offered,
                                           topic_links::serving, topic_links::asked_unheld,
                                           topic_links::mark_due};

struct model {
  std::map<topic_links::flag, std::set<std::string>> flags;
  std::set<std::string> actors;
  std::map<std::string, round_timing> rounds;
};

std::vector<std::string> some_topics() {
  // Ids of the real lengths (38-62 bytes) and a short one.
  std::vector<std::string> out{"t"};
  for (int i = 0; i < 7; ++i)
    out.push_back("feed:kith1" + std::string(28 + 4 * i, static_cast<char>('a' + i)));
  return out;
}

void check_same(const topic_links& l, const model& m, const std::vector<std::string>& topics) {
  for (auto f : all_flags) {
    const auto& want = m.flags.count(f) ? m.flags.at(f) : std::set<std::string>{};
    for (const auto& t : topics)
      REQUIRE(l.has(t, f) == (want.count(t) > 0));
    REQUIRE(l.any(f) == !want.empty());
    REQUIRE(l.count(f) == want.size());
    REQUIRE(l.with(f) == std::vector<std::string>(want.begin(), want.end()));
    std::vector<std::string> seen;
    l.each(f, [&](const std::string& t, const round_timing* r) {
      seen.push_back(t);
      auto it = m.rounds.find(t);
      REQUIRE((r != nullptr) == (it != m.rounds.end()));
      if (r) {
        REQUIRE(r->next_ms == it->second.next_ms);
        REQUIRE(r->idle == it->second.idle);
      }
    });
    REQUIRE(seen == std::vector<std::string>(want.begin(), want.end()));
  }
  for (const auto& t : topics)
    REQUIRE(l.actor(t).has_value() == (m.actors.count(t) > 0));
}

} // namespace

TEST_CASE("topic links answer as one set per flag and maps for actors and rounds would",
          "[actors][peer]") {
  const auto topics = some_topics();
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    INFO("seed " << seed << " (replay: this test, this seed)");
    std::mt19937_64 rng(seed);
    topic_links l;
    model m;
    for (int step = 0; step < 400; ++step) {
      const auto& t = topics[rng() % topics.size()];
      const auto f = all_flags[rng() % std::size(all_flags)];
      switch (rng() % 6) {
      case 0:
      case 1:
        REQUIRE(l.set(t, f) == m.flags[f].insert(t).second);
        break;
      case 2:
        REQUIRE(l.clear(t, f) == (m.flags[f].erase(t) > 0));
        break;
      case 3:
        if (rng() % 4 == 0) {
          l.clear_all(f);
          m.flags[f].clear();
        }
        break;
      case 4:
        l.set_actor(t, topic_actor{});
        m.actors.insert(t);
        break;
      case 5: {
        const auto v = rng() % 1000;
        l.round(t).next_ms = v;
        l.round(t).idle = static_cast<std::uint32_t>(v % 7);
        m.rounds[t].next_ms = v;
        m.rounds[t].idle = static_cast<std::uint32_t>(v % 7);
        break;
      }
      }
      check_same(l, m, topics);
    }
  }
}

TEST_CASE("a topic link's round starts at zero and an unknown topic has no actor",
          "[actors][peer]") {
  topic_links l;
  const std::string t = "feed:kith1xyz";
  CHECK_FALSE(l.actor(t));
  CHECK_THROWS_AS(l.actor_at(t), std::out_of_range);
  REQUIRE(l.set(t, topic_links::pulling));
  CHECK_FALSE(l.set(t, topic_links::pulling));
  CHECK_THROWS_AS(l.actor_at(t), std::out_of_range);
  const auto& r = l.round(t);
  CHECK(r.next_ms == 0);
  CHECK(r.started_ms == 0);
  CHECK(r.idle == 0);
  CHECK_FALSE(r.brought);
  // Clearing the last flag keeps a topic that has a round.
  REQUIRE(l.clear(t, topic_links::pulling));
  l.round(t).idle = 3;
  CHECK(l.round(t).idle == 3);
  l.set_actor(t, topic_actor{});
  CHECK(l.actor(t).has_value());
  CHECK_NOTHROW(l.actor_at(t));
}
