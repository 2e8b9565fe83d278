#include "relay_config.hpp"

#include <boost/asio/ip/address.hpp>
#include <spdlog/common.h>
#include <toml++/toml.h>

#include <filesystem>
#include <functional>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace kith::relay::program {

namespace {

// --- every field of relay_limits, by name ------------------------------------------
//
// The config must offer every limit the core has. C++17 cannot list a
// struct's fields, but it can count them (an aggregate accepts exactly as
// many initializers as it has fields), so a field added to relay_limits
// or wire_limits without a line here stops the build instead of being
// silently unconfigurable.

struct any_field {
  template <class T>
  operator T() const; // never defined: only used in unevaluated contexts
};

template <class T, class = void, class... A>
struct brace_constructible : std::false_type {};
template <class T, class... A>
struct brace_constructible<T, std::void_t<decltype(T{std::declval<A>()...})>, A...>
    : std::true_type {};

template <class T, std::size_t... I>
constexpr bool takes(std::index_sequence<I...>) {
  return brace_constructible<T, void, decltype((void)I, any_field{})...>::value;
}
template <class T, std::size_t N = 0>
constexpr std::size_t field_count() {
  if constexpr (!takes<T>(std::make_index_sequence<N + 1>{}))
    return N;
  else
    return field_count<T, N + 1>();
}

static_assert(field_count<relay_limits>() == 32,
              "relay_limits gained or lost a field: update the [limits] table in "
              "relay/program/relay_config.cpp and docs/operations.md");
static_assert(field_count<wire_limits>() == 9,
              "wire_limits gained or lost a field: update the [limits.wire] table in "
              "relay/program/relay_config.cpp and docs/operations.md");

/// Sets one integer field; false when the value does not fit its type.
using setter = std::function<bool(std::int64_t)>;

template <class S, class T>
std::pair<std::string, setter> field(const char* name, S& target, T S::*member) {
  static_assert(std::is_integral_v<T>);
  return {name, [&target, member](std::int64_t v) {
            if (v < 0 || static_cast<std::uint64_t>(v) >
                             static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
              return false;
            target.*member = static_cast<T>(v);
            return true;
          }};
}

std::vector<std::pair<std::string, setter>> limit_fields(relay_limits& l) {
  using L = relay_limits;
  return {
      field("max_connections", l, &L::max_connections),
      field("max_registrations", l, &L::max_registrations),
      field("max_registrations_per_ip", l, &L::max_registrations_per_ip),
      field("handshake_timeout_ms", l, &L::handshake_timeout_ms),
      field("resume_tickets", l, &L::resume_tickets),
      field("resume_ticket_lifetime_ms", l, &L::resume_ticket_lifetime_ms),
      field("idle_timeout_ms", l, &L::idle_timeout_ms),
      field("max_frame_bytes", l, &L::max_frame_bytes),
      field("request_rate_per_s", l, &L::request_rate_per_s),
      field("request_burst", l, &L::request_burst),
      field("max_rate_strikes", l, &L::max_rate_strikes),
      field("max_record_ttl_ms", l, &L::max_record_ttl_ms),
      field("max_clock_skew_ms", l, &L::max_clock_skew_ms),
      field("max_record_addresses", l, &L::max_record_addresses),
      field("max_address_bytes", l, &L::max_address_bytes),
      field("max_record_bytes", l, &L::max_record_bytes),
      field("max_topic_bytes", l, &L::max_topic_bytes),
      field("max_topics_per_connection", l, &L::max_topics_per_connection),
      field("max_watches_per_connection", l, &L::max_watches_per_connection),
      field("max_presence_watches_per_connection", l, &L::max_presence_watches_per_connection),
      field("max_presence_watches", l, &L::max_presence_watches),
      field("max_members_per_topic", l, &L::max_members_per_topic),
      field("max_topics", l, &L::max_topics),
      field("max_page_size", l, &L::max_page_size),
      field("max_circuits", l, &L::max_circuits),
      field("max_circuits_per_identity", l, &L::max_circuits_per_identity),
      field("max_circuits_per_ip", l, &L::max_circuits_per_ip),
      field("circuit_max_bytes", l, &L::circuit_max_bytes),
      field("circuit_max_duration_ms", l, &L::circuit_max_duration_ms),
      field("circuit_accept_timeout_ms", l, &L::circuit_accept_timeout_ms),
      field("max_circuit_frame_bytes", l, &L::max_circuit_frame_bytes),
      // and `wire`, the [limits.wire] table below
  };
}

std::vector<std::pair<std::string, setter>> wire_fields(wire_limits& w) {
  using W = wire_limits;
  return {
      field("max_message_bytes", w, &W::max_message_bytes),
      field("traversal_limit_words", w, &W::traversal_limit_words),
      field("nesting_limit", w, &W::nesting_limit),
      field("max_addresses", w, &W::max_addresses),
      field("max_address_bytes", w, &W::max_address_bytes),
      field("max_topic_bytes", w, &W::max_topic_bytes),
      field("max_page_ids", w, &W::max_page_ids),
      field("max_reason_bytes", w, &W::max_reason_bytes),
      field("max_payload_bytes", w, &W::max_payload_bytes),
  };
}

const char* type_name(const toml::node& v) {
  switch (v.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number with a fraction";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    default: return "a date or time";
  }
}

/// Walks one file; the first problem wins.
class reader {
public:
  explicit reader(std::string path) : path_(std::move(path)) {}

  std::optional<config_error> read(const toml::table& root, relay_config& c) {
    for (auto&& [k, v] : root) {
      const std::string key(k.str());
      if (key == "relay") {
        if (auto e = section(v, key, [&](const std::string& name, const toml::node& x) {
              return relay_key(name, x, c);
            }))
          return e;
      } else if (key == "limits") {
        if (auto e = limits(v, c.limits))
          return e;
      } else if (key == "restart") {
        if (auto e = section(v, key, [&](const std::string& name, const toml::node& x) {
              return restart_key(name, x, c);
            }))
          return e;
      } else {
        return unknown(v, key, "sections are [relay], [limits], [limits.wire] and [restart]");
      }
    }
    return std::nullopt;
  }

private:
  std::string path_;

  std::string where(const toml::node& v) const {
    const auto line = v.source().begin.line;
    return line > 0 ? path_ + ":" + std::to_string(line) : path_;
  }
  config_error unknown(const toml::node& v, const std::string& key, const std::string& hint) const {
    return {where(v) + ": unknown key '" + key + "' (" + hint + "; see docs/operations.md)"};
  }
  config_error wrong(const toml::node& v, const std::string& key, const std::string& want) const {
    if (v.is_integer())
      return {where(v) + ": '" + key + "' is " + std::to_string(v.as_integer()->get()) +
              "; it must be " + want};
    return {where(v) + ": '" + key + "' must be " + want + ", not " + type_name(v)};
  }

  template <class F>
  std::optional<config_error> section(const toml::node& v, const std::string& name, F each) {
    const auto* t = v.as_table();
    if (t == nullptr)
      return wrong(v, name, "a table ([" + name + "])");
    for (auto&& [k, x] : *t)
      if (auto e = each(name + "." + std::string(k.str()), x))
        return e;
    return std::nullopt;
  }

  std::optional<config_error> string_key(const toml::node& v, const std::string& key,
                                         std::string& out) {
    if (!v.is_string())
      return wrong(v, key, "a string");
    out = v.as_string()->get();
    return std::nullopt;
  }

  std::optional<config_error> relay_key(const std::string& key, const toml::node& v,
                                        relay_config& c) {
    if (key == "relay.listen")
      return string_key(v, key, c.listen);
    if (key == "relay.http")
      return string_key(v, key, c.http);
    if (key == "relay.log_level")
      return string_key(v, key, c.log_level);
    if (key == "relay.max_queued_bytes") {
      if (!v.is_integer() || v.as_integer()->get() < 4096)
        return wrong(v, key, "an integer of at least 4096");
      c.max_queued_bytes = static_cast<std::uint64_t>(v.as_integer()->get());
      return std::nullopt;
    }
    return unknown(v, key, "[relay] has listen, http, log_level and max_queued_bytes");
  }

  std::optional<config_error> restart_key(const std::string& key, const toml::node& v,
                                          relay_config& c) {
    const bool spread = key == "restart.spread_seconds";
    if (!spread && key != "restart.drain_seconds")
      return unknown(v, key, "[restart] has spread_seconds and drain_seconds");
    if (!v.is_integer() || v.as_integer()->get() < 0 || v.as_integer()->get() > 3600)
      return wrong(v, key, "an integer from 0 to 3600 (seconds)");
    (spread ? c.restart_spread_ms : c.restart_drain_ms) =
        static_cast<std::uint64_t>(v.as_integer()->get()) * 1000;
    return std::nullopt;
  }

  std::optional<config_error> integer_fields(const toml::node& v, const std::string& name,
                                             std::vector<std::pair<std::string, setter>> fields,
                                             const std::function<std::optional<config_error>(
                                                 const std::string&, const toml::node&)>& other) {
    return section(v, name, [&](const std::string& key, const toml::node& x) -> std::optional<config_error> {
      const std::string leaf = key.substr(name.size() + 1);
      for (auto& [n, set] : fields) {
        if (n != leaf)
          continue;
        if (!x.is_integer() || !set(x.as_integer()->get()))
          return wrong(x, key, "a non-negative integer that fits the field");
        return std::nullopt;
      }
      if (other)
        return other(key, x);
      return unknown(x, key, "[" + name + "] has the fields of its struct");
    });
  }

  std::optional<config_error> limits(const toml::node& v, relay_limits& l) {
    return integer_fields(
        v, "limits", limit_fields(l),
        [&](const std::string& key, const toml::node& x) -> std::optional<config_error> {
          if (key == "limits.wire")
            return integer_fields(x, "limits.wire", wire_fields(l.wire), nullptr);
          return unknown(x, key, "[limits] has the fields of relay_limits");
        });
  }
};

} // namespace

std::variant<relay_config, config_error> load_relay_config(const std::string& path) {
  relay_config c;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return c;
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return config_error{path + ":" + std::to_string(e.source().begin.line) + ": " +
                        std::string(e.description())};
  }
  reader r(path);
  if (auto e = r.read(root, c))
    return *e;
  if (auto e = validate(c, path))
    return *e;
  return c;
}

