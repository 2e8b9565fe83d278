#pragma once

// Export and import of a topic as a bundle file (protocol/bundle.hpp).
// Both run on the caller's thread against the store; in a running node the
// topic's actor calls them, so it stays the single writer of the topic.

#include "kith/protocol/bundle.hpp"
#include "kith/storage/store.hpp"

#include <cstdint>
#include <string>

namespace kith::storage {

struct bundle_stats {
  std::string topic;
  std::size_t pages = 0;
  std::size_t entries = 0;
  std::size_t keys_changed = 0;
  std::size_t new_dots = 0;
};

/// The whole topic as a bundle signed by `self` (the store's identity),
/// pages of at most `page_keys` keys.
[[nodiscard]] result<std::string> export_bundle(store& s, const protocol::identity& self,
                                                const std::string& topic,
                                                std::size_t page_keys = 1024);

/// Adds the bundle's topic if the store lacks it, then verifies and applies
/// every page (each atomically; a page that fails verification stops the
/// import with nothing of that page stored). Ends like a live resync: the
/// exporter's own clock entry is joined, which is safe because the file
/// signature proves the exporter made the bundle.
[[nodiscard]] result<bundle_stats> import_bundle(store& s, const protocol::bundle& b);

} // namespace kith::storage
