// actors::sim_network's fault model on CAF's testing scheduler: holds
// (one-way partitions, clogging), bandwidth queues and partition cuts, seen
// by recorder actors at the two ends of a connection.

#include "kith/actors/node.hpp"
#include "kith/actors/sim_network.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include <catch2/catch.hpp>

#include <algorithm>

using namespace kith::actors;
using namespace std::chrono;

namespace {

struct seen {
  std::int64_t at_ms;
  std::string what; // opened, bytes, closed, dialfail
  conn_id c;
  std::string data;
};

caf::behavior recorder(caf::event_based_actor* self, std::shared_ptr<std::vector<seen>> log) {
  auto now = [self] { return static_cast<std::int64_t>(clock_ms(self->clock().now())); };
  return {
      [=](opened_atom, conn_id c, const std::string& addr, bool, std::uint64_t) {
        log->push_back({now(), "opened", c, addr});
      },
      [=](bytes_atom, conn_id c, const std::string& b) { log->push_back({now(), "bytes", c, b}); },
      [=](closed_atom, conn_id c, const std::string& r) { log->push_back({now(), "closed", c, r}); },
      [=](dialfail_atom, std::uint64_t, const std::string& r) {
        log->push_back({now(), "dialfail", 0, r});
      },
  };
}

/// Two addresses, "a" and "b", each with a transport and a recorder.
struct pair_world {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::shared_ptr<sim_network> net = std::make_shared<sim_network>(milliseconds(10));
  transport_actor ta, tb;
  caf::actor ra, rb;
  std::shared_ptr<std::vector<seen>> la = std::make_shared<std::vector<seen>>();
  std::shared_ptr<std::vector<seen>> lb = std::make_shared<std::vector<seen>>();

  pair_world() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    // CAF's test clock starts 1 ns after its epoch: start at 0 ms sharp so
    // the expected arrival times below are whole milliseconds.
    sched->clock().current_time = caf::actor_clock::time_point{};
    ta = net->make_transport(*sys, "a");
    tb = net->make_transport(*sys, "b");
    ra = sys->spawn(recorder, la);
    rb = sys->spawn(recorder, lb);
    net->listen("a", ra);
    net->listen("b", rb);
  }
  ~pair_world() {
    // A testing actor system waits for its actors at destruction: end them.
    for (const auto& a : {ra, rb, caf::actor_cast<caf::actor>(ta), caf::actor_cast<caf::actor>(tb)})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched->run();
  }

  std::int64_t now() const {
    return duration_cast<milliseconds>(sched->clock().now().time_since_epoch()).count();
  }
  /// Steps to each timer up to t_ms, in order.
  void advance_to(std::int64_t t_ms) {
    auto& clk = sched->clock();
    const auto target = caf::actor_clock::time_point{milliseconds(t_ms)};
    for (;;) {
      sched->run();
      if (clk.schedule().empty() || clk.schedule().begin()->first > target) {
        if (clk.current_time < target)
          clk.current_time = target;
        sched->run();
        return;
      }
      clk.trigger_timeout();
    }
  }
  /// a dials b; returns (a's connection, b's connection).
  std::pair<conn_id, conn_id> connect() {
    caf::anon_send(ta, dial_atom::value, std::string("b"), ra, std::uint64_t{1});
    advance_to(now() + 10);
    REQUIRE(!la->empty());
    REQUIRE(!lb->empty());
    REQUIRE(la->back().what == "opened");
    REQUIRE(lb->back().what == "opened");
    return {la->back().c, lb->back().c};
  }
  static std::vector<seen> of(const std::vector<seen>& log, const std::string& what) {
    std::vector<seen> out;
    for (const auto& s : log)
      if (s.what == what)
        out.push_back(s);
    return out;
  }
};

} // namespace

