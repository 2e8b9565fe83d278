#pragma once

// The kith-relay program's configuration: <data-dir>/relay.toml over the
// defaults, then command-line overrides. docs/operations.md lists every
// key with its default and what it protects.

#include "kith/relay/core.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kith::relay::program {

struct relay_config {
  std::string listen = "0.0.0.0:7480";  // relay port (port 0: any free port)
  std::string http = "127.0.0.1:7481";  // /metrics and /healthz ("" for none)
  std::string log_level = "info";       // trace, debug, info, warn, error, critical, off
  /// Bytes queued for one connection that its reader has not taken yet;
  /// over this the connection is closed as a slow reader.
  std::uint64_t max_queued_bytes = 8u << 20;
  relay_limits limits{};
  /// Clients are told to reconnect at a random time within this window.
  std::uint64_t restart_spread_ms = 30'000;
  /// How long a draining relay keeps serving before it says goodbye.
  std::uint64_t restart_drain_ms = 10'000;
};

/// A configuration problem, worded for the operator: names the file, the
/// line when known, and the key.
struct config_error {
  std::string message;
};

/// Reads `path` over the defaults. A missing file is not an error (every
/// key is optional); an unreadable one, a syntax error, an unknown key or a
/// value of the wrong type or range is.
[[nodiscard]] std::variant<relay_config, config_error> load_relay_config(const std::string& path);

/// Checks what the file cannot: addresses parse, the log level exists,
/// and relay_core accepts the limits together. `source` names where the
/// values came from, for the message.
[[nodiscard]] std::optional<config_error> validate(const relay_config& c, const std::string& source);

/// "host:port" → (host, port). The host is an IP literal (IPv6 in
/// brackets); port 0 only when `allow_zero`.
[[nodiscard]] std::optional<std::pair<std::string, std::uint16_t>>
parse_host_port(const std::string& s, bool allow_zero = true);

} // namespace kith::relay::program
