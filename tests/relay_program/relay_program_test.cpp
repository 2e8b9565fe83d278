// The real kith-relay process on loopback: address files, HTTP, abuse on
// the relay port, a relay_client session over a socket, graceful restart,
// stopping, and configuration errors.

#include "harness.hpp"

#include "kith/protocol/channel.hpp"
#include "kith/relay/record.hpp"

using namespace kith;
using namespace kith::relay;
using namespace kith::relay::program_test;

namespace {

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

/// Completes a secure-channel handshake with the relay by hand (no
/// relay_client) and waits for the relay's first frame (welcome), so the
/// test can then send raw bytes as an authenticated client.
void handshake_by_hand(tcp_socket& s, const protocol::public_key& relay_id) {
  const auto me = protocol::identity::from_seed(socket_client::seed(200, 1));
  protocol::channel ch(me, protocol::channel::role::initiator, socket_client::seed(200, 2),
                       now_ms(), relay_id);
  REQUIRE(s.send_all(ch.start()));
  std::size_t frames = 0;
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (frames == 0 && std::chrono::steady_clock::now() < end) {
    std::string in;
    REQUIRE(s.receive(in, 100ms) != tcp_socket::got::closed);
    auto out = ch.receive(in);
    REQUIRE_FALSE(out.error);
    REQUIRE(s.send_all(out.to_send));
    frames += out.frames.size();
  }
  REQUIRE(ch.state() == protocol::channel_state::established);
  REQUIRE(frames > 0);
}

} // namespace

TEST_CASE("kith-relay init creates an identity once and id prints it", "[relay_program]") {
  temp_dir home;
  const std::string dir = home.path + "/relay";
  const std::string log = home.path + "/out.log";
  auto [rc, out] = run_to_end({KITH_RELAY_BIN, "init", "--data-dir", dir}, log);
  REQUIRE(rc == 0);
  const auto id = first_line(out);
  CHECK(id.size() == 57);
  CHECK(protocol::parse_id(id));
  CHECK((fs::status(dir + "/identity.key").permissions() & fs::perms::group_all) == fs::perms::none);
  CHECK((fs::status(dir + "/identity.key").permissions() & fs::perms::others_all) == fs::perms::none);

  auto [rc2, out2] = run_to_end({KITH_RELAY_BIN, "init", "--data-dir", dir}, log);
  CHECK(rc2 == 1);
  CHECK(out2.find("refusing to overwrite") != std::string::npos);

  auto [rc3, out3] = run_to_end({KITH_RELAY_BIN, "id", "--data-dir", dir}, log);
  CHECK(rc3 == 0);
  CHECK(first_line(out3) == id);

  auto [rc4, out4] = run_to_end({KITH_RELAY_BIN, "id", "--data-dir", home.path + "/none"}, log);
  CHECK(rc4 == 1);
  CHECK(out4.find("kith-relay init") != std::string::npos);

  auto [rc5, out5] = run_to_end({KITH_RELAY_BIN, "frobnicate"}, log);
  CHECK(rc5 == 2);
}

