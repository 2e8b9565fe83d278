// The channel handshake benchmark: how long one secure-channel handshake
// takes on one core, both ends in this thread, full (each end signs and
// checks an ed25519 signature) against resumed (a ticket from the last
// channel between the same two identities; no signatures), and the floor
// any forward-secret handshake pays here: two X25519 key pairs and the
// session keys at both ends, nothing else.
//
//   kith-bench-channel [--quick] [--n N] [--rounds R] [--seed S]
//
// The three kinds run in R interleaved rounds of N handshakes each, so a
// machine whose speed drifts during the run shifts all three alike; the
// figures are the medians of the rounds. Every handshake is checked: both
// ends established, each naming the other, resumed exactly when a ticket
// was offered. Prints one JSON line (docs/benchmarks.md); progress goes to
// stderr. Exit status 0; 1 when a check failed; 2 on bad arguments.

#include "support/json_line.hpp"
#include "support/key_seed.hpp"
#include "support/median.hpp"
#include "support/proc.hpp"
#include "kith/protocol/channel.hpp"
#include "kith/protocol/crypto.hpp"

#include <CLI/CLI.hpp>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace kith;
using protocol::channel;
using bench::add_u64_option;
using bench::median;
using bench::parse_command_line;
using bench::quick_value;

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::uint64_t n = 2'000;
  std::uint64_t rounds = 9;
  std::uint64_t seed = 20261122;
};

/// One handshake between a (initiator) and b (responder), offering `t`
/// when given. Returns the ticket a keeps, or nullopt when a check failed.
std::optional<protocol::resume_ticket> handshake(const protocol::identity& a,
                                                 const protocol::identity& b, std::mt19937_64& g,
                                                 const std::optional<protocol::resume_ticket>& ta,
                                                 std::optional<protocol::resume_ticket>& tb) {
  channel ca(a, channel::role::initiator, bench::draw_key_seed(g), 0, b.pub());
  channel cb(b, channel::role::responder, bench::draw_key_seed(g), 0);
  if (ta)
    ca.offer_ticket(*ta);
  cb.accept_tickets([&tb](const protocol::resume_ticket::ticket_id& id) {
    std::optional<protocol::resume_ticket> r;
    if (tb && tb->id == id)
      r.swap(tb);
    return r;
  });
  auto o1 = cb.receive(ca.start());
  auto o2 = ca.receive(o1.to_send);
  auto o3 = cb.receive(o2.to_send);
  const bool ok = !o1.error && !o2.error && !o3.error && o2.established && o3.established &&
                  ca.peer() == b.pub() && cb.peer() == a.pub() && ca.resumed() == ta.has_value() &&
                  cb.resumed() == ta.has_value();
  if (!ok)
    return std::nullopt;
  tb = cb.take_ticket();
  return ca.take_ticket();
}

/// Both ends' share of a forward-secret key exchange and nothing else.
bool kx_floor(std::mt19937_64& g) {
  unsigned char pa[crypto_kx_PUBLICKEYBYTES], sa[crypto_kx_SECRETKEYBYTES];
  unsigned char pb[crypto_kx_PUBLICKEYBYTES], sb[crypto_kx_SECRETKEYBYTES];
  unsigned char rxa[crypto_kx_SESSIONKEYBYTES], txa[crypto_kx_SESSIONKEYBYTES];
  unsigned char rxb[crypto_kx_SESSIONKEYBYTES], txb[crypto_kx_SESSIONKEYBYTES];
  auto s1 = bench::draw_key_seed(g);
  auto s2 = bench::draw_key_seed(g);
  crypto_kx_seed_keypair(pa, sa, s1.data());
  crypto_kx_seed_keypair(pb, sb, s2.data());
  return crypto_kx_client_session_keys(rxa, txa, pa, sa, pb) == 0 &&
         crypto_kx_server_session_keys(rxb, txb, pb, sb, pa) == 0 &&
         std::memcmp(rxa, txb, sizeof rxa) == 0;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  bool quick = false;
  CLI::App app{"kith-bench-channel: secure-channel handshakes on one core, full against resumed, "
               "beside the bare key exchange"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("--quick", quick, "a smoke run: 3 rounds of 200 (sizes not given)");
  auto* n = add_u64_option(app, "--n N", opt.n, 1, 10'000'000, "handshakes of each kind per round");
  auto* rounds = add_u64_option(app, "--rounds R", opt.rounds, 1, 1'000,
                                "interleaved rounds (medians reported)");
  add_u64_option(app, "--seed S", opt.seed, 1, UINT64_MAX, "seed of the keys");
  if (auto stop = parse_command_line<CLI::ParseError>(app, argc, argv))
    return *stop;
  quick_value(quick, n, opt.n, 200);
  quick_value(quick, rounds, opt.rounds, 3);
  if (sodium_init() < 0) {
    std::cerr << "kith-bench-channel: libsodium failed to initialise\n";
    return 2;
  }
  std::mt19937_64 g(opt.seed);
  const auto alice = protocol::identity::from_seed(bench::draw_key_seed(g));
  const auto bob = protocol::identity::from_seed(bench::draw_key_seed(g));
  std::cerr << "kith-bench-channel: seed " << opt.seed << ", " << opt.rounds << " rounds of "
            << opt.n << " handshakes of each kind\n";

  std::vector<double> full_us, resumed_us, floor_us;
  bool verified = true;
  std::optional<protocol::resume_ticket> ta, tb;
  for (std::uint64_t r = 0; r < opt.rounds && verified; ++r) {
    auto t0 = clock_type::now();
    for (std::uint64_t i = 0; i < opt.n && verified; ++i) {
      std::optional<protocol::resume_ticket> none_b;
      verified = handshake(alice, bob, g, std::nullopt, none_b).has_value();
    }
    auto t1 = clock_type::now();
    for (std::uint64_t i = 0; i < opt.n && verified; ++i) {
      if (!ta) { // the first resumed handshake needs a ticket from a full one
        ta = handshake(alice, bob, g, std::nullopt, tb);
        verified = ta.has_value();
        continue;
      }
      ta = handshake(alice, bob, g, ta, tb);
      verified = ta.has_value();
    }
    auto t2 = clock_type::now();
    for (std::uint64_t i = 0; i < opt.n && verified; ++i)
      verified = kx_floor(g);
    auto t3 = clock_type::now();
    auto us = [&](clock_type::time_point a, clock_type::time_point b) {
      return std::chrono::duration<double, std::micro>(b - a).count() / static_cast<double>(opt.n);
    };
    full_us.push_back(us(t0, t1));
    resumed_us.push_back(us(t1, t2));
    floor_us.push_back(us(t2, t3));
    std::cerr << "  round " << r + 1 << ": full " << full_us.back() << " us, resumed "
              << resumed_us.back() << " us, key-exchange floor " << floor_us.back() << " us\n";
  }
  if (!verified)
    std::cerr << "kith-bench-channel: a handshake failed its checks\n";
  const double full = median(full_us), resumed = median(resumed_us), floor = median(floor_us);
  bench::json_line("channel", opt.seed)
      .num("n", opt.n)
      .num("rounds", opt.rounds)
      .real("full_us", full)
      .real("resumed_us", resumed)
      .real("kx_floor_us", floor)
      .real("full_per_s", full > 0 ? 1e6 / full : 0)
      .real("resumed_per_s", resumed > 0 ? 1e6 / resumed : 0)
      .real("resumed_vs_full", full > 0 ? resumed / full : 0)
      .flag("verified", verified)
      .print();
  return verified ? 0 : 1;
}
