// The simulator's floor: how many frames per wall second the simulated
// network itself can carry on one core, with no node code above it, beside
// CAF's own messaging. Issue 6 asks kith-sim for 1,000,000 simulated
// messages per wall second while it runs the real node actors; this bench
// says how much of that budget the layers under the node take before the
// node does any work (docs/simulation.md, "The floor under the node").
//
//   kith-bench-sim-floor [--quick] [--pairs P] [--frames N] [--bytes B]
//                        [--rounds R] [--seed S] [--help]
//
// P pairs of actors volley N frames of B bytes each (one frame in flight
// per pair, all pairs at once), on CAF's testing scheduler as kith-sim runs
// it. Four legs, in R interleaved rounds (the figures are the medians):
//   direct      each frame is one CAF message to the other actor: CAF's floor;
//   network     through sim_network transports (20 ms links, virtual time):
//               a send to the transport, a timed delivery, no acknowledgement;
//   network_ack the same, and each receiver acknowledges every frame to its
//               transport (consumed_atom), as the node's actors do;
//   sealed      network_ack, and each frame sealed and opened by a secure
//               channel (XChaCha20-Poly1305), as every node-to-node frame is.
// Every frame is checked on arrival (its bytes, and for `sealed` that the
// channel opened it). Prints one JSON line; progress goes to stderr. Exit
// status 0; 1 when a check failed; 2 on bad arguments.

#include "support/json_line.hpp"
#include "support/key_seed.hpp"
#include "support/median.hpp"
#include "support/proc.hpp"
#include "kith/actors/interfaces.hpp"
#include "kith/actors/sim_network.hpp"
#include "kith/protocol/channel.hpp"
#include "kith/protocol/crypto.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include <CLI/CLI.hpp>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace kith;
using actors::bytes_atom;
using actors::conn_id;
using bench::add_u64_option;
using bench::parse_command_line;
using bench::quick_value;

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::uint64_t pairs = 100;
  std::uint64_t frames = 2'000;
  std::uint64_t bytes = 256;
  std::uint64_t rounds = 5;
  std::uint64_t seed = 20261125;
};

enum class leg { direct, network, network_ack, sealed };
const char* name(leg l) {
  switch (l) {
  case leg::direct: return "direct";
  case leg::network: return "network";
  case leg::network_ack: return "network_ack";
  case leg::sealed: return "sealed";
  }
  return "?";
}

/// What one leg's actors count: frames that arrived and frames that were
/// not what was sent.
struct tally {
  std::uint64_t arrived = 0;
  std::uint64_t bad = 0;
};

/// Two ends of an established channel (the handshake is not timed).
std::pair<std::unique_ptr<protocol::channel>, std::unique_ptr<protocol::channel>>
channel_pair(std::mt19937_64& g) {
  const auto a = protocol::identity::from_seed(bench::draw_key_seed(g));
  const auto b = protocol::identity::from_seed(bench::draw_key_seed(g));
  auto ca = std::make_unique<protocol::channel>(a, protocol::channel::role::initiator, bench::draw_key_seed(g), 0,
                                                b.pub());
  auto cb = std::make_unique<protocol::channel>(b, protocol::channel::role::responder, bench::draw_key_seed(g), 0);
  auto o1 = cb->receive(ca->start());
  auto o2 = ca->receive(o1.to_send);
  auto o3 = cb->receive(o2.to_send);
  if (o1.error || o2.error || o3.error || !o2.established || !o3.established)
    return {};
  return {std::move(ca), std::move(cb)};
}

/// One end of a pair on the simulated network. The dialling end sends the
/// first frame once its connection opens; each end sends a frame back for
/// every frame it gets, until the pair has carried `frames`.
struct end_state {
  actors::transport_actor transport;
  std::string payload;   // what every frame carries (in the clear)
  std::shared_ptr<std::uint64_t> left; // frames the pair still sends
  std::shared_ptr<tally> count;
  bool ack = false;
  protocol::channel* ch = nullptr; // sealed leg: this end's channel
  std::string to;                  // the dialling end: the address it dials
};

