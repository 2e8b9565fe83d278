#pragma once

// A small synchronous client of the local API (docs/api.md), for the CLI
// and the tests. Each call opens its own connection and io_context; there
// is no shared state, so calls may run on any thread concurrently.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace kith::node {

struct api_result {
  /// True when a complete HTTP response arrived (whatever its status).
  bool ok = false;
  /// Why not, when !ok: connection refused, timed out, bad response...
  std::string error;
  int status = 0;
  std::string body;
  std::string content_type;
};

/// Sends one request and reads the response. `target` is the path and
/// query, already encoded (see url_encode). `body`, when set, is sent with
/// `content_type`. `timeout` bounds the whole exchange. Never throws.
[[nodiscard]] api_result call_api(const std::string& host, std::uint16_t port,
                                  const std::string& method, const std::string& target,
                                  const std::optional<std::string>& body,
                                  std::string content_type = "application/json",
                                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// Percent-encodes everything but the RFC 3986 unreserved characters
/// (A-Z a-z 0-9 - . _ ~), so the result is safe as one path segment or
/// one query value ('/' becomes %2F).
[[nodiscard]] std::string url_encode(const std::string& s);

/// Opens GET /v1/events and calls `on_event(type, data)` for each event
/// until it returns false (result true), or until the stream ends, fails
/// or `timeout` has passed since the call began (result false). Comment
/// lines (keepalives) are skipped. Blocks the calling thread.
[[nodiscard]] bool read_events(const std::string& host, std::uint16_t port,
                               const std::function<bool(const std::string& type,
                                                        const std::string& data)>& on_event,
                               std::chrono::milliseconds timeout);

} // namespace kith::node
