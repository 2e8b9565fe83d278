// Abuse of a real kith-relay process: a forged announce over an
// authenticated session, a request flood from one identity and a
// registration flood from one address. Each is refused while an honest
// client keeps being served.

#include "harness.hpp"

#include "kith/protocol/channel.hpp"
#include "kith/relay/record.hpp"

using namespace kith;
using namespace kith::relay;
using namespace kith::relay::program_test;

namespace {

/// An authenticated session that sends hand-made relay messages.
class raw_session {
public:
  raw_session(const host_port& at, const protocol::public_key& relay_id, std::uint8_t who)
      : sock_(at), me_(protocol::identity::from_seed(socket_client::seed(who, 1))),
        ch_(me_, protocol::channel::role::initiator, socket_client::seed(who, 2), now_ms(),
            relay_id) {
    REQUIRE(sock_.send_all(ch_.start()));
    // The first frame after the handshake is the relay's welcome.
    REQUIRE_FALSE(next_frames(5s).empty());
  }
  void send(const relay_message& m) {
    auto sealed = ch_.seal(encode_relay_message(m));
    REQUIRE(sealed);
    REQUIRE(sock_.send_all(*sealed));
  }
  /// Decoded messages received within `limit` (at least one, unless none came).
  std::vector<relay_message> next_frames(std::chrono::milliseconds limit) {
    std::vector<relay_message> out;
    const auto end = std::chrono::steady_clock::now() + limit;
    while (out.empty() && std::chrono::steady_clock::now() < end) {
      std::string in;
      if (sock_.receive(in, 50ms) == tcp_socket::got::closed)
        break;
      auto o = ch_.receive(in);
      REQUIRE_FALSE(o.error);
      if (!o.to_send.empty())
        REQUIRE(sock_.send_all(o.to_send));
      for (const auto& f : o.frames)
        if (auto m = decode_relay_message(f, wire_limits{}))
          out.push_back(std::move(*m));
    }
    return out;
  }
  const protocol::identity& me() const { return me_; }

private:
  tcp_socket sock_;
  protocol::identity me_;
  protocol::channel ch_;
};

std::optional<refused_msg> refusal_for(raw_session& s, std::uint64_t req) {
  const auto end = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < end)
    for (auto& m : s.next_frames(200ms))
      if (auto* r = std::get_if<refused_msg>(&m); r && r->req == req)
        return *r;
  return std::nullopt;
}

} // namespace

TEST_CASE("a forged announce is refused and never served, while an honest client is served",
          "[relay_program]") {
  relay_under_test r;
  raw_session forger(r.relay, r.id, 40);
  socket_client honest(r.relay, r.id, 41);
  REQUIRE(honest.await<welcomed>());
  const auto victim = protocol::identity::from_seed(socket_client::seed(42, 1));

  // The victim's own, validly signed record, announced over the forger's
  // session: the relay only takes records of the session's identity.
  forger.send(announce_msg{7, make_record(victim, {"203.0.113.66:1"}, now_ms() + 60'000, 1)});
  auto r1 = refusal_for(forger, 7);
  INFO(r.log());
  REQUIRE(r1);
  CHECK(r1->code == code::forbidden);

  // The forger's own record with an altered address after signing.
  auto bad = make_record(forger.me(), {"203.0.113.1:1"}, now_ms() + 60'000, 1);
  bad.addresses[0] = "203.0.113.99:1";
  forger.send(announce_msg{8, bad});
  auto r2 = refusal_for(forger, 8);
  REQUIRE(r2);
  CHECK(r2->code == code::bad_record);

  // Neither is served; the honest client's own session works.
  REQUIRE(honest.client().lookup(victim.pub()));
  honest.flush();
  auto v = honest.await<lookup_result>();
  REQUIRE(v);
  CHECK_FALSE(v->record);
  REQUIRE(honest.client().lookup(forger.me().pub()));
  honest.flush();
  auto f = honest.await<lookup_result>();
  REQUIRE(f);
  CHECK_FALSE(f->record);
  REQUIRE(honest.client().announce({"198.51.100.2:7411"}, 600'000, now_ms()));
  honest.flush();
  CHECK(honest.await<announced>());
  const auto metrics = http_get(r.http, "/metrics");
  CHECK(metrics.body.find("reason=\"forbidden\"") != std::string::npos);
}

TEST_CASE("a lookup flood from one identity is rate limited and cut while others are served",
          "[relay_program]") {
  relay_under_test r("[limits]\nrequest_rate_per_s = 50\nrequest_burst = 100\nmax_rate_strikes = 300\n");
  socket_client flooder(r.relay, r.id, 50);
  socket_client honest(r.relay, r.id, 51);
  REQUIRE(flooder.await<welcomed>());
  REQUIRE(honest.await<welcomed>());

  for (int i = 0; i < 3000 && !flooder.hung_up(); ++i) {
    (void)flooder.client().lookup(honest.self().pub());
    if (i % 100 == 99)
      (void)flooder.socket().send_all(flooder.client().take_to_send());
  }
  (void)flooder.socket().send_all(flooder.client().take_to_send());
  auto limited = flooder.await<refused>();
  INFO(r.log());
  REQUIRE(limited);
  CHECK(limited->code == code::rate_limited);
  // Past max_rate_strikes the relay says goodbye and hangs up.
  auto bye = flooder.await<goodbye>(10s);
  REQUIRE(bye);
  CHECK(bye->code == code::abuse);

  REQUIRE(honest.client().announce({"198.51.100.3:7411"}, 600'000, now_ms()));
  honest.flush();
  CHECK(honest.await<announced>());
  REQUIRE(honest.client().lookup(honest.self().pub()));
  honest.flush();
  auto mine = honest.await<lookup_result>();
  REQUIRE(mine);
  CHECK(mine->record);
}

TEST_CASE("registrations beyond the per-address cap are refused while registered clients are served",
          "[relay_program]") {
  relay_under_test r("[limits]\nmax_registrations_per_ip = 3\n");
  std::vector<std::unique_ptr<socket_client>> clients;
  for (std::uint8_t i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<socket_client>(r.relay, r.id, static_cast<std::uint8_t>(60 + i)));
    REQUIRE(clients.back()->await<welcomed>());
  }
  // A fourth identity from the same address is turned away.
  socket_client extra(r.relay, r.id, 70);
  CHECK_FALSE(extra.await<welcomed>(2s));
  CHECK(extra.hung_up());
  // The three registered ones still work.
  auto& first = *clients.front();
  REQUIRE(first.client().lookup(clients.back()->self().pub()));
  first.flush();
  CHECK(first.await<lookup_result>());
}
