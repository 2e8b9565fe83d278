#include "kith/causality/node_clock.hpp"

#include <algorithm>
#include <cassert>

namespace kith::causality {

namespace {

constexpr std::uint64_t word_bits = 64;

// Shifts a little-endian multiword bitmap right by n bits.
void shift_right(std::vector<std::uint64_t>& w, std::uint64_t n) {
  if (n == 0 || w.empty())
    return;
  const std::uint64_t words = n / word_bits;
  const unsigned bits = static_cast<unsigned>(n % word_bits);
  if (words >= w.size()) {
    w.clear();
    return;
  }
  const std::size_t out = w.size() - words;
  for (std::size_t i = 0; i < out; ++i) {
    std::uint64_t lo = w[i + words] >> bits;
    std::uint64_t hi = 0;
    if (bits != 0 && i + words + 1 < w.size())
      hi = w[i + words + 1] << (word_bits - bits);
    w[i] = lo | hi;
  }
  w.resize(out);
}

void trim(std::vector<std::uint64_t>& w) {
  while (!w.empty() && w.back() == 0)
    w.pop_back();
}

int popcount(std::uint64_t x) {
  return __builtin_popcountll(x);
}

} // namespace

clock_entry::clock_entry(std::uint64_t base, std::vector<std::uint64_t> bits)
  : base_(base), bits_(std::move(bits)) {
  normalise();
}

clock_entry clock_entry::from_word(std::uint64_t base, std::uint64_t bits) {
  return clock_entry{base, bits == 0 ? std::vector<std::uint64_t>{}
                                     : std::vector<std::uint64_t>{bits}};
}

bool clock_entry::bit(std::uint64_t i) const {
  const std::uint64_t w = i / word_bits;
  return w < bits_.size() && ((bits_[w] >> (i % word_bits)) & 1u) != 0;
}

bool clock_entry::contains(std::uint64_t n) const {
  if (n == 0)
    return false;
  return n <= base_ || bit(n - base_ - 1);
}

std::uint64_t clock_entry::max() const {
  if (bits_.empty())
    return base_;
  const std::uint64_t top = bits_.back();
  const auto hi = static_cast<std::uint64_t>(63 - __builtin_clzll(top));
  return base_ + 1 + (bits_.size() - 1) * word_bits + hi;
}

std::uint64_t clock_entry::count() const {
  std::uint64_t c = base_;
  for (auto w : bits_)
    c += static_cast<std::uint64_t>(popcount(w));
  return c;
}

void clock_entry::normalise() {
  // Count the run of set bits starting at bit 0 and fold it into the base.
  std::uint64_t run = 0;
  std::size_t i = 0;
  while (i < bits_.size() && bits_[i] == ~std::uint64_t{0}) {
    run += word_bits;
    ++i;
  }
  if (i < bits_.size())
    run += static_cast<std::uint64_t>(__builtin_ctzll(~bits_[i]));
  if (run > 0) {
    base_ += run;
    shift_right(bits_, run);
  }
  trim(bits_);
}

bool clock_entry::normalised() const {
  if (!bits_.empty() && bits_.back() == 0)
    return false;
  return bits_.empty() || (bits_[0] & 1u) == 0;
}

void clock_entry::add(std::uint64_t n) {
  if (n == 0 || n <= base_)
    return;
  const std::uint64_t i = n - base_ - 1;
  const std::uint64_t w = i / word_bits;
  if (w >= bits_.size())
    bits_.resize(static_cast<std::size_t>(w) + 1, 0);
  bits_[w] |= std::uint64_t{1} << (i % word_bits);
  if (i == 0)
    normalise();
}

void clock_entry::raise_base(std::uint64_t n) {
  if (n <= base_)
    return;
  shift_right(bits_, n - base_);
  base_ = n;
  normalise();
}

void clock_entry::join(const clock_entry& other) {
  if (other.base_ > base_) {
    clock_entry tmp = other;
    tmp.join(*this);
    *this = std::move(tmp);
    return;
  }
  // Here base_ >= other.base_: other's bit i stands for other.base_+1+i, which
  // is bit i - delta of ours; bits below delta are already under our base.
  std::vector<std::uint64_t> shifted = other.bits_;
  shift_right(shifted, base_ - other.base_);
  if (shifted.size() > bits_.size())
    bits_.resize(shifted.size(), 0);
  for (std::size_t i = 0; i < shifted.size(); ++i)
    bits_[i] |= shifted[i];
  normalise();
}

std::vector<std::uint64_t> clock_entry::values() const {
  std::vector<std::uint64_t> out;
  out.reserve(static_cast<std::size_t>(count()));
  for (std::uint64_t n = 1; n <= base_; ++n)
    out.push_back(n);
  for (std::size_t w = 0; w < bits_.size(); ++w)
    for (std::uint64_t x = bits_[w]; x != 0; x &= x - 1)
      out.push_back(base_ + 1 + w * word_bits + static_cast<std::uint64_t>(__builtin_ctzll(x)));
  return out;
}

std::vector<std::uint64_t> clock_entry::missing_from(const clock_entry& other) const {
  std::vector<std::uint64_t> out;
  // Counters 1..base_ that other lacks: all above other's base, minus its bits.
  for (std::uint64_t n = other.base_ + 1; n <= base_; ++n)
    if (!other.contains(n))
      out.push_back(n);
  for (std::size_t w = 0; w < bits_.size(); ++w)
    for (std::uint64_t x = bits_[w]; x != 0; x &= x - 1) {
      const std::uint64_t n =
        base_ + 1 + w * word_bits + static_cast<std::uint64_t>(__builtin_ctzll(x));
      if (!other.contains(n))
        out.push_back(n);
    }
  return out;
}

// --- node_clock --------------------------------------------------------------

namespace {
template <class V>
auto lower(V& v, replica_id id) {
  return std::lower_bound(v.begin(), v.end(), id,
                          [](const auto& e, replica_id x) { return e.first < x; });
}
} // namespace

const clock_entry* node_clock::find(replica_id id) const {
  auto i = lower(entries_, id);
  return i != entries_.end() && i->first == id ? &i->second : nullptr;
}

clock_entry& node_clock::entry_for(replica_id id) {
  auto i = lower(entries_, id);
  if (i == entries_.end() || i->first != id)
    i = entries_.insert(i, {id, clock_entry{}});
  return i->second;
}

bool node_clock::contains(dot d) const {
  const auto* e = find(d.id);
  return e != nullptr && e->contains(d.n.value());
}

std::uint64_t node_clock::base(replica_id id) const {
  const auto* e = find(id);
  return e != nullptr ? e->base() : 0;
}

void node_clock::add(dot d) {
  if (d.n.value() == 0)
    return;
  entry_for(d.id).add(d.n.value());
}

void node_clock::join_entry(replica_id id, const clock_entry& e) {
  if (e.empty())
    return;
  entry_for(id).join(e);
}

void node_clock::merge(const node_clock& other) {
  for (const auto& [id, e] : other.entries_)
    join_entry(id, e);
}

node_clock node_clock::base_only() const {
  node_clock out;
  for (const auto& [id, e] : entries_)
    if (e.base() > 0)
      out.entries_.emplace_back(id, clock_entry{e.base(), {}});
  return out;
}

dot node_clock::event(replica_id id) {
  auto& e = entry_for(id);
  const dot d{id, counter{e.base() + 1}};
  e.add(d.n.value());
  return d;
}

std::vector<dot> node_clock::missing_from(const node_clock& other) const {
  std::vector<dot> out;
  static const clock_entry none;
  for (const auto& [id, e] : entries_) {
    const auto* o = other.find(id);
    for (auto n : e.missing_from(o != nullptr ? *o : none))
      out.push_back(dot{id, counter{n}});
  }
  return out;
}

void node_clock::erase(replica_id id) {
  auto i = lower(entries_, id);
  if (i != entries_.end() && i->first == id)
    entries_.erase(i);
}

std::uint64_t node_clock::dot_count() const {
  std::uint64_t c = 0;
  for (const auto& [id, e] : entries_)
    c += e.count();
  return c;
}

bool node_clock::check_invariant() const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (i > 0 && !(entries_[i - 1].first < entries_[i].first))
      return false;
    if (entries_[i].second.empty() || !entries_[i].second.normalised())
      return false;
  }
  return true;
}

} // namespace kith::causality
