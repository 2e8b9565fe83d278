#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kith::storage {

/// Why a storage operation failed. A value is added only when some caller
/// reacts to it differently.
enum class errc {
  io,               // the disk or RocksDB failed; the message has its words
  not_found,        // no store, or no such topic
  already_exists,   // refusing to overwrite
  format_mismatch,  // the store was written by an incompatible version
  corrupt,          // stored bytes do not decode
  unauthorized,     // a write by someone the topic does not allow
  bad_signature,    // a signature, binding or hash does not check out
  invalid,          // malformed request from a caller or peer
  busy,             // the store is open in another process (the daemon waits)
};

[[nodiscard]] const char* to_string(errc e);

struct error {
  errc code;
  std::string message; // says what was wrong and, where possible, what to do
};

/// A value or an error: what every fallible storage call returns.
template <class T>
class result {
public:
  result(T v) : v_(std::move(v)) {}                 // NOLINT: implicit by design
  result(error e) : v_(std::move(e)) {}             // NOLINT
  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] T& value() { return std::get<0>(v_); }
  [[nodiscard]] const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  [[nodiscard]] const error& err() const { return std::get<1>(v_); }

private:
  std::variant<T, error> v_;
};

struct unit {};
using status = result<unit>;
inline status ok_status() { return unit{}; }

} // namespace kith::storage
