#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace kith::causality {

/// A value of Rep that only compares with values of the same Tag, so a
/// replica id can never be passed where a counter is expected.
template <class Tag, class Rep>
class strong_value {
public:
  using rep_type = Rep;
  constexpr strong_value() = default;
  constexpr explicit strong_value(Rep v) : value_(v) {}
  [[nodiscard]] constexpr Rep value() const { return value_; }

  friend constexpr bool operator==(strong_value a, strong_value b) { return a.value_ == b.value_; }
  friend constexpr bool operator!=(strong_value a, strong_value b) { return a.value_ != b.value_; }
  friend constexpr bool operator<(strong_value a, strong_value b) { return a.value_ < b.value_; }
  friend constexpr bool operator<=(strong_value a, strong_value b) { return a.value_ <= b.value_; }
  friend constexpr bool operator>(strong_value a, strong_value b) { return a.value_ > b.value_; }
  friend constexpr bool operator>=(strong_value a, strong_value b) { return a.value_ >= b.value_; }

private:
  Rep value_{};
};

/// Names one incarnation of one node inside a replication group. A node
/// that loses its store takes a fresh id; the old one is retired.
using replica_id = strong_value<struct replica_id_tag, std::uint64_t>;

/// The n-th event of a replica; counters start at 1.
using counter = strong_value<struct counter_tag, std::uint64_t>;

/// One write event: the n-th write made by replica `id`.
struct dot {
  replica_id id;
  counter n;

  friend constexpr bool operator==(dot a, dot b) { return a.id == b.id && a.n == b.n; }
  friend constexpr bool operator!=(dot a, dot b) { return !(a == b); }
  friend constexpr bool operator<(dot a, dot b) {
    return a.id < b.id || (a.id == b.id && a.n < b.n);
  }
};

/// Keys are opaque byte strings (the node uses "subject\0predicate").
using key_type = std::string;

inline std::ostream& operator<<(std::ostream& os, replica_id r) { return os << 'r' << r.value(); }
inline std::ostream& operator<<(std::ostream& os, dot d) {
  return os << '(' << d.id << ',' << d.n.value() << ')';
}

} // namespace kith::causality

template <>
struct std::hash<kith::causality::replica_id> {
  std::size_t operator()(kith::causality::replica_id r) const noexcept {
    return std::hash<std::uint64_t>{}(r.value());
  }
};
