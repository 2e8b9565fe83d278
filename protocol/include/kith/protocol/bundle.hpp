#pragma once

// Bundles: a topic's signed data in one file, for moving it without a
// network (a USB stick, a mail attachment). docs/protocol.md ("Bundles")
// gives the layout. Pure: bytes in, values out.
//
// A bundle is the exporter's full-state resync of one topic, written as
// the same wire messages a live resync uses, and signed as a whole by the
// exporter. Every entry inside carries its author's signature and is
// verified again on import; the whole-file signature only says who made
// the bundle, which lets the importer treat the exporter's own clock entry
// the way a live resync does (first-hand, docs/security.md).

#include "kith/protocol/messages.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kith::protocol {

struct bundle_limits {
  std::size_t max_bundle_bytes = std::size_t{1} << 30; // whole file
  std::size_t max_pages = 1u << 20;
  message_limits messages{};
};

/// A decoded, checked bundle.
struct bundle {
  replica_binding exporter;   // binding checked, file signature verified
  topic_descriptor topic;
  std::vector<signed_reply> pages; // each from exporter.rid, for topic.id
};

/// Builds a bundle page by page. One owner; not thread-safe.
class bundle_writer {
public:
  bundle_writer(const identity& self, const replica_binding& binding,
                const topic_descriptor& topic);
  /// Appends one page (a resync page of the topic, from binding.rid).
  void add(const signed_reply& page);
  /// Signs and returns the file's bytes; the writer is spent afterwards.
  [[nodiscard]] std::string finish();

private:
  const identity& self_;
  std::string out_;
};

/// Checks and decodes a bundle: layout, limits, the exporter's binding,
/// the file signature, and that every page belongs to the topic and the
/// exporter. Entry signatures are checked later, by the store, when the
/// pages are applied. On failure returns nullopt with the reason in *why.
/// Never throws.
[[nodiscard]] std::optional<bundle> read_bundle(std::string_view bytes,
                                                const bundle_limits& l = {},
                                                std::string* why = nullptr);

} // namespace kith::protocol
