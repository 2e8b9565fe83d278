#pragma once

// A topic id held once per process. Long-lived tables keyed by topic (the
// node actor's, each peer actor's topic links, the relays actor's, the
// store's) hold one of these instead of a std::string: the 38-62 byte id
// is then one heap copy shared by every holder, in every simulated node
// of a kith-sim run, instead of a copy per holder (docs/simulation.md,
// "Session 23"). Only memory changes: it compares, hashes and prints as
// the id it names.

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace kith::protocol {

class topic_name {
public:
  /// The empty id.
  topic_name() = default;
  /// The shared copy of id (made if no holder has one): a lock and a
  /// hash lookup, so tables look ids up by string (std::less<>) and make
  /// one only to keep it. Thread-safe.
  topic_name(std::string_view id);                                  // NOLINT: stands for the id
  topic_name(const std::string& id) : topic_name(std::string_view(id)) {} // NOLINT
  topic_name(const char* id) : topic_name(std::string_view(id)) {}        // NOLINT

  [[nodiscard]] const std::string& str() const { return p_ ? *p_ : none(); }
  operator const std::string&() const { return str(); } // NOLINT: reads as the id
  [[nodiscard]] std::string_view view() const { return str(); }
  [[nodiscard]] bool empty() const { return !p_; }

  /// Distinct ids held now in the process (for tests and measurements).
  [[nodiscard]] static std::size_t held();

  friend bool operator==(const topic_name& a, const topic_name& b) {
    return a.p_ == b.p_ || a.view() == b.view();
  }
  friend bool operator!=(const topic_name& a, const topic_name& b) { return !(a == b); }
  friend bool operator<(const topic_name& a, const topic_name& b) { return a.view() < b.view(); }
  // Against a plain id: exact matches for each string type, so that
  // none of them converts to a topic_name (which would intern it).
  friend bool operator==(const topic_name& a, std::string_view b) { return a.view() == b; }
  friend bool operator!=(const topic_name& a, std::string_view b) { return a.view() != b; }
  friend bool operator<(const topic_name& a, std::string_view b) { return a.view() < b; }
  friend bool operator<(std::string_view a, const topic_name& b) { return a < b.view(); }
  friend bool operator==(const topic_name& a, const std::string& b) { return a.view() == b; }
  friend bool operator!=(const topic_name& a, const std::string& b) { return a.view() != b; }
  friend bool operator==(const std::string& a, const topic_name& b) { return b.view() == a; }
  friend bool operator!=(const std::string& a, const topic_name& b) { return b.view() != a; }
  friend bool operator<(const topic_name& a, const std::string& b) { return a.view() < b; }
  friend bool operator<(const std::string& a, const topic_name& b) { return std::string_view(a) < b.view(); }

  // Joined into messages as the id.
  friend std::string operator+(const std::string& a, const topic_name& b) { return a + b.str(); }
  friend std::string operator+(const char* a, const topic_name& b) { return a + b.str(); }
  friend std::string operator+(const topic_name& a, const std::string& b) { return a.str() + b; }
  friend std::string operator+(const topic_name& a, const char* b) { return a.str() + b; }

private:
  static const std::string& none();
  std::shared_ptr<const std::string> p_;
};

} // namespace kith::protocol

template <>
struct std::hash<kith::protocol::topic_name> {
  std::size_t operator()(const kith::protocol::topic_name& t) const noexcept {
    return std::hash<std::string_view>{}(t.view());
  }
};
