#pragma once

#include "kith/protocol/crypto.hpp"
#include "kith/storage/result.hpp"

#include <string>

namespace kith::node {

/// The node's data directory: identity.key (the secret seed, mode 0600)
/// and store/ (RocksDB).
class data_dir {
public:
  explicit data_dir(std::string path) : path_(std::move(path)) {}
  /// $KITH_HOME, else ~/.kith.
  [[nodiscard]] static std::string default_path();

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string key_file() const { return path_ + "/identity.key"; }
  [[nodiscard]] std::string store_dir() const { return path_ + "/store"; }

  /// Creates a new identity. Refuses when one exists unless `replace`, in
  /// which case the old key and store are moved aside (never deleted).
  /// Returns where the old files went (empty if none).
  [[nodiscard]] storage::result<std::string> create_identity(const protocol::identity& id,
                                                             bool replace);
  /// Loads the identity; refuses a key file others can read.
  [[nodiscard]] storage::result<protocol::identity> load_identity() const;

private:
  std::string path_;
};

} // namespace kith::node
