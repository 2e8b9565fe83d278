// Cost checks of the relay core against the benchmark targets (>= 20,000
// idle registered peers at <= 4 KB RSS each, >= 50,000 lookups/s on 2
// cores). The real benchmark runs the kith-relay program; these keep the
// core's share small as the code changes.

#include "harness.hpp"

#include <catch2/catch.hpp>
#include <malloc.h>

#include <chrono>
#include <iostream>

using namespace kith::relay;
using namespace kith::relay::test;
using kith::protocol::channel;

namespace {

std::size_t heap_in_use() { return mallinfo2().uordblks; }

std::string ip_of(std::uint64_t n) {
  return "10.2." + std::to_string(n / 256) + "." + std::to_string(n % 256);
}

} // namespace

TEST_CASE("an idle registered peer with a record and a topic costs the relay core under 2 KB",
          "[relay]") {
  const std::size_t n = 2000;
  std::vector<kith::protocol::identity> people;
  people.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    people.push_back(person(20'000 + i));
  const std::string topic = rendezvous_key("everyone");

  relay_limits lim;
  lim.max_registrations_per_ip = n;
  relay_core relay(relay_identity(), lim, seed_of(7, 0xee));
  std::optional<channel> reader;
  const std::size_t before = heap_in_use();
  for (std::size_t i = 0; i < n; ++i) {
    const conn_id c = i + 1;
    (void)relay.accepted(c, ip_of(i), t0);
    channel ch(people[i], channel::role::initiator, seed_of(i, 0xd2), t0, relay.id());
    auto hs = relay.received(c, ch.start(), t0);
    REQUIRE(hs.size() == 1);
    auto o = ch.receive(hs[0].bytes);
    REQUIRE(o.established);
    auto rec = make_record(people[i], {"tcp://" + ip_of(i) + ":7000"}, t0 + 3'000'000, 1);
    std::string wire = o.to_send; // seal in order: the nonces count up
    wire += *ch.seal(encode_relay_message(announce_msg{1, rec}));
    wire += *ch.seal(encode_relay_message(join_msg{2, topic}));
    auto acts = relay.received(c, wire, t0);
    INFO((acts.empty() ? std::string() : acts[0].reason));
    REQUIRE(acts.size() == 3); // welcome, ok, ok
    if (i == 0)
      reader.emplace(std::move(ch)); // kept for the lookups below
  }
  const std::size_t after = heap_in_use();
  const double per_peer = static_cast<double>(after - before) / n;
  std::cout << "[relay] relay core heap per idle registered peer (record, 1 topic): " << per_peer
            << " bytes\n";
  CHECK(relay.metrics().registrations == n);
  CHECK(relay.metrics().memberships == n);
  CHECK(per_peer < 2048);

  // Lookup throughput of the core alone (one thread): decrypt, decode,
  // find, encode the record, encrypt.
  const std::size_t lookups = 20'000;
  std::vector<std::string> frames;
  frames.reserve(lookups);
  for (std::size_t i = 0; i < lookups; ++i)
    frames.push_back(
        *reader->seal(encode_relay_message(lookup_msg{100 + i, people[(i * 7919) % n].pub()})));
  std::size_t answered = 0;
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t now = t0;
  for (const auto& f : frames) {
    now += 1'000; // keeps the reader's token bucket full
    answered += relay.received(1, f, now).size();
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[relay] relay core lookups: " << static_cast<std::uint64_t>(lookups / secs)
            << "/s on one thread\n";
  CHECK(answered == lookups);
}
