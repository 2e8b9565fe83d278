#pragma once

#include "kith/causality/types.hpp"

#include <utility>
#include <vector>

namespace kith::causality {

class node_clock;

/// A plain version vector: replica id -> highest counter. Used as the causal
/// context of a container. Kept as a sorted vector because contexts are
/// small (and usually empty once stripped). Entries with counter 0 are never
/// stored.
class version_vector {
public:
  using entry = std::pair<replica_id, std::uint64_t>;

  version_vector() = default;
  version_vector(std::initializer_list<entry> init);

  [[nodiscard]] std::uint64_t get(replica_id id) const;
  /// Raises the entry for id to at least n.
  void raise(replica_id id, std::uint64_t n);
  void erase(replica_id id);
  /// Pointwise maximum.
  void join(const version_vector& other);
  [[nodiscard]] bool covers(dot d) const { return get(d.id) >= d.n.value(); }
  /// True when every entry of this is <= the matching entry of other.
  [[nodiscard]] bool leq(const version_vector& other) const;
  /// Drops entries whose counter is <= the clock's base for that id.
  void strip(const node_clock& clock);
  /// Raises each entry to the clock's base for that id (all ids of the clock).
  void fill(const node_clock& clock);

  [[nodiscard]] bool empty() const { return entries_.empty(); }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] const std::vector<entry>& entries() const { return entries_; }

  friend bool operator==(const version_vector& a, const version_vector& b) {
    return a.entries_ == b.entries_;
  }
  friend bool operator!=(const version_vector& a, const version_vector& b) { return !(a == b); }

private:
  std::vector<entry> entries_; // sorted by id, counters > 0
};

} // namespace kith::causality
