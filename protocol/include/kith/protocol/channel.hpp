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
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kith::protocol {

struct channel_limits {
  /// Largest plaintext frame either side may send or accept.
  std::size_t max_frame_bytes = 16u << 20;
  /// The handshake must finish within this many ms of the channel's start.
  std::uint64_t handshake_timeout_ms = 10'000;
  /// Bytes buffered while a frame is incomplete (>= max_frame_bytes + overhead).
  std::size_t max_buffered_bytes = (16u << 20) + 64;
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
  [[nodiscard]] const std::optional<public_key>& peer() const;
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
