// Relays that fail on their own, invariants checked at checkpoints during
// the run, and faults aimed at rare paths (a crash in the middle of a
// sync, replies that arrive after a disconnect). Each fault test shows the
// fault fired (its count in the summary), that the checkers pass, and that
// the same seed gives the same trace.

#include "bases.hpp"
#include "kith/sim/simulation.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace kith::sim;
using kith::sim::test::feed_base;
using kith::sim::test::without_wall;

namespace {

/// 10 nodes posting and deleting, on three relays (each node on two).
scenario relayed(std::uint64_t seed) {
  auto s = feed_base(seed, 10, 3, 150, 15, 600);
  s.relays = 3;
  s.delete_fraction = 0.2;
  return s;
}

/// Exponential churn with these means, `crash_fraction` of the down
/// periods process crashes.
void crash_churn(scenario& s, double mean_up_s, double mean_down_s, double crash_fraction) {
  s.churn.model = churn_model::kind::exponential;
  s.churn.mean_up_s = mean_up_s;
  s.churn.mean_down_s = mean_down_s;
  s.churn.crash_fraction = crash_fraction;
}

fault relay_fault(double start, double duration, std::vector<node_ref> relays) {
  fault f;
  f.what = fault::kind::relay;
  f.start_s = start;
  f.duration_s = duration;
  f.a = std::move(relays);
  return f;
}

std::size_t csv_rows(const std::string& csv) {
  std::istringstream in(csv);
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line))
    ++n;
  return n > 0 ? n - 1 : 0; // without the header
}

/// A late_reply fault: in [start_s, start_s + duration_s), each sync
/// reply holds the replier's sends for hold_s with this probability.
fault late_reply(double start_s, double duration_s, double probability, double hold_s) {
  fault f;
  f.what = fault::kind::late_reply;
  f.start_s = start_s;
  f.duration_s = duration_s;
  f.probability = probability;
  f.hold_s = hold_s;
  return f;
}

/// What every fault run must end with: converged, every checkpoint held,
/// no deleted post back.
void check_clean(const summary& a) {
  CHECK(a.converged);
  CHECK(a.checkpoints_ok);
  CHECK(a.json["resurrected"] == 0);
}

/// Ten nodes posting and deleting for 200 s, checked every 10 s: the
/// ground for the late_reply faults.
scenario late_reply_setup(std::uint64_t seed, std::uint32_t follows) {
  auto s = feed_base(seed, 10, follows, 200, 10, 600);
  s.delete_fraction = 0.2;
  s.checkpoint_s = 10;
  return s;
}

} // namespace

