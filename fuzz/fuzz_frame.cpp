// fuzz_frame: the secure channel (protocol::channel) fed bytes an attacker
// controls. The first input byte picks a scenario, the second how the
// rest is chunked (the channel must give the same result for any
// chunking of the stream):
//   0  a responder receives the bytes (handshake message 1 onwards)
//   1  an initiator, after start(), receives the bytes (message 2 onwards)
//   2  an established pair: the bytes replace the initiator's ciphertext
//      to the responder, after one genuine frame
//   3  an established pair: the bytes are plaintext frames, sealed and
//      delivered; what arrives must be exactly what was sealed
//   4  a handshake whose wire bytes are XORed with the input (a man in
//      the middle); if both ends still establish, each must have
//      authenticated the other's real identity
//   5  like 0, with a clock tick from the input between chunks
//   6  like 4, but the initiator offers a resumption ticket the responder
//      holds (docs/secure-channel.md, "Resumption")
//   7  like 0, with a responder that holds a ticket: the bytes must not
//      resume a channel without the ticket's secret
// Identities and ephemeral keys come from fixed seeds (fuzz/common.hpp),
// so the seed corpus can hold valid handshake messages.

#include "kith/protocol/channel.hpp"

#include "common.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

using namespace kith;
using protocol::channel;

