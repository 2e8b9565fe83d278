#include "harness.hpp"
#include "support/seed.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>

using namespace kith::relay;
using namespace kith::relay::test;
using kith::protocol::public_key;

namespace {

std::string ip_of(std::uint64_t n) {
  return "10.1." + std::to_string(n / 256) + "." + std::to_string(n % 256);
}

/// True if `text` has a line equal to `line`.
bool has_line(const std::string& text, const std::string& line) {
  std::size_t at = 0;
  while (at <= text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos)
      end = text.size();
    if (text.compare(at, end - at, line) == 0)
      return true;
    at = end + 1;
  }
  return false;
}

} // namespace

// --- sessions, records, lookups ----------------------------------------------------------

TEST_CASE("a client handshakes, is welcomed with the relay's terms and the relay's id",
          "[relay]") {
  network net;
  auto& a = net.connect(person(1), "192.0.2.10");
  REQUIRE(a.client->established());
  auto w = a.one<welcomed>();
  CHECK(w.relay == relay_identity().pub());
  CHECK(w.observed_ip == "192.0.2.10");
  CHECK(w.terms.version == relay_protocol_version);
  CHECK(w.terms.circuit_max_bytes == 256ull << 20);
  CHECK(w.terms.circuit_max_duration_ms == 3'600'000);
  CHECK(w.terms.max_page_size == 100);
  CHECK(a.client->terms().has_value());
  CHECK(net.relay.is_registered(person(1).pub()));
  CHECK(net.relay.metrics().registrations == 1);
}

TEST_CASE("a client pinning another relay id fails the handshake and the relay drops it",
          "[relay]") {
  network net;
  auto& a = net.connect(person(1), "192.0.2.10", person(99).pub());
  CHECK_FALSE(a.client->established());
  REQUIRE(a.client_error);
  CHECK(a.client_error->find("expected") != std::string::npos);
  CHECK(net.relay.metrics().connections == 0);
  CHECK(net.relay.metrics().registrations == 0);
}

TEST_CASE("a client that reconnects resumes its handshake with the ticket of its last session",
          "[relay][resume]") {
  SECTION("a relay that keeps tickets") {
    network net;
    auto& a = net.connect(person(1), "192.0.2.10");
    REQUIRE(a.client->established());
    CHECK_FALSE(a.client->resumed());
    CHECK(a.one<welcomed>().terms.resumes); // so the client keeps the ticket
    auto t = a.client->take_ticket();
    REQUIRE(t);
    CHECK(t->peer == net.relay.id());
    net.disconnect(a);
    auto& b = net.connect(person(1), "192.0.2.10", std::nullopt, &*t);
    REQUIRE(b.client->established());
    CHECK(b.client->resumed());
    CHECK(b.one<welcomed>().relay == net.relay.id());
    CHECK(net.relay.is_registered(person(1).pub()));
    CHECK(net.relay.metrics().handshakes_completed == 2);
    CHECK(net.relay.metrics().handshakes_resumed == 1);
    CHECK(net.relay.prometheus_text().find("kith_relay_handshakes_resumed_total 1") != std::string::npos);
    // The same ticket again (a replay, or a client that kept it): used up,
    // so the handshake is a full one.
    net.disconnect(b);
    auto& c = net.connect(person(1), "192.0.2.10", std::nullopt, &*t);
    REQUIRE(c.client->established());
    CHECK_FALSE(c.client->resumed());
    CHECK(net.relay.metrics().handshakes_resumed == 1);
  }
  SECTION("a relay with resume_tickets = 0 answers with a full handshake") {
    relay_limits lim;
    lim.resume_tickets = 0;
    network net(lim);
    auto& a = net.connect(person(1), "192.0.2.10");
    CHECK_FALSE(a.one<welcomed>().terms.resumes); // a node keeps no ticket for it
    auto t = a.client->take_ticket();
    REQUIRE(t);
    net.disconnect(a);
    auto& b = net.connect(person(1), "192.0.2.10", std::nullopt, &*t);
    REQUIRE(b.client->established());
    CHECK_FALSE(b.client->resumed());
    CHECK(net.relay.metrics().handshakes_resumed == 0);
  }
}