TEST_CASE("relay crashes, scheduled and at random, under node crashes: the nodes reconnect and the "
          "network converges, the same seed twice",
          "[sim][relay]") {
  const auto seed = 61;
  INFO("seed " << seed);
  auto s = relayed(seed);
  s.checkpoint_s = 10;
  // Restarted nodes must look their follows up again while relays are down.
  crash_churn(s, 50, 10, 1.0);
  s.relay_churn.model = churn_model::kind::exponential;
  s.relay_churn.mean_up_s = 40;
  s.relay_churn.mean_down_s = 10;
  s.faults = {relay_fault(20, 40, {node_ref{node_ref::relay}}),
              relay_fault(70, 0, {node_ref::relay_n(1)}),                          // restarts at once
              relay_fault(100, 20, {node_ref::relay_n(0), node_ref::relay_n(1), node_ref::relay_n(2)})};
  auto a = run(s);
  INFO(a.json.dump(2));
  check_clean(a);
  CHECK(a.json["relays"] == 3);
  CHECK(a.json["relay_failures"].get<int>() >= 5); // 1 + 1 + 3 scheduled, more at random
  const auto& r = a.json["relay_faults"];
  CHECK(r["relays_per_node"] == 2);
  CHECK(r["restarts"] == r["failures"]); // every relay came back
  CHECK(r["downtime_ms"].get<std::int64_t>() > 60'000);
  CHECK(r["sessions_connected_at_end"].get<int>() > 0);
  CHECK(a.json["crashes"].get<int>() > 0);
  auto b = run(s);
  CHECK(without_wall(a.json) == without_wall(b.json));
  // Without the relay faults the trace differs: they really happened.
  auto calm = s;
  calm.faults.clear();
  calm.relay_churn.model = churn_model::kind::none;
  auto c = run(calm);
  CHECK(c.json["relay_failures"] == 0);
  CHECK(c.json["trace_hash"] != a.json["trace_hash"]);
}

TEST_CASE("the only relay down for most of the workload: nodes that restart meanwhile cannot find "
          "their follows, and the network converges once it is back",
          "[sim][relay]") {
  const auto seed = 62;
  INFO("seed " << seed);
  auto s = relayed(seed);
  s.relays = 1;
  crash_churn(s, 40, 10, 1.0);
  s.faults = {relay_fault(30, 1000, {node_ref{node_ref::relay}})}; // until the workload ends
  auto a = run(s);
  INFO(a.json.dump(2));
  CHECK(a.converged);
  CHECK(a.json["resurrected"] == 0);
  CHECK(a.json["relay_failures"] == 1);
  CHECK(a.json["relay_faults"]["downtime_ms"] == 120'000); // 30 s to 150 s
  CHECK(a.json["convergence_ms"].get<std::int64_t>() > 0); // it took the relay to catch up
}

TEST_CASE("a graceful relay restart tells every registered node when to come back, within the "
          "spread; they do, and the network converges",
          "[sim][relay]") {
  const auto seed = 63;
  INFO("seed " << seed);
  auto s = relayed(seed);
  s.relays = 1;
  s.checkpoint_s = 10;
  auto f = relay_fault(60, 8, {node_ref{node_ref::relay}});
  f.graceful = true;
  f.spread_s = 20;
  f.drain_s = 5;
  s.faults = {f};
  auto a = run(s);
  INFO(a.json.dump(2));
  check_clean(a);
  const auto& r = a.json["relay_faults"];
  CHECK(r["graceful_restarts"] == 1);
  CHECK(r["failures"] == 0);
  CHECK(r["restarts"] == 1);
  CHECK(r["downtime_ms"] == 8'000);
  CHECK(r["restart_notices"] == 10); // no churn: all 10 nodes were registered
  CHECK(r["restart_notice_max_ms"].get<std::int64_t>() <= 20'000);
  CHECK(r["sessions_connected_at_end"] == 10);
  auto b = run(s);
  CHECK(without_wall(a.json) == without_wall(b.json));
  // The same fault as a crash: no one is told, and the trace differs.
  s.faults[0].graceful = false;
  auto c = run(s);
  CHECK(c.converged);
  CHECK(c.json["relay_faults"]["restart_notices"] == 0);
  CHECK(c.json["relay_faults"]["failures"] == 1);
  CHECK(c.json["trace_hash"] != a.json["trace_hash"]);
}

TEST_CASE("checkpoints check the invariants during the run without changing the trace, and a "
          "metadata limit that is exceeded fails one",
          "[sim][checkpoint]") {
  const auto seed = 63;
  INFO("seed " << seed);
  auto s = relayed(seed);
  s.relays = 1;
  crash_churn(s, 50, 15, 0.5);
  s.churn.lose_store_fraction = 0.3;
  auto plain = run(s);
  s.checkpoint_s = 10;
  auto a = run(s);
  INFO(a.json.dump(2));
  CHECK(a.json["trace_hash"] == plain.json["trace_hash"]);
  CHECK(a.converged);
  CHECK(a.checkpoints_ok);
  CHECK(a.checkpoint_failure.empty());
  const auto& c = a.json["checkpoints"];
  CHECK(c["ok"] == true);
  CHECK(c["count"].get<int>() >= 15); // every 10 s of 150 s, then the settle phase
  CHECK(c["resurrected"] == 0);
  CHECK(c["unknown_writes"] == 0);
  CHECK(c["clock_regressions"] == 0);
  CHECK(c["max_kept_headers_per_topic"].get<int>() > 0);
  CHECK(c["max_dot_keys_per_topic"].get<int>() > 0);
  CHECK(csv_rows(a.checkpoints_csv) == c["count"].get<std::size_t>());
  CHECK(a.checkpoints_csv.rfind("t_s,settling,nodes_checked,", 0) == 0);
  CHECK(plain.checkpoints_csv.empty());
  CHECK_FALSE(plain.json.contains("checkpoints"));

  s.max_kept_headers = 1; // deletes keep more than one header per topic
  auto tight = run(s);
  CHECK(tight.json["trace_hash"] == plain.json["trace_hash"]);
  CHECK_FALSE(tight.checkpoints_ok);
  CHECK(tight.json["checkpoints"]["over_limit"].get<int>() > 0);
  CHECK(tight.checkpoint_failure.find("kept headers") != std::string::npos);
  CHECK(tight.checkpoint_failure.rfind("at ", 0) == 0);
}

TEST_CASE("checkpoints run the store's own check and bound the values and context held per key",
          "[sim][checkpoint]") {
  // Six writers of a shared topic with a partition: concurrent writes to a
  // key are kept as siblings until a later write reads them all.
  std::string error;
  auto s = parse_scenario("seed = 9\nnodes = 8\nfollows = 2\nworkload = \"kv\"\nduration_s = 200\n"
                          "jitter_ms = 20\ncheckpoint_s = 10\n"
                          "[kv]\nkeys = 6\nwriters = 6\nop_interval_s = 5\n"
                          "[[fault]]\nkind = \"partition\"\nstart_s = 50\nduration_s = 60\n"
                          "groups = [[0, 1, 2], [3, 4, 5, \"relay\"]]\n",
                          error);
  INFO(error);
  REQUIRE(s);
  INFO("seed " << s->seed);
  auto a = run(*s);
  INFO(a.json.dump(2));
  CHECK(a.converged);
  CHECK(a.checkpoints_ok);
  const auto& c = a.json["checkpoints"];
  CHECK(c["store_check_failures"] == 0);
  CHECK(c["max_siblings_per_key"].get<int>() >= 2); // the partition made siblings
  CHECK(a.checkpoints_csv.find(",max_siblings_per_key,max_context_per_key,store_check_failures\n") !=
        std::string::npos);
  s->max_siblings_per_key = 1;
  auto tight = run(*s);
  CHECK(tight.json["trace_hash"] == a.json["trace_hash"]); // checks only read
  CHECK_FALSE(tight.checkpoints_ok);
  CHECK(tight.checkpoint_failure.find("values or") != std::string::npos);
  CHECK_FALSE(parse_scenario("max_siblings_per_key = 1.5\n", error));
  CHECK(error.find("max_siblings_per_key") != std::string::npos);
  auto parsed = parse_scenario("max_siblings_per_key = 4\nmax_context_per_key = 7\n", error);
  REQUIRE(parsed);
  CHECK(parsed->max_siblings_per_key == 4);
  CHECK(parsed->max_context_per_key == 7);
}

TEST_CASE("a node crashing in the middle of a sync (receiver or sender of the reply): the crashes "
          "happen, no write is lost, no delete comes back, the same seed twice",
          "[sim][rare]") {
  const auto seed = 64;
  INFO("seed " << seed);
  scenario s;
  s.seed = seed;
  s.nodes = 8;
  s.follows = 2;
  s.workload = scenario::workload_kind::kv;
  s.duration_s = 150;
  s.kv.keys = 8;
  s.kv.writers = 6;
  s.kv.zipf_s = 1.0;
  s.kv.delete_fraction = 0.15;
  s.kv.op_interval_s = 6;
  s.settle_limit_s = 600;
  s.checkpoint_s = 10;
  fault receiver;
  receiver.what = fault::kind::crash_during_sync;
  receiver.start_s = 0; // the first resyncs too
  receiver.duration_s = 150;
  receiver.probability = 0.03;
  receiver.down_s = 4;
  fault sender = receiver;
  sender.crash_sender = true;
  sender.probability = 0.01;
  sender.max_count = 5;
  s.faults = {receiver, sender};
  auto a = run(s);
  INFO(a.json.dump(2));
  CHECK(a.converged);
  CHECK(a.checkpoints_ok);
  const auto& rf = a.json["rare_faults"];
  CHECK(rf["sync_crashes"].get<int>() > 5);
  CHECK(rf["sync_replies_seen"].get<int>() > rf["sync_crashes"].get<int>());
  const auto& kv = a.json["kv"];
  CHECK(kv["ok"] == true);
  CHECK(kv["writes"].get<int>() > 30);
  CHECK(kv["lost_writes"] == 0);
  CHECK(kv["resurrected_deletes"] == 0);
  CHECK(a.json["checkpoints"]["resurrected"] == 0);
  auto b = run(s);
  CHECK(a.json["trace_hash"] == b.json["trace_hash"]);
  CHECK(without_wall(a.json) == without_wall(b.json));
}

TEST_CASE("replies (or requests) held past a reset of the connection arrive after the disconnect: "
          "they did, and the network converges with no delete back, the same seed twice",
          "[sim][rare]") {
  const auto seed = 65;
  INFO("seed " << seed);
  auto s = late_reply_setup(seed, 3);
  auto replies = late_reply(10, 190, 0.03, 25); // held over two anti-entropy rounds (10 s)
  fault requests = replies;
  requests.hold_requests = true;
  s.faults = {replies, requests};
  auto a = run(s);
  INFO(a.json.dump(2));
  check_clean(a);
  CHECK(a.json["deletes"].get<int>() > 0);
  CHECK(a.json["lagging"].empty()); // no follower misses a post: nothing lost
  const auto& rf = a.json["rare_faults"];
  CHECK(rf["late_replies"].get<int>() > 5);
  CHECK(rf["late_deliveries_after_close"].get<int>() > 0);
  CHECK(a.json["held_sends"].get<int>() > 0);
  auto b = run(s);
  CHECK(a.json["trace_hash"] == b.json["trace_hash"]);
  CHECK(without_wall(a.json) == without_wall(b.json));
}

TEST_CASE("replies held past the replier's crash arrive after the asker retired it: the "
          "returning replica resyncs, nothing deleted comes back, the same seed twice",
          "[sim][rare]") {
  const auto seed = 7;
  INFO("seed " << seed);
  auto s = late_reply_setup(seed, 4);
  s.retire_after_s = 10; // well under the hold: the crashed replier is retired first
  s.co_follower_retire_after_s = 10;
  auto late = late_reply(10, 150, 0.05, 40);
  late.away_s = 60;
  s.faults = {late};
  auto a = run(s);
  INFO(a.json.dump(2));
  check_clean(a);
  CHECK(a.json["deletes"].get<int>() > 0);
  CHECK(a.json["lagging"].empty());
  const auto& rf = a.json["rare_faults"];
  CHECK(rf["late_crashes"].get<int>() > 3);
  CHECK(rf["late_deliveries_after_retire"].get<int>() > 0);
  CHECK(rf["late_deliveries_after_retire"].get<int>() <= rf["late_deliveries_after_close"].get<int>());
  CHECK(a.json["membership"]["resyncs_returning_members"].get<int>() > 0);
  auto b = run(s);
  CHECK(a.json["trace_hash"] == b.json["trace_hash"]);
  CHECK(without_wall(a.json) == without_wall(b.json));

  // The same holds with a reset instead of the crash: the asker keeps the
  // replier subscribed until the reset, so no late byte follows a retirement.
  s.faults[0].away_s = 0;
  auto c = run(s);
  CHECK(c.converged);
  CHECK(c.json["rare_faults"]["late_crashes"] == 0);
  CHECK(c.json["rare_faults"]["late_deliveries_after_retire"] == 0);

  // Followers that wait six checks before passing over a co-follower take
  // another path through the same faults: an author retires a follower,
  // asks it for a full resync when it is back, and crashes before the
  // resync is done. The debt must outlive the crash (it is stored with the
  // membership); when it lived in the topic actor only, follower 4 stayed
  // behind author 3 for good (4 posts missing, every answer empty).
  s.faults[0].away_s = 60;
  s.co_follower_pass_over_checks = 6;
  auto d = run(s);
  INFO(d.json.dump(2));
  check_clean(d);
  CHECK(d.json["lagging"].empty());
  CHECK(d.json["membership"]["co_follower_pass_over_checks"] == 6);
  CHECK(d.json["membership"]["resyncs_returning_members"].get<int>() > 0);
  CHECK(d.json["trace_hash"] != a.json["trace_hash"]);
}

TEST_CASE("scenario keys of relays, checkpoints and rare-path faults are checked", "[sim]") {
  std::string error;
  auto s = parse_scenario("relays = 3\nrelays_per_node = 3\ncheckpoint_s = 15\nmax_kept_headers = 500\n"
                          "max_dot_keys = 9000\n"
                          "[relay_churn]\nmodel = \"weibull\"\nmean_up_s = 300\nmean_down_s = 20\nshape = 0.7\n"
                          "[[fault]]\nkind = \"relay\"\nstart_s = 10\nduration_s = 0\nnodes = [\"relay\", \"relay2\"]\n"
                          "[[fault]]\nkind = \"crash_during_sync\"\nprobability = 0.2\nside = \"sender\"\n"
                          "down_s = 3\nmax_count = 4\nnodes = [1, 2]\n"
                          "[[fault]]\nkind = \"late_reply\"\nhold_s = 30\nheld = \"requests\"\n",
                          error);
  INFO(error);
  REQUIRE(s);
  CHECK(s->relays == 3);
  CHECK(relay_count(*s) == 3);
  CHECK(relays_per_node(*s) == 3);
  CHECK(s->checkpoint_s == Approx(15));
  CHECK(s->max_kept_headers == 500);
  CHECK(s->max_dot_keys == 9000);
  CHECK(s->relay_churn.model == churn_model::kind::weibull);
  CHECK(s->relay_churn.shape == Approx(0.7));
  REQUIRE(s->faults.size() == 3);
  CHECK(s->faults[0].what == fault::kind::relay);
  CHECK(s->faults[0].duration_s == 0);
  REQUIRE(s->faults[0].a.size() == 2);
  CHECK(s->faults[0].a[0].relay_index() == 0);
  CHECK(s->faults[0].a[1].relay_index() == 2);
  CHECK(s->faults[1].crash_sender);
  CHECK(s->faults[1].max_count == 4);
  CHECK(s->faults[1].a.size() == 2);
  CHECK(s->faults[2].hold_requests);
  CHECK(s->faults[2].hold_s == Approx(30));
  CHECK_FALSE(check_scenario(*s));

  // A default scenario: one relay, every node on it.
  auto d = parse_scenario("nodes = 4\n", error);
  REQUIRE(d);
  CHECK(relay_count(*d) == 1);
  CHECK(relays_per_node(*d) == 1);
  auto none = parse_scenario("relays = 0\n", error);
  REQUIRE(none);
  CHECK_FALSE(none->relay);
  CHECK(relays_per_node(*parse_scenario("relays = 4\n", error)) == 3); // a majority

  CHECK_FALSE(parse_scenario("relays = 2.5\n", error));
  CHECK(error.find("relays") != std::string::npos);
  CHECK_FALSE(parse_scenario("[relay_churn]\nmodel = \"trace\"\n", error));
  CHECK(error.find("relay_churn.model") != std::string::npos);
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"relay\"\nnodes = [1]\n", error));
  CHECK(error.find("relays") != std::string::npos);
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"late_reply\"\nnodes = [\"relay\"]\n", error));
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"clog\"\nnodes = [1]\nprobability = 0.5\n", error));
  CHECK(error.find("probability") != std::string::npos);
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"late_reply\"\ndown_s = 3\n", error));
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"late_reply\"\naway_s = -1\n", error));
  CHECK(error.find("away_s") != std::string::npos);
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"crash_during_sync\"\naway_s = 5\n", error));
  CHECK(error.find("away_s") != std::string::npos);
  auto away = parse_scenario("[[fault]]\nkind = \"late_reply\"\nhold_s = 40\naway_s = 60\n", error);
  REQUIRE(away);
  CHECK(away->faults.at(0).away_s == Approx(60));
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"crash_during_sync\"\nside = \"both\"\n", error));
  CHECK(error.find("side") != std::string::npos);
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"oneway\"\nfrom = [1]\nduration_s = 0\n", error));
  CHECK(error.find("duration_s") != std::string::npos);
  CHECK_FALSE(parse_scenario("checkpoint_s = -1\n", error));
  auto graceful = parse_scenario("[[fault]]\nkind = \"relay\"\ngraceful = true\nduration_s = 9\n"
                                 "spread_s = 30\ndrain_s = 9\n",
                                 error);
  REQUIRE(graceful);
  CHECK(graceful->faults.at(0).graceful);
  CHECK(graceful->faults.at(0).spread_s == Approx(30));
  CHECK(graceful->faults.at(0).drain_s == Approx(9));
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"relay\"\nspread_s = 30\n", error));
  CHECK(error.find("graceful = true") != std::string::npos);
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"clog\"\nnodes = [1]\ngraceful = true\n", error));
  CHECK(error.find("relay faults only") != std::string::npos);
  CHECK_FALSE(parse_scenario(
      "[[fault]]\nkind = \"relay\"\ngraceful = true\nduration_s = 4\ndrain_s = 5\n", error));
  CHECK(error.find("drain_s") != std::string::npos);
  CHECK_FALSE(parse_scenario("[[fault]]\nkind = \"relay\"\ngraceful = 1\n", error));

  auto far = parse_scenario("relays = 2\n[[fault]]\nkind = \"relay\"\nnodes = [\"relay5\"]\n", error);
  REQUIRE(far);
  auto why = check_scenario(*far);
  REQUIRE(why);
  CHECK(why->find("relay 5") != std::string::npos);
  auto thin = parse_scenario("relays = 4\nrelays_per_node = 2\n", error);
  REQUIRE(thin);
  why = check_scenario(*thin);
  REQUIRE(why); // two nodes might share no relay
  CHECK(why->find("relays_per_node") != std::string::npos);
  auto lonely = parse_scenario("relay = false\n[relay_churn]\nmodel = \"exponential\"\n", error);
  REQUIRE(lonely);
  CHECK(check_scenario(*lonely));
}

