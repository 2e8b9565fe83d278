#pragma once

#include "kith/causality/types.hpp"

#include <cstdint>
#include <utility>
#include <vector>

namespace kith::causality {

/// One entry of a bitmapped version vector: the counters 1..base, plus
/// base+1+i for every set bit i of the bitmap (least significant first).
/// After normalise() bit 0 is clear and the bitmap has no trailing zero
/// words, so equal sets of counters have equal representations.
class clock_entry {
public:
  clock_entry() = default;
  clock_entry(std::uint64_t base, std::vector<std::uint64_t> bits);
  /// Convenience for tests: a bitmap of at most 64 bits.
  static clock_entry from_word(std::uint64_t base, std::uint64_t bits);

  [[nodiscard]] std::uint64_t base() const { return base_; }
  [[nodiscard]] const std::vector<std::uint64_t>& bits() const { return bits_; }
  [[nodiscard]] bool contains(std::uint64_t n) const;
  /// Largest counter present (0 when empty).
  [[nodiscard]] std::uint64_t max() const;
  /// Number of counters present.
  [[nodiscard]] std::uint64_t count() const;
  [[nodiscard]] bool empty() const { return base_ == 0 && bits_.empty(); }

  void add(std::uint64_t n);
  void join(const clock_entry& other);
  /// Every counter in [1, n] becomes present.
  void raise_base(std::uint64_t n);
  /// All counters in order (for tests and small entries).
  [[nodiscard]] std::vector<std::uint64_t> values() const;
  /// Counters present here and absent from other, ascending.
  [[nodiscard]] std::vector<std::uint64_t> missing_from(const clock_entry& other) const;

  friend bool operator==(const clock_entry& a, const clock_entry& b) {
    return a.base_ == b.base_ && a.bits_ == b.bits_;
  }
  friend bool operator!=(const clock_entry& a, const clock_entry& b) { return !(a == b); }

  /// Verifies the normal form (bit 0 clear, no trailing zero word).
  [[nodiscard]] bool normalised() const;

private:
  void normalise();
  [[nodiscard]] bool bit(std::uint64_t i) const;

  std::uint64_t base_ = 0;
  std::vector<std::uint64_t> bits_; // bit i stands for base_ + 1 + i
};

/// The node clock of one replication group: a bitmapped version vector
/// (replica id -> clock_entry), the set of every dot this replica has seen.
/// Its own entry never has gaps. Cost: lookups are O(log ids).
class node_clock {
public:
  using entry_pair = std::pair<replica_id, clock_entry>;

  [[nodiscard]] bool contains(dot d) const;
  [[nodiscard]] std::uint64_t base(replica_id id) const;
  [[nodiscard]] const clock_entry* find(replica_id id) const;
  void add(dot d);
  /// Joins one entry (used when merging only a peer's own entry).
  void join_entry(replica_id id, const clock_entry& e);
  /// Pointwise join of every entry.
  void merge(const node_clock& other);
  /// The clock with every bitmap cleared (only the contiguous prefixes).
  [[nodiscard]] node_clock base_only() const;
  /// Next counter for id: base + 1 (the replica's own next dot).
  /// Adds the dot to the clock and returns it.
  dot event(replica_id id);
  /// Dots present in this clock and absent from other, ascending.
  [[nodiscard]] std::vector<dot> missing_from(const node_clock& other) const;
  /// Removes an entry entirely (used only when a retired id is closed).
  void erase(replica_id id);

  [[nodiscard]] const std::vector<entry_pair>& entries() const { return entries_; }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] bool empty() const { return entries_.empty(); }
  /// Total number of dots represented.
  [[nodiscard]] std::uint64_t dot_count() const;

  friend bool operator==(const node_clock& a, const node_clock& b) {
    return a.entries_ == b.entries_;
  }
  friend bool operator!=(const node_clock& a, const node_clock& b) { return !(a == b); }

  /// Every entry normalised and non-empty, ids sorted and unique.
  [[nodiscard]] bool check_invariant() const;

private:
  clock_entry& entry_for(replica_id id);
  std::vector<entry_pair> entries_; // sorted by id, no empty entries
};

} // namespace kith::causality