namespace {

const fuzz::channel_parties& who() {
  static const fuzz::channel_parties p;
  return p;
}

protocol::channel_limits small_limits() { return fuzz::frame_limits(); }

/// Splits bytes into chunks of 1..(plan+1) bytes, varying with position.
std::vector<std::string_view> chunks(std::string_view bytes, std::uint8_t plan) {
  std::vector<std::string_view> out;
  if (plan == 0) {
    out.push_back(bytes);
    return out;
  }
  std::size_t i = 0, k = 0;
  while (i < bytes.size()) {
    std::size_t n = 1 + (k * 7 + plan) % (static_cast<std::size_t>(plan) + 1);
    n = std::min(n, bytes.size() - i);
    out.push_back(bytes.substr(i, n));
    i += n;
    ++k;
  }
  return out;
}

void check_output(const channel& c, const protocol::channel_output& o) {
  if (o.error && c.state() != protocol::channel_state::closed)
    fuzz::invariant_failed("a channel reported an error but stayed open");
  if (c.state() == protocol::channel_state::closed && c.close_reason().empty())
    fuzz::invariant_failed("a closed channel has no close reason");
  if (o.established && !c.peer())
    fuzz::invariant_failed("established without an authenticated peer");
}

/// Feeds chunks; returns every frame received.
std::vector<std::string> feed(channel& c, std::string_view bytes, std::uint8_t plan,
                              std::string* sent = nullptr) {
  std::vector<std::string> frames;
  for (auto piece : chunks(bytes, plan)) {
    auto o = c.receive(piece);
    check_output(c, o);
    if (sent)
      *sent += o.to_send;
    for (auto& f : o.frames)
      frames.push_back(std::move(f));
    if (c.state() == protocol::channel_state::closed)
      break;
  }
  return frames;
}

/// A completed handshake between a (initiator) and b (responder).
struct pair {
  channel a;
  channel b;
  pair()
      : a(who().a, channel::role::initiator, who().eph_a, 0, who().b.pub(), small_limits()),
        b(who().b, channel::role::responder, who().eph_b, 0, std::nullopt, small_limits()) {
    auto m1 = a.start();
    auto o1 = b.receive(m1);
    auto o2 = a.receive(o1.to_send);
    (void)b.receive(o2.to_send);
    if (a.state() != protocol::channel_state::established ||
        b.state() != protocol::channel_state::established)
      fuzz::invariant_failed("a genuine handshake failed", a.close_reason() + b.close_reason());
  }
};

/// The tickets a genuine full handshake leaves at (initiator, responder).
const std::pair<protocol::resume_ticket, protocol::resume_ticket>& tickets() {
  static const auto t = [] {
    pair p;
    auto ta = p.a.take_ticket();
    auto tb = p.b.take_ticket();
    if (!ta || !tb)
      fuzz::invariant_failed("an established pair issued no tickets");
    return std::make_pair(*ta, *tb);
  }();
  return t;
}

/// A responder that holds the responder's ticket of tickets().
channel ticket_holder() {
  channel b(who().b, channel::role::responder, who().eph_b, 0, std::nullopt, small_limits());
  // Used once, as a node's cache does: a second naming finds nothing.
  auto held = std::make_shared<std::optional<protocol::resume_ticket>>(tickets().second);
  b.accept_tickets([held](const protocol::resume_ticket::ticket_id& id) {
    std::optional<protocol::resume_ticket> r;
    if (*held && (*held)->id == id)
      r.swap(*held);
    return r;
  });
  return b;
}

void scenario_resumed_responder(std::string_view in, std::uint8_t plan) {
  channel b = ticket_holder();
  (void)feed(b, in, plan);
  if (b.resumed())
    fuzz::invariant_failed("a channel resumed for bytes made without the ticket's secret");
}

void scenario_responder(std::string_view in, std::uint8_t plan, bool ticks) {
  channel r(who().b, channel::role::responder, who().eph_b, 0, std::nullopt, small_limits());
  if (!ticks) {
    (void)feed(r, in, plan);
    return;
  }
  std::uint64_t now = 0;
  for (auto piece : chunks(in, plan ? plan : 8)) {
    now += static_cast<std::uint8_t>(piece[0]) * 50u;
    auto t = r.tick(now);
    check_output(r, t);
    auto o = r.receive(piece);
    check_output(r, o);
  }
}

void scenario_initiator(std::string_view in, std::uint8_t plan) {
  channel i(who().a, channel::role::initiator, who().eph_a, 0, std::nullopt, small_limits());
  (void)i.start();
  (void)feed(i, in, plan);
}

void scenario_ciphertext(std::string_view in, std::uint8_t plan) {
  pair p;
  auto genuine = p.a.seal("genuine frame");
  if (!genuine)
    fuzz::invariant_failed("seal failed on an established channel");
  auto got = feed(p.b, *genuine, 0);
  if (got.size() != 1 || got[0] != "genuine frame")
    fuzz::invariant_failed("a genuine frame did not arrive intact");
  // Nobody without the key can make the responder accept a frame.
  auto forged = feed(p.b, in, plan);
  if (!forged.empty())
    fuzz::invariant_failed("the responder accepted a frame that was not sealed by its peer");
}

void scenario_plaintext(std::string_view in, std::uint8_t plan) {
  pair p;
  // Frames: each starts with a length byte; the rest of the input is text.
  std::vector<std::string> sent;
  std::string wire;
  std::size_t i = 0;
  while (i < in.size()) {
    std::size_t n = std::min<std::size_t>(static_cast<std::uint8_t>(in[i]) * 16u, in.size() - i - 1);
    std::string frame(in.substr(i + 1, n));
    i += 1 + n;
    auto w = p.a.seal(frame);
    if (!w)
      fuzz::invariant_failed("seal refused a frame under the limit");
    wire += *w;
    sent.push_back(std::move(frame));
  }
  auto got = feed(p.b, wire, plan);
  if (got != sent)
    fuzz::invariant_failed("sealed frames did not arrive intact and in order");
  if (p.b.state() != protocol::channel_state::established)
    fuzz::invariant_failed("a genuine stream closed the channel", p.b.close_reason());
}

void scenario_tamper(std::string_view in, std::uint8_t plan, bool resume) {
  channel a(who().a, channel::role::initiator, who().eph_a, 0, who().b.pub(), small_limits());
  channel b = resume ? ticket_holder()
                     : channel(who().b, channel::role::responder, who().eph_b, 0, std::nullopt,
                               small_limits());
  if (resume)
    a.offer_ticket(tickets().first);
  std::size_t pos = 0;
  auto tamper = [&](std::string s) {
    for (auto& c : s) {
      if (pos < in.size())
        c = static_cast<char>(c ^ in[pos]);
      ++pos;
    }
    return s;
  };
  std::string to_a;
  std::string to_b = tamper(a.start());
  (void)feed(b, to_b, plan, &to_a);
  to_b.clear();
  (void)feed(a, tamper(to_a), plan, &to_b);
  (void)feed(b, tamper(to_b), plan);
  if (a.state() == protocol::channel_state::established && *a.peer() != who().b.pub())
    fuzz::invariant_failed("the initiator authenticated the wrong responder");
  if (b.state() == protocol::channel_state::established && *b.peer() != who().a.pub())
    fuzz::invariant_failed("the responder authenticated the wrong initiator");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2)
    return 0;
  const std::uint8_t mode = data[0] % 8;
  const std::uint8_t plan = data[1];
  const std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (mode) {
  case 0: scenario_responder(in, plan, false); break;
  case 1: scenario_initiator(in, plan); break;
  case 2: scenario_ciphertext(in, plan); break;
  case 3: scenario_plaintext(in, plan); break;
  case 4: scenario_tamper(in, plan, false); break;
  case 5: scenario_responder(in, plan, true); break;
  case 6: scenario_tamper(in, plan, true); break;
  case 7: scenario_resumed_responder(in, plan); break;
  }
  return 0;
}
