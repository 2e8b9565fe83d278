#pragma once

#include "kith/causality/node_clock.hpp"
#include "kith/causality/version_vector.hpp"

#include <string>
#include <utility>
#include <vector>

namespace kith::causality {

/// The value a dot carries: opaque bytes, or a delete marker. A delete
/// marker may carry bytes too (the node keeps the delete's signature there).
struct sibling {
  bool deleted = false;
  std::string bytes;

  static sibling value(std::string b) { return {false, std::move(b)}; }
  static sibling tombstone(std::string b = {}) { return {true, std::move(b)}; }

  friend bool operator==(const sibling& a, const sibling& b) {
    return a.deleted == b.deleted && a.bytes == b.bytes;
  }
  friend bool operator!=(const sibling& a, const sibling& b) { return !(a == b); }
};

/// A dotted causal container (one per key): the concurrent values of a key,
/// each under the dot that wrote it, and the causal context C of what the
/// holder has seen of this key. Invariant: C covers every dot held.
/// Stored stripped, so at rest a key is usually {dot -> value} with C empty.
class container {
public:
  using entry = std::pair<dot, sibling>;

  container() = default;

  [[nodiscard]] const std::vector<entry>& dots() const { return dots_; }
  [[nodiscard]] const version_vector& context() const { return context_; }
  [[nodiscard]] version_vector& context() { return context_; }

  /// Adds a dot and raises the context to cover it.
  void add(dot d, sibling s);
  /// Raises the context to the clock's base for every id of the clock.
  void fill(const node_clock& clock);
  /// Drops context entries already implied by the clock's base.
  void strip(const node_clock& clock);
  /// Drops dots covered by ctx (what a writer had read) and joins ctx in.
  void discard(const version_vector& ctx);
  /// Removes delete markers; they matter only while replicating.
  void drop_delete_markers();

  /// The merge of two filled containers: a dot survives when both hold it,
  /// or when one holds it and the other's context does not cover it.
  /// Commutative, associative, idempotent.
  [[nodiscard]] static container sync(const container& a, const container& b);

  /// Live (non-deleted) values in dot order.
  [[nodiscard]] std::vector<std::string> values() const;
  /// A version vector covering every dot held: what a reader passes back to
  /// replace all the values it saw.
  [[nodiscard]] version_vector read_context() const;
  /// True when nothing remains to store: no dots and an empty context.
  [[nodiscard]] bool empty() const { return dots_.empty() && context_.empty(); }
  [[nodiscard]] bool has_live_value() const;
  [[nodiscard]] bool holds(dot d) const;

  friend bool operator==(const container& a, const container& b) {
    return a.dots_ == b.dots_ && a.context_ == b.context_;
  }
  friend bool operator!=(const container& a, const container& b) { return !(a == b); }

  /// Dots sorted and unique. (Coverage of the dots by the context holds
  /// only for unstripped containers; see covers_own_dots().)
  [[nodiscard]] bool check_invariant() const;
  /// Every dot held is covered by the context (true of filled containers).
  [[nodiscard]] bool covers_own_dots() const;

private:
  std::vector<entry> dots_; // sorted by dot
  version_vector context_;
};

} // namespace kith::causality
