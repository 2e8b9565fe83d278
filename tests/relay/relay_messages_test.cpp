#include "kith/relay/messages.hpp"
#include "kith/relay/record.hpp"

#include "harness.hpp"
#include "support/seed.hpp"

#include <catch2/catch.hpp>

#include <iostream>
#include <set>

using namespace kith::relay;
using kith::relay::test::person;
using kith::protocol::public_key;

namespace {

public_key key_of(std::uint64_t n) { return person(n).pub(); }

/// One of every message, with non-default fields.
std::vector<relay_message> every_message() {
  const auto alice = person(1);
  auto rec = make_record(alice, {"tcp://192.0.2.1:7000", "tcp://[2001:db8::1]:7000"},
                         kith::relay::test::t0 + 60'000, 42);
  relay_terms terms;
  terms.max_record_ttl_ms = 3'600'000;
  terms.max_record_addresses = 16;
  terms.max_topics_per_connection = 64;
  terms.max_page_size = 100;
  terms.circuit_max_bytes = 256ull << 20;
  terms.circuit_max_duration_ms = 3'600'000;
  terms.max_circuit_frame_bytes = 65536;
  terms.idle_timeout_ms = 90'000;
  terms.request_rate_per_s = 50;
  terms.request_burst = 200;
  terms.resumes = true;
  const std::string topic = rendezvous_key("book club");
  const std::string cursor(key_of(3).view());
  return {
      announce_msg{1, rec},
      lookup_msg{2, key_of(2)},
      join_msg{3, topic},
      leave_msg{4, "plain topic"},
      members_msg{5, topic, cursor, 50},
      watch_msg{6, topic},
      unwatch_msg{7, topic},
      open_circuit_msg{8, key_of(2)},
      accept_circuit_msg{9, 77},
      refuse_circuit_msg{10, 78, "busy"},
      close_circuit_msg{11, 79, "done"},
      ping_msg{12},
      circuit_data_msg{80, std::string("\x00\x01\xffpayload", 10)},
      welcome_msg{terms, "192.0.2.1", 1'700'000'123'456},
      ok_msg{13},
      lookup_result_msg{14, alice.pub(), rec},
      lookup_result_msg{15, key_of(2), std::nullopt},
      members_page_msg{16, topic, {key_of(1), key_of(2), key_of(3)}, cursor},
      topic_event_msg{topic, key_of(4), false},
      circuit_incoming_msg{81, key_of(5)},
      circuit_opened_msg{17, 82, key_of(6)},
      circuit_closed_msg{83, code::byte_limit, "the circuit carried its limit"},
      refused_msg{18, code::rate_limited, "slow down"},
      reconnect_msg{12'345},
      goodbye_msg{code::replaced, "replaced by a newer connection"},
      pong_msg{19},
      lookup_msg{20, key_of(3), true},
      lookup_result_msg{21, key_of(3), std::nullopt, true},
      present_msg{rec},
  };
}

bool same(const relay_message& a, const relay_message& b) {
  // Equal iff they encode alike: the encoding is a function of every field.
  return a.index() == b.index() && encode_relay_message(a) == encode_relay_message(b);
}

void check_reencodes(const relay_message& m) {
  if (std::holds_alternative<unknown_msg>(m))
    return;
  auto bytes = encode_relay_message(m);
  std::string why;
  auto back = decode_relay_message(bytes, {}, &why);
  INFO(why);
  REQUIRE(back);
  REQUIRE(same(m, *back));
}

} // namespace

TEST_CASE("every relay message round-trips through encode and decode", "[relay]") {
  auto all = every_message();
  std::set<std::size_t> kinds;
  for (const auto& m : all) {
    CAPTURE(relay_message_name(m));
    kinds.insert(m.index());
    auto bytes = encode_relay_message(m);
    std::string why;
    auto back = decode_relay_message(bytes, {}, &why);
    INFO(why);
    REQUIRE(back);
    CHECK(same(m, *back));
    CHECK(request_id_of(*back) == request_id_of(m));
  }
  // Every type but unknown_msg (decode-only) is covered.
  CHECK(kinds.size() == std::variant_size_v<relay_message> - 1);
  // Defaults round-trip too.
  for (auto d : all) {
    std::visit([](auto& x) { x = std::decay_t<decltype(x)>{}; }, d);
    check_reencodes(d);
  }
}

TEST_CASE("a lookup or a ping costs under 64 bytes on the wire", "[relay]") {
  CHECK(encode_relay_message(lookup_msg{1, key_of(1)}).size() < 64);
  CHECK(encode_relay_message(ping_msg{7}).size() < 64);
  CHECK(encode_relay_message(ok_msg{7}).size() < 64);
}

TEST_CASE("every truncation of a relay message is refused with a reason", "[relay]") {
  for (const auto& m : every_message()) {
    auto bytes = encode_relay_message(m);
    CAPTURE(relay_message_name(m), bytes.size());
    for (std::size_t len = 0; len < bytes.size(); ++len) {
      std::string why;
      auto back = decode_relay_message(std::string_view(bytes).substr(0, len), {}, &why);
      CAPTURE(len);
      REQUIRE_FALSE(back);
      REQUIRE_FALSE(why.empty());
    }
  }
}

TEST_CASE("bit flips of relay messages never crash the decoder and what decodes re-encodes",
          "[relay]") {
  const auto seed = kith::test::base_seed() ^ 0x72656c6179ull;
  kith::test::rng g(seed);
  std::cout << "[relay] bit flip seed " << seed << "\n";
  CAPTURE(seed);
  int decoded = 0, total = 0;
  for (const auto& m : every_message()) {
    auto bytes = encode_relay_message(m);
    CAPTURE(relay_message_name(m));
    for (int i = 0; i < kith::test::cases(300); ++i) {
      auto flipped = bytes;
      const auto flips = kith::test::pick(g, 1, 3);
      for (std::uint64_t k = 0; k < flips; ++k) {
        const auto at = kith::test::pick(g, 0, flipped.size() - 1);
        flipped[at] = static_cast<char>(flipped[at] ^ (1u << kith::test::pick(g, 0, 7)));
      }
      CAPTURE(i);
      std::string why;
      auto back = decode_relay_message(flipped, {}, &why);
      ++total;
      if (back) {
        ++decoded;
        check_reencodes(*back);
      } else {
        REQUIRE_FALSE(why.empty());
      }
    }
  }
  std::cout << "[relay] bit flips: " << decoded << " of " << total << " decoded to something\n";
}

TEST_CASE("random garbage never crashes the relay message decoder", "[relay]") {
  const auto seed = kith::test::base_seed() ^ 0x67617262ull;
  kith::test::rng g(seed);
  std::cout << "[relay] garbage seed " << seed << "\n";
  CAPTURE(seed);
  const auto real = encode_relay_message(every_message().front());
  for (int i = 0; i < kith::test::cases(4000); ++i) {
    std::string bytes = i % 2 == 0 ? std::string() : real.substr(0, kith::test::pick(g, 1, 16));
    const auto keep = bytes.size();
    bytes.resize(keep + kith::test::pick(g, 0, 400));
    for (std::size_t j = keep; j < bytes.size(); ++j)
      bytes[j] = static_cast<char>(g());
    CAPTURE(i);
    std::string why;
    auto m = decode_relay_message(bytes, {}, &why);
    if (m)
      check_reencodes(*m);
    else
      REQUIRE_FALSE(why.empty());
  }
}

TEST_CASE("relay messages over a limit or with wrong fixed sizes are refused, naming the limit",
          "[relay]") {
  std::string why;
  wire_limits l;
  CHECK_FALSE(decode_relay_message(encode_relay_message(join_msg{1, std::string(65, 't')}), l,
                                   &why));
  CHECK(why.find("max_topic_bytes") != std::string::npos);

  auto rec = make_record(person(1), std::vector<std::string>(65, "a"), 1, 1);
  CHECK_FALSE(decode_relay_message(encode_relay_message(announce_msg{1, rec}), l, &why));
  CHECK(why.find("max_addresses") != std::string::npos);

  CHECK_FALSE(decode_relay_message(
      encode_relay_message(circuit_data_msg{1, std::string((64u << 10) + 1, 'x')}), l, &why));
  CHECK(why.find("max_payload_bytes") != std::string::npos);

  CHECK_FALSE(decode_relay_message(encode_relay_message(members_msg{1, "t", "short", 0}), l, &why));
  CHECK(why.find("expected 0 or 32") != std::string::npos);

  CHECK_FALSE(
      decode_relay_message(encode_relay_message(refused_msg{1, code::timeout, std::string(1025, 'r')}),
                           l, &why));
  CHECK(why.find("max_reason_bytes") != std::string::npos);

  l.max_message_bytes = 10;
  CHECK_FALSE(decode_relay_message(encode_relay_message(lookup_msg{1, key_of(1)}), l, &why));
  CHECK(why.find("max_message_bytes") != std::string::npos);

  CHECK_FALSE(decode_relay_message(encode_relay_message(ping_msg{1}) + std::string(1, '\0'), {},
                                   &why));
  CHECK(why.find("trailing") != std::string::npos);
}

TEST_CASE("an unknown union member decodes as unknown_msg carrying its request id", "[relay]") {
  // A ping with its union discriminant patched to a member this build
  // does not have (what a newer client's new request looks like).
  std::string why;
  auto u = decode_relay_message(kith::relay::test::unknown_request(5), {}, &why);
  INFO(why);
  REQUIRE(u);
  REQUIRE(std::holds_alternative<unknown_msg>(*u));
  CHECK(std::get<unknown_msg>(*u).req == 5);
  CHECK(std::get<unknown_msg>(*u).which == 99);
  CHECK_THROWS_AS(encode_relay_message(*u), std::invalid_argument);
}

TEST_CASE("a signed record verifies and any change to it breaks the signature", "[relay]") {
  const auto alice = person(1);
  auto r = make_record(alice, {"tcp://192.0.2.1:7000"}, 5'000, 3);
  CHECK(r.id == alice.pub());
  CHECK(verify_record(r));
  auto x = r;
  x.expiry_ms += 1;
  CHECK_FALSE(verify_record(x));
  x = r;
  x.seq += 1;
  CHECK_FALSE(verify_record(x));
  x = r;
  x.addresses[0] = "tcp://192.0.2.66:7000";
  CHECK_FALSE(verify_record(x));
  x = r;
  x.addresses.push_back("tcp://192.0.2.2:7000");
  CHECK_FALSE(verify_record(x));
  x = r;
  x.id = person(2).pub();
  CHECK_FALSE(verify_record(x));
  x = r;
  x.sig.bytes[10] ^= 1;
  CHECK_FALSE(verify_record(x));
}

TEST_CASE("the signed encoding of a record is unambiguous and domain-separated", "[relay]") {
  signed_record a, b;
  a.addresses = {"ab"};
  b.addresses = {"a", "b"};
  CHECK(record_signing_bytes(a) != record_signing_bytes(b));
  b.addresses = {"ab", ""};
  CHECK(record_signing_bytes(a) != record_signing_bytes(b));
  CHECK(record_signing_bytes(a).rfind(std::string(record_domain) + '\0', 0) == 0);
}

TEST_CASE("rendezvous keys are 32 bytes, stable, and differ by name", "[relay]") {
  const auto k = rendezvous_key("book club");
  CHECK(k.size() == 32);
  CHECK(k == rendezvous_key("book club"));
  CHECK(k != rendezvous_key("book club "));
  CHECK(k.find("book") == std::string::npos);
  const auto h = kith::protocol::hash_of(rendezvous_domain, std::string_view("\0", 1), "book club");
  CHECK(k == std::string(reinterpret_cast<const char*>(h.data()), h.size()));
}

TEST_CASE("code names are the metric labels and unknown codes are named unknown", "[relay]") {
  CHECK(std::string(code_name(code::rate_limited)) == "rate_limited");
  CHECK(std::string(code_name(code::transport)) == "transport");
  CHECK(std::string(code_name(static_cast<code>(999))) == "unknown");
  CHECK(std::string(code_name(static_cast<code>(0))) == "unknown");
}
