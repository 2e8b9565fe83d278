#pragma once

// The node's local HTTP/JSON API (docs/api.md). The server speaks HTTP/1.1
// on a loopback address, enforces the local-only rules, maps routes to
// api_backend operations and streams the backend's events as server-sent
// events. Boost.Beast stays inside api_server.cpp: this header only
// forward-declares the io_context, so including it is cheap.

#include "kith/node/api.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace boost::asio {
class io_context;
} // namespace boost::asio

namespace kith::node {

namespace detail {
class api_server_state;
} // namespace detail

/// Limits and knobs of the API server, in one place.
struct api_server_options {
  /// Address to listen on. Must be a loopback address (127.0.0.0/8, ::1)
  /// or "localhost"; anything else makes start() fail.
  std::string bind = "127.0.0.1";
  /// 0 picks an ephemeral port; port() tells which.
  std::uint16_t port = 0;
  /// Larger request bodies get 413 (bundle imports are the big ones).
  std::size_t max_body_bytes = std::size_t{16} << 20;
  /// Connections (event streams included) beyond this get 503 and are
  /// closed.
  std::size_t max_connections = 64;
  /// Largest request header block; larger gets 400.
  std::size_t max_header_bytes = 16 * 1024;
  /// Deepest JSON nesting accepted in a request body; deeper gets 400.
  std::size_t max_json_depth = 128;
  /// An idle keep-alive connection, or one that sends a request this
  /// slowly, is closed after this long.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  /// A response (or event) write that takes longer closes the connection.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  /// Interval of the ": keepalive" comment on event streams.
  std::chrono::milliseconds sse_keepalive = std::chrono::seconds(15);
  /// Per event-stream bound on events waiting to be written; a client
  /// that falls further behind is disconnected instead of growing memory.
  std::size_t sse_max_queued_events = 1000;
  std::size_t sse_max_queued_bytes = std::size_t{1} << 20;
  /// The web page's directory: GET/HEAD paths outside /v1/ are its files
  /// (never outside it, never a listing; docs/web.md). Unset, such paths
  /// are 404. See serve_static in api_server.cpp.
  std::optional<std::string> static_dir;
};

/// What start() returns: the bound port, or why the server could not start.
struct api_start_result {
  std::uint16_t port = 0;
  /// Empty on success.
  std::string error;
  [[nodiscard]] bool ok() const { return error.empty(); }
};

/// The HTTP/JSON API server.
///
/// Threads: every socket operation runs on the io_context passed in (the
/// daemon runs it on one thread); each connection has its own strand, so
/// running the io_context on several threads is also safe. Backend `done`
/// callbacks and event listeners may be called from any thread; they are
/// posted back to the connection's strand.
///
/// Lifetime: the backend must outlive the server and every handler the
/// server left on the io_context, i.e. call stop() and let the io_context
/// drain (or destroy it) before destroying the backend.
class api_server {
public:
  using options = api_server_options;

  api_server(boost::asio::io_context& ioc, api_backend& backend, options opts = {});
  /// Calls stop().
  ~api_server();
  api_server(const api_server&) = delete;
  api_server& operator=(const api_server&) = delete;

  /// Binds and starts accepting. Call once, before the io_context runs or
  /// from its thread. Fails (error set, nothing bound) for a non-loopback
  /// or unparsable address or when the port cannot be bound.
  [[nodiscard]] api_start_result start();

  /// Closes the listening socket, every connection and every event stream
  /// (unwatching it). Callable from any thread and more than once; from
  /// another thread it posts the work to the io_context and returns at
  /// once. Once it has run, the server leaves no pending work behind, so
  /// io_context::run() returns as soon as the other users of the
  /// io_context are done. Backend calls still in flight are answered into
  /// the void.
  void stop();

  /// The bound port (0 before a successful start()).
  [[nodiscard]] std::uint16_t port() const;

private:
  /// Shared with the connections, which may outlive this object by a few
  /// handlers.
  std::shared_ptr<detail::api_server_state> state_;
};

} // namespace kith::node
