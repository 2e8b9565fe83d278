// The node's board of peer and topic ticks (actors/src/tick_board.hpp):
// ticks reach their actors at the node's first tick at or after their
// point, in the order of their points and then of adding, and an actor
// that ended is not kept alive by its tick.

#include "tick_board.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

using kith::actors::tick_atom;
using kith::actors::detail::grid_point_at_or_after;
using kith::actors::detail::tick_board;

namespace {

struct received {
  int who;
  std::uint64_t at;
};

/// An actor that notes each tick it gets.
caf::behavior recorder(caf::event_based_actor*, int who, std::shared_ptr<std::vector<received>> log) {
  return {
      [who, log](tick_atom, std::uint64_t at) { log->push_back({who, at}); },
  };
}

struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<std::vector<received>> log = std::make_shared<std::vector<received>>();

  fixture() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
  }
  caf::actor spawn(int who) { return sys->spawn(recorder, who, log); }
};

} // namespace

TEST_CASE("the tick board's grid starts at the node's first tick", "[actors][ticks]") {
  tick_board b(5'000, 1'000);
  CHECK(b.point_at_or_after(0) == 5'000);
  CHECK(b.point_at_or_after(5'000) == 5'000);
  CHECK(b.point_at_or_after(5'001) == 6'000);
  CHECK(b.point_at_or_after(6'000) == 6'000);
  CHECK(b.point_at_or_after(123'456) == 124'000);
  // An actor without a node keeps the same grid from its own last tick.
  CHECK(grid_point_at_or_after(1'234, 1'000, 1'235) == 2'234);
  CHECK(grid_point_at_or_after(1'234, 1'000, 2'234) == 2'234);
  CHECK(grid_point_at_or_after(1'234, 1'000, 7'000) == 7'234);
  CHECK(grid_point_at_or_after(0, 1, 41) == 41);
}

TEST_CASE("the tick board sends what is due, in order of point and then of adding",
          "[actors][ticks]") {
  fixture f;
  auto a = f.spawn(1);
  auto b = f.spawn(2);
  auto c = f.spawn(3);
  tick_board board(0, 1'000);
  board.add(3'000, a.address());
  board.add(2'000, b.address());
  board.add(2'000, a.address());
  board.add(2'000, c.address());
  board.add(9'000, c.address());
  REQUIRE(board.size() == 5);

  CHECK(board.fire(1'999) == 0); // nothing due yet
  f.sched->run();
  CHECK(f.log->empty());

  CHECK(board.fire(2'000) == 3);
  f.sched->run();
  // Three actors with one tick each: they run in the order sent.
  REQUIRE(f.log->size() == 3);
  CHECK((*f.log)[0].who == 2);
  CHECK((*f.log)[0].at == 2'000);
  CHECK((*f.log)[1].who == 1);
  CHECK((*f.log)[1].at == 2'000);
  CHECK((*f.log)[2].who == 3);

  // A late node tick (a busy node) sends everything due by then.
  CHECK(board.fire(9'500) == 2);
  f.sched->run();
  REQUIRE(f.log->size() == 5);
  CHECK((*f.log)[3].who == 1);
  CHECK((*f.log)[3].at == 3'000);
  CHECK((*f.log)[4].who == 3);
  CHECK((*f.log)[4].at == 9'000);
  CHECK(board.size() == 0);
  for (auto& x : {a, b, c})
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  f.sched->run();
}

TEST_CASE("a tick between grid points comes at the next one, carrying that point",
          "[actors][ticks]") {
  fixture f;
  auto a = f.spawn(1);
  tick_board board(500, 1'000); // points 500, 1'500, 2'500, ...
  board.add(1'700, a.address());
  CHECK(board.fire(1'700) == 0); // not a tick of the node
  CHECK(board.fire(2'499) == 0);
  CHECK(board.fire(2'500) == 1);
  f.sched->run();
  REQUIRE(f.log->size() == 1);
  CHECK(f.log->front().at == 2'500);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  f.sched->run();
}

TEST_CASE("an actor that ended is freed at once and its tick skipped", "[actors][ticks]") {
  fixture f;
  auto keep = f.spawn(1);
  tick_board board(0, 1'000);
  caf::actor_addr gone_addr;
  {
    auto gone = f.spawn(2);
    gone_addr = gone.address();
    board.add(1'000, gone.address());
    caf::anon_send_exit(gone, caf::exit_reason::user_shutdown);
    f.sched->run();
  }
  // Only the board names it now, and weakly.
  CHECK_FALSE(caf::actor_cast<caf::actor>(gone_addr));
  board.add(1'000, keep.address());
  CHECK(board.fire(1'000) == 1);
  f.sched->run();
  REQUIRE(f.log->size() == 1);
  CHECK(f.log->front().who == 1);
  caf::anon_send_exit(keep, caf::exit_reason::user_shutdown);
  f.sched->run();
}

TEST_CASE("the tick board matches a sorted list under random adds and fires", "[actors][ticks]") {
  const std::uint32_t seed = 11;
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  fixture f;
  std::vector<caf::actor> actors;
  for (int i = 0; i < 8; ++i)
    actors.push_back(f.spawn(i));
  tick_board board(0, 1'000);
  struct pending {
    std::uint64_t at;
    std::uint64_t order;
    int who;
  };
  std::vector<pending> model;
  std::uint64_t order = 0;
  std::uint64_t now = 0;
  std::size_t expected = 0;
  for (int step = 0; step < 2'000; ++step) {
    if (rng() % 3 != 0) {
      const auto at = board.point_at_or_after(now + 1 + rng() % 5'000);
      const int who = static_cast<int>(rng() % actors.size());
      board.add(at, actors[static_cast<std::size_t>(who)].address());
      model.push_back({at, order++, who});
      continue;
    }
    now += 1'000;
    std::stable_sort(model.begin(), model.end(), [](const pending& x, const pending& y) {
      return x.at != y.at ? x.at < y.at : x.order < y.order;
    });
    std::size_t due = 0;
    while (due < model.size() && model[due].at <= now)
      ++due;
    CHECK(board.fire(now) == due);
    f.sched->run();
    REQUIRE(f.log->size() == expected + due);
    // Each actor gets its ticks in the model's order (the scheduler may
    // run one actor's several messages before another's).
    std::map<int, std::vector<std::uint64_t>> got, want;
    for (std::size_t i = 0; i < due; ++i) {
      got[(*f.log)[expected + i].who].push_back((*f.log)[expected + i].at);
      want[model[i].who].push_back(model[i].at);
    }
    CHECK(got == want);
    expected += due;
    model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(due));
    CHECK(board.size() == model.size());
  }
  for (auto& x : actors)
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  f.sched->run();
}
