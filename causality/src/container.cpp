#include "kith/causality/container.hpp"

#include <algorithm>

namespace kith::causality {

void container::add(dot d, sibling s) {
  auto i = std::lower_bound(dots_.begin(), dots_.end(), d,
                            [](const entry& e, dot x) { return e.first < x; });
  if (i != dots_.end() && i->first == d)
    i->second = std::move(s);
  else
    dots_.insert(i, {d, std::move(s)});
  context_.raise(d.id, d.n.value());
}

void container::fill(const node_clock& clock) {
  context_.fill(clock);
}

void container::strip(const node_clock& clock) {
  context_.strip(clock);
}

void container::discard(const version_vector& ctx) {
  dots_.erase(std::remove_if(dots_.begin(), dots_.end(),
                             [&](const entry& e) { return ctx.covers(e.first); }),
              dots_.end());
  context_.join(ctx);
}

void container::drop_delete_markers() {
  dots_.erase(std::remove_if(dots_.begin(), dots_.end(),
                             [](const entry& e) { return e.second.deleted; }),
              dots_.end());
}

container container::sync(const container& a, const container& b) {
  container r;
  auto i = a.dots_.begin();
  auto j = b.dots_.begin();
  while (i != a.dots_.end() || j != b.dots_.end()) {
    if (j == b.dots_.end() || (i != a.dots_.end() && i->first < j->first)) {
      if (!b.context_.covers(i->first))
        r.dots_.push_back(*i);
      ++i;
    } else if (i == a.dots_.end() || j->first < i->first) {
      if (!a.context_.covers(j->first))
        r.dots_.push_back(*j);
      ++j;
    } else {
      // Held by both. The sibling of a dot never changes once written, but
      // pick deterministically should a peer disagree.
      r.dots_.push_back(i->second.bytes <= j->second.bytes ? *i : *j);
      ++i;
      ++j;
    }
  }
  r.context_ = a.context_;
  r.context_.join(b.context_);
  return r;
}

std::vector<std::string> container::values() const {
  std::vector<std::string> out;
  for (const auto& [d, s] : dots_)
    if (!s.deleted)
      out.push_back(s.bytes);
  return out;
}

version_vector container::read_context() const {
  version_vector v = context_;
  for (const auto& [d, s] : dots_)
    v.raise(d.id, d.n.value());
  return v;
}

bool container::has_live_value() const {
  return std::any_of(dots_.begin(), dots_.end(), [](const entry& e) { return !e.second.deleted; });
}

bool container::holds(dot d) const {
  return std::binary_search(dots_.begin(), dots_.end(), entry{d, {}},
                            [](const entry& a, const entry& b) { return a.first < b.first; });
}

bool container::check_invariant() const {
  for (std::size_t i = 1; i < dots_.size(); ++i)
    if (!(dots_[i - 1].first < dots_[i].first))
      return false;
  return true;
}

bool container::covers_own_dots() const {
  return std::all_of(dots_.begin(), dots_.end(),
                     [&](const entry& e) { return context_.covers(e.first); });
}

} // namespace kith::causality
