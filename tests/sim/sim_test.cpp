#include "kith/sim/simulation.hpp"

#include <catch2/catch.hpp>

using namespace kith::sim;

namespace {

scenario small(std::uint64_t seed) {
  scenario s;
  s.seed = seed;
  s.nodes = 8;
  s.follows = 3;
  s.duration_s = 120;
  s.post_interval_s = 20;
  s.churn.model = churn_model::kind::exponential;
  s.churn.mean_up_s = 40;
  s.churn.mean_down_s = 15;
  s.settle_limit_s = 300;
  return s;
}

nlohmann::json without_wall(nlohmann::json j) {
  j.erase("wall_ms");
  return j;
}

} // namespace

TEST_CASE("a simulated network under churn converges once the churn stops", "[sim]") {
  auto r = run(small(3));
  INFO(r.json.dump(2));
  CHECK(r.converged);
  CHECK(r.json["posts"].get<int>() > 10);
  CHECK(r.json["churn_transitions"].get<int>() > 0);
  CHECK(r.json["lagging"].empty());
}

TEST_CASE("the same seed gives the same trace hash and summary; another seed another trace",
          "[sim]") {
  auto a = run(small(11));
  auto b = run(small(11));
  auto c = run(small(12));
  CHECK(without_wall(a.json) == without_wall(b.json));
  CHECK(a.json["trace_hash"] != c.json["trace_hash"]);
}

TEST_CASE("scenario files are checked key by key", "[sim]") {
  std::string error;
  auto s = parse_scenario("seed = 5\nnodes = 12\n[churn]\nmodel = \"weibull\"\nshape = 0.4\n", error);
  REQUIRE(s);
  CHECK(s->nodes == 12);
  CHECK(s->churn.model == churn_model::kind::weibull);
  CHECK(s->churn.shape == Approx(0.4));
  CHECK_FALSE(parse_scenario("nodes = \"many\"\n", error));
  CHECK(error.find("nodes") != std::string::npos);
  CHECK_FALSE(parse_scenario("noodles = 3\n", error));
  CHECK(error.find("noodles") != std::string::npos);
  CHECK_FALSE(parse_scenario("[churn]\nmodel = \"pareto\"\n", error));
  CHECK(error.find("churn.model") != std::string::npos);
}

TEST_CASE("under crashes, connection resets, jitter and deletes the network converges and no "
          "delete comes back",
          "[sim]") {
  auto s = small(5);
  s.nodes = 10;
  s.delete_fraction = 0.25;
  s.jitter_ms = 30;
  s.reset_probability = 0.01;
  s.churn.crash_fraction = 0.5;
  auto a = run(s);
  INFO(a.json.dump(2));
  CHECK(a.converged);
  CHECK(a.json["resurrected"] == 0);
  CHECK(a.json["deletes"].get<int>() > 0);
  CHECK(a.json["crashes"].get<int>() > 0);
  CHECK(a.json["connection_resets"].get<int>() > 0);
  auto b = run(s);
  CHECK(without_wall(a.json) == without_wall(b.json));
}
