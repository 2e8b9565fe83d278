#pragma once

// `kith run`: the daemon. Opens the store, starts the actor system, the
// TCP transport for peers and the local HTTP API, and runs until SIGINT or
// SIGTERM. Configuration comes from <home>/config.toml (docs/api.md and
// README list the keys), overridden by command-line options.

#include "kith/node/data_dir.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kith::node {

struct daemon_config {
  std::string listen = "127.0.0.1:7411"; // peers connect here ("" to not listen)
  std::string api = "127.0.0.1:7410";    // the local API (port 0: any free port)
  std::string log_level = "info";        // debug, info, warn, error
  std::vector<std::string> relays;       // "host:port" or "host:port#<relay id>"
  /// Addresses announced in this node's relay record. Empty: the bound
  /// listen address when it is a specific host; none when not listening.
  std::vector<std::string> announce;
  std::uint32_t anti_entropy_s = 30;
  /// Feed members silent this long leave the watermark ([sync]
  /// retire_after_seconds; 0: never). Default: sync_settings' (7 days).
  std::uint32_t retire_after_s = 7 * 24 * 3600;
  /// The same for co-followers of feeds we follow ([sync]
  /// co_follower_retire_after_seconds; 0: as retire_after). Default:
  /// sync_settings' (10 minutes).
  std::uint32_t co_follower_retire_after_s = 600;
  /// How long a connection to a co-follower no longer pulled from is kept
  /// ([sync] co_follower_linger_seconds; 0: closed at once). Unset:
  /// sync_settings' (0 since session 27).
  std::optional<std::uint32_t> co_follower_linger_s;
  /// How long a peer connection that pulls and serves nothing stays awake
  /// before its actor sleeps ([sync] peer_sleep_after_seconds; 0: never).
  /// Unset: sync_settings' (0 for now).
  std::optional<std::uint32_t> peer_sleep_after_s;
  bool sync_writes = true;                // fsync every commit
  /// The web UI's files, served on the API port (docs/web.md). Unset: the
  /// directory found by default_web_dir(); "": no web UI.
  std::optional<std::string> web_dir;
  /// Be listed in the relays' public directory so aggregators find this
  /// node (its feed is public anyway to whoever knows its id).
  bool directory = true;
  /// Aggregators to ask for mentions, replies, threads and tags beyond
  /// one's follows: "<id>" (found through relays) or "<id>@host:port".
  std::vector<std::string> aggregators;
  /// Aggregator mode ([aggregator] enabled, or `kith run --aggregate`).
  bool aggregate = false;
  std::size_t aggregate_max_follows = 10'000;
};

/// The web UI shipped with this program, found relative to the running
/// executable: <exe dir>/../../web (the source tree's web/, for a binary
/// at build/node/kith) or <exe dir>/../share/kith/web (an install). The
/// first that holds an index.html, or nothing.
[[nodiscard]] std::optional<std::string> default_web_dir();

/// An aggregator as configured: "<id>" or "<id>@host:port" -> the
/// identity and the address ("" when found through relays).
[[nodiscard]] std::optional<std::pair<protocol::public_key, std::string>>
parse_aggregator(const std::string& text, std::string* why = nullptr);

/// Reads <home>/config.toml if present over the defaults; an unreadable or
/// invalid file is an error that names the file, line and key.
[[nodiscard]] storage::result<daemon_config> load_config(const data_dir& home);

/// Runs the daemon until a signal; returns the process exit code.
int run_daemon(const data_dir& home, const daemon_config& cfg);

/// Where a running daemon's API listens (<home>/api.addr), if one runs.
[[nodiscard]] std::optional<std::pair<std::string, std::uint16_t>> daemon_api_address(const data_dir& home);

} // namespace kith::node
