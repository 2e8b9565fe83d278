#include "kith/protocol/string_pool.hpp"

#include <mutex>
#include <unordered_map>

namespace kith::protocol {

/// Each string held, by its bytes (a view into the string itself). A
/// string's deleter takes its entry out, so the table holds only live ones.
struct string_pool::table {
  mutable std::mutex mu;
  std::unordered_map<std::string_view, std::weak_ptr<const std::string>> held;
  std::uint64_t bytes = 0;

  void release(const std::string* s) {
    {
      std::lock_guard lock(mu);
      auto i = held.find(*s);
      // The entry may name a newer copy of the same bytes already (made
      // after this one's last holder let go, before this deleter ran).
      if (i != held.end() && i->first.data() == s->data()) {
        held.erase(i);
        bytes -= s->size();
      }
    }
    delete s;
  }
};

string_pool::string_pool() : table_(std::make_shared<table>()) {}
string_pool::~string_pool() = default;

std::shared_ptr<const std::string> string_pool::intern(std::string_view s) {
  std::lock_guard lock(table_->mu);
  auto i = table_->held.find(s);
  if (i != table_->held.end()) {
    if (auto held = i->second.lock())
      return held;
    // An expiring copy whose deleter has not run yet: ours replaces it.
    table_->bytes -= i->first.size();
    table_->held.erase(i);
  }
  auto* copy = new std::string(s);
  std::shared_ptr<const std::string> out(copy,
                                         [owner = table_](const std::string* p) { owner->release(p); });
  table_->held.emplace(std::string_view(*copy), out);
  table_->bytes += copy->size();
  return out;
}

std::size_t string_pool::size() const {
  std::lock_guard lock(table_->mu);
  return table_->held.size();
}

std::uint64_t string_pool::bytes() const {
  std::lock_guard lock(table_->mu);
  return table_->bytes;
}

} // namespace kith::protocol