TEST_CASE("announce then lookup returns the verified signed record", "[relay]") {
  network net;
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  auto r = a.client->announce({"tcp://192.0.2.1:7000", "quic://192.0.2.1:7001"}, 600'000, net.now);
  REQUIRE(r);
  net.flush(a);
  auto ann = a.one<announced>();
  CHECK(ann.req == r.req);
  CHECK(ann.expiry_ms == net.now + 600'000);
  CHECK_FALSE(ann.renewal);

  auto q = b.client->lookup(person(1).pub());
  REQUIRE(q);
  net.flush(b);
  auto res = b.one<lookup_result>();
  CHECK(res.req == q.req);
  CHECK(res.id == person(1).pub());
  REQUIRE(res.record);
  CHECK(res.record->addresses ==
        std::vector<std::string>{"tcp://192.0.2.1:7000", "quic://192.0.2.1:7001"});
  CHECK(verify_record(*res.record));

  // Unknown identity, and a connected one that announced nothing: not found.
  REQUIRE(b.client->lookup(person(3).pub()));
  REQUIRE(a.client->lookup(person(2).pub()));
  net.flush(b);
  net.flush(a);
  CHECK_FALSE(b.one<lookup_result>().record);
  CHECK_FALSE(a.one<lookup_result>().record);
  CHECK(net.relay.metrics().records == 1);
}

TEST_CASE("a lookup with watch that finds nothing brings the record once the identity announces",
          "[relay][presence]") {
  network net;
  auto& b = net.connect(person(2), ip_of(2));
  auto q = b.client->lookup(person(1).pub(), true);
  REQUIRE(q);
  net.flush(b);
  auto res = b.one<lookup_result>();
  CHECK(res.req == q.req);
  CHECK_FALSE(res.record);
  CHECK(res.watching);
  CHECK(net.relay.metrics().presence_watches == 1);
  // Without watch: not found, and nothing follows.
  auto& c = net.connect(person(3), ip_of(3));
  REQUIRE(c.client->lookup(person(1).pub()));
  net.flush(c);
  CHECK_FALSE(c.one<lookup_result>().watching);

  auto& a = net.connect(person(1), ip_of(1));
  CHECK(b.take<present>().empty()); // registered, but no record yet
  REQUIRE(a.client->announce({"tcp://192.0.2.1:7000"}, 600'000, net.now));
  net.flush(a);
  auto p = b.one<present>();
  CHECK(p.record.id == person(1).pub());
  CHECK(p.record.addresses == std::vector<std::string>{"tcp://192.0.2.1:7000"});
  CHECK(verify_record(p.record));
  CHECK(c.take<present>().empty());
  CHECK(net.relay.metrics().presence_watches == 0);
  CHECK(net.relay.metrics().presence_sent == 1);
  CHECK(has_line(net.relay.prometheus_text(), "kith_relay_presence_sent_total 1"));

  // A watch fires once: a renewal, or a record found by the lookup itself,
  // sends nothing more.
  net.advance_by_steps(500'000, 10'000);
  CHECK_FALSE(a.take<announced>().empty());
  CHECK(b.take<present>().empty());
  REQUIRE(b.client->lookup(person(1).pub(), true));
  net.flush(b);
  auto again = b.one<lookup_result>();
  CHECK(again.record);
  CHECK_FALSE(again.watching);
  CHECK(net.relay.metrics().presence_watches == 0);
  CHECK(b.open());
}

TEST_CASE("presence watches are capped and end with the connection that waits", "[relay][presence]") {
  relay_limits lim;
  lim.max_presence_watches_per_connection = 2;
  lim.max_presence_watches = 3;
  network net(lim);
  auto& b = net.connect(person(2), ip_of(2));
  auto& c = net.connect(person(3), ip_of(3));
  for (std::uint64_t n : {10, 11, 12, 10})
    REQUIRE(b.client->lookup(person(n).pub(), true));
  net.flush(b);
  auto rs = b.take<lookup_result>();
  REQUIRE(rs.size() == 4);
  CHECK(rs[0].watching);
  CHECK(rs[1].watching);
  CHECK_FALSE(rs[2].watching); // over the per-connection cap
  CHECK(rs[3].watching);       // already watched: still one watch
  CHECK(net.relay.metrics().presence_watches == 2);
  for (std::uint64_t n : {10, 13})
    REQUIRE(c.client->lookup(person(n).pub(), true));
  net.flush(c);
  auto cs = c.take<lookup_result>();
  REQUIRE(cs.size() == 2);
  CHECK(cs[0].watching);
  CHECK_FALSE(cs[1].watching); // over the relay-wide cap
  CHECK(net.relay.metrics().presence_watches == 3);

  // b goes: its watches go with it; c still hears of person 10.
  net.disconnect(b);
  CHECK(net.relay.metrics().presence_watches == 1);
  auto& p10 = net.connect(person(10), ip_of(10));
  REQUIRE(p10.client->announce({"tcp://ten"}, 60'000, net.now));
  net.flush(p10);
  CHECK(c.one<present>().record.addresses == std::vector<std::string>{"tcp://ten"});
  CHECK(net.relay.metrics().presence_watches == 0);
  CHECK(net.relay.metrics().presence_sent == 1);
}

TEST_CASE("a client that sends present to the relay is refused", "[relay][presence]") {
  network net;
  raw_client raw(net, person(5));
  raw.send(present_msg{make_record(person(5), {"tcp://x"}, net.now + 60'000, 1)});
  auto got = raw.read();
  REQUIRE(got.size() == 1);
  auto* r = std::get_if<refused_msg>(&got[0]);
  REQUIRE(r);
  CHECK(r->code == code::bad_request);
  CHECK(raw.ep().open());
}

TEST_CASE("a record disappears at its expiry unless the client renews it", "[relay]") {
  network net;
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  auto& c = net.connect(person(3), ip_of(3));
  REQUIRE(a.client->announce({"tcp://a"}, 10'000, net.now));
  REQUIRE(b.client->announce({"tcp://b"}, 10'000, net.now));
  net.flush(a);
  net.flush(b);
  a.client->stop_announcing(); // a lets its record lapse; b's client renews

  net.advance_by_steps(25'000, 1'000);
  REQUIRE(c.client->lookup(person(1).pub()));
  REQUIRE(c.client->lookup(person(2).pub()));
  net.flush(c);
  auto results = c.take<lookup_result>();
  REQUIRE(results.size() == 2);
  CHECK_FALSE(results[0].record);
  REQUIRE(results[1].record);
  CHECK(results[1].record->expiry_ms > net.now);
  CHECK(net.relay.metrics().records == 1);
  CHECK(net.relay.metrics().records_expired == 1);
  // b saw its renewals acknowledged, a did not renew.
  auto renewals = b.take<announced>();
  REQUIRE(renewals.size() >= 3);
  CHECK(renewals.back().renewal);
  CHECK(renewals.back().seq > renewals.front().seq);
  CHECK(a.take<announced>().size() == 1);
  CHECK(a.open());
  CHECK(b.open());
}

TEST_CASE("clients with clocks hours off announce, renew and find records in the relay's time",
          "[relay]") {
  using namespace std::chrono_literals;
  network net;
  const std::int64_t two_hours = 2 * 3'600'000, three_hours = 3 * 3'600'000;
  auto& slow = net.connect_with_clock(person(1), ip_of(1), -two_hours);
  auto& fast = net.connect_with_clock(person(2), ip_of(2), three_hours);
  // By its own clock the slow client's record would have expired two
  // hours ago at the relay, and the fast one would take every record for
  // expired: both stamp and check in the time the relay's welcome gave.
  REQUIRE(slow.client->announce({"tcp://192.0.2.1:7000"}, 600'000, net.clock_of(slow)));
  net.flush(slow);
  auto ann = slow.one<announced>();
  CHECK(ann.expiry_ms == net.now + 600'000);
  CHECK(slow.take<refused>().empty());

  // Renewals keep the record past its first TTL.
  net.advance_by_steps(1'500'000, 10'000);
  REQUIRE(fast.client->lookup(person(1).pub()));
  net.flush(fast);
  auto res = fast.one<lookup_result>();
  REQUIRE(res.record);
  CHECK(res.record->expiry_ms > net.now);
  CHECK(fast.take<refused>().empty());
  CHECK(slow.take<announced>().size() >= 2); // renewals acknowledged
  CHECK(net.relay.metrics().records_expired == 0);
  CHECK(slow.open());
  CHECK(fast.open());
}

TEST_CASE("a record is gone as soon as its client disconnects", "[relay]") {
  network net;
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  REQUIRE(a.client->announce({"tcp://a"}, 60'000, net.now));
  net.flush(a);
  net.disconnect(a);
  REQUIRE(b.client->lookup(person(1).pub()));
  net.flush(b);
  CHECK_FALSE(b.one<lookup_result>().record);
  CHECK(net.relay.metrics().records == 0);
  CHECK_FALSE(net.relay.is_registered(person(1).pub()));
}

TEST_CASE("a newer connection of the same identity replaces the older one", "[relay]") {
  network net;
  auto& old = net.connect(person(1), ip_of(1));
  auto& other = net.connect(person(2), ip_of(2));
  REQUIRE(other.client->watch("topic"));
  net.flush(other);
  REQUIRE(old.client->announce({"tcp://old"}, 60'000, net.now));
  REQUIRE(old.client->join("topic"));
  net.flush(old);

  auto& fresh = net.connect(person(1), ip_of(3));
  auto bye = old.one<goodbye>();
  CHECK(bye.code == code::replaced);
  CHECK(bye.reason == "replaced by a newer connection of the same identity");
  REQUIRE(old.relay_closed);
  CHECK(old.relay_closed->find("replaced by a newer connection") != std::string::npos);
  CHECK(fresh.open());
  CHECK(net.relay.metrics().registrations == 2);
  // The old session's record and membership went with it.
  auto left = other.take<topic_event>();
  REQUIRE(left.size() == 2);
  CHECK(left[1].id == person(1).pub());
  CHECK_FALSE(left[1].joined);
  REQUIRE(other.client->lookup(person(1).pub()));
  net.flush(other);
  CHECK_FALSE(other.one<lookup_result>().record);
  // The new one works.
  REQUIRE(fresh.client->announce({"tcp://new"}, 60'000, net.now));
  net.flush(fresh);
  CHECK(fresh.take<announced>().size() == 1);
  CHECK(net.relay.metrics().closes[static_cast<std::size_t>(code::replaced)] == 1);
}

TEST_CASE("announces for another identity, with a bad signature, a long TTL or a stale "
          "sequence are refused",
          "[relay]") {
  network net;
  raw_client mallory(net, person(66));
  std::uint64_t req = 100;
  auto refused_code = [&](const signed_record& r) {
    mallory.send(announce_msg{++req, r});
    auto got = only<refused_msg>(mallory.read());
    REQUIRE(got.size() == 1);
    CHECK(got[0].req == req);
    INFO(got[0].detail);
    return got[0].code;
  };
  // Alice's genuine record, replayed by mallory: forbidden.
  auto alice_record = make_record(person(1), {"tcp://alice"}, net.now + 60'000, 1);
  CHECK(refused_code(alice_record) == code::forbidden);
  // A record claiming mallory's id with alice's signature: bad signature.
  auto forged = alice_record;
  forged.id = person(66).pub();
  CHECK(refused_code(forged) == code::bad_record);
  // TTL beyond max_record_ttl_ms (+ skew).
  CHECK(refused_code(make_record(person(66), {"tcp://m"}, net.now + 2 * 3'600'000, 1)) ==
        code::bad_record);
  // Already expired.
  CHECK(refused_code(make_record(person(66), {"tcp://m"}, net.now, 1)) == code::bad_record);
  // Too many addresses.
  CHECK(refused_code(make_record(person(66), std::vector<std::string>(17, "tcp://m"),
                                 net.now + 1000, 1)) == code::bad_record);
  // A good one is accepted; an older sequence number afterwards is refused.
  mallory.send(announce_msg{++req, make_record(person(66), {"tcp://m"}, net.now + 60'000, 5)});
  CHECK(only<ok_msg>(mallory.read()).size() == 1);
  CHECK(refused_code(make_record(person(66), {"tcp://m2"}, net.now + 60'000, 4)) ==
        code::bad_record);
  CHECK(mallory.ep().open());
  CHECK(net.relay.metrics().rejections[static_cast<std::size_t>(code::forbidden)] == 1);
  CHECK(net.relay.metrics().rejections[static_cast<std::size_t>(code::bad_record)] == 5);
}

TEST_CASE("a client does not believe a relay that serves a forged or altered record",
          "[relay]") {
  // A fake relay: a bare responder channel sending hand-made answers.
  const auto& relay_id = relay_identity();
  auto alice = person(1);
  relay_client c(alice, relay_id.pub(), seed_of(5, 0xc1), t0);
  kith::protocol::channel fake(relay_id, kith::protocol::channel::role::responder,
                               seed_of(6, 0xd1), t0);
  auto o = fake.receive(c.start());
  auto co = c.receive(o.to_send, t0);
  REQUIRE(c.established());
  REQUIRE(fake.receive(co.to_send).established);

  auto answer = [&](const relay_message& m) {
    return c.receive(*fake.seal(encode_relay_message(m)), t0);
  };
  auto bob = person(2);
  auto good = make_record(bob, {"tcp://bob"}, t0 + 60'000, 1);

  auto q1 = c.lookup(bob.pub());
  auto altered = good;
  altered.addresses = {"tcp://evil"};
  auto out = answer(lookup_result_msg{q1.req, bob.pub(), altered});
  REQUIRE(out.events.size() == 1);
  auto r1 = std::get<refused>(out.events[0]);
  CHECK(r1.code == code::bad_record);
  CHECK(r1.kind == request_kind::lookup);

  auto q2 = c.lookup(bob.pub());
  auto someone_else = make_record(person(3), {"tcp://carol"}, t0 + 60'000, 1);
  out = answer(lookup_result_msg{q2.req, bob.pub(), someone_else});
  REQUIRE(out.events.size() == 1);
  CHECK(std::get<refused>(out.events[0]).code == code::bad_record);

  auto q3 = c.lookup(bob.pub());
  out = answer(lookup_result_msg{q3.req, bob.pub(), make_record(bob, {"x"}, t0 - 1, 1)});
  REQUIRE(out.events.size() == 1);
  CHECK(std::get<refused>(out.events[0]).detail.find("expired") != std::string::npos);

  auto q4 = c.lookup(bob.pub());
  out = answer(lookup_result_msg{q4.req, bob.pub(), good});
  REQUIRE(out.events.size() == 1);
  REQUIRE(std::get<lookup_result>(out.events[0]).record);
  CHECK(*std::get<lookup_result>(out.events[0]).record == good);
}

// --- hostile and broken connections --------------------------------------------------------

TEST_CASE("garbage or relay messages before the handshake close only that connection",
          "[relay]") {
  const auto seed = kith::test::base_seed() ^ 0x676172626167ull;
  kith::test::rng g(seed);
  CAPTURE(seed);
  network net;
  auto& a = net.connect(person(1), ip_of(1));
  REQUIRE(a.client->announce({"tcp://a"}, 60'000, net.now));
  net.flush(a);
  auto& b = net.connect(person(2), ip_of(2));

  for (int i = 0; i < 20; ++i) {
    auto& raw = net.connect_raw(ip_of(100 + i));
    std::string junk(kith::test::pick(g, 1, 300), '\0');
    for (auto& ch : junk)
      ch = static_cast<char>(g());
    net.send_raw(raw, junk);
    if (!raw.relay_closed) // a length prefix that asks for more: the timeout ends it
      net.advance(10'001);
    REQUIRE(raw.relay_closed);
    CHECK_FALSE(raw.relay_closed->empty());
  }
  // A well-formed relay message with channel framing, but no handshake.
  auto& early = net.connect_raw(ip_of(200));
  auto msg = encode_relay_message(lookup_msg{1, person(1).pub()});
  std::string framed = {0, 0, 0, static_cast<char>(msg.size())};
  net.send_raw(early, framed + msg);
  REQUIRE(early.relay_closed);
  CHECK(early.relay_closed->find("handshake failed") != std::string::npos);

  // The others are still served.
  REQUIRE(b.client->lookup(person(1).pub()));
  net.flush(b);
  CHECK(b.one<lookup_result>().record);
  CHECK(a.open());
  CHECK(net.relay.metrics().registrations == 2);
  CHECK(net.relay.metrics().handshakes_failed == 21);
}

TEST_CASE("an authenticated client sending an undecodable frame is told why and closed",
          "[relay]") {
  network net;
  raw_client m(net, person(66));
  m.send_frame("this is not cap'n proto");
  auto got = only<goodbye_msg>(m.read());
  REQUIRE(got.size() == 1);
  CHECK(got[0].code == code::bad_request);
  CHECK(got[0].reason.find("undecodable") != std::string::npos);
  REQUIRE(m.ep().relay_closed);
  CHECK(net.relay.metrics().registrations == 0);
}

TEST_CASE("an unknown request is refused as unsupported and relay-only messages as bad "
          "requests, without closing",
          "[relay]") {
  network net;
  raw_client m(net, person(66));
  m.send_frame(unknown_request(5));
  m.send(ok_msg{6});
  auto got = only<refused_msg>(m.read());
  REQUIRE(got.size() == 2);
  CHECK(got[0].req == 5);
  CHECK(got[0].code == code::unsupported);
  CHECK(got[1].req == 6);
  CHECK(got[1].code == code::bad_request);
  CHECK(m.ep().open());
}

TEST_CASE("a silent connection is closed at the handshake timeout and an idle one at the "
          "idle timeout, while a pinging client stays",
          "[relay]") {
  network net;
  auto& silent = net.connect_raw(ip_of(1));
  raw_client idle(net, person(66));
  auto& live = net.connect(person(1), ip_of(2));
  net.advance(10'000);
  REQUIRE(silent.relay_closed);
  CHECK(silent.relay_closed->find("handshake not completed") != std::string::npos);
  CHECK(idle.ep().open());
  net.advance_by_steps(200'000, 5'000);
  REQUIRE(idle.ep().relay_closed);
  auto bye = only<goodbye_msg>(idle.read());
  REQUIRE(bye.size() == 1);
  CHECK(bye[0].code == code::idle);
  CHECK(live.open());
  CHECK(net.relay.metrics().closes[static_cast<std::size_t>(code::idle)] == 1);
  CHECK(net.relay.metrics().closes[static_cast<std::size_t>(code::handshake_timeout)] == 1);
}

TEST_CASE("a flood from one client is refused and then cut while another client is served",
          "[relay]") {
  relay_limits lim;
  lim.request_rate_per_s = 10;
  lim.request_burst = 20;
  lim.max_rate_strikes = 30;
  network net(lim);
  auto& flood = net.connect(person(1), ip_of(1));
  auto& calm = net.connect(person(2), ip_of(2));
  for (int i = 0; i < 100; ++i)
    REQUIRE(flood.client->lookup(person(2).pub()));
  REQUIRE(calm.client->lookup(person(1).pub()));
  net.flush(flood);
  net.flush(calm);

  CHECK(flood.take<lookup_result>().size() == 20);
  auto refusals = flood.take<refused>();
  REQUIRE(refusals.size() == 30);
  CHECK(refusals[0].code == code::rate_limited);
  auto bye = flood.one<goodbye>();
  CHECK(bye.code == code::abuse);
  CHECK_FALSE(flood.open());
  CHECK(calm.take<lookup_result>().size() == 1);
  CHECK(calm.open());

  // The bucket refills with time for a client that slows down.
  for (int i = 0; i < 25; ++i)
    REQUIRE(calm.client->lookup(person(1).pub()));
  net.flush(calm);
  CHECK(calm.take<lookup_result>().size() == 19); // 20 in the bucket, 1 spent above
  CHECK(calm.take<refused>().size() == 6);
  net.advance(1'000);
  REQUIRE(calm.client->lookup(person(1).pub()));
  net.flush(calm);
  CHECK(calm.take<lookup_result>().size() == 1);
  CHECK(net.relay.metrics().rejections[static_cast<std::size_t>(code::rate_limited)] == 36);
  CHECK(net.relay.metrics().closes[static_cast<std::size_t>(code::abuse)] == 1);
}

TEST_CASE("registrations per IP are capped, replacing one's own connection is not", "[relay]") {
  relay_limits lim;
  lim.max_registrations_per_ip = 2;
  network net(lim);
  auto& a = net.connect(person(1), "198.51.100.7");
  auto& b = net.connect(person(2), "198.51.100.7");
  auto& c = net.connect(person(3), "198.51.100.7");
  auto& d = net.connect(person(4), "198.51.100.8");
  CHECK(a.open());
  CHECK(b.open());
  auto bye = c.one<goodbye>();
  CHECK(bye.code == code::limit_reached);
  CHECK(bye.reason.find("max_registrations_per_ip") != std::string::npos);
  CHECK_FALSE(c.open());
  CHECK(d.open());
  // a reconnects from the same address: a replacement, not a third identity.
  auto& a2 = net.connect(person(1), "198.51.100.7");
  CHECK(a2.open());
  CHECK(a.one<goodbye>().code == code::replaced);
  CHECK(net.relay.metrics().registrations == 3);
}

TEST_CASE("connections over max_connections are closed at accept", "[relay]") {
  relay_limits lim;
  lim.max_connections = 2;
  network net(lim);
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  auto& c = net.connect(person(3), ip_of(3));
  CHECK(a.open());
  CHECK(b.open());
  REQUIRE(c.relay_closed);
  CHECK(c.relay_closed->find("max_connections") != std::string::npos);
}

// --- topics --------------------------------------------------------------------------------

TEST_CASE("250 members come back in 3 pages of at most 100, each member exactly once",
          "[relay]") {
  network net;
  const std::string topic = rendezvous_key("a busy topic");
  std::vector<endpoint*> members;
  for (std::uint64_t i = 0; i < 250; ++i) {
    auto& e = net.connect(person(1000 + i), ip_of(i));
    REQUIRE(e.client->join(topic));
    net.flush(e);
    REQUIRE(e.take<acknowledged>().size() == 1);
    members.push_back(&e);
  }
  auto& reader = net.connect(person(5000), ip_of(999));
  std::multiset<public_key> seen;
  std::string cursor;
  int pages = 0;
  do {
    REQUIRE(reader.client->members(topic, cursor, 0));
    net.flush(reader);
    auto page = reader.one<members_page>();
    CHECK(page.topic == topic);
    CHECK(page.ids.size() <= 100);
    CHECK(std::is_sorted(page.ids.begin(), page.ids.end()));
    seen.insert(page.ids.begin(), page.ids.end());
    cursor = page.next_cursor;
    ++pages;
  } while (!cursor.empty() && pages < 10);
  CHECK(pages == 3);
  CHECK(seen.size() == 250);
  for (std::uint64_t i = 0; i < 250; ++i)
    CHECK(seen.count(person(1000 + i).pub()) == 1);

  // A smaller limit, and an unknown topic.
  REQUIRE(reader.client->members(topic, {}, 7));
  REQUIRE(reader.client->members("nobody here", {}, 0));
  net.flush(reader);
  auto pages2 = reader.take<members_page>();
  REQUIRE(pages2.size() == 2);
  CHECK(pages2[0].ids.size() == 7);
  CHECK_FALSE(pages2[0].next_cursor.empty());
  CHECK(pages2[1].ids.empty());
  CHECK(pages2[1].next_cursor.empty());
  CHECK(net.relay.metrics().memberships == 250);
  CHECK(net.relay.metrics().topics == 1);
}

TEST_CASE("watchers see joined and left events, including left on disconnect", "[relay]") {
  network net;
  const std::string topic = rendezvous_key("friends");
  auto& w = net.connect(person(1), ip_of(1));
  auto& a = net.connect(person(2), ip_of(2));
  auto& b = net.connect(person(3), ip_of(3));
  REQUIRE(w.client->watch(topic));
  net.flush(w);
  CHECK(w.take<acknowledged>().size() == 1);

  REQUIRE(a.client->join(topic));
  net.flush(a);
  REQUIRE(b.client->join(topic));
  net.flush(b);
  REQUIRE(a.client->leave(topic));
  net.flush(a);
  net.disconnect(b);

  auto ev = w.take<topic_event>();
  REQUIRE(ev.size() == 4);
  CHECK((ev[0].id == person(2).pub() && ev[0].joined));
  CHECK((ev[1].id == person(3).pub() && ev[1].joined));
  CHECK((ev[2].id == person(2).pub() && !ev[2].joined));
  CHECK((ev[3].id == person(3).pub() && !ev[3].joined));
  for (const auto& e : ev)
    CHECK(e.topic == topic);
  // A joining member is not told about itself; after unwatch, nothing.
  CHECK(a.take<topic_event>().empty());
  REQUIRE(w.client->unwatch(topic));
  net.flush(w);
  REQUIRE(a.client->join(topic));
  net.flush(a);
  CHECK(w.take<topic_event>().empty());
  CHECK(net.relay.metrics().watches == 0);
  CHECK(net.relay.metrics().memberships == 1);
}

TEST_CASE("topics joined per connection and members per topic are capped", "[relay]") {
  relay_limits lim;
  lim.max_topics_per_connection = 2;
  lim.max_members_per_topic = 2;
  network net(lim);
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  auto& c = net.connect(person(3), ip_of(3));
  REQUIRE(a.client->join("t1"));
  REQUIRE(a.client->join("t2"));
  REQUIRE(a.client->join("t3"));
  net.flush(a);
  CHECK(a.take<acknowledged>().size() == 2);
  CHECK(a.one<refused>().code == code::limit_reached);
  REQUIRE(b.client->join("t1"));
  REQUIRE(c.client->join("t1"));
  net.flush(b);
  net.flush(c);
  CHECK(b.take<acknowledged>().size() == 1);
  auto r = c.one<refused>();
  CHECK(r.code == code::limit_reached);
  CHECK(r.kind == request_kind::join);
  // The client refuses an empty or over-long topic before sending.
  CHECK_FALSE(c.client->join(""));
  CHECK_FALSE(c.client->join(std::string(65, 'x')));
}

// --- circuits ------------------------------------------------------------------------------

TEST_CASE("a circuit opens on accept, carries a node-to-node secure channel both ways and "
          "closes from either side",
          "[relay]") {
  network net;
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  auto req = a.client->open_circuit(person(2).pub());
  REQUIRE(req);
  net.flush(a);
  auto in = b.one<circuit_incoming>();
  CHECK(in.from == person(1).pub());
  REQUIRE(b.client->accept_circuit(in.circuit));
  net.flush(b);
  auto opened = a.one<circuit_opened>();
  CHECK(opened.req == req.req);
  CHECK(opened.circuit == in.circuit);
  CHECK(opened.peer == person(2).pub());
  CHECK(b.take<acknowledged>().size() == 1);
  const circuit_id cid = opened.circuit;

  // The end-to-end channel between the two nodes, through the relay.
  using kith::protocol::channel;
  channel ca(person(1), channel::role::initiator, seed_of(1, 0x77), net.now, person(2).pub());
  channel cb(person(2), channel::role::responder, seed_of(2, 0x77), net.now);
  auto pipe = [&](endpoint& from, endpoint& to, channel& dest, std::string bytes) {
    REQUIRE(from.client->circuit_send(cid, bytes));
    net.flush(from);
    std::string got;
    for (auto& d : to.take<circuit_data>()) {
      CHECK(d.circuit == cid);
      got += d.bytes;
    }
    CHECK(got == bytes);
    return dest.receive(got);
  };
  auto o1 = pipe(a, b, cb, ca.start());
  auto o2 = pipe(b, a, ca, o1.to_send);
  CHECK(o2.established);
  auto o3 = pipe(a, b, cb, o2.to_send);
  CHECK(o3.established);
  CHECK(*cb.peer() == person(1).pub());
  // A frame larger than one circuit chunk goes in pieces and arrives whole.
  const std::string big(200'000, 'z');
  auto o4 = pipe(b, a, ca, *cb.seal(big));
  REQUIRE(o4.frames.size() == 1);
  CHECK(o4.frames[0] == big);
  auto o5 = pipe(a, b, cb, *ca.seal("thanks"));
  REQUIRE(o5.frames.size() == 1);
  CHECK(o5.frames[0] == "thanks");

  REQUIRE(a.client->close_circuit(cid, "sync done"));
  net.flush(a);
  auto closed = b.one<circuit_closed>();
  CHECK(closed.circuit == cid);
  CHECK(closed.code == code::closed_by_peer);
  CHECK(closed.reason == "sync done");
  CHECK(a.take<circuit_closed>().empty());
  CHECK_FALSE(b.client->circuit_send(cid, "late"));
  const auto& m = net.relay.metrics();
  CHECK(m.circuits_open == 0);
  CHECK(m.circuits_opened == 1);
  CHECK(m.relayed_bytes > 200'000);
}

TEST_CASE("a circuit to a disconnected, refusing or silent target is refused with the reason",
          "[relay]") {
  relay_limits lim;
  lim.circuit_accept_timeout_ms = 5'000;
  network net(lim);
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));

  REQUIRE(a.client->open_circuit(person(9).pub()));
  net.flush(a);
  auto r = a.one<refused>();
  CHECK(r.code == code::not_connected);
  CHECK(r.kind == request_kind::open_circuit);

  REQUIRE(a.client->open_circuit(person(2).pub()));
  net.flush(a);
  REQUIRE(b.client->refuse_circuit(b.one<circuit_incoming>().circuit, "not now"));
  net.flush(b);
  r = a.one<refused>();
  CHECK(r.code == code::peer_refused);
  CHECK(r.detail.find("not now") != std::string::npos);

  REQUIRE(a.client->open_circuit(person(2).pub()));
  net.flush(a);
  auto in = b.one<circuit_incoming>();
  net.advance(5'000);
  CHECK(a.one<refused>().code == code::timeout);
  CHECK(b.one<circuit_closed>().code == code::timeout);
  REQUIRE_FALSE(b.client->accept_circuit(in.circuit)); // the client forgot it already

  REQUIRE(a.client->open_circuit(person(2).pub()));
  net.flush(a);
  CHECK(b.take<circuit_incoming>().size() == 1);
  net.disconnect(b);
  r = a.one<refused>();
  CHECK(r.code == code::not_connected);

  REQUIRE(a.client->open_circuit(person(1).pub()));
  net.flush(a);
  CHECK(a.one<refused>().code == code::bad_request);
  CHECK(net.relay.metrics().circuits_pending == 0);
}

TEST_CASE("the byte limit cuts a circuit and both ends learn why", "[relay]") {
  relay_limits lim;
  lim.circuit_max_bytes = 1000;
  network net(lim);
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  REQUIRE(a.client->open_circuit(person(2).pub()));
  net.flush(a);
  const auto cid = b.one<circuit_incoming>().circuit;
  REQUIRE(b.client->accept_circuit(cid));
  net.flush(b);
  REQUIRE(a.one<circuit_opened>().circuit == cid);

  REQUIRE(a.client->circuit_send(cid, std::string(600, 'a')));
  net.flush(a);
  CHECK(b.one<circuit_data>().bytes.size() == 600);
  REQUIRE(b.client->circuit_send(cid, std::string(600, 'b')));
  net.flush(b);
  CHECK(a.take<circuit_data>().empty()); // the frame over the limit is not forwarded
  for (auto* e : {&a, &b}) {
    auto c = e->one<circuit_closed>();
    CHECK(c.circuit == cid);
    CHECK(c.code == code::byte_limit);
    CHECK(c.reason.find("circuit_max_bytes") != std::string::npos);
  }
  CHECK(net.relay.metrics().circuit_ends[static_cast<std::size_t>(code::byte_limit)] == 1);
  CHECK(a.open());
  CHECK(b.open());
}

TEST_CASE("the duration limit cuts a circuit and both ends learn why", "[relay]") {
  relay_limits lim;
  lim.circuit_max_duration_ms = 60'000;
  network net(lim);
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  REQUIRE(a.client->open_circuit(person(2).pub()));
  net.flush(a);
  const auto cid = b.one<circuit_incoming>().circuit;
  REQUIRE(b.client->accept_circuit(cid));
  net.flush(b);
  REQUIRE(a.one<circuit_opened>().circuit == cid);
  net.advance_by_steps(59'000, 1'000);
  REQUIRE(a.client->circuit_send(cid, "still here"));
  net.flush(a);
  CHECK(b.take<circuit_data>().size() == 1);
  net.advance(1'000);
  for (auto* e : {&a, &b}) {
    auto c = e->one<circuit_closed>();
    CHECK(c.code == code::duration_limit);
    CHECK(c.reason.find("circuit_max_duration_ms") != std::string::npos);
  }
  CHECK(net.relay.metrics().circuits_open == 0);
}

TEST_CASE("circuits per identity and relay-wide are capped", "[relay]") {
  relay_limits lim;
  lim.max_circuits_per_identity = 2;
  lim.max_circuits = 3;
  network net(lim);
  auto& a = net.connect(person(1), ip_of(1));
  std::vector<endpoint*> peers;
  for (std::uint64_t i = 2; i <= 6; ++i)
    peers.push_back(&net.connect(person(i), ip_of(i)));
  REQUIRE(a.client->open_circuit(person(2).pub()));
  REQUIRE(a.client->open_circuit(person(3).pub()));
  REQUIRE(a.client->open_circuit(person(4).pub()));
  net.flush(a);
  auto r = a.one<refused>();
  CHECK(r.code == code::limit_reached);
  CHECK(r.detail.find("max_circuits_per_identity") != std::string::npos);
  CHECK(peers[0]->take<circuit_incoming>().size() == 1);
  CHECK(peers[1]->take<circuit_incoming>().size() == 1);
  CHECK(peers[2]->take<circuit_incoming>().empty());
  // Relay-wide: one more fits (3), the next does not.
  REQUIRE(peers[2]->client->open_circuit(person(5).pub()));
  REQUIRE(peers[2]->client->open_circuit(person(6).pub()));
  net.flush(*peers[2]);
  r = peers[2]->one<refused>();
  CHECK(r.code == code::limit_reached);
  CHECK(r.detail.find("max_circuits") != std::string::npos);
  CHECK(net.relay.metrics().circuits_pending == 3);
}

// --- restart, metrics, determinism ---------------------------------------------------------

TEST_CASE("a restart spreads reconnect delays over [0, spread], the same for the same seed",
          "[relay]") {
  auto run = [](kith::protocol::key_seed relay_seed) {
    network net(relay_limits{}, relay_seed);
    std::vector<endpoint*> es;
    for (std::uint64_t i = 0; i < 8; ++i)
      es.push_back(&net.connect(person(10 + i), ip_of(i)));
    net.restart(30'000);
    std::vector<std::uint64_t> delays;
    for (auto* e : es)
      delays.push_back(e->one<reconnect>().after_ms);
    // One arriving during the restart is told too.
    auto& late = net.connect(person(30), ip_of(30));
    delays.push_back(late.one<reconnect>().after_ms);
    CHECK(late.open());
    return delays;
  };
  auto d1 = run(seed_of(7, 0xee));
  auto d2 = run(seed_of(7, 0xee));
  auto d3 = run(seed_of(8, 0xee));
  CHECK(d1 == d2);
  CHECK(d1 != d3);
  for (auto d : d1)
    CHECK(d <= 30'000);
  std::set<std::uint64_t> distinct(d1.begin(), d1.end());
  CHECK(distinct.size() == d1.size());
}

TEST_CASE("shutdown says goodbye to every client and empties the relay", "[relay]") {
  network net;
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  REQUIRE(a.client->join("t"));
  net.flush(a);
  net.shutdown("maintenance");
  for (auto* e : {&a, &b}) {
    auto bye = e->one<goodbye>();
    CHECK(bye.code == code::shutdown);
    CHECK(bye.reason == "maintenance");
    CHECK(e->relay_closed);
  }
  CHECK(net.relay.metrics().connections == 0);
  CHECK(net.relay.metrics().topics == 0);
}

TEST_CASE("prometheus_text renders every metric with HELP, TYPE and the right values",
          "[relay]") {
  network net;
  auto& a = net.connect(person(1), ip_of(1));
  auto& b = net.connect(person(2), ip_of(2));
  REQUIRE(a.client->announce({"tcp://a"}, 60'000, net.now));
  REQUIRE(a.client->join("t"));
  REQUIRE(b.client->watch("t"));
  REQUIRE(b.client->lookup(person(1).pub()));
  REQUIRE(b.client->lookup(person(1).pub()));
  REQUIRE(b.client->open_circuit(person(7).pub())); // not connected
  net.flush(a);
  net.flush(b);
  auto& raw = net.connect_raw(ip_of(3));
  net.send_raw(raw, std::string("\x00\x00\x00\x01x", 5));

  const auto text = net.relay.prometheus_text();
  INFO(text);
  for (const char* line : {
           "# HELP kith_relay_connections Open connections, handshaking or established.",
           "# TYPE kith_relay_connections gauge",
           "kith_relay_connections 2",
           "kith_relay_registrations 2",
           "kith_relay_records 1",
           "kith_relay_topics 1",
           "kith_relay_memberships 1",
           "kith_relay_watches 1",
           "kith_relay_circuits_open 0",
           "# TYPE kith_relay_connections_accepted_total counter",
           "kith_relay_connections_accepted_total 3",
           "kith_relay_handshakes_total 2",
           "kith_relay_handshake_failures_total 1",
           "# TYPE kith_relay_requests_total counter",
           "kith_relay_requests_total{kind=\"lookup\"} 2",
           "kith_relay_requests_total{kind=\"announce\"} 1",
           "kith_relay_requests_total{kind=\"circuit_data\"} 0",
           "# TYPE kith_relay_rejections_total counter",
           "kith_relay_rejections_total{reason=\"not_connected\"} 1",
           "kith_relay_rejections_total{reason=\"rate_limited\"} 0",
           "kith_relay_closes_total{reason=\"handshake_failed\"} 1",
           "kith_relay_circuit_ends_total{reason=\"not_connected\"} 0",
           "kith_relay_relayed_bytes_total 0",
       })
    CHECK(has_line(text, line));
  // Every sample line belongs to a family declared with HELP and TYPE.
  std::set<std::string> typed;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    auto line = text.substr(at, end - at);
    at = end + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      typed.insert(line.substr(7, line.find(' ', 7) - 7));
    } else if (line[0] != '#') {
      CHECK(line.rfind("kith_relay_", 0) == 0);
      auto name = line.substr(0, line.find_first_of("{ "));
      CHECK(typed.count(name) == 1);
    }
  }
}

TEST_CASE("the same seeds give the same bytes on the wire, other seeds other bytes", "[relay]") {
  auto run = [](kith::protocol::key_seed relay_seed, std::uint64_t client_seeds) {
    network net(relay_limits{}, relay_seed, client_seeds);
    auto& a = net.connect(person(1), ip_of(1));
    auto& b = net.connect(person(2), ip_of(2));
    REQUIRE(a.client->announce({"tcp://a"}, 60'000, net.now));
    REQUIRE(a.client->join("t"));
    REQUIRE(b.client->watch("t"));
    REQUIRE(b.client->lookup(person(1).pub()));
    REQUIRE(b.client->open_circuit(person(1).pub()));
    net.flush(a);
    net.flush(b);
    const auto cid = a.one<circuit_incoming>().circuit;
    REQUIRE(a.client->accept_circuit(cid));
    net.flush(a);
    REQUIRE(b.client->circuit_send(cid, "hello"));
    net.flush(b);
    net.advance_by_steps(120'000, 10'000);
    net.restart(5'000);
    std::string all;
    for (const auto& act : net.trace) {
      all += std::to_string(static_cast<int>(act.what)) + ':' + std::to_string(act.conn) + ':';
      all += act.bytes + act.reason + '\n';
    }
    return kith::protocol::to_hex(std::string_view(
        reinterpret_cast<const char*>(kith::protocol::hash_of(all).data()), 32));
  };
  const auto h1 = run(seed_of(7, 0xee), 1000);
  CHECK(h1 == run(seed_of(7, 0xee), 1000));
  CHECK(h1 != run(seed_of(8, 0xee), 1000));
  CHECK(h1 != run(seed_of(7, 0xee), 2000));
}

TEST_CASE("random traffic from many clients keeps the relay's books consistent", "[relay]") {
  const auto seed = kith::test::base_seed() ^ 0x7472616666ull;
  kith::test::rng g(seed);
  std::cout << "[relay] random traffic seed " << seed << "\n";
  CAPTURE(seed);
  relay_limits lim;
  lim.max_topics_per_connection = 3;
  lim.max_circuits_per_identity = 3;
  lim.circuit_max_bytes = 5'000;
  lim.circuit_max_duration_ms = 20'000;
  network net(lim);
  const std::vector<std::string> topics = {"a", "b", "c", "d"};
  std::vector<endpoint*> es;
  std::map<endpoint*, std::vector<circuit_id>> open_circuits;
  std::set<circuit_id> closed_circuits;
  auto person_of = [](std::size_t i) { return person(300 + i % 12); }; // reconnects replace
  for (int step = 0; step < kith::test::cases(3000); ++step) {
    CAPTURE(step);
    const auto what = kith::test::pick(g, 0, 11);
    if (es.empty() || what == 0) {
      es.push_back(&net.connect(person_of(es.size()), ip_of(kith::test::pick(g, 0, 3))));
      continue;
    }
    auto& e = *es[kith::test::pick(g, 0, es.size() - 1)];
    if (!e.open() || !e.client->established())
      continue;
    auto& c = *e.client;
    // Answer what arrived since this endpoint's last turn.
    for (auto& in : e.take<circuit_incoming>()) {
      if (kith::test::chance(g, 0.8)) {
        if (c.accept_circuit(in.circuit))
          open_circuits[&e].push_back(in.circuit);
      } else {
        (void)c.refuse_circuit(in.circuit, "no");
      }
    }
    for (auto& o : e.take<circuit_opened>())
      open_circuits[&e].push_back(o.circuit);
    for (auto& k : e.take<circuit_closed>())
      closed_circuits.insert(k.circuit);
    e.events.clear();
    const auto& t = topics[kith::test::pick(g, 0, topics.size() - 1)];
    const auto other = person_of(kith::test::pick(g, 0, 11)).pub();
    switch (what) {
      case 1: (void)c.announce({"tcp://x"}, kith::test::pick(g, 1'000, 30'000), net.now); break;
      case 2: (void)c.lookup(other); break;
      case 3: (void)c.join(t); break;
      case 4: (void)c.leave(t); break;
      case 5: (void)c.watch(t); break;
      case 6: (void)c.members(t); break;
      case 7: (void)c.open_circuit(other); break;
      case 8: {
        auto& mine = open_circuits[&e];
        if (!mine.empty()) {
          const auto k = mine[kith::test::pick(g, 0, mine.size() - 1)];
          if (kith::test::chance(g, 0.1))
            (void)c.close_circuit(k, "bye");
          else
            (void)c.circuit_send(k, std::string(kith::test::pick(g, 1, 3'000), 'd'));
        }
        break;
      }
      case 9: net.advance(kith::test::pick(g, 1, 5'000)); break;
      case 10:
        if (kith::test::chance(g, 0.2))
          net.disconnect(e);
        break;
      default: (void)c.unwatch(t); break;
    }
    net.flush(e);
  }
  const auto& m = net.relay.metrics();
  CHECK(m.connections <= es.size());
  CHECK(m.registrations <= 12);
  std::cout << "[relay] random traffic: " << es.size() << " connections made, "
            << m.circuits_opened << " circuits opened, " << closed_circuits.size()
            << " seen closed, " << m.relayed_bytes << " bytes relayed, " << m.records_expired
            << " records expired\n";
  CHECK(m.circuits_opened > 0);
  CHECK(m.relayed_bytes > 0);
}

TEST_CASE("a handshake that completes and fails in one read is dropped, not welcomed", "[relay]") {
  // The client's last handshake message and an impossible frame length in
  // one read: the channel is established and failed at once. The relay must
  // count a failed handshake, not try to welcome a closed channel.
  network net;
  const auto who = person(5);
  kith::protocol::channel ch(who, kith::protocol::channel::role::initiator, seed_of(5, 0x11), net.now,
                       net.relay.id());
  const conn_id c = 4242;
  auto actions = net.relay.accepted(c, "10.1.1.1", net.now);
  auto acts = net.relay.received(c, ch.start(), net.now);
  std::string reply;
  for (auto& a : acts)
    if (a.what == relay_action::kind::send)
      reply += a.bytes;
  REQUIRE_FALSE(reply.empty());
  auto out = ch.receive(reply);
  REQUIRE_FALSE(out.error);
  REQUIRE_FALSE(out.to_send.empty()); // the initiator's last handshake message
  acts = net.relay.received(c, out.to_send + std::string("\xff\xff\xff\xff", 4), net.now);
  bool closed = false;
  for (auto& a : acts)
    closed = closed || (a.what == relay_action::kind::close && a.conn == c);
  CHECK(closed);
  CHECK(net.relay.metrics().handshakes_failed == 1);
  CHECK(net.relay.metrics().registrations == 0);
  CHECK(net.relay.metrics().connections == 0);
  (void)actions;
}

TEST_CASE("circuits per address are capped across the identities behind it", "[relay]") {
  relay_limits lim;
  lim.max_circuits_per_ip = 2;
  network net(lim);
  // Three identities behind one address, each asking for one circuit.
  auto& a1 = net.connect(person(1), "198.51.100.9");
  auto& a2 = net.connect(person(2), "198.51.100.9");
  auto& a3 = net.connect(person(3), "198.51.100.9");
  auto& t = net.connect(person(4), ip_of(4));
  for (auto* e : {&a1, &a2})
    REQUIRE(e->client->open_circuit(person(4).pub()));
  net.flush(a1);
  net.flush(a2);
  REQUIRE(a3.client->open_circuit(person(4).pub()));
  net.flush(a3);
  auto r = a3.one<refused>();
  CHECK(r.code == code::limit_reached);
  CHECK(r.detail.find("max_circuits_per_ip") != std::string::npos);
  CHECK(t.take<circuit_incoming>().size() == 2);
  net.relay.check_invariant();
  // When one ends, the address may open another.
  net.disconnect(a1);
  REQUIRE(a3.client->open_circuit(person(4).pub()));
  net.flush(a3);
  CHECK(t.take<circuit_incoming>().size() == 1);
  net.relay.check_invariant();
}