TEST_CASE("a one-way hold delays a's bytes to b until it ends, in order, while b's bytes reach a",
          "[sim][network]") {
  pair_world w;
  auto [ca, cb] = w.connect();
  REQUIRE(w.now() == 10);
  w.net->hold({"a"}, {"b"}, 500);
  caf::anon_send(w.ta, send_atom::value, ca, std::string("a1"));
  caf::anon_send(w.ta, send_atom::value, ca, std::string("a2"));
  caf::anon_send(w.tb, send_atom::value, cb, std::string("b1"));
  w.advance_to(400);
  CHECK(pair_world::of(*w.lb, "bytes").empty()); // still held
  auto at_a = pair_world::of(*w.la, "bytes");
  REQUIRE(at_a.size() == 1);
  CHECK(at_a[0].data == "b1");
  CHECK(at_a[0].at_ms == 20); // b -> a is not held
  w.advance_to(1000);
  auto at_b = pair_world::of(*w.lb, "bytes");
  REQUIRE(at_b.size() == 2);
  CHECK(at_b[0].data == "a1");
  CHECK(at_b[1].data == "a2");
  CHECK(at_b[0].at_ms == 510); // leaves when the hold ends, then the latency
  CHECK(at_b[1].at_ms == 510);
  CHECK(w.net->held_sends() == 2);
  // After the hold: the latency only.
  caf::anon_send(w.ta, send_atom::value, ca, std::string("a3"));
  w.advance_to(1100);
  at_b = pair_world::of(*w.lb, "bytes");
  REQUIRE(at_b.size() == 3);
  CHECK(at_b[2].at_ms == 1010);
}

TEST_CASE("a dial across a hold completes only after the hold, and clogging a node holds all its sends",
          "[sim][network]") {
  pair_world w;
  w.net->hold({"b"}, {}, 300); // b is clogged: even a's handshake waits for b's answer
  caf::anon_send(w.ta, dial_atom::value, std::string("b"), w.ra, std::uint64_t{1});
  w.advance_to(200);
  CHECK(pair_world::of(*w.la, "opened").empty());
  w.advance_to(400);
  auto opened = pair_world::of(*w.la, "opened");
  REQUIRE(opened.size() == 1);
  CHECK(opened[0].at_ms == 310);
}

TEST_CASE("a link's bandwidth queues its sends one behind the other, each direction on its own",
          "[sim][network]") {
  pair_world w;
  auto [ca, cb] = w.connect();
  w.net->set_default_bandwidth(1000); // bytes per second
  caf::anon_send(w.ta, send_atom::value, ca, std::string(500, 'x'));
  caf::anon_send(w.ta, send_atom::value, ca, std::string(500, 'y'));
  caf::anon_send(w.tb, send_atom::value, cb, std::string(100, 'z'));
  w.advance_to(2000);
  auto at_b = pair_world::of(*w.lb, "bytes");
  REQUIRE(at_b.size() == 2);
  CHECK(at_b[0].at_ms == 10 + 500 + 10);  // 500 bytes at 1000 B/s, then the latency
  CHECK(at_b[1].at_ms == 10 + 1000 + 10); // behind the first
  auto at_a = pair_world::of(*w.la, "bytes");
  REQUIRE(at_a.size() == 1);
  CHECK(at_a[0].at_ms == 10 + 100 + 10); // the other direction does not wait
  CHECK(w.net->queued_sends() == 1);
}

TEST_CASE("a duplicated send takes the link's bandwidth for both copies", "[sim][network]") {
  pair_world w;
  w.net->set_tampering(1.0, 0.0);
  auto [ca, cb] = w.connect();
  w.net->set_default_bandwidth(1000); // bytes per second
  caf::anon_send(w.ta, send_atom::value, ca, std::string(500, 'x'));
  caf::anon_send(w.ta, send_atom::value, ca, std::string(100, 'y'));
  w.advance_to(w.now() + 3000);
  auto at_b = pair_world::of(*w.lb, "bytes");
  REQUIRE(at_b.size() == 2);
  CHECK(at_b[0].data.size() == 1000);
  // 1,000 bytes at 1,000 B/s (the copy counts), then the second send's
  // 200 behind them.
  const auto first = at_b[0].at_ms;
  CHECK(at_b[1].at_ms - first == 200);
  CHECK(first >= 1000);
}

