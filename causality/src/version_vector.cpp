#include "kith/causality/version_vector.hpp"

#include "kith/causality/node_clock.hpp"

#include <algorithm>

namespace kith::causality {

namespace {
auto lower(std::vector<version_vector::entry>& v, replica_id id) {
  return std::lower_bound(v.begin(), v.end(), id,
                          [](const auto& e, replica_id x) { return e.first < x; });
}
} // namespace

version_vector::version_vector(std::initializer_list<entry> init) {
  for (const auto& [id, n] : init)
    raise(id, n);
}

std::uint64_t version_vector::get(replica_id id) const {
  auto i = std::lower_bound(entries_.begin(), entries_.end(), id,
                            [](const auto& e, replica_id x) { return e.first < x; });
  return i != entries_.end() && i->first == id ? i->second : 0;
}

void version_vector::raise(replica_id id, std::uint64_t n) {
  if (n == 0)
    return;
  auto i = lower(entries_, id);
  if (i != entries_.end() && i->first == id)
    i->second = std::max(i->second, n);
  else
    entries_.insert(i, {id, n});
}

void version_vector::erase(replica_id id) {
  auto i = lower(entries_, id);
  if (i != entries_.end() && i->first == id)
    entries_.erase(i);
}

void version_vector::join(const version_vector& other) {
  if (other.entries_.empty())
    return;
  std::vector<entry> out;
  out.reserve(entries_.size() + other.entries_.size());
  auto a = entries_.begin();
  auto b = other.entries_.begin();
  while (a != entries_.end() || b != other.entries_.end()) {
    if (b == other.entries_.end() || (a != entries_.end() && a->first < b->first))
      out.push_back(*a++);
    else if (a == entries_.end() || b->first < a->first)
      out.push_back(*b++);
    else {
      out.emplace_back(a->first, std::max(a->second, b->second));
      ++a;
      ++b;
    }
  }
  entries_ = std::move(out);
}

bool version_vector::leq(const version_vector& other) const {
  for (const auto& [id, n] : entries_)
    if (n > other.get(id))
      return false;
  return true;
}

void version_vector::strip(const node_clock& clock) {
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const entry& e) { return e.second <= clock.base(e.first); }),
                 entries_.end());
}

void version_vector::fill(const node_clock& clock) {
  for (const auto& [id, e] : clock.entries())
    raise(id, e.base());
}

} // namespace kith::causality
