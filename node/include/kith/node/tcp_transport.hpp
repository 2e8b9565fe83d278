#pragma once

// The bridge between Boost.Asio sockets and the node's actors: the real
// implementation of actors::transport_actor. Socket work runs on one
// io_context thread; actors talk to it with messages (the transport
// actor posts into the io_context) and receive events as messages.

#include "kith/actors/interfaces.hpp"

#include <boost/asio/io_context.hpp>

#include <caf/actor_system.hpp>

#include <memory>
#include <optional>
#include <variant>
#include <string>

namespace kith::node {

struct tcp_options {
  /// Close a connection whose unsent bytes exceed this (a peer that does
  /// not read). Above a resync page (4 MiB at most) with pushes behind it.
  std::size_t max_pending_write = 16u << 20;
  /// Unsent bytes of all connections together: past this, the connection
  /// holding the most is closed, so many slow readers cannot add up.
  std::size_t max_pending_total = 128u << 20;
  std::size_t read_chunk = 64u << 10;
  /// Stop reading a connection while this many bytes read from it wait in
  /// (or are being handled by) its owner's mailbox; read again once the
  /// owner's consumed acknowledgements bring it under half. Bounds what a
  /// fast sender can make us hold before the owner's own pause arrives.
  std::size_t max_undelivered = 1u << 20;
};

class tcp_transport {
public:
  tcp_transport(boost::asio::io_context& io, caf::actor_system& sys, tcp_options o = {});
  ~tcp_transport();

  /// Listens on host:port (port 0: any). Inbound connections go to
  /// `owner` (the node actor). Returns the bound port, or an error text.
  [[nodiscard]] std::variant<std::uint16_t, std::string> listen(const std::string& host,
                                                                std::uint16_t port,
                                                                caf::actor owner);
  /// The transport actor handed to the node.
  [[nodiscard]] actors::transport_actor actor() const { return actor_; }
  /// Closes the listener and every connection (from any thread).
  void shutdown();

  struct impl;

private:
  std::shared_ptr<impl> impl_;
  actors::transport_actor actor_;
};

/// Splits "host:port" (also "[v6]:port"); nullopt if malformed. Port 0
/// ("any free port") only with allow_zero.
[[nodiscard]] std::optional<std::pair<std::string, std::uint16_t>>
split_host_port(const std::string& s, bool allow_zero = false);

} // namespace kith::node