TEST_CASE("a partition cut closes the link's connections and refuses dials until healed, and "
          "restoring the link (churn) does not heal it",
          "[sim][network]") {
  pair_world w;
  w.connect();
  const auto id = w.net->partition({"a"}, {"b"});
  w.advance_to(w.now() + 5);
  CHECK(pair_world::of(*w.la, "closed").size() == 1);
  CHECK(pair_world::of(*w.lb, "closed").size() == 1);
  w.net->set_link("a", "b", true);
  caf::anon_send(w.ta, dial_atom::value, std::string("b"), w.ra, std::uint64_t{2});
  w.advance_to(w.now() + 20);
  const auto fails = pair_world::of(*w.la, "dialfail");
  REQUIRE(fails.size() == 1);
  CHECK(fails[0].data == "b: connection refused"); // names the address it tried
  w.net->heal(id);
  caf::anon_send(w.ta, dial_atom::value, std::string("b"), w.ra, std::uint64_t{3});
  w.advance_to(w.now() + 20);
  CHECK(pair_world::of(*w.la, "opened").size() == 2);
}

TEST_CASE("a per-link latency replaces the default on that link only", "[sim][network]") {
  pair_world w;
  w.net->set_latency("a", "b", milliseconds(70));
  caf::anon_send(w.ta, dial_atom::value, std::string("b"), w.ra, std::uint64_t{1});
  w.advance_to(100);
  auto opened = pair_world::of(*w.la, "opened");
  REQUIRE(opened.size() == 1);
  CHECK(opened[0].at_ms == 70);
}

TEST_CASE("send jitter follows the chosen distribution with the chosen mean, from the seed",
          "[sim][network]") {
  const std::uint64_t seed = 17;
  INFO("seed " << seed);
  auto sample = [&](sim_network::jitter_kind k, double alpha) {
    sim_network net(milliseconds(10));
    net.set_faults(milliseconds(50), 0, seed);
    net.set_jitter_model(k, alpha);
    std::vector<std::int64_t> xs;
    for (int i = 0; i < 40000; ++i)
      xs.push_back(net.draw_jitter_ms());
    return xs;
  };
  auto mean = [](const std::vector<std::int64_t>& xs) {
    double s = 0;
    for (auto x : xs)
      s += static_cast<double>(x);
    return s / static_cast<double>(xs.size());
  };
  auto uni = sample(sim_network::jitter_kind::uniform, 1.5);
  CHECK(*std::min_element(uni.begin(), uni.end()) >= 0);
  CHECK(*std::max_element(uni.begin(), uni.end()) < 50);
  CHECK(mean(uni) == Approx(24.5).margin(1.0)); // whole ms in [0, 50)
  auto ex = sample(sim_network::jitter_kind::exponential, 1.5);
  CHECK(mean(ex) == Approx(49.5).epsilon(0.05)); // truncated to whole ms
  CHECK(*std::max_element(ex.begin(), ex.end()) > 300); // a tail uniform never has
  auto par = sample(sim_network::jitter_kind::pareto, 2.5);
  CHECK(*std::min_element(par.begin(), par.end()) >= 29); // x_m = 50 * 1.5 / 2.5 = 30
  CHECK(mean(par) == Approx(49.5).epsilon(0.1));
  // A heavier tail than the exponential's at the same mean: beyond 10x
  // the mean, (30/500)^2.5 = 0.09% of sends against exp(-10) = 0.005%.
  auto beyond = [](const std::vector<std::int64_t>& xs, std::int64_t t) {
    return std::count_if(xs.begin(), xs.end(), [t](std::int64_t x) { return x > t; });
  };
  CHECK(beyond(par, 500) > beyond(ex, 500));
  // The same seed gives the same draws.
  CHECK(sample(sim_network::jitter_kind::pareto, 2.5) == par);
  // Log-normal, sigma 1: the same mean, a median of mean * exp(-1/2) =
  // 30.3 ms, and a heavier tail than the exponential's (beyond 500 ms:
  // about 0.6% of sends, against 0.005%).
  auto ln = sample(sim_network::jitter_kind::lognormal, 1.0);
  CHECK(mean(ln) == Approx(49.5).epsilon(0.05));
  auto sorted = ln;
  std::sort(sorted.begin(), sorted.end());
  CHECK(static_cast<double>(sorted[sorted.size() / 2]) == Approx(30).margin(1.5));
  CHECK(beyond(ln, 500) > beyond(ex, 500));
  CHECK(sample(sim_network::jitter_kind::lognormal, 1.0) == ln);

  // One link with a distribution of its own; the others keep the default
  // (none here).
  sim_network net(milliseconds(10));
  net.set_faults(milliseconds(0), 0, seed);
  net.set_link_jitter("b", "a", milliseconds(50), sim_network::jitter_kind::exponential);
  std::vector<std::int64_t> on_link;
  bool others_quiet = true;
  for (int i = 0; i < 20000; ++i) {
    on_link.push_back(net.draw_jitter_ms("a", "b"));
    others_quiet = others_quiet && net.draw_jitter_ms("a", "c") == 0;
  }
  CHECK(others_quiet);
  CHECK(mean(on_link) == Approx(49.5).epsilon(0.05));
}

