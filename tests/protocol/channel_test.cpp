#include "kith/protocol/channel.hpp"
#include "kith/protocol/tickets.hpp"

#include "support/seed.hpp"

#include <catch2/catch.hpp>
#include <sodium.h>

#include <functional>
#include <random>

using namespace kith::protocol;

namespace {

constexpr std::uint64_t t0 = 5'000;

key_seed seed_of(std::uint64_t n) {
  key_seed s{};
  for (int i = 0; i < 8; ++i)
    s[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  s[31] = 0xc4; // keeps these seeds apart from identity_test's
  return s;
}

const identity& alice() {
  static const identity id = identity::from_seed(seed_of(1));
  return id;
}
const identity& bob() {
  static const identity id = identity::from_seed(seed_of(2));
  return id;
}
const identity& mallory() {
  static const identity id = identity::from_seed(seed_of(3));
  return id;
}

channel initiator(std::uint64_t eph = 101, std::optional<public_key> expect = std::nullopt,
                  channel_limits limits = {}) {
  return channel(alice(), channel::role::initiator, seed_of(eph), t0, expect, limits);
}
channel responder(std::uint64_t eph = 202, channel_limits limits = {}) {
  return channel(bob(), channel::role::responder, seed_of(eph), t0, std::nullopt, limits);
}

struct transcript {
  std::string m1, m2, m3;
};

/// Runs the three handshake messages between a and b, requiring success.
transcript handshake(channel& a, channel& b) {
  transcript t;
  t.m1 = a.start();
  auto o1 = b.receive(t.m1);
  REQUIRE_FALSE(o1.error);
  REQUIRE_FALSE(o1.established);
  t.m2 = o1.to_send;
  auto o2 = a.receive(t.m2);
  REQUIRE_FALSE(o2.error);
  REQUIRE(o2.established);
  t.m3 = o2.to_send;
  auto o3 = b.receive(t.m3);
  REQUIRE_FALSE(o3.error);
  REQUIRE(o3.established);
  REQUIRE(o3.to_send.empty());
  return t;
}

struct attempt {
  bool initiator_established = false;
  bool responder_established = false;
  std::optional<std::string> error;
};

/// The handshake with `mutate(message number, wire bytes)` applied to each
/// message on its way; stops at the first error.
attempt handshake_through(channel& a, channel& b,
                          const std::function<void(int, std::string&)>& mutate) {
  attempt r;
  std::string m1 = a.start();
  mutate(1, m1);
  auto o1 = b.receive(m1);
  if (o1.error) {
    r.error = o1.error;
    return r;
  }
  std::string m2 = o1.to_send;
  mutate(2, m2);
  auto o2 = a.receive(m2);
  r.initiator_established = o2.established;
  if (o2.error) {
    r.error = o2.error;
    return r;
  }
  std::string m3 = o2.to_send;
  mutate(3, m3);
  auto o3 = b.receive(m3);
  r.responder_established = o3.established;
  r.error = o3.error;
  return r;
}

std::string bytes_of(std::size_t n, std::uint8_t salt) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>((i * 31 + salt) & 0xff);
  return s;
}

std::string prefix_of(std::uint32_t n) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8)
    s.push_back(static_cast<char>((n >> shift) & 0xff));
  return s;
}

std::string framed(std::string_view body) {
  return prefix_of(static_cast<std::uint32_t>(body.size())) + std::string(body);
}

std::string unframed(std::string_view wire) {
  REQUIRE(wire.size() >= 4);
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i)
    n = (n << 8) | static_cast<std::uint8_t>(wire[static_cast<std::size_t>(i)]);
  REQUIRE(wire.size() == 4 + n);
  return std::string(wire.substr(4));
}

/// An independent implementation of one end's key schedule and AEAD, as a
/// man in the middle (or a misbehaving peer) would write it. Doubles as a
/// check that the wire format is the one docs/secure-channel.md describes.
struct raw_end {
  std::array<unsigned char, crypto_kx_PUBLICKEYBYTES> pk{};
  std::array<unsigned char, crypto_kx_SECRETKEYBYTES> sk{};
  std::array<unsigned char, crypto_kx_SESSIONKEYBYTES> rx{}, tx{};
  std::uint64_t rx_n = 0, tx_n = 0;

  explicit raw_end(std::uint64_t seed) {
    auto s = seed_of(seed);
    crypto_kx_seed_keypair(pk.data(), sk.data(), s.data());
  }
  [[nodiscard]] std::string pub() const { return {reinterpret_cast<const char*>(pk.data()), 32}; }
  bool as_client(std::string_view server_pk) {
    return crypto_kx_client_session_keys(rx.data(), tx.data(), pk.data(), sk.data(),
                                         reinterpret_cast<const unsigned char*>(server_pk.data())) == 0;
  }
  bool as_server(std::string_view client_pk) {
    return crypto_kx_server_session_keys(rx.data(), tx.data(), pk.data(), sk.data(),
                                         reinterpret_cast<const unsigned char*>(client_pk.data())) == 0;
  }
  static std::array<unsigned char, 24> nonce(std::uint64_t n) {
    std::array<unsigned char, 24> out{};
    for (int i = 0; i < 8; ++i)
      out[static_cast<std::size_t>(i)] = static_cast<unsigned char>(n >> (8 * i));
    return out;
  }
  std::string seal(std::string_view m) {
    std::string c(m.size() + 16, '\0');
    auto nv = nonce(tx_n++);
    crypto_aead_xchacha20poly1305_ietf_encrypt(
        reinterpret_cast<unsigned char*>(c.data()), nullptr,
        reinterpret_cast<const unsigned char*>(m.data()), m.size(), nullptr, 0, nullptr, nv.data(),
        tx.data());
    return c;
  }
  std::optional<std::string> open(std::string_view c) {
    if (c.size() < 16)
      return std::nullopt;
    std::string m(c.size() - 16, '\0');
    auto nv = nonce(rx_n++);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            reinterpret_cast<unsigned char*>(m.data()), nullptr, nullptr,
            reinterpret_cast<const unsigned char*>(c.data()), c.size(), nullptr, 0, nv.data(),
            rx.data()) != 0)
      return std::nullopt;
    return m;
  }
};

std::string msg1_with(std::string_view eph) {
  return framed(std::string("kith\x01", 5) + std::string(eph));
}

std::string sig_over(const identity& id, const hash256& h) {
  return std::string(id.sign({reinterpret_cast<const char*>(h.data()), h.size()}).view());
}

} // namespace

