#pragma once

#include "kith/causality/types.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace kith::causality {

/// For every dot this replica learned and not every member has seen yet,
/// the key it touched. Anti-entropy turns a peer's missing dots into keys
/// through it; rows are pruned below the watermark minimum.
class dot_key_map {
public:
  using row = std::map<std::uint64_t, key_type>;

  void insert(dot d, const key_type& k);
  [[nodiscard]] const key_type* find(dot d) const;
  /// Drops every entry of origin id with counter <= upto. Returns how many.
  std::size_t prune(replica_id id, std::uint64_t upto);
  void erase_row(replica_id id);

  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }
  [[nodiscard]] const std::map<replica_id, row>& rows() const { return rows_; }

private:
  std::map<replica_id, row> rows_;
  std::size_t size_ = 0;
};

/// The watermark matrix: for origin r (a row) and member j (a column), the
/// base of j's clock entry for r as last known here. The minimum of a row
/// over the live members says which of r's dots every member has; a member
/// with no known entry counts as 0, so an incomplete row never prunes.
/// Retired members no longer count; their column is dropped.
class watermark {
public:
  using column_map = std::map<replica_id, std::uint64_t>;

  /// The live members of the group (this replica included).
  void set_members(std::vector<replica_id> members);
  void add_member(replica_id id);
  /// Stops counting id as a member; its column is forgotten.
  void retire(replica_id id);
  [[nodiscard]] const std::vector<replica_id>& members() const { return members_; }
  [[nodiscard]] bool is_member(replica_id id) const;

  /// Raises (origin, member) to n.
  void raise(replica_id origin, replica_id member, std::uint64_t n);
  /// Records the bases of a member's clock entries.
  template <class Clock>
  void observe(replica_id member, const Clock& clock) {
    for (const auto& [origin, e] : clock.entries())
      raise(origin, member, e.base());
  }
  /// Whether observe(member, clock) would raise nothing: a member's
  /// report that says nothing new (most anti-entropy rounds) need not be
  /// stored again.
  template <class Clock>
  [[nodiscard]] bool covers(replica_id member, const Clock& clock) const {
    if (!is_member(member))
      return true;
    for (const auto& [origin, e] : clock.entries())
      if (e.base() != 0 && get(origin, member) < e.base())
        return false;
    return true;
  }
  /// Pointwise maximum with another watermark (ignoring non-members).
  void merge(const watermark& other);
  /// Minimum of row origin over live members (0 if any is unknown).
  [[nodiscard]] std::uint64_t row_min(replica_id origin) const;
  [[nodiscard]] std::uint64_t get(replica_id origin, replica_id member) const;
  void erase_row(replica_id origin);

  [[nodiscard]] const std::map<replica_id, column_map>& rows() const { return rows_; }

private:
  std::vector<replica_id> members_; // sorted
  std::map<replica_id, column_map> rows_;
};

} // namespace kith::causality