TEST_CASE("tampering delivers a send twice or after the next one, and marks the end from the "
          "bytes' arrival until it closes",
          "[sim][network]") {
  // Duplication only: every send arrives twice, as one run of bytes.
  {
    pair_world w;
    w.net->set_faults(milliseconds(0), 0, 5);
    w.net->set_tampering(1.0, 0.0);
    auto [ca, cb] = w.connect();
    caf::anon_send(w.ta, send_atom::value, ca, std::string("a1"));
    w.sched->run(); // sent, not arrived: marked as in flight only
    auto f = w.net->tampering(w.now());
    CHECK(f.duplicated == 1);
    CHECK(f.in_flight == 1);
    CHECK(f.open == 0);
    w.advance_to(w.now() + 20);
    auto at_b = pair_world::of(*w.lb, "bytes");
    REQUIRE(at_b.size() == 1);
    CHECK(at_b[0].data == "a1a1");
    f = w.net->tampering(w.now());
    CHECK(f.open == 1); // the recorder does not refuse it: the mark stays
    CHECK(f.in_flight == 0);
    CHECK(f.closed == 0);
    caf::anon_send(w.tb, close_atom::value, cb, std::string("refused"));
    w.advance_to(w.now() + 20);
    f = w.net->tampering(w.now());
    CHECK(f.open == 0);
    CHECK(f.closed == 1);
    CHECK(f.refused == 1); // closed by the end that got the bytes
  }
  // Reordering only: a kept-back send arrives right after the next one.
  {
    pair_world w;
    w.net->set_faults(milliseconds(0), 0, 5);
    w.net->set_tampering(0.0, 1.0);
    auto [ca, cb] = w.connect();
    caf::anon_send(w.ta, send_atom::value, ca, std::string("a1"));
    w.advance_to(w.now() + 100);
    CHECK(pair_world::of(*w.lb, "bytes").empty()); // kept back until a next send
    auto f = w.net->tampering(w.now());
    CHECK(f.reordered == 1);
    CHECK(f.withheld == 1);
    CHECK(f.open == 0); // nothing tampered arrived yet
    caf::anon_send(w.ta, send_atom::value, ca, std::string("a2"));
    w.advance_to(w.now() + 20);
    auto at_b = pair_world::of(*w.lb, "bytes");
    REQUIRE(at_b.size() == 1);
    CHECK(at_b[0].data == "a2a1");
    f = w.net->tampering(w.now());
    CHECK(f.reordered == 1); // a2 released a1: it was not kept back itself
    CHECK(f.swapped == 1);
    CHECK(f.withheld == 0);
    CHECK(f.open == 1);
    // A close by the other end (not the one that got the bytes) is not a
    // refusal, but the mark goes with the connection.
    caf::anon_send(w.ta, close_atom::value, ca, std::string("done"));
    w.advance_to(w.now() + 20);
    f = w.net->tampering(w.now());
    CHECK(f.open == 0);
    CHECK(f.closed == 1);
    CHECK(f.refused == 0);
  }
  // No tampering: the bytes of the same sends arrive once, in order.
  {
    pair_world w;
    w.net->set_faults(milliseconds(0), 0, 5);
    auto [ca, cb] = w.connect();
    caf::anon_send(w.ta, send_atom::value, ca, std::string("a1"));
    caf::anon_send(w.ta, send_atom::value, ca, std::string("a2"));
    w.advance_to(w.now() + 20);
    auto at_b = pair_world::of(*w.lb, "bytes");
    REQUIRE(at_b.size() == 2);
    CHECK(at_b[0].data == "a1");
    CHECK(at_b[1].data == "a2");
    CHECK(w.net->tampering(w.now()).open == 0);
  }
}