TEST_CASE("kith-relay run writes its address files and serves health and metrics",
          "[relay_program]") {
  relay_under_test r;
  // The identity was created on first run and relay.id names it.
  auto [rc, out] = run_to_end({KITH_RELAY_BIN, "id", "--data-dir", r.dir()}, r.dir() + "/id.log");
  REQUIRE(rc == 0);
  CHECK(first_line(out) == protocol::to_text(r.id));
  CHECK(r.relay.port != 0);
  CHECK(r.http.port != 0);

  const auto health = http_get(r.http, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body.find("\"status\":\"ok\"") != std::string::npos);
  CHECK(health.body.find("\"connections\":0") != std::string::npos);

  const auto metrics = http_get(r.http, "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("\nkith_relay_connections 0\n") != std::string::npos);
  CHECK(metrics.body.find("\nprocess_resident_memory_bytes ") != std::string::npos);
  CHECK(metrics.body.find("\nkith_relay_slow_client_closes_total 0\n") != std::string::npos);
  CHECK(metrics.body.find("\nkith_relay_uptime_seconds ") != std::string::npos);

  CHECK(http_get(r.http, "/").status == 404);
  CHECK(http_get(r.http, "/metrics/extra").status == 404);
}

TEST_CASE("garbage and oversized length prefixes are closed and logged while the relay keeps serving",
          "[relay_program]") {
  relay_under_test r;

  SECTION("random bytes instead of a handshake") {
    tcp_socket s(r.relay);
    std::string junk(3000, '\0');
    for (std::size_t i = 0; i < junk.size(); ++i)
      junk[i] = static_cast<char>((i * 2654435761u) >> 13);
    (void)s.send_all(junk);
    CHECK(s.closed_within(5s));
  }
  SECTION("a 4 GiB length prefix before the handshake") {
    tcp_socket s(r.relay);
    (void)s.send_all(std::string(4, '\xff'));
    CHECK(s.closed_within(5s));
  }
  SECTION("a 4 GiB length prefix on an established channel") {
    tcp_socket s(r.relay);
    handshake_by_hand(s, r.id);
    (void)s.send_all(std::string("\xff\xff\xff\xff") + std::string(100, 'x'));
    CHECK(s.closed_within(5s));
  }

  CHECK(eventually([&] { return r.log().find("closed: ") != std::string::npos; }));
  INFO(r.log());
  CHECK(r.log().find("accepted from 127.0.0.1") != std::string::npos);
  CHECK(http_get(r.http, "/healthz").status == 200);
  CHECK(eventually([&] {
    return http_get(r.http, "/healthz").body.find("\"connections\":0") != std::string::npos;
  }));
}

TEST_CASE("a relay_client over a real socket announces and finds its own verified record",
          "[relay_program]") {
  relay_under_test r;
  socket_client c(r.relay, r.id, 1);
  auto hello = c.await<welcomed>();
  INFO(r.log());
  REQUIRE(hello);
  CHECK(hello->relay == r.id);
  CHECK(hello->observed_ip == "127.0.0.1");

  REQUIRE(c.client().announce({"203.0.113.7:7411"}, 600'000, now_ms()));
  c.flush();
  auto ann = c.await<announced>();
  REQUIRE(ann);

  REQUIRE(c.client().lookup(c.self().pub()));
  c.flush();
  auto found = c.await<lookup_result>();
  REQUIRE(found);
  REQUIRE(found->record);
  CHECK(found->record->id == c.self().pub());
  CHECK(found->record->addresses == std::vector<std::string>{"203.0.113.7:7411"});
  CHECK(verify_record(*found->record));

  const auto health = http_get(r.http, "/healthz");
  CHECK(health.body.find("\"registrations\":1") != std::string::npos);
  const auto metrics = http_get(r.http, "/metrics");
  CHECK(metrics.body.find("\nkith_relay_records 1\n") != std::string::npos);
}

TEST_CASE("a client reconnecting over a real socket resumes with its ticket; the metric counts it",
          "[relay_program][resume]") {
  relay_under_test r;
  std::optional<protocol::resume_ticket> ticket;
  {
    socket_client first(r.relay, r.id, 3);
    auto w = first.await<welcomed>();
    INFO(r.log());
    REQUIRE(w);
    CHECK(w->terms.resumes);
    CHECK_FALSE(first.client().resumed());
    ticket = first.client().take_ticket();
    REQUIRE(ticket);
  } // the socket closes
  socket_client again(r.relay, r.id, 3, 4, &*ticket);
  auto w = again.await<welcomed>();
  INFO(r.log());
  REQUIRE(w);
  CHECK(again.client().resumed());
  const auto metrics = http_get(r.http, "/metrics");
  CHECK(metrics.body.find("\nkith_relay_handshakes_resumed_total 1\n") != std::string::npos);
  CHECK(metrics.body.find("\nkith_relay_handshakes_total 2\n") != std::string::npos);
}

TEST_CASE("SIGTERM tells clients to reconnect, reports draining and exits 0 once they leave",
          "[relay_program]") {
  relay_under_test r("[restart]\nspread_seconds = 20\ndrain_seconds = 8\n");
  socket_client a(r.relay, r.id, 1);
  socket_client b(r.relay, r.id, 2);
  REQUIRE(a.await<welcomed>());
  REQUIRE(b.await<welcomed>());

  r.proc().signal(SIGTERM);
  auto ra = a.await<reconnect>();
  auto rb = b.await<reconnect>();
  INFO(r.log());
  REQUIRE(ra);
  REQUIRE(rb);
  CHECK(ra->after_ms <= 20'000);
  CHECK(rb->after_ms <= 20'000);

  // Still serving while draining, but not healthy, and not accepting.
  const auto health = http_get(r.http, "/healthz");
  CHECK(health.status == 503);
  CHECK(health.body.find("draining") != std::string::npos);

  const auto t0 = std::chrono::steady_clock::now();
  a.socket().close();
  b.socket().close();
  auto st = r.proc().wait(8s);
  REQUIRE(st);
  CHECK(st->exited);
  CHECK(st->code == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 3s); // left at once, no need to wait out the drain
  CHECK(r.log().find("restart (SIGTERM)") != std::string::npos);
  CHECK_FALSE(fs::exists(r.dir() + "/relay.addr"));
}

TEST_CASE("a client that stays through the drain gets goodbye and the relay exits 0 at the deadline",
          "[relay_program]") {
  relay_under_test r("[restart]\nspread_seconds = 5\ndrain_seconds = 1\n");
  socket_client a(r.relay, r.id, 3);
  REQUIRE(a.await<welcomed>());
  const auto t0 = std::chrono::steady_clock::now();
  r.proc().signal(SIGHUP);
  REQUIRE(a.await<reconnect>());
  auto bye = a.await<goodbye>(5s);
  INFO(r.log());
  REQUIRE(bye);
  CHECK(bye->code == code::shutdown);
  auto st = r.proc().wait(5s);
  REQUIRE(st);
  CHECK(st->exited);
  CHECK(st->code == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 4s);
}

TEST_CASE("SIGINT says goodbye to clients and exits 0 promptly", "[relay_program]") {
  relay_under_test r;
  socket_client a(r.relay, r.id, 4);
  REQUIRE(a.await<welcomed>());
  r.proc().signal(SIGINT);
  auto bye = a.await<goodbye>(3s);
  INFO(r.log());
  REQUIRE(bye);
  CHECK(bye->code == code::shutdown);
  auto st = r.proc().wait(3s);
  REQUIRE(st);
  CHECK(st->exited);
  CHECK(st->code == 0);
}

TEST_CASE("a bad relay.toml stops kith-relay with exit code 2 and names the problem",
          "[relay_program]") {
  struct bad_case {
    const char* toml;
    const char* named;
  };
  const bad_case cases[] = {
      {"[limits]\nmax_conections = 5\n", "limits.max_conections"},
      {"[limits]\nmax_connections = \"many\"\n", "limits.max_connections"},
      {"[limits]\nrequest_burst = -1\n", "limits.request_burst"},
      {"[limits.wire]\nnesting_limit = 1.5\n", "limits.wire.nesting_limit"},
      {"[relay]\nlisten = 7480\n", "relay.listen"},
      {"[relay]\nlisten = \"localhost:7480\"\n", "relay.listen"},
      {"[relay]\nlog_level = \"loud\"\n", "relay.log_level"},
      {"[restart]\nspread_seconds = 99999\n", "restart.spread_seconds"},
      {"[relays]\n", "relays"},
      {"[relay]\nlisten = \"0.0.0.0:1\"\nlisten = \"0.0.0.0:2\"\n", "relay.toml:3"},
      {"[limits]\nmax_frame_bytes = 1000\n", "max_frame_bytes"},
  };
  temp_dir home;
  for (const auto& c : cases) {
    spit(home.path + "/relay.toml", c.toml);
    auto [rc, out] = run_to_end({KITH_RELAY_BIN, "run", "--data-dir", home.path, "--listen",
                                 "127.0.0.1:0", "--http", "127.0.0.1:0"},
                                home.path + "/out.log");
    INFO(c.toml << "\n---\n" << out);
    CHECK(rc == 2);
    CHECK(out.find(c.named) != std::string::npos);
    CHECK(out.find("relay.toml") != std::string::npos);
  }
  CHECK_FALSE(fs::exists(home.path + "/relay.addr"));

  // The command line is checked the same way.
  fs::remove(home.path + "/relay.toml");
  auto [rc, out] = run_to_end({KITH_RELAY_BIN, "run", "--data-dir", home.path, "--listen",
                               "127.0.0.1:0", "--http", "127.0.0.1:0", "--log-level", "chatty"},
                              home.path + "/out.log");
  CHECK(rc == 2);
  CHECK(out.find("log_level") != std::string::npos);
}

namespace {

/// a opens a circuit to b and b accepts it; returns the circuit's id on a's side.
circuit_id open_circuit(socket_client& a, socket_client& b) {
  REQUIRE(a.await<welcomed>());
  REQUIRE(b.await<welcomed>());
  REQUIRE(a.client().open_circuit(b.self().pub()));
  a.flush();
  auto incoming = b.await<circuit_incoming>();
  REQUIRE(incoming);
  REQUIRE(b.client().accept_circuit(incoming->circuit));
  b.flush();
  auto opened = a.await<circuit_opened>();
  REQUIRE(opened);
  return opened->circuit;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 131) ^ (i >> 11));
  return s;
}

std::uint64_t metric(const host_port& http, const std::string& name) {
  const auto body = http_get(http, "/metrics").body;
  const auto at = body.find("\n" + name + " ");
  REQUIRE(at != std::string::npos);
  return std::stoull(body.substr(at + name.size() + 2));
}

} // namespace

TEST_CASE("a circuit to a slow reader pauses the sender instead of queueing without bound",
          "[relay_program]") {
  relay_under_test r;
  socket_client a(r.relay, r.id, 5);
  socket_client b(r.relay, r.id, 6);
  const circuit_id circ = open_circuit(a, b);

  const std::string data = pattern(24u << 20);
  REQUIRE(a.client().circuit_send(circ, data));
  std::string wire = a.client().take_to_send();
  std::thread sender([&a, wire = std::move(wire)] { (void)a.socket().send_all(wire); });

  // b reads nothing: the relay's queue for b fills to the high-water mark
  // and a is no longer read.
  CHECK(eventually([&] { return metric(r.http, "kith_relay_paused_connections") == 1; }));
  CHECK(metric(r.http, "kith_relay_queued_bytes") <= (8u << 20));
  CHECK(metric(r.http, "kith_relay_slow_client_closes_total") == 0);

  // b reads: everything arrives, in order.
  std::string got;
  const auto end = std::chrono::steady_clock::now() + 20s;
  while (got.size() < data.size() && std::chrono::steady_clock::now() < end) {
    auto d = b.await<circuit_data>(1s);
    if (d)
      got += d->bytes;
  }
  sender.join();
  INFO(r.log());
  REQUIRE(got.size() == data.size());
  CHECK(got == data);
  CHECK(metric(r.http, "kith_relay_paused_connections") == 0);
  CHECK(metric(r.http, "kith_relay_slow_client_closes_total") == 0);
}

TEST_CASE("a reader whose queue passes max_queued_bytes is closed and counted", "[relay_program]") {
  relay_under_test r("[relay]\nmax_queued_bytes = 4096\n");
  socket_client a(r.relay, r.id, 7);
  socket_client b(r.relay, r.id, 8);
  const circuit_id circ = open_circuit(a, b);

  REQUIRE(a.client().circuit_send(circ, pattern(32u << 20)));
  std::string wire = a.client().take_to_send();
  std::thread sender([&a, wire = std::move(wire)] { (void)a.socket().send_all(wire); });

  const bool closed = eventually(
      [&] { return metric(r.http, "kith_relay_slow_client_closes_total") >= 1; }, 10s);
  a.socket().shutdown_both(); // unblocks the sender
  sender.join();
  INFO(r.log());
  CHECK(closed);
  CHECK(r.log().find("slow reader") != std::string::npos);
  CHECK(http_get(r.http, "/healthz").status == 200);
}