caf::behavior network_end(caf::event_based_actor* self, std::shared_ptr<end_state> st) {
  auto send_one = [self, st](conn_id c) {
    if (*st->left == 0)
      return;
    --*st->left;
    if (!st->ch) {
      self->send(st->transport, actors::send_atom::value, c, st->payload);
      return;
    }
    auto sealed = st->ch->seal(st->payload);
    if (!sealed) {
      ++st->count->bad;
      return;
    }
    self->send(st->transport, actors::send_atom::value, c, std::move(*sealed));
  };
  if (!st->to.empty())
    self->send(st->transport, actors::dial_atom::value, st->to, caf::actor_cast<caf::actor>(self),
               std::uint64_t{1});
  return {
      [=](actors::opened_atom, conn_id c, const std::string&, bool outbound, std::uint64_t) {
        if (outbound)
          send_one(c);
      },
      [=](bytes_atom, conn_id c, const std::string& b) {
        if (st->ack)
          self->send(st->transport, actors::consumed_atom::value, c,
                     static_cast<std::uint64_t>(b.size()));
        ++st->count->arrived;
        if (st->ch) {
          auto out = st->ch->receive(b);
          if (out.error || out.frames.size() != 1 || out.frames.front() != st->payload)
            ++st->count->bad;
        } else if (b != st->payload) {
          ++st->count->bad;
        }
        send_one(c);
      },
      [=](actors::closed_atom, conn_id, const std::string&) { ++st->count->bad; },
      [=](actors::dialfail_atom, std::uint64_t, const std::string&) { ++st->count->bad; },
  };
}

/// The direct leg: the same volley, each frame one message to the partner.
caf::behavior direct_end(caf::event_based_actor* self, std::shared_ptr<end_state> st) {
  return {
      [=](caf::actor partner) { // the first end of each pair starts
        --*st->left;
        self->send(partner, bytes_atom::value, conn_id{0}, st->payload);
      },
      [=](bytes_atom, conn_id c, const std::string& b) {
        ++st->count->arrived;
        if (b != st->payload)
          ++st->count->bad;
        if (*st->left == 0)
          return;
        --*st->left;
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), bytes_atom::value, c,
                   st->payload);
      },
  };
}

