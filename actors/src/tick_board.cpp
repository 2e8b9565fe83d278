#include "tick_board.hpp"

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <algorithm>

namespace kith::actors::detail {

tick_board::tick_board(std::uint64_t origin_ms, std::uint64_t period_ms)
    : origin_(origin_ms), period_(std::max<std::uint64_t>(1, period_ms)) {}

std::uint64_t tick_board::point_at_or_after(std::uint64_t t) const {
  if (t <= origin_)
    return origin_;
  return origin_ + (t - origin_ + period_ - 1) / period_ * period_;
}

void tick_board::add(std::uint64_t at, const caf::actor_addr& who, bool with_at) {
  std::lock_guard lock(mu_);
  heap_.push_back(entry{at, who, next_seq_++, with_at});
  std::push_heap(heap_.begin(), heap_.end(), later{});
}

std::size_t tick_board::fire(std::uint64_t now) {
  std::vector<entry> due;
  {
    std::lock_guard lock(mu_);
    while (!heap_.empty() && heap_.front().at <= now) {
      std::pop_heap(heap_.begin(), heap_.end(), later{});
      due.push_back(std::move(heap_.back()));
      heap_.pop_back();
    }
    if (heap_.capacity() > 64 && heap_.size() < heap_.capacity() / 4)
      heap_.shrink_to_fit();
  }
  std::size_t sent = 0;
  for (const auto& e : due) {
    auto a = caf::actor_cast<caf::actor>(e.who);
    if (!a)
      continue; // ended meanwhile
    if (e.with_at)
      caf::anon_send(a, tick_atom::value, e.at);
    else
      caf::anon_send(a, tick_atom::value);
    ++sent;
  }
  return sent;
}

std::size_t tick_board::size() const {
  std::lock_guard lock(mu_);
  return heap_.size();
}

} // namespace kith::actors::detail
