#pragma once

// The secure channel: mutual authentication by ed25519 identity, forward-
// secret session keys and authenticated encryption of every frame, over
// any ordered byte stream (TCP, a pipe, a relay circuit, the simulator's
// links). Sans-I/O: bytes and time in; bytes to send, plaintext frames and
// a verdict out. docs/secure-channel.md gives the construction and why.

#include "kith/protocol/crypto.hpp"

#include <array>
#include <memory>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kith::protocol {

/// A channel keeps each limit in 32 bits: larger values act as the
/// largest that fits (a frame is at most 4 GiB anyway: its length prefix
/// has 4 bytes; a handshake timeout of 49 days).
struct channel_limits {
  /// Largest plaintext frame either side may send or accept.
  std::size_t max_frame_bytes = 16u << 20;
  /// The handshake must finish within this many ms of the channel's start.
  std::uint64_t handshake_timeout_ms = 10'000;
  /// Bytes buffered while a frame is incomplete (>= max_frame_bytes + overhead).
  std::size_t max_buffered_bytes = (16u << 20) + 64;
};

/// What both ends of an established channel keep so that their next
/// channel can skip the identity signatures: a resumed handshake proves
/// knowledge of `secret` instead, over a fresh key exchange
/// (docs/secure-channel.md, "Resumption"). Each ticket is used once.
/// Secret material: never logged.
struct resume_ticket {
  using ticket_id = std::array<std::uint8_t, 16>;
  ticket_id id{};
  std::array<std::uint8_t, 32> secret{};
  /// The identity the issuing session proved for the other end.
  public_key peer;
  /// When the full handshake that began this chain of resumptions took
  /// place, in the clock of the cache that holds the ticket (it sets it;
  /// a channel carries it from the ticket it resumed with to the next
  /// one, and leaves it empty after a full handshake). A cache refuses a
  /// ticket whose chain is older than its lifetime, so the signatures are
  /// checked again at least that often.
  std::optional<std::uint64_t> chain_started_ms;

  resume_ticket() = default;
  resume_ticket(const resume_ticket&) = default;
  resume_ticket& operator=(const resume_ticket&) = default;
  ~resume_ticket(); // wipes the secret of every copy
};

enum class channel_state : std::uint8_t { handshaking, established, closed };

/// What one call produced. Callers send `to_send` on the stream in order,
/// hand `frames` to the protocol above, and close the stream when
/// `error` is set (state() is then closed; the reason is for the log).
struct channel_output {
  std::string to_send;
  std::vector<std::string> frames;
  std::optional<std::string> error;
  bool established = false; // the handshake completed during this call
};

/// One end of a secure channel.
/// Not thread-safe; one owner (the peer's actor, a test, the simulator).
class channel {
public:
  enum class role : std::uint8_t { initiator, responder };

  /// `ephemeral_seed` seeds this session's X25519 key pair: the node draws
  /// it from the OS, the simulator and tests from their seeded generator,
  /// so the channel itself never calls the OS random source.
  /// An initiator that knows whom it dials passes `expected_peer`; a
  /// different identity on the other end fails the handshake.
  channel(const identity& self, role r, const key_seed& ephemeral_seed, std::uint64_t now_ms,
          std::optional<public_key> expected_peer = std::nullopt, channel_limits limits = {});
  ~channel();
  channel(channel&&) noexcept;
  channel& operator=(channel&&) noexcept;
  channel(const channel&) = delete;
  channel& operator=(const channel&) = delete;

  /// Initiator, before start(): try to resume with `t`, a ticket an
  /// earlier channel issued (ignored if it names another identity than
  /// `expected_peer`). A resumed handshake proves t.peer; a responder
  /// that no longer holds the ticket answers with a full handshake, which
  /// this end accepts too (checking `expected_peer` if given).
  void offer_ticket(const resume_ticket& t);
  /// Responder, before the first bytes: how to find (and use up) the
  /// ticket an initiator names. Without it every handshake is full.
  using ticket_lookup = std::function<std::optional<resume_ticket>(const resume_ticket::ticket_id&)>;
  void accept_tickets(ticket_lookup lookup);
  /// Once established: the ticket for the next channel between the same
  /// two identities (both ends derive the same one). Given once; nullopt
  /// after that or if not established.
  [[nodiscard]] std::optional<resume_ticket> take_ticket();
  /// The handshake was a resumed one (no signatures made or checked).
  [[nodiscard]] bool resumed() const;

  /// The first bytes to send (the initiator's opening; empty for a responder).
  [[nodiscard]] std::string start();
  /// Bytes received from the stream, in order, in any chunking.
  [[nodiscard]] channel_output receive(std::string_view bytes);
  /// Encrypts one frame for sending; nullopt (and the channel closes) if
  /// not established or the frame is over the limit.
  [[nodiscard]] std::optional<std::string> seal(std::string_view plaintext);
  /// Time passes: fails the channel if the handshake is overdue.
  [[nodiscard]] channel_output tick(std::uint64_t now_ms);

  [[nodiscard]] channel_state state() const;
  /// The authenticated identity of the other end (once established).
  [[nodiscard]] std::optional<public_key> peer() const;
  /// Why the channel closed, if it did.
  [[nodiscard]] const std::string& close_reason() const;
  /// Bytes sealed and received, framing and MACs included (for stats).
  [[nodiscard]] std::uint64_t bytes_out() const;
  [[nodiscard]] std::uint64_t bytes_in() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace kith::protocol