/// Runs one leg; returns its wall seconds (the set-up excluded) and adds
/// to `t`.
double run_leg(leg l, const options& opt, std::mt19937_64& g, tally& t) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom("testing"));
  caf::actor_system sys(cfg);
  auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  auto net = std::make_shared<actors::sim_network>(std::chrono::milliseconds(20));
  auto count = std::make_shared<tally>();
  std::string payload(opt.bytes, '\0');
  for (auto& ch : payload)
    ch = static_cast<char>(g());
  std::vector<std::unique_ptr<protocol::channel>> channels;
  std::vector<caf::actor> ends;
  std::vector<std::pair<caf::actor, caf::actor>> direct_pairs;
  for (std::uint64_t p = 0; p < opt.pairs; ++p) {
    auto left = std::make_shared<std::uint64_t>(opt.frames);
    auto make = [&](const std::string& address) {
      auto st = std::make_shared<end_state>();
      st->payload = payload;
      st->left = left;
      st->count = count;
      st->ack = l == leg::network_ack || l == leg::sealed;
      if (l != leg::direct)
        st->transport = net->make_transport(sys, address);
      return st;
    };
    const auto a_addr = "a" + std::to_string(p), b_addr = "b" + std::to_string(p);
    auto sa = make(a_addr);
    auto sb = make(b_addr);
    if (l == leg::sealed) {
      auto [ca, cb] = channel_pair(g);
      if (!ca) {
        ++t.bad; // the handshake failed
        return 0.0;
      }
      sa->ch = ca.get();
      sb->ch = cb.get();
      channels.push_back(std::move(ca));
      channels.push_back(std::move(cb));
    }
    if (l == leg::direct) {
      auto a = sys.spawn(direct_end, sa);
      auto b = sys.spawn(direct_end, sb);
      direct_pairs.emplace_back(a, b);
      ends.push_back(a);
      ends.push_back(b);
      continue;
    }
    auto b = sys.spawn(network_end, sb);
    net->listen(b_addr, b);
    sa->to = b_addr;
    ends.push_back(b);
    ends.push_back(sys.spawn(network_end, sa));
  }
  for (auto& [a, b] : direct_pairs)
    caf::anon_send(a, b);
  const auto start = clock_type::now();
  const auto want = opt.pairs * opt.frames;
  for (;;) {
    sched.run();
    if (count->arrived >= want || count->bad > 0)
      break;
    if (!sched.trigger_timeout())
      break; // nothing left to run: a check below fails
  }
  const double wall = std::chrono::duration<double>(clock_type::now() - start).count();
  for (auto& e : ends)
    caf::anon_send_exit(e, caf::exit_reason::user_shutdown);
  sched.run();
  while (sched.trigger_timeout())
    sched.run(); // frames still timed to arrive go to ended actors
  t.arrived += count->arrived;
  t.bad += count->bad + (count->arrived == want ? 0 : 1);
  return wall;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  bool quick = false;
  CLI::App app{"kith-bench-sim-floor: frames per wall second through CAF, the simulated network, "
               "its acknowledgements and the secure channel, with no node code above"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_flag("--quick", quick, "a smoke run: 20 pairs x 200 frames, one round (sizes not given)");
  auto* pairs = add_u64_option(app, "--pairs P", opt.pairs, 1, 100'000,
                               "pairs of actors volleying at once");
  auto* frames_opt = add_u64_option(app, "--frames N", opt.frames, 1, 100'000'000,
                                "frames each pair carries per leg");
  add_u64_option(app, "--bytes B", opt.bytes, 1, 60'000, "bytes a frame carries (one sealed frame)");
  auto* rounds = add_u64_option(app, "--rounds R", opt.rounds, 1, 1'000,
                                "interleaved rounds of the four legs (medians reported)");
  add_u64_option(app, "--seed S", opt.seed, 1, UINT64_MAX, "seed of the payloads and keys");
  if (auto stop = parse_command_line<CLI::ParseError>(app, argc, argv))
    return *stop;
  quick_value(quick, pairs, opt.pairs, 20);
  quick_value(quick, frames_opt, opt.frames, 200);
  quick_value(quick, rounds, opt.rounds, 1);
  if (sodium_init() < 0) {
    std::cerr << "kith-bench-sim-floor: libsodium failed to initialise\n";
    return 2;
  }
  std::mt19937_64 g(opt.seed);
  std::cerr << "kith-bench-sim-floor: seed " << opt.seed << ", " << opt.rounds << " rounds; "
            << opt.pairs << " pairs x " << opt.frames << " frames of " << opt.bytes
            << " bytes per leg\n";
  const leg legs[] = {leg::direct, leg::network, leg::network_ack, leg::sealed};
  std::vector<double> per_s[4];
  tally t;
  const double frames = static_cast<double>(opt.pairs * opt.frames);
  for (std::uint64_t r = 0; r < opt.rounds && t.bad == 0; ++r) {
    std::cerr << "  round " << r + 1 << ":";
    for (int k = 0; k < 4 && t.bad == 0; ++k) {
      const double wall = run_leg(legs[k], opt, g, t);
      per_s[k].push_back(wall > 0 ? frames / wall : 0);
      std::cerr << ' ' << name(legs[k]) << ' ' << static_cast<std::uint64_t>(per_s[k].back())
                << "/s";
    }
    std::cerr << '\n';
  }
  const bool verified = t.bad == 0;
  if (!verified)
    std::cerr << "kith-bench-sim-floor: a frame was lost or altered (" << t.bad << ")\n";
  bench::json_line out("sim-floor", opt.seed);
  out.num("pairs", opt.pairs).num("frames", opt.frames).num("bytes", opt.bytes).num("rounds",
                                                                                    opt.rounds);
  for (int k = 0; k < 4; ++k)
    out.real((std::string(name(legs[k])) + "_per_s").c_str(), bench::median(per_s[k]));
  const double direct = bench::median(per_s[0]);
  out.real("sealed_vs_direct", direct > 0 ? bench::median(per_s[3]) / direct : 0)
      .num("frames_checked", t.arrived)
      .flag("verified", verified)
      .print();
  return verified ? 0 : 1;
}