TEST_CASE("empirical jitter replays the given delays, in their proportions, from the seed",
          "[sim][network]") {
  const std::uint64_t seed = 23;
  INFO("seed " << seed);
  auto sample = [&] {
    sim_network net(milliseconds(10));
    net.set_faults(milliseconds(0), 0, seed);
    net.set_jitter_model(sim_network::jitter_kind::empirical);
    net.set_jitter_samples({5, 10, 10, 200});
    std::vector<std::int64_t> xs;
    for (int i = 0; i < 20000; ++i)
      xs.push_back(net.draw_jitter_ms("a", "b"));
    return xs;
  };
  auto xs = sample();
  auto share = [&](std::int64_t v) {
    return static_cast<double>(std::count(xs.begin(), xs.end(), v)) / static_cast<double>(xs.size());
  };
  CHECK(share(5) == Approx(0.25).margin(0.015));
  CHECK(share(10) == Approx(0.5).margin(0.015));
  CHECK(share(200) == Approx(0.25).margin(0.015));
  CHECK(share(5) + share(10) + share(200) == Approx(1.0)); // nothing else
  CHECK(sample() == xs);

  // A link with samples of its own; the others keep the default's.
  sim_network net(milliseconds(10));
  net.set_faults(milliseconds(0), 0, seed);
  net.set_jitter_model(sim_network::jitter_kind::empirical);
  net.set_jitter_samples({7});
  net.set_link_jitter("a", "b", milliseconds(0), sim_network::jitter_kind::empirical, 1.5, {300, 400});
  bool link_ok = true, others_ok = true;
  for (int i = 0; i < 1000; ++i) {
    const auto d = net.draw_jitter_ms("b", "a");
    link_ok = link_ok && (d == 300 || d == 400);
    others_ok = others_ok && net.draw_jitter_ms("a", "c") == 7;
  }
  CHECK(link_ok);
  CHECK(others_ok);
}

