#pragma once

// The relay's identity on disk: <data-dir>/identity.key, the same format
// as a node's (a header line, the hex seed, the text id), owner-only
// (mode 0600). The relay keeps nothing else secret and stores no user data.

#include "kith/protocol/crypto.hpp"

#include <string>
#include <variant>

namespace kith::relay::program {

struct identity_error {
  enum class kind { missing, exists, unreadable, invalid };
  kind what = kind::invalid;
  std::string message; // worded for the operator: says what to do
};

[[nodiscard]] std::string identity_path(const std::string& data_dir);

/// Creates the data directory (mode 0700) and a fresh identity from the
/// OS random source. Refuses when an identity file is already there.
[[nodiscard]] std::variant<protocol::identity, identity_error> create_identity(const std::string& data_dir);

/// Loads the identity; refuses a key file that others can read.
[[nodiscard]] std::variant<protocol::identity, identity_error> load_identity(const std::string& data_dir);

/// Writes `text` to `path` through a temporary file and a rename, so a
/// reader sees the old content or the whole new one.
[[nodiscard]] bool write_atomic(const std::string& path, const std::string& text, int mode = 0644);

} // namespace kith::relay::program
