#pragma once

// Strings held once in a process however many holders share them: the
// table behind protocol::topic_name and storage::value_pool. Thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kith::protocol {

class string_pool {
public:
  string_pool();
  ~string_pool();
  string_pool(const string_pool&) = delete;
  string_pool& operator=(const string_pool&) = delete;

  /// The shared copy of s, made if no holder has one. The pool may go
  /// before its strings: each holds the table it leaves at its end.
  [[nodiscard]] std::shared_ptr<const std::string> intern(std::string_view s);
  /// Distinct strings held now, and their bytes.
  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] std::uint64_t bytes() const;

  struct table;

private:
  std::shared_ptr<table> table_;
};

} // namespace kith::protocol