namespace {

bool power_of_two(std::int64_t x) {
  return x > 0 && (x & (x - 1)) == 0;
}

/// The extra delays (ms beyond the 10 ms latency) of `count` sends of
/// `size` bytes from a to b, each sent alone (10 s apart, so none waits
/// behind another).
std::vector<std::int64_t> lone_send_delays(pair_world& w, conn_id ca, std::size_t size, int count) {
  std::vector<std::int64_t> out;
  const auto before = pair_world::of(*w.lb, "bytes").size();
  for (int i = 0; i < count; ++i) {
    const auto sent = w.now();
    caf::anon_send(w.ta, send_atom::value, ca, std::string(size, 'x'));
    w.advance_to(sent + 10'000);
    auto at_b = pair_world::of(*w.lb, "bytes");
    REQUIRE(at_b.size() == before + static_cast<std::size_t>(i + 1));
    out.push_back(at_b.back().at_ms - sent - 10);
  }
  return out;
}

} // namespace

TEST_CASE("segment loss below the stream delays a send by a timeout (a small send) or a round "
          "trip (four segments or more), doubling the timeout for each loss again",
          "[sim][network]") {
  const std::uint64_t seed = 11;
  INFO("seed " << seed);
  pair_world w;
  w.net->set_faults(milliseconds(0), 0, seed);
  w.net->set_packet_faults(0.3, 0, 0); // min_rto 200 ms: a timeout is 20 + 200 ms here
  auto [ca, cb] = w.connect();
  // One segment: delayed by 220 ms, then 220 x 2^k for k more losses.
  auto small = lone_send_delays(w, ca, 100, 300);
  std::size_t late = 0;
  std::uint64_t losses = 0; // a delay of 220 x 2^k ms is k + 1 losses
  for (auto d : small) {
    late += d > 0 ? 1 : 0;
    const bool allowed = d == 0 || (d % 220 == 0 && power_of_two(d / 220));
    INFO("extra delay " << d);
    CHECK(allowed);
    for (auto x = d / 220; x > 0; x /= 2)
      ++losses;
  }
  CHECK(late > 60); // ~90 expected (binomial 300, 0.3)
  CHECK(late < 120);
  CHECK(losses > late); // some retransmissions were lost too
  auto f = w.net->packet_faults();
  CHECK(f.delayed_sends == late);
  CHECK(f.lost == losses);
  CHECK(f.timeouts == losses); // one segment each: no fast retransmit
  CHECK(f.segments == 300);
  // Ten segments: fast retransmit, one round trip (20 ms), unless the
  // retransmission is lost too (then 20 + 220 x (2^k - 1)).
  auto large = lone_send_delays(w, ca, 10 * 1448, 100);
  std::size_t fast = 0;
  for (auto d : large) {
    fast += d == 20 ? 1 : 0;
    const bool allowed = d == 0 || (d >= 20 && (d - 20) % 220 == 0 && power_of_two((d - 20) / 220 + 1));
    INFO("extra delay " << d);
    CHECK(allowed);
  }
  CHECK(fast > 50); // most ten-segment sends lose one (1 - 0.7^10 = 97%)
  (void)cb;
}

TEST_CASE("a send larger than the congestion window waits a round trip per further window, and "
          "losses shrink the window for the sends behind them",
          "[sim][network]") {
  const std::uint64_t seed = 13;
  INFO("seed " << seed);
  constexpr std::size_t seg = 1448;
  SECTION("slow start from ten segments, kept between sends close together") {
    pair_world w;
    w.net->set_faults(milliseconds(0), 0, seed);
    w.net->set_packet_faults(1e-12, 0, 0); // the model on, nothing lost
    auto [ca, cb] = w.connect();
    const auto t0 = w.now();
    // 100 segments: 10, 20, 40 and the last 30 in the fourth round trip.
    caf::anon_send(w.ta, send_atom::value, ca, std::string(100 * seg, 'x'));
    w.advance_to(t0 + 100);
    // 100 ms later (less than a timeout): the window is 80 now, so one wait.
    caf::anon_send(w.ta, send_atom::value, ca, std::string(100 * seg, 'y'));
    w.advance_to(t0 + 10'000);
    auto at_b = pair_world::of(*w.lb, "bytes");
    REQUIRE(at_b.size() == 2);
    CHECK(at_b[0].at_ms - t0 == 10 + 3 * 20);
    CHECK(at_b[1].at_ms - t0 == 100 + 10 + 20);
    // After 10 s idle it starts over at ten segments: three waits again.
    const auto t1 = w.now();
    caf::anon_send(w.ta, send_atom::value, ca, std::string(100 * seg, 'z'));
    w.advance_to(t1 + 1000);
    at_b = pair_world::of(*w.lb, "bytes");
    REQUIRE(at_b.size() == 3);
    CHECK(at_b[2].at_ms - t1 == 10 + 3 * 20);
    const auto f = w.net->packet_faults();
    CHECK(f.window_waits == 7);
    CHECK(f.window_delay_ms == 140);
    // Off: the same send takes the latency only.
    w.net->set_congestion_window(false);
    const auto t2 = w.now();
    caf::anon_send(w.ta, send_atom::value, ca, std::string(100 * seg, 'w'));
    w.advance_to(t2 + 1000);
    CHECK(pair_world::of(*w.lb, "bytes").back().at_ms - t2 == 10);
    (void)cb;
  }
  SECTION("a burst of 20-segment sends waits only at its start on a clean link, often on a lossy one") {
    auto waits = [&](double loss) {
      pair_world w;
      w.net->set_faults(milliseconds(0), 0, seed);
      w.net->set_packet_faults(loss, 0, 0);
      auto [ca, cb] = w.connect();
      for (int i = 0; i < 40; ++i) {
        caf::anon_send(w.ta, send_atom::value, ca, std::string(20 * seg, 'x'));
        w.advance_to(w.now() + 30); // closer together than a timeout
      }
      w.advance_to(w.now() + 60'000);
      REQUIRE(pair_world::of(*w.lb, "bytes").size() == 40);
      (void)cb;
      return w.net->packet_faults().window_waits;
    };
    CHECK(waits(1e-12) == 1); // the first send: 10 + 10; the window is 20 after it
    CHECK(waits(0.05) > 5);   // a loss in 20 segments (64%) halves the window, or drops it to 1
  }
}

TEST_CASE("a link's own packet faults replace the network's on that link", "[sim][network]") {
  const std::uint64_t seed = 12;
  INFO("seed " << seed);
  SECTION("a lossy link in a clean network") {
    pair_world w;
    w.net->set_faults(milliseconds(0), 0, seed);
    w.net->set_link_packet_faults("b", "a", 0.3, 0, 0); // either order names the link
    auto [ca, cb] = w.connect();
    auto delays = lone_send_delays(w, ca, 100, 200);
    const auto late = std::count_if(delays.begin(), delays.end(), [](auto d) { return d > 0; });
    CHECK(late > 35); // ~60 expected (binomial 200, 0.3)
    CHECK(late < 85);
    CHECK(w.net->packet_faults().segments == 200);
    CHECK(w.net->packet_faults().delayed_sends == static_cast<std::uint64_t>(late));
    (void)cb;
  }
  SECTION("a clean link in a lossy network") {
    pair_world w;
    w.net->set_faults(milliseconds(0), 0, seed);
    w.net->set_packet_faults(0.3, 0.5, 0.5);
    w.net->set_link_packet_faults("a", "b", 0, 0, 0);
    auto [ca, cb] = w.connect();
    for (auto d : lone_send_delays(w, ca, 100, 100))
      CHECK(d == 0);
    const auto f = w.net->packet_faults();
    CHECK(f.segments == 0); // the clean link draws nothing
    CHECK(f.lost == 0);
    CHECK(f.duplicated == 0);
    CHECK(f.reordered == 0);
    (void)cb;
  }
}

TEST_CASE("sends behind a late one wait for it (the stream keeps its order), and TCP gives up "
          "when every retransmission is lost",
          "[sim][network]") {
  pair_world w;
  w.net->set_faults(milliseconds(0), 0, 5);
  w.net->set_packet_faults(0.2, 0, 0.5);
  auto [ca, cb] = w.connect();
  for (int i = 0; i < 60; ++i)
    caf::anon_send(w.ta, send_atom::value, ca, "s" + std::to_string(i));
  w.advance_to(w.now() + 60'000);
  auto at_b = pair_world::of(*w.lb, "bytes");
  REQUIRE(at_b.size() == 60);
  for (int i = 0; i < 60; ++i) {
    CHECK(at_b[i].data == "s" + std::to_string(i));
    if (i > 0)
      CHECK(at_b[i].at_ms >= at_b[i - 1].at_ms);
  }
  CHECK(at_b.back().at_ms > at_b.front().at_ms); // someone was late
  auto f = w.net->packet_faults();
  CHECK(f.reordered > 10);
  CHECK(f.delayed_sends > 3);
  CHECK(f.gave_up == 0);
  CHECK(pair_world::of(*w.la, "closed").empty());

  // Every transmission lost: the connection is reset at both ends.
  w.net->set_packet_faults(1.0, 0, 0);
  caf::anon_send(w.ta, send_atom::value, ca, std::string("lost"));
  w.advance_to(w.now() + 100);
  CHECK(w.net->packet_faults().gave_up == 1);
  CHECK(pair_world::of(*w.la, "closed").size() == 1);
  CHECK(pair_world::of(*w.lb, "closed").size() == 1);
  CHECK(pair_world::of(*w.lb, "bytes").size() == 60);
  (void)cb;
}

TEST_CASE("a segment sent twice or again below the stream takes the link's bandwidth, not the "
          "receiver's bytes",
          "[sim][network]") {
  pair_world w;
  w.net->set_faults(milliseconds(0), 0, 3);
  w.net->set_packet_faults(0, 1.0, 0); // every segment duplicated
  auto [ca, cb] = w.connect();
  w.net->set_default_bandwidth(1000); // bytes per second
  const auto sent = w.now();
  caf::anon_send(w.ta, send_atom::value, ca, std::string(500, 'x'));
  w.advance_to(sent + 3000);
  auto at_b = pair_world::of(*w.lb, "bytes");
  REQUIRE(at_b.size() == 1);
  CHECK(at_b[0].data.size() == 500);              // the copy is dropped by TCP
  CHECK(at_b[0].at_ms - sent == 1000 + 10);       // 1,000 bytes on the wire, then the latency
  CHECK(w.net->packet_faults().duplicated == 1);
  (void)cb;
}