std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(const std::string& s,
                                                                    bool allow_zero) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 >= s.size() || colon + 6 < s.size())
    return std::nullopt;
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  else if (host.find(':') != std::string::npos)
    return std::nullopt; // IPv6 needs brackets
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (host.empty() || ec)
    return std::nullopt;
  unsigned long port = 0;
  for (char ch : s.substr(colon + 1)) {
    if (ch < '0' || ch > '9')
      return std::nullopt;
    port = port * 10 + static_cast<unsigned long>(ch - '0');
  }
  if (port > 65535 || (port == 0 && !allow_zero))
    return std::nullopt;
  return std::make_pair(host, static_cast<std::uint16_t>(port));
}

std::optional<config_error> validate(const relay_config& c, const std::string& source) {
  if (!parse_host_port(c.listen))
    return config_error{source + ": 'relay.listen' is '" + c.listen +
                        "'; it must be IP:port, e.g. 0.0.0.0:7480 or [::]:7480"};
  if (!c.http.empty() && !parse_host_port(c.http))
    return config_error{source + ": 'relay.http' is '" + c.http +
                        "'; it must be IP:port, e.g. 127.0.0.1:7481, or \"\" for none"};
  const auto lvl = spdlog::level::from_str(c.log_level);
  if (lvl == spdlog::level::off && c.log_level != "off")
    return config_error{source + ": 'relay.log_level' is '" + c.log_level +
                        "'; it must be trace, debug, info, warn, error, critical or off"};
  try {
    // The core checks that the limits fit together (frames large enough
    // for the pages, records and circuit chunks it sends).
    relay_core probe(protocol::identity::from_seed({}), c.limits, {});
    (void)probe;
  } catch (const std::invalid_argument& e) {
    return config_error{source + ": [limits] do not fit together: " + e.what()};
  }
  return std::nullopt;
}

} // namespace kith::relay::program
