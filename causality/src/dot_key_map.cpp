#include "kith/causality/dot_key_map.hpp"

#include <algorithm>

namespace kith::causality {

void dot_key_map::insert(dot d, const key_type& k) {
  auto [it, fresh] = rows_[d.id].emplace(d.n.value(), k);
  if (fresh)
    ++size_;
  else
    it->second = k;
}

const key_type* dot_key_map::find(dot d) const {
  auto r = rows_.find(d.id);
  if (r == rows_.end())
    return nullptr;
  auto i = r->second.find(d.n.value());
  return i != r->second.end() ? &i->second : nullptr;
}

std::size_t dot_key_map::prune(replica_id id, std::uint64_t upto) {
  auto r = rows_.find(id);
  if (r == rows_.end())
    return 0;
  auto end = r->second.upper_bound(upto);
  const auto n = static_cast<std::size_t>(std::distance(r->second.begin(), end));
  r->second.erase(r->second.begin(), end);
  size_ -= n;
  if (r->second.empty())
    rows_.erase(r);
  return n;
}

void dot_key_map::erase_row(replica_id id) {
  auto r = rows_.find(id);
  if (r == rows_.end())
    return;
  size_ -= r->second.size();
  rows_.erase(r);
}

// --- watermark ---------------------------------------------------------------

void watermark::set_members(std::vector<replica_id> members) {
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  members_ = std::move(members);
  for (auto& [origin, cols] : rows_)
    for (auto i = cols.begin(); i != cols.end();)
      i = is_member(i->first) ? std::next(i) : cols.erase(i);
}

void watermark::add_member(replica_id id) {
  auto i = std::lower_bound(members_.begin(), members_.end(), id);
  if (i == members_.end() || *i != id)
    members_.insert(i, id);
}

void watermark::retire(replica_id id) {
  auto i = std::lower_bound(members_.begin(), members_.end(), id);
  if (i != members_.end() && *i == id)
    members_.erase(i);
  for (auto& [origin, cols] : rows_)
    cols.erase(id);
}

bool watermark::is_member(replica_id id) const {
  return std::binary_search(members_.begin(), members_.end(), id);
}

void watermark::raise(replica_id origin, replica_id member, std::uint64_t n) {
  if (n == 0 || !is_member(member))
    return;
  auto& v = rows_[origin][member];
  v = std::max(v, n);
}

void watermark::merge(const watermark& other) {
  for (const auto& [origin, cols] : other.rows_)
    for (const auto& [member, n] : cols)
      raise(origin, member, n);
}

std::uint64_t watermark::row_min(replica_id origin) const {
  auto r = rows_.find(origin);
  if (r == rows_.end() || members_.empty())
    return 0;
  std::uint64_t m = ~std::uint64_t{0};
  for (auto member : members_) {
    auto c = r->second.find(member);
    if (c == r->second.end())
      return 0;
    m = std::min(m, c->second);
  }
  return m;
}

std::uint64_t watermark::get(replica_id origin, replica_id member) const {
  auto r = rows_.find(origin);
  if (r == rows_.end())
    return 0;
  auto c = r->second.find(member);
  return c != r->second.end() ? c->second : 0;
}

void watermark::erase_row(replica_id origin) {
  rows_.erase(origin);
}

} // namespace kith::causality