TEST_CASE("the checkpoints' delete watch flags a post that comes back only after the node applied "
          "its delete",
          "[sim][checkpoint]") {
  delete_watch w;
  w.applied(0, "p1"); // node 0 wrote and deleted p1
  CHECK(w.observe(0, "p1", true));
  // Node 1 never had p2: an old copy may still reach it before the delete.
  CHECK_FALSE(w.observe(1, "p2", false));
  CHECK_FALSE(w.observe(1, "p2", true));
  CHECK_FALSE(w.observe(1, "p2", true));
  CHECK_FALSE(w.observe(1, "p2", false)); // it applied the delete now
  CHECK(w.applied_count() == 2);
  CHECK(w.observe(1, "p2", true)); // and the post came back
  w.forget(1);                     // a new store starts over
  CHECK_FALSE(w.observe(1, "p2", true));
  CHECK(w.applied_count() == 1);
}

TEST_CASE("the checkpoints' clock check finds a dot that went missing, except a retired id's "
          "entry dropped whole",
          "[sim][checkpoint]") {
  using namespace kith::causality;
  auto d = [](std::uint64_t id, std::uint64_t n) { return dot{replica_id{id}, counter{n}}; };
  node_clock before;
  for (auto x : {d(1, 1), d(1, 2), d(2, 1), d(9, 1)})
    before.add(x);
  auto later = before;
  later.add(d(1, 3));
  const std::set<replica_id> live{replica_id{1}, replica_id{2}};
  CHECK_FALSE(clock_regression(before, later, live));
  node_clock lost; // entry 1 lost its second dot
  for (auto x : {d(1, 1), d(2, 1), d(9, 1)})
    lost.add(x);
  auto r = clock_regression(before, lost, live);
  REQUIRE(r);
  CHECK(*r == d(1, 2));
  node_clock closed; // replica 9 (not live: retired) closed and erased
  for (auto x : {d(1, 1), d(1, 2), d(2, 1)})
    closed.add(x);
  CHECK_FALSE(clock_regression(before, closed, live));
  CHECK(clock_regression(before, closed, {replica_id{1}, replica_id{2}, replica_id{9}}));
}
