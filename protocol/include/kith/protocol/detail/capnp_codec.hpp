#pragma once

// What the Cap'n Proto codecs of protocol/ and relay/ share: conversions,
// the checks a decoder applies to fields of untrusted messages, and reading
// packed bytes under explicit limits (every segment read, trailing bytes
// refused, Cap'n Proto's own refusals named by the limit that caused them).
//
// Includes Cap'n Proto: only the codecs' .cpp files include this header,
// never a public one (no Cap'n Proto type appears in a public header).

#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace kith::protocol::detail {

// --- conversions ----------------------------------------------------------------

inline capnp::Data::Reader as_data(std::string_view s) {
  return {reinterpret_cast<const kj::byte*>(s.data()), s.size()};
}

template <std::size_t N>
capnp::Data::Reader as_data(const std::array<std::uint8_t, N>& a) {
  return {a.data(), N};
}

// std::string keeps a NUL after its last byte, which Text::Reader wants.
inline capnp::Text::Reader as_text(const std::string& s) { return {s.data(), s.size()}; }

inline std::string_view view_of(capnp::Data::Reader d) {
  return {reinterpret_cast<const char*>(d.begin()), d.size()};
}

// --- field checks (throw refusal; read_packed turns it into a reason) ------------

struct refusal {
  std::string why;
};

[[noreturn]] inline void fail(std::string why) { throw refusal{std::move(why)}; }

inline void limit(std::size_t n, std::size_t max, const char* what, const char* name) {
  if (n > max)
    fail(std::string(what) + ": " + std::to_string(n) + " is over " + name + " (" +
         std::to_string(max) + ")");
}

inline std::string text(capnp::Text::Reader t, std::size_t max, const char* what,
                        const char* name) {
  limit(t.size(), max, what, name);
  return std::string(t.cStr(), t.size());
}

inline std::string bytes(capnp::Data::Reader d, std::size_t max, const char* what,
                         const char* name) {
  limit(d.size(), max, what, name);
  return std::string(view_of(d));
}

template <std::size_t N>
void fixed(capnp::Data::Reader d, std::array<std::uint8_t, N>& out, const char* what) {
  if (d.size() != N)
    fail(std::string(what) + ": " + std::to_string(d.size()) + " bytes, expected " +
         std::to_string(N));
  std::memcpy(out.data(), d.begin(), N);
}

// --- whole messages ---------------------------------------------------------------

inline std::string write_packed(capnp::MessageBuilder& builder) {
  kj::VectorOutputStream out;
  capnp::writePackedMessage(out, builder);
  auto a = out.getArray();
  return std::string(reinterpret_cast<const char*>(a.begin()), a.size());
}

struct read_limits {
  std::size_t max_message_bytes;
  std::uint64_t traversal_limit_words;
  int nesting_limit;
};

/// Opens untrusted packed bytes as one message with root `Root` and returns
/// decode(root); on any refusal returns nullopt with the reason in *why.
/// Never throws.
template <class Root, class Decode>
auto read_packed(std::string_view in_bytes, const read_limits& l, std::string* why,
                 Decode&& decode)
    -> std::optional<decltype(decode(std::declval<typename Root::Reader>()))> {
  using result = std::optional<decltype(decode(std::declval<typename Root::Reader>()))>;
  auto refuse = [&](std::string reason) -> result {
    if (why)
      *why = std::move(reason);
    return std::nullopt;
  };
  if (in_bytes.size() > l.max_message_bytes)
    return refuse("message of " + std::to_string(in_bytes.size()) + " bytes is over " +
                  "max_message_bytes (" + std::to_string(l.max_message_bytes) + ")");
  try {
    kj::ArrayInputStream in(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(in_bytes.data()), in_bytes.size()));
    capnp::ReaderOptions options;
    options.traversalLimitInWords = l.traversal_limit_words;
    options.nestingLimit = l.nesting_limit;
    capnp::PackedMessageReader reader(in, options);
    // Segments after the first are read lazily: fetch them all so what is
    // left in `in` is trailing bytes (refused: one frame, one message).
    // Cap'n Proto refuses more than 512 segments; past the last it returns
    // a null array (a segment of 0 words still has a place, so a non-null
    // begin). Stopping there matters: asking for all 511 cost ~5% of the
    // simulator's time, nearly every message having one segment.
    for (unsigned i = 1; i < 512; ++i)
      if (reader.getSegment(i).begin() == nullptr)
        break;
    if (in.tryGetReadBuffer().size() != 0)
      return refuse("trailing bytes after the message");
    return decode(reader.template getRoot<Root>());
  } catch (const refusal& e) {
    return refuse(e.why);
  } catch (const kj::Exception& e) {
    // Name the limit when Cap'n Proto's own checks are what refused.
    std::string d = e.getDescription().cStr();
    if (d.find("traversal") != std::string::npos || d.find("too large") != std::string::npos)
      return refuse("message over traversal_limit_words (" +
                    std::to_string(l.traversal_limit_words) + "): " + d);
    if (d.find("nested") != std::string::npos)
      return refuse("message nested deeper than nesting_limit (" +
                    std::to_string(l.nesting_limit) + "): " + d);
    return refuse("malformed message: " + d);
  } catch (const std::bad_alloc&) {
    return refuse("message too large to decode (out of memory)");
  } catch (const std::exception& e) {
    return refuse(std::string("malformed message: ") + e.what());
  }
}

} // namespace kith::protocol::detail