TEST_CASE("a handshake completes both ways and frames flow in both directions", "[channel]") {
  auto a = initiator(101, bob().pub());
  auto b = responder();
  CHECK(a.state() == channel_state::handshaking);
  CHECK(b.start().empty());
  auto t = handshake(a, b);
  CHECK(t.m1.size() == 4 + 37);
  CHECK(t.m2.size() == 4 + 144);
  CHECK(t.m3.size() == 4 + 112);
  CHECK(a.state() == channel_state::established);
  CHECK(b.state() == channel_state::established);
  REQUIRE(a.peer());
  REQUIRE(b.peer());
  CHECK(*a.peer() == bob().pub());
  CHECK(*b.peer() == alice().pub());
  CHECK(a.close_reason().empty());

  std::vector<std::string> to_b = {"hello bob", "", bytes_of(70'000, 7), "again"};
  std::vector<std::string> to_a = {"hello alice", bytes_of(3, 1), ""};
  std::string wire_ab, wire_ba;
  for (auto& f : to_b) {
    auto s = a.seal(f);
    REQUIRE(s);
    CHECK(s->size() == 4 + f.size() + 16);
    wire_ab += *s;
  }
  for (auto& f : to_a) {
    auto s = b.seal(f);
    REQUIRE(s);
    wire_ba += *s;
  }
  auto ob = b.receive(wire_ab);
  auto oa = a.receive(wire_ba);
  CHECK_FALSE(ob.error);
  CHECK_FALSE(oa.error);
  CHECK(ob.frames == to_b);
  CHECK(oa.frames == to_a);
  CHECK_FALSE(ob.established); // only the call that completes the handshake says so

  CHECK(a.bytes_out() == b.bytes_in());
  CHECK(b.bytes_out() == a.bytes_in());
  CHECK(a.bytes_out() == t.m1.size() + t.m3.size() + wire_ab.size());
  CHECK(b.bytes_out() == t.m2.size() + wire_ba.size());
}

TEST_CASE("frames the initiator seals with msg3 arrive in the same call that establishes",
          "[channel]") {
  auto a = initiator();
  auto b = responder();
  auto o1 = b.receive(a.start());
  auto o2 = a.receive(o1.to_send);
  REQUIRE(o2.established);
  auto f = a.seal("early");
  REQUIRE(f);
  auto o3 = b.receive(o2.to_send + *f);
  CHECK_FALSE(o3.error);
  CHECK(o3.established);
  CHECK(o3.frames == std::vector<std::string>{"early"});
}

TEST_CASE("the handshake and frames survive delivery one byte at a time", "[channel]") {
  auto a = initiator();
  auto b = responder();

  // Feeds bytes one at a time; every call but the last must be silent.
  auto trickle = [](channel& to, const std::string& bytes) {
    channel_output last;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      auto o = to.receive(std::string_view(bytes).substr(i, 1));
      REQUIRE_FALSE(o.error);
      if (i + 1 < bytes.size()) {
        CHECK(o.to_send.empty());
        CHECK(o.frames.empty());
        CHECK_FALSE(o.established);
      } else {
        last = std::move(o);
      }
    }
    return last;
  };

  auto o1 = trickle(b, a.start());
  REQUIRE_FALSE(o1.to_send.empty());
  auto o2 = trickle(a, o1.to_send);
  REQUIRE(o2.established);
  auto o3 = trickle(b, o2.to_send);
  REQUIRE(o3.established);
  auto f1 = a.seal("one");
  auto o4 = trickle(b, *f1);
  CHECK(o4.frames == std::vector<std::string>{"one"});
  auto f2 = b.seal("");
  auto o5 = trickle(a, *f2);
  CHECK(o5.frames == std::vector<std::string>{""});
}

TEST_CASE("random chunking of the stream delivers the same frames", "[channel]") {
  kith::test::rng g(kith::test::base_seed());
  int n = kith::test::cases(30);
  for (int c = 0; c < n; ++c) {
    std::uint64_t case_seed = g();
    CAPTURE(case_seed);
    kith::test::rng r(case_seed);
    auto a = initiator(1000 + r());
    auto b = responder(2000 + r());
    std::string m1 = a.start();
    auto deliver = [&](channel& to, const std::string& bytes) {
      channel_output all;
      std::size_t i = 0;
      while (i < bytes.size()) {
        std::size_t len = kith::test::pick(r, 1, std::min<std::size_t>(bytes.size() - i, 700));
        auto o = to.receive(std::string_view(bytes).substr(i, len));
        REQUIRE_FALSE(o.error);
        all.to_send += o.to_send;
        all.established = all.established || o.established;
        for (auto& f : o.frames)
          all.frames.push_back(std::move(f));
        i += len;
      }
      return all;
    };
    auto o1 = deliver(b, m1);
    auto o2 = deliver(a, o1.to_send);
    REQUIRE(o2.established);
    std::vector<std::string> sent;
    std::string wire = o2.to_send;
    int frames = static_cast<int>(kith::test::pick(r, 0, 12));
    for (int k = 0; k < frames; ++k) {
      sent.push_back(bytes_of(kith::test::pick(r, 0, 3000), static_cast<std::uint8_t>(k)));
      wire += *a.seal(sent.back());
    }
    auto o3 = deliver(b, wire);
    CHECK(o3.established);
    CHECK(o3.frames == sent);
    CHECK(b.bytes_in() == a.bytes_out());
  }
}

TEST_CASE("an initiator that expects another identity rejects the responder", "[channel]") {
  auto a = initiator(101, mallory().pub());
  auto b = responder();
  auto o1 = b.receive(a.start());
  auto o2 = a.receive(o1.to_send);
  REQUIRE(o2.error);
  CHECK(*o2.error ==
        "responder is " + to_text(bob().pub()) + ", expected " + to_text(mallory().pub()));
  CHECK_FALSE(o2.established);
  CHECK(o2.to_send.empty()); // the initiator's identity is not revealed
  CHECK(a.state() == channel_state::closed);
  CHECK(a.close_reason() == *o2.error);
  CHECK_FALSE(a.peer());
}

TEST_CASE("a tampered byte in any handshake message fails the handshake", "[channel]") {
  const auto reference = [] {
    auto a = initiator();
    auto b = responder();
    return handshake(a, b);
  }();
  const std::size_t sizes[] = {reference.m1.size(), reference.m2.size(), reference.m3.size()};
  for (int which = 1; which <= 3; ++which) {
    for (std::size_t pos = 0; pos < sizes[which - 1]; ++pos) {
      CAPTURE(which, pos);
      auto a = initiator();
      auto b = responder();
      auto r = handshake_through(a, b, [&](int k, std::string& m) {
        if (k == which)
          m[pos] = static_cast<char>(m[pos] ^ 0x01);
      });
      CHECK(r.error);
      CHECK_FALSE(r.responder_established);
      CHECK(b.state() != channel_state::established);
      if (which <= 2) {
        // The initiator never authenticates a tampered or misdirected msg2.
        CHECK_FALSE(r.initiator_established);
        CHECK(a.state() != channel_state::established);
      }
    }
  }
}

TEST_CASE("a tampered byte in a frame is rejected and closes the channel", "[channel]") {
  std::string sample = [] {
    auto a = initiator();
    auto b = responder();
    handshake(a, b);
    return *a.seal("a frame worth protecting");
  }();
  for (std::size_t pos = 0; pos < sample.size(); ++pos) {
    CAPTURE(pos);
    auto a = initiator();
    auto b = responder();
    handshake(a, b);
    std::string f = *a.seal("a frame worth protecting");
    REQUIRE(f == sample);
    f[pos] = static_cast<char>(f[pos] ^ 0x01);
    auto o = b.receive(f);
    CHECK(o.frames.empty());
    if (pos >= 4) {
      REQUIRE(o.error);
      CHECK(*o.error == "frame failed authentication (replayed, reordered or altered)");
      CHECK(b.state() == channel_state::closed);
    } else {
      // A changed length prefix either fails at once or leaves the
      // receiver waiting for bytes that never come; it never delivers.
      CHECK((o.error || b.state() == channel_state::established));
    }
  }
}

TEST_CASE("a replayed frame is rejected", "[channel]") {
  auto a = initiator();
  auto b = responder();
  handshake(a, b);
  auto f = *a.seal("pay 10");
  CHECK(b.receive(f).frames == std::vector<std::string>{"pay 10"});
  auto o = b.receive(f);
  CHECK(o.frames.empty());
  REQUIRE(o.error);
  CHECK(o.error->find("replayed") != std::string::npos);
  CHECK(b.state() == channel_state::closed);
}

TEST_CASE("reordered or dropped frames are rejected", "[channel]") {
  SECTION("reordered") {
    auto a = initiator();
    auto b = responder();
    handshake(a, b);
    auto f1 = *a.seal("first");
    auto f2 = *a.seal("second");
    auto o = b.receive(f2 + f1);
    CHECK(o.frames.empty());
    CHECK(o.error);
  }
  SECTION("dropped") {
    auto a = initiator();
    auto b = responder();
    handshake(a, b);
    (void)a.seal("lost");
    auto o = b.receive(*a.seal("after the loss"));
    CHECK(o.frames.empty());
    CHECK(o.error);
  }
  SECTION("a frame reflected back to its sender") {
    auto a = initiator();
    auto b = responder();
    handshake(a, b);
    auto o = a.receive(*a.seal("echo"));
    CHECK(o.frames.empty());
    CHECK(o.error);
  }
  SECTION("good frames before a bad one in the same chunk are still delivered") {
    auto a = initiator();
    auto b = responder();
    handshake(a, b);
    auto f1 = *a.seal("first");
    auto f2 = *a.seal("second");
    auto o = b.receive(f1 + f1 + f2);
    CHECK(o.frames == std::vector<std::string>{"first"});
    CHECK(o.error);
  }
}

TEST_CASE("a truncated stream waits silently and then the handshake times out", "[channel]") {
  channel_limits limits;
  limits.handshake_timeout_ms = 3'000;
  auto a = channel(alice(), channel::role::initiator, seed_of(101), t0, std::nullopt, limits);
  auto b = responder(202, limits);
  std::string m1 = a.start();
  auto o = b.receive(std::string_view(m1).substr(0, m1.size() - 1));
  CHECK_FALSE(o.error);
  CHECK(o.to_send.empty());
  CHECK(b.state() == channel_state::handshaking);
  CHECK_FALSE(b.tick(t0 + 2'999).error);
  CHECK_FALSE(a.tick(t0 + 2'999).error);
  auto tb = b.tick(t0 + 3'000);
  REQUIRE(tb.error);
  CHECK(tb.error->rfind("handshake timeout", 0) == 0);
  CHECK(b.state() == channel_state::closed);
  CHECK(a.tick(t0 + 10'000).error);
  // The rest of msg1 arriving late changes nothing.
  auto late = b.receive(m1.substr(m1.size() - 1));
  CHECK_FALSE(late.error);
  CHECK(late.to_send.empty());
  CHECK(b.state() == channel_state::closed);
  CHECK(b.close_reason().rfind("handshake timeout", 0) == 0);
  // A timeout is reported once.
  CHECK_FALSE(b.tick(t0 + 20'000).error);
}

TEST_CASE("an established channel does not time out", "[channel]") {
  auto a = initiator();
  auto b = responder();
  handshake(a, b);
  CHECK_FALSE(a.tick(t0 + 1'000'000).error);
  CHECK_FALSE(b.tick(t0 + 1'000'000).error);
  CHECK(a.state() == channel_state::established);
}

TEST_CASE("an oversized length prefix is rejected without buffering", "[channel]") {
  SECTION("on an established channel, at the fourth byte") {
    auto a = initiator();
    auto b = responder();
    handshake(a, b);
    std::uint64_t before = b.bytes_in();
    std::string p = prefix_of(99'999'999);
    for (int i = 0; i < 3; ++i)
      CHECK_FALSE(b.receive(p.substr(static_cast<std::size_t>(i), 1)).error);
    auto o = b.receive(p.substr(3, 1) + std::string(1000, 'x'));
    REQUIRE(o.error);
    CHECK(*o.error == "frame of 99999999 bytes exceeds the 16777232-byte limit");
    CHECK(b.bytes_in() == before + 4); // nothing after the prefix was read
    CHECK(b.state() == channel_state::closed);
    auto after = b.receive(std::string(5000, 'y'));
    CHECK_FALSE(after.error);
    CHECK(after.frames.empty());
    CHECK(b.bytes_in() == before + 4);
  }
  SECTION("during the handshake") {
    auto b = responder();
    auto o = b.receive(prefix_of(0xffffffffu));
    REQUIRE(o.error);
    CHECK(o.error->find("handshake message 1 of 4294967295 bytes") != std::string::npos);
    CHECK(b.state() == channel_state::closed);
  }
  SECTION("a prefix larger than the receive buffer") {
    channel_limits limits;
    limits.max_frame_bytes = 1000;
    limits.max_buffered_bytes = 500;
    auto a = initiator();
    auto b = responder(202, limits);
    handshake(a, b);
    auto o = b.receive(*a.seal(bytes_of(600, 0)));
    REQUIRE(o.error);
    CHECK(o.error->find("receive buffer") != std::string::npos);
  }
}

TEST_CASE("garbage bytes are rejected", "[channel]") {
  kith::test::rng g(kith::test::base_seed() ^ 0x9a4b);
  auto garbage = [&](std::size_t n) {
    std::string s(n, '\0');
    for (auto& ch : s)
      ch = static_cast<char>(kith::test::pick(g, 0, 255));
    return s;
  };
  for (int c = 0; c < kith::test::cases(100); ++c) {
    std::string junk = garbage(kith::test::pick(g, 4, 300));
    auto b = responder();
    CHECK(b.receive(junk).error);
    auto a = initiator();
    (void)a.start();
    CHECK(a.receive(junk).error);
    // On an established channel: a plausible length, random contents.
    auto a2 = initiator();
    auto b2 = responder();
    handshake(a2, b2);
    std::string body = garbage(kith::test::pick(g, 16, 300));
    auto o = b2.receive(framed(body));
    CHECK(o.frames.empty());
    CHECK(o.error);
  }
  SECTION("the right length with the wrong magic") {
    auto b = responder();
    auto o = b.receive(framed(std::string("http\x01", 5) + std::string(32, 'k')));
    REQUIRE(o.error);
    CHECK(o.error->find("kith") != std::string::npos);
  }
  SECTION("another protocol version") {
    auto b = responder();
    auto o = b.receive(framed(std::string("kith\x02", 5) + std::string(32, 'k')));
    REQUIRE(o.error);
    CHECK(*o.error == "peer speaks secure-channel version 2; this node speaks version 1");
  }
  SECTION("a low-order ephemeral key") {
    auto b = responder();
    auto o = b.receive(msg1_with(std::string(32, '\0')));
    REQUIRE(o.error);
    CHECK(o.error->find("low-order") != std::string::npos);
    CHECK(o.to_send.empty());
  }
  SECTION("a frame shorter than its tag") {
    auto a = initiator();
    auto b = responder();
    handshake(a, b);
    auto o = b.receive(framed("short"));
    REQUIRE(o.error);
    CHECK(o.error->find("shorter than") != std::string::npos);
  }
}

TEST_CASE("a man in the middle who substitutes its own ephemeral keys fails", "[channel]") {
  SECTION("re-sealing the responder's signed proof under the attacker's ephemeral") {
    auto a = initiator(101, bob().pub());
    auto b = responder();
    std::string m1 = a.start();
    // Mallory keeps Alice's msg1 and opens her own session to Bob.
    raw_end to_bob(901);
    auto ob = b.receive(msg1_with(to_bob.pub()));
    REQUIRE_FALSE(ob.error);
    std::string m2 = unframed(ob.to_send);
    REQUIRE(to_bob.as_client(m2.substr(0, 32)));
    auto proof = to_bob.open(m2.substr(32));
    REQUIRE(proof); // Mallory can read Bob's identity and signature...
    CHECK(proof->substr(0, 32) == std::string(bob().pub().view()));
    // ...and presents them to Alice under her own ephemeral.
    raw_end to_alice(902);
    REQUIRE(to_alice.as_server(unframed(m1).substr(5)));
    auto oa = a.receive(framed(to_alice.pub() + to_alice.seal(*proof)));
    REQUIRE(oa.error);
    CHECK(oa.error->rfind("bad signature from responder", 0) == 0);
    CHECK_FALSE(oa.established);
    CHECK(oa.to_send.empty());
  }
  SECTION("replacing the initiator's ephemeral and relaying msg2 unchanged") {
    auto a = initiator();
    auto b = responder();
    (void)a.start();
    raw_end m(903);
    auto ob = b.receive(msg1_with(m.pub()));
    auto oa = a.receive(ob.to_send);
    REQUIRE(oa.error);
    CHECK(oa.error->find("handshake message 2 failed authentication") != std::string::npos);
  }
  SECTION("replacing the responder's ephemeral in msg2") {
    auto a = initiator();
    auto b = responder();
    auto ob = b.receive(a.start());
    raw_end m(904);
    std::string m2 = unframed(ob.to_send);
    auto oa = a.receive(framed(m.pub() + m2.substr(32)));
    REQUIRE(oa.error);
    CHECK_FALSE(oa.established);
  }
  SECTION("forwarding the initiator's signature, made for the attacker, to the responder") {
    // Alice dials Mallory (no expected peer), Mallory dials Bob and tries
    // to pass Alice's proof off as her own msg3.
    auto a = initiator();
    raw_end as_server(905);
    std::string eph_a = unframed(a.start()).substr(5);
    REQUIRE(as_server.as_server(eph_a));
    auto h_r = hash_of("kith-hs1/responder", eph_a, as_server.pub());
    auto oa = a.receive(framed(
        as_server.pub() + as_server.seal(std::string(mallory().pub().view()) + sig_over(mallory(), h_r))));
    REQUIRE_FALSE(oa.error);
    REQUIRE(oa.established);
    CHECK(*a.peer() == mallory().pub()); // Alice knows she reached Mallory
    auto alice_proof = as_server.open(unframed(oa.to_send));
    REQUIRE(alice_proof);

    auto b = responder();
    raw_end as_client(906);
    auto ob = b.receive(msg1_with(as_client.pub()));
    std::string m2 = unframed(ob.to_send);
    REQUIRE(as_client.as_client(m2.substr(0, 32)));
    REQUIRE(as_client.open(m2.substr(32)));
    auto o3 = b.receive(framed(as_client.seal(*alice_proof)));
    REQUIRE(o3.error);
    CHECK(*o3.error == "bad signature from initiator " + to_text(alice().pub()));
    CHECK_FALSE(o3.established);
    CHECK_FALSE(b.peer());
  }
}

TEST_CASE("an independent implementation of the wire format interoperates", "[channel]") {
  // Bob's side written out by hand: pins the documented format.
  auto a = initiator(101, bob().pub());
  std::string m1 = unframed(a.start());
  REQUIRE(m1.size() == 37);
  CHECK(m1.substr(0, 5) == std::string("kith\x01", 5));
  raw_end r(907);
  std::string eph_a = m1.substr(5);
  REQUIRE(r.as_server(eph_a));
  auto h_r = hash_of("kith-hs1/responder", eph_a, r.pub());
  auto oa = a.receive(
      framed(r.pub() + r.seal(std::string(bob().pub().view()) + sig_over(bob(), h_r))));
  REQUIRE_FALSE(oa.error);
  REQUIRE(oa.established);
  auto proof = r.open(unframed(oa.to_send));
  REQUIRE(proof);
  REQUIRE(proof->size() == 96);
  CHECK(proof->substr(0, 32) == std::string(alice().pub().view()));
  signature sig;
  std::copy(proof->begin() + 32, proof->end(), reinterpret_cast<char*>(sig.bytes.data()));
  auto h_i = hash_of("kith-hs1/initiator", eph_a + r.pub(), bob().pub().view());
  CHECK(verify(alice().pub(), {reinterpret_cast<const char*>(h_i.data()), 32}, sig));
  // Frames continue each direction's count after its handshake message.
  auto frame = r.open(unframed(*a.seal("counter 1")));
  REQUIRE(frame);
  CHECK(*frame == "counter 1");
  auto back = a.receive(framed(r.seal("from the raw end")));
  CHECK(back.frames == std::vector<std::string>{"from the raw end"});
}

TEST_CASE("the same seeds give identical bytes", "[channel]") {
  auto run = [] {
    auto a = initiator(111);
    auto b = responder(222);
    auto t = handshake(a, b);
    std::string all = t.m1 + t.m2 + t.m3;
    for (int i = 0; i < 5; ++i) {
      all += *a.seal("ping " + std::to_string(i));
      all += *b.seal("pong " + std::to_string(i));
    }
    return all;
  };
  CHECK(run() == run());
}

TEST_CASE("different ephemeral seeds give different session ciphertexts", "[channel]") {
  auto sealed = [](std::uint64_t ea, std::uint64_t eb) {
    auto a = initiator(ea);
    auto b = responder(eb);
    auto t = handshake(a, b);
    return std::make_pair(t, *a.seal("same plaintext") + *b.seal("same plaintext"));
  };
  auto [t1, c1] = sealed(111, 222);
  auto [t2, c2] = sealed(112, 222);
  auto [t3, c3] = sealed(111, 223);
  CHECK(t1.m1 != t2.m1);
  CHECK(t1.m2 != t3.m2);
  CHECK(c1 != c2);
  CHECK(c1 != c3);
  CHECK(c2 != c3);
}

TEST_CASE("seal before the handshake completes returns nothing and closes", "[channel]") {
  SECTION("initiator before any reply") {
    auto a = initiator();
    (void)a.start();
    CHECK_FALSE(a.seal("too early"));
    CHECK(a.state() == channel_state::closed);
    CHECK(a.close_reason().find("before the handshake") != std::string::npos);
  }
  SECTION("responder before msg3") {
    auto a = initiator();
    auto b = responder();
    (void)b.receive(a.start());
    CHECK_FALSE(b.seal("too early"));
    CHECK(b.state() == channel_state::closed);
  }
}

TEST_CASE("max_frame_bytes is enforced on seal and on receive", "[channel]") {
  channel_limits small;
  small.max_frame_bytes = 1000;
  SECTION("on seal") {
    auto a = initiator(101, std::nullopt, small);
    auto b = responder(202, small);
    handshake(a, b);
    auto ok = a.seal(bytes_of(1000, 3));
    REQUIRE(ok);
    CHECK(b.receive(*ok).frames == std::vector<std::string>{bytes_of(1000, 3)});
    CHECK_FALSE(a.seal(bytes_of(1001, 3)));
    CHECK(a.state() == channel_state::closed);
    CHECK(a.close_reason() == "frame of 1001 bytes exceeds the 1000-byte limit");
    CHECK_FALSE(a.seal("anything"));
  }
  SECTION("on receive") {
    channel_limits large;
    large.max_frame_bytes = 2000;
    auto a = initiator(101, std::nullopt, large);
    auto b = responder(202, small);
    handshake(a, b);
    auto o = b.receive(*a.seal(bytes_of(1001, 3)));
    REQUIRE(o.error);
    CHECK(*o.error == "frame of 1017 bytes exceeds the 1016-byte limit");
    CHECK(o.frames.empty());
  }
}

TEST_CASE("a closed channel stays closed and quiet", "[channel]") {
  auto a = initiator();
  auto b = responder();
  handshake(a, b);
  auto first = b.receive(prefix_of(5));
  REQUIRE(first.error);
  std::string reason = b.close_reason();
  auto f = *a.seal("after close");
  auto o = b.receive(f);
  CHECK_FALSE(o.error);
  CHECK(o.frames.empty());
  CHECK(o.to_send.empty());
  CHECK_FALSE(b.seal("x"));
  CHECK_FALSE(b.tick(t0 + 1'000'000).error);
  CHECK(b.close_reason() == reason);
  CHECK(b.state() == channel_state::closed);
}

TEST_CASE("a channel moved mid-handshake carries on", "[channel]") {
  auto a = initiator();
  auto b = responder();
  auto o1 = b.receive(a.start());
  channel moved = std::move(a);
  auto o2 = moved.receive(o1.to_send);
  REQUIRE(o2.established);
  std::vector<channel> held;
  held.push_back(std::move(b));
  auto o3 = held[0].receive(o2.to_send + *moved.seal("still here"));
  CHECK(o3.established);
  CHECK(o3.frames == std::vector<std::string>{"still here"});
}

// ---- resumption (docs/secure-channel.md, "Resumption") ---------------------

namespace {

struct ticket_pair {
  resume_ticket alice_holds, bob_holds;
};

/// A full handshake alice -> bob, and the tickets each end keeps from it.
ticket_pair first_meeting(std::uint64_t eph_a = 301, std::uint64_t eph_b = 302) {
  auto a = initiator(eph_a, bob().pub());
  auto b = responder(eph_b);
  handshake(a, b);
  REQUIRE_FALSE(a.resumed());
  auto ta = a.take_ticket();
  auto tb = b.take_ticket();
  REQUIRE(ta);
  REQUIRE(tb);
  CHECK_FALSE(a.take_ticket()); // given once
  return {*ta, *tb};
}

/// A responder that knows exactly `t` (and forgets it once named).
channel responder_knowing(const resume_ticket& t, std::uint64_t eph = 402) {
  auto b = responder(eph);
  auto held = std::make_shared<std::optional<resume_ticket>>(t);
  b.accept_tickets([held](const resume_ticket::ticket_id& id) {
    std::optional<resume_ticket> r;
    if (*held && (*held)->id == id)
      r.swap(*held);
    return r;
  });
  return b;
}

channel initiator_offering(const resume_ticket& t, std::uint64_t eph = 401) {
  auto a = initiator(eph, bob().pub());
  a.offer_ticket(t);
  return a;
}

const ticket_cache::hash_key test_key{7, 1, 9};

std::string key_view(const std::array<std::uint8_t, 32>& k) {
  return {reinterpret_cast<const char*>(k.data()), k.size()};
}

} // namespace

TEST_CASE("both ends of a handshake derive the same ticket, naming each other", "[channel][resume]") {
  auto [ta, tb] = first_meeting();
  CHECK(ta.id == tb.id);
  CHECK(ta.secret == tb.secret);
  CHECK(ta.peer == bob().pub());
  CHECK(tb.peer == alice().pub());
  auto [ta2, tb2] = first_meeting(303, 304);
  CHECK(ta2.id != ta.id); // fresh ephemerals, fresh ticket
  CHECK(ta2.secret != ta.secret);
}

TEST_CASE("a resumed handshake proves both identities without signatures", "[channel][resume]") {
  auto [ta, tb] = first_meeting();
  auto a = initiator_offering(ta);
  auto b = responder_knowing(tb);
  auto t = handshake(a, b);
  // 37 + ticket id; ephemeral + tag; a tag: no room for an identity or a
  // 64-byte signature anywhere.
  CHECK(unframed(t.m1).size() == 53);
  CHECK(unframed(t.m2).size() == 48);
  CHECK(unframed(t.m3).size() == 16);
  CHECK(a.resumed());
  CHECK(b.resumed());
  CHECK(a.peer() == bob().pub());
  CHECK(b.peer() == alice().pub());
  auto to_b = b.receive(*a.seal("after resumption"));
  CHECK(to_b.frames == std::vector<std::string>{"after resumption"});
  auto to_a = a.receive(*b.seal("and back"));
  CHECK(to_a.frames == std::vector<std::string>{"and back"});
  // The resumed channel issues the next ticket, again the same at both ends.
  auto na = a.take_ticket();
  auto nb = b.take_ticket();
  REQUIRE(na);
  REQUIRE(nb);
  CHECK(na->id == nb->id);
  CHECK(na->secret == nb->secret);
  CHECK(na->id != ta.id);
  CHECK(na->peer == bob().pub());
  CHECK(nb->peer == alice().pub());
  // A full handshake starts a chain (its ticket carries no start); a
  // resumed one carries on the chain of the ticket it used.
  CHECK_FALSE(ta.chain_started_ms);
  CHECK_FALSE(na->chain_started_ms);
  auto dated_a = *na;
  auto dated_b = *nb;
  dated_a.chain_started_ms = 1'234;
  dated_b.chain_started_ms = 1'234;
  auto a2 = initiator_offering(dated_a, 405);
  auto b2 = responder_knowing(dated_b, 406);
  handshake(a2, b2);
  REQUIRE(a2.resumed());
  CHECK(a2.take_ticket()->chain_started_ms == std::optional<std::uint64_t>(1'234));
  CHECK(b2.take_ticket()->chain_started_ms == std::optional<std::uint64_t>(1'234));
}

TEST_CASE("a ticket the responder does not hold gives a full handshake", "[channel][resume]") {
  auto [ta, tb] = first_meeting();
  SECTION("a responder that takes no tickets") {
    auto a = initiator_offering(ta);
    auto b = responder();
    auto t = handshake(a, b);
    CHECK(unframed(t.m1).size() == 53);
    CHECK(unframed(t.m2).size() == 144);
    CHECK(unframed(t.m3).size() == 112);
    CHECK_FALSE(a.resumed());
    CHECK_FALSE(b.resumed());
    CHECK(b.peer() == alice().pub());
  }
  SECTION("a responder that has forgotten it") {
    auto [other_a, other_b] = first_meeting(305, 306);
    auto a = initiator_offering(ta);
    auto b = responder_knowing(other_b);
    auto t = handshake(a, b);
    CHECK(unframed(t.m2).size() == 144);
    CHECK_FALSE(a.resumed());
    CHECK(a.peer() == bob().pub());
    // The full handshake still issues a ticket.
    CHECK(a.take_ticket());
  }
  SECTION("the full answer to an offer still proves the identity dialled") {
    // Mallory, who holds no ticket, answers alice's offer with a full
    // handshake of her own: alice expected bob and refuses.
    auto a = initiator_offering(ta);
    channel m(mallory(), channel::role::responder, seed_of(407), t0);
    auto r = handshake_through(a, m, [](int, std::string&) {});
    REQUIRE(r.error);
    CHECK(*r.error == "responder is " + to_text(mallory().pub()) + ", expected " +
                          to_text(bob().pub()));
    CHECK_FALSE(r.initiator_established);
  }
  SECTION("a resumed answer to an initiator that offered nothing is refused by its size") {
    auto [other_a, other_b] = first_meeting(307, 308);
    auto offering = initiator_offering(other_a, 409);
    auto b = responder_knowing(other_b, 410);
    const std::string m2r = b.receive(offering.start()).to_send;
    REQUIRE(unframed(m2r).size() == 48);
    auto plain = initiator(411, bob().pub());
    (void)plain.start();
    auto o = plain.receive(m2r);
    REQUIRE(o.error);
    CHECK(o.error->find("48 bytes where 144 were expected") != std::string::npos);
  }
  SECTION("an offer for another identity than the one dialled is not made") {
    auto a = initiator(401, mallory().pub());
    a.offer_ticket(ta); // names bob
    CHECK(unframed(a.start()).size() == 37);
  }
}

TEST_CASE("a ticket is used once", "[channel][resume]") {
  auto [ta, tb] = first_meeting();
  ticket_cache cache(16, 60'000, test_key);
  cache.put(tb, t0);
  auto lookup = [&cache](const resume_ticket::ticket_id& id) { return cache.take_id(id, t0); };
  auto a = initiator_offering(ta);
  auto b = responder();
  b.accept_tickets(lookup);
  auto t = handshake(a, b);
  CHECK(b.resumed());
  CHECK(cache.size() == 0);
  // The same opening again (a replay): the ticket is gone, so the responder
  // answers with a full handshake whose proof the replayer cannot make.
  auto b2 = responder(403);
  b2.accept_tickets(lookup);
  auto o = b2.receive(t.m1);
  REQUIRE_FALSE(o.error);
  CHECK(unframed(o.to_send).size() == 144);
}

TEST_CASE("an end without the ticket's secret cannot complete a resumed handshake",
          "[channel][resume]") {
  auto [ta, tb] = first_meeting();
  SECTION("a responder with the id but another secret") {
    resume_ticket forged = tb;
    forged.secret[0] ^= 1;
    auto a = initiator_offering(ta);
    auto b = responder_knowing(forged);
    auto r = handshake_through(a, b, [](int, std::string&) {});
    REQUIRE(r.error);
    CHECK(*r.error == "resumed handshake message 2 failed authentication (the responder does not "
                      "hold the ticket, or the message was altered)");
    CHECK_FALSE(r.initiator_established);
    CHECK(a.state() == channel_state::closed);
  }
  SECTION("an initiator with the id but another secret") {
    resume_ticket forged = ta;
    forged.secret[31] ^= 0x80;
    auto a = initiator_offering(forged);
    auto b = responder_knowing(tb);
    auto m2 = b.receive(a.start()).to_send;
    REQUIRE(unframed(m2).size() == 48);
    // The forger cannot open msg2, so it cannot seal msg3 either: whatever
    // 16 bytes it sends, the responder refuses them.
    auto oa = a.receive(m2);
    REQUIRE(oa.error);
    CHECK(oa.to_send.empty());
    auto ob = b.receive(framed(std::string(16, '\x5a')));
    REQUIRE(ob.error);
    CHECK(*ob.error == "resumed handshake message 3 failed authentication (the initiator does "
                       "not hold the ticket, or the message was altered)");
    CHECK_FALSE(ob.established);
    CHECK_FALSE(b.peer());
  }
}

TEST_CASE("a tampered byte in a resumed handshake never resumes with the wrong end",
          "[channel][resume]") {
  auto [ta, tb] = first_meeting();
  std::size_t sizes[4] = {0, 4 + 53, 4 + 48, 4 + 16};
  for (int msg = 1; msg <= 3; ++msg) {
    for (std::size_t i = 0; i < sizes[msg]; ++i) {
      auto a = initiator_offering(ta);
      auto b = responder_knowing(tb);
      auto r = handshake_through(a, b, [&](int m, std::string& w) {
        if (m == msg && i < w.size())
          w[i] = static_cast<char>(w[i] ^ 0x20);
      });
      INFO("message " << msg << " byte " << i);
      if (msg == 1 && i >= 4 + 37 && !r.error) {
        // A changed ticket id: the responder does not know it and answers
        // with a full handshake, which proves the identities by signature.
        CHECK(r.responder_established);
        CHECK_FALSE(a.resumed());
        CHECK(b.peer() == alice().pub());
      } else {
        CHECK(r.error);
        CHECK_FALSE(r.responder_established);
      }
    }
  }
}

TEST_CASE("an independent implementation of the resumed handshake interoperates",
          "[channel][resume]") {
  // Bob's side of a resumption written out by hand: pins the key schedule.
  const auto tickets = first_meeting();
  const auto& ta = tickets.alice_holds;
  const auto& tb = tickets.bob_holds;
  auto a = initiator_offering(ta);
  std::string m1 = unframed(a.start());
  REQUIRE(m1.size() == 53);
  CHECK(m1.substr(37) == std::string(reinterpret_cast<const char*>(ta.id.data()), 16));
  raw_end r(908);
  REQUIRE(r.as_server(m1.substr(5, 32)));
  auto mix = [&](std::array<unsigned char, 32>& k, std::string_view label) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, tb.secret.data(), tb.secret.size(), 32);
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(label.data()), label.size());
    crypto_generichash_update(&st, k.data(), k.size());
    crypto_generichash_final(&st, k.data(), 32);
  };
  mix(r.rx, "kith-hs1/resume/ir"); // the responder receives on k_IR
  mix(r.tx, "kith-hs1/resume/ri");
  auto oa = a.receive(framed(r.pub() + r.seal("")));
  REQUIRE_FALSE(oa.error);
  REQUIRE(oa.established);
  auto m3 = r.open(unframed(oa.to_send));
  REQUIRE(m3);
  CHECK(m3->empty());
  auto frame = r.open(unframed(*a.seal("counter 1")));
  REQUIRE(frame);
  CHECK(*frame == "counter 1");
  // The next ticket: BLAKE2b-384 of the label and both final keys.
  std::array<unsigned char, 48> next{};
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, next.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>("kith-hs1/ticket"), 15);
  crypto_generichash_update(&st, r.rx.data(), 32);
  crypto_generichash_update(&st, r.tx.data(), 32);
  crypto_generichash_final(&st, next.data(), next.size());
  auto na = a.take_ticket();
  REQUIRE(na);
  CHECK(std::equal(na->id.begin(), na->id.end(), next.begin()));
  CHECK(key_view(na->secret) == std::string(reinterpret_cast<const char*>(next.data()) + 16, 32));
}

TEST_CASE("the ticket cache: newest first, two per peer, a lifetime and a bound",
          "[channel][resume]") {
  // Every case in both forms: the flat list (a node's) and the hash tables.
  const std::size_t small = GENERATE(std::size_t{0}, ticket_cache::default_small_limit);
  INFO("small_limit " << small);
  auto ticket = [](std::uint8_t n, const identity& peer) {
    resume_ticket t;
    t.id.fill(n);
    t.secret.fill(static_cast<std::uint8_t>(n + 100));
    t.peer = peer.pub();
    return t;
  };
  // Ticket n: id and peer from n's bytes (one ticket per peer), secret n.
  auto nth = [](std::uint32_t n) {
    resume_ticket t;
    for (std::size_t i = 0; i < 4; ++i)
      t.id[i] = static_cast<std::uint8_t>(n >> (8 * i));
    for (std::size_t i = 0; i < 4; ++i)
      t.peer.bytes[i] = static_cast<std::uint8_t>(n >> (8 * i));
    t.secret.fill(static_cast<std::uint8_t>(n));
    return t;
  };
  SECTION("take_for gives the newest and uses it up; take_id finds any") {
    ticket_cache c(16, 1'000, test_key, small);
    c.put(ticket(1, bob()), 0);
    c.put(ticket(2, bob()), 0);
    c.put(ticket(3, bob()), 0); // the third: the oldest of bob's goes
    CHECK(c.size() == 2);
    CHECK_FALSE(c.take_id(ticket(1, bob()).id, 0));
    auto t = c.take_for(bob().pub(), 0);
    REQUIRE(t);
    CHECK(t->id == ticket(3, bob()).id);
    CHECK(t->secret == ticket(3, bob()).secret);
    CHECK(c.take_id(ticket(2, bob()).id, 0));
    CHECK_FALSE(c.take_for(bob().pub(), 0));
    CHECK(c.size() == 0);
  }
  SECTION("a ticket past its lifetime is not given, and is dropped") {
    ticket_cache c(16, 1'000, test_key, small);
    c.put(ticket(1, bob()), 0);
    c.put(ticket(2, bob()), 500);
    CHECK_FALSE(c.take_id(ticket(1, bob()).id, 1'000));
    auto t = c.take_for(bob().pub(), 1'499);
    REQUIRE(t);
    CHECK(t->id == ticket(2, bob()).id);
    c.put(ticket(3, alice()), 0);
    CHECK_FALSE(c.take_for(alice().pub(), 2'000));
    CHECK(c.size() == 0);
  }
  SECTION("past the bound the oldest ticket of any peer goes") {
    ticket_cache c(2, 1'000, test_key, small);
    c.put(ticket(1, alice()), 0);
    c.put(ticket(2, bob()), 0);
    c.put(ticket(3, mallory()), 0);
    CHECK(c.size() == 2);
    CHECK_FALSE(c.take_for(alice().pub(), 0));
    CHECK(c.take_for(bob().pub(), 0));
    CHECK(c.take_for(mallory().pub(), 0));
  }
  SECTION("eviction skips tickets already taken and finds the oldest one still held") {
    ticket_cache c(3, 1'000'000, test_key, small);
    // Many tickets put and taken: the cache stays empty between them.
    for (std::uint32_t n = 100; n < 1'100; ++n) {
      c.put(nth(n), 0);
      CHECK(c.take_id(nth(n).id, 0));
    }
    CHECK(c.size() == 0);
    c.put(nth(1), 0);
    c.put(nth(2), 0);
    CHECK(c.take_for(nth(2).peer, 0)); // leaves a stale place in the put order
    c.put(nth(3), 0);
    c.put(nth(4), 0);
    c.put(nth(5), 0); // full: the oldest held (1) goes, not 3
    CHECK(c.size() == 3);
    CHECK_FALSE(c.take_id(nth(1).id, 0));
    for (std::uint32_t n : {3u, 4u, 5u}) {
      auto t = c.take_for(nth(n).peer, 0);
      REQUIRE(t);
      CHECK(t->secret == nth(n).secret);
    }
  }
  SECTION("eviction follows the put order across many fills, takes and compactions (a model)") {
    const std::uint32_t seed = 7;
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    ticket_cache c(8, 1'000'000'000, test_key, small);
    std::vector<std::uint32_t> held; // the model: oldest first
    for (std::uint32_t n = 1; n < 3'000; ++n) {
      if (!held.empty() && rng() % 3 == 0) { // taken: a stale place in the put order
        const auto i = rng() % held.size();
        CHECK(c.take_id(nth(held[i]).id, 0));
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
      }
      c.put(nth(n), 0);
      held.push_back(n);
      if (held.size() > 8)
        held.erase(held.begin()); // the oldest held goes
      REQUIRE(c.size() == held.size());
    }
    for (auto n : held)
      CHECK(c.take_id(nth(n).id, 0));
    CHECK(c.size() == 0);
  }
  SECTION("the lifetime runs from the full handshake that began a ticket's chain") {
    ticket_cache c(16, 1'000, test_key, small);
    auto t = ticket(1, bob());
    t.chain_started_ms = 100; // a ticket issued by a resumed channel
    c.put(t, 5'000);
    auto got = c.take_for(bob().pub(), 1'099);
    REQUIRE(got);
    CHECK(got->chain_started_ms == std::optional<std::uint64_t>(100));
    c.put(t, 5'000);
    CHECK_FALSE(c.take_for(bob().pub(), 1'100));
    // A fresh ticket's chain starts when it is put; a clock read before
    // that (a lookup set up at accept) counts as no time at all.
    c.put(ticket(2, bob()), 500);
    got = c.take_id(ticket(2, bob()).id, 400);
    REQUIRE(got);
    CHECK(got->chain_started_ms == std::optional<std::uint64_t>(500));
  }
  SECTION("a bound of 0 keeps nothing") {
    ticket_cache c(0, 1'000, test_key, small);
    c.put(ticket(1, alice()), 0);
    CHECK(c.size() == 0);
  }
}


TEST_CASE("the ticket cache's flat list answers as its hash tables do, before and after it moves "
          "to them",
          "[channel][resume]") {
  const std::uint32_t seed = 20261125;
  INFO("seed " << seed);
  std::mt19937 rng(seed);
  // Ticket n of peer p (ids unique, ten peers' worth of keys reused).
  auto make = [](std::uint32_t n, std::uint32_t p) {
    resume_ticket t;
    for (std::size_t i = 0; i < 4; ++i)
      t.id[i] = static_cast<std::uint8_t>(n >> (8 * i));
    t.peer.bytes[0] = static_cast<std::uint8_t>(p);
    t.peer.bytes[1] = 0x5a;
    t.secret.fill(static_cast<std::uint8_t>(n * 7));
    return t;
  };
  for (const std::size_t max : {std::size_t{12}, std::size_t{1'000}}) {
    INFO("max " << max);
    ticket_cache tables(max, 5'000, test_key, 0);
    ticket_cache flat(max, 5'000, test_key, 40); // moves to tables past 40 (if max allows)
    std::vector<resume_ticket::ticket_id> ids;
    std::uint64_t now = 0;
    for (std::uint32_t n = 1; n < 4'000; ++n) {
      now += rng() % 7;
      const auto peer = static_cast<std::uint32_t>(rng() % (n < 2'000 ? 10 : 60));
      const auto op = rng() % 4;
      if (op < 2) {
        auto t = make(n, peer);
        if (rng() % 5 == 0)
          t.chain_started_ms = now - std::min<std::uint64_t>(now, rng() % 6'000);
        tables.put(t, now);
        flat.put(t, now);
        ids.push_back(t.id);
      } else if (op == 2) {
        const auto key = make(0, peer).peer;
        auto a = tables.take_for(key, now);
        auto b = flat.take_for(key, now);
        REQUIRE(a.has_value() == b.has_value());
        if (a) {
          CHECK(a->id == b->id);
          CHECK(a->secret == b->secret);
          CHECK(a->chain_started_ms == b->chain_started_ms);
        }
      } else if (!ids.empty()) {
        const auto& id = ids[rng() % ids.size()];
        auto a = tables.take_id(id, now);
        auto b = flat.take_id(id, now);
        REQUIRE(a.has_value() == b.has_value());
        if (a)
          CHECK(a->peer == b->peer);
      }
      REQUIRE(tables.size() == flat.size());
    }
  }
}
