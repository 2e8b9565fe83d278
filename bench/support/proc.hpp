#pragma once

// Small helpers the benchmarks share: parsing option values, formatting
// figures, and reading another process's CPU time and memory from /proc.

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include <sys/types.h>
#include <unistd.h>

namespace kith::bench {

/// A decimal unsigned integer, the whole string.
inline bool parse_u64(const char* s, std::uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  const auto v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
    return false;
  out = v;
  return true;
}

/// A positive number, the whole string.
inline bool parse_double(const char* s, double& out) {
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (end == s || *end != '\0' || !(v > 0))
    return false;
  out = v;
  return true;
}

// --- command lines (CLI11) ------------------------------------------------------------
//
// The benchmarks that take many options read them with CLI11, as the kith and
// kith-relay programs do, through these helpers: every bench reads a number
// the same way (parse_u64, parse_double), says the same thing about a bad one,
// exits with the same status and applies --quick the same way. They are
// templates on CLI11's types (the bench includes <CLI/CLI.hpp> and links
// CLI11::CLI11) only so that this header, which programs without CLI11
// include too, need not include it.

/// Splits "--peers N" into the option's name and the placeholder its help
/// shows ("--peers", "N"); a name alone gets "" (CLI11's own).
inline std::pair<std::string, std::string> option_and_placeholder(const std::string& spec) {
  const auto space = spec.find(' ');
  if (space == std::string::npos)
    return {spec, ""};
  return {spec.substr(0, space), spec.substr(space + 1)};
}

/// Adds `spec` ("--name TEXT") to app: any text, into out. Returns the
/// CLI::Option*.
template <class App>
auto* add_text_option(App& app, const std::string& spec, std::string& out,
                      const std::string& help) {
  const auto [name, placeholder] = option_and_placeholder(spec);
  auto* option = app.add_option(name, out, help);
  if (!placeholder.empty())
    option->type_name(placeholder);
  return option;
}

/// Adds `spec` ("--name N") to app: a whole decimal number from lo to hi, into
/// out. CLI11 would read "010" as octal and "-1" as 2^64 - 1; the value is
/// checked with parse_u64 and handed to CLI11 in plain decimal instead.
/// Returns the CLI::Option*.
template <class App, class T>
auto* add_u64_option(App& app, const std::string& spec, T& out, std::uint64_t lo,
                     std::uint64_t hi, const std::string& help) {
  static_assert(std::is_unsigned_v<T>, "add_u64_option reads unsigned numbers");
  const auto [name, placeholder] = option_and_placeholder(spec);
  const std::string range = std::to_string(lo) + ".." + std::to_string(hi);
  const bool whole_range = lo == 0 && hi == std::numeric_limits<std::uint64_t>::max();
  auto* option = app.add_option(name, out, help);
  if (!placeholder.empty())
    option->type_name(placeholder);
  // CLI11 runs transforms before checks, whichever is added first.
  return option
      ->transform(
          [](std::string text) {
            std::uint64_t v = 0;
            return parse_u64(text.c_str(), v) ? std::to_string(v) : text;
          },
          "")
      ->check(
          [lo, hi](const std::string& text) {
            std::uint64_t v = 0;
            if (!parse_u64(text.c_str(), v) || v < lo || v > hi)
              return "needs a whole number from " + std::to_string(lo) + " to " +
                     std::to_string(hi) + ", not '" + text + "'";
            return std::string();
          },
          whole_range ? "" : range);
}

/// Adds `spec` ("--name S") to app: a positive number (parse_double), into
/// out. Returns the CLI::Option*.
template <class App>
auto* add_positive_option(App& app, const std::string& spec, double& out,
                          const std::string& help) {
  const auto [name, placeholder] = option_and_placeholder(spec);
  auto* option = app.add_option(name, out, help);
  if (!placeholder.empty())
    option->type_name(placeholder);
  return option->check(
      [](const std::string& text) {
        double v = 0;
        if (!parse_double(text.c_str(), v))
          return "needs a positive number, not '" + text + "'";
        return std::string();
      },
      "positive");
}

/// Parses argv with app (a CLI::App holding the options above). Returns
/// nullopt to go on, else the exit status: 0 after --help, 2 on a bad
/// argument (app.exit has said what was wrong), as kith-relay does.
/// ParseError is CLI::ParseError, named by the caller (see above).
template <class ParseError, class App>
[[nodiscard]] std::optional<int> parse_command_line(App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return std::nullopt;
}

/// Under --quick (a smoke run), an option the command line did not give
/// (option: its CLI::Option*) takes its quick value instead of its default.
template <class Option, class T, class U>
void quick_value(bool quick, const Option* option, T& value, U small) {
  if (quick && option->count() == 0)
    value = static_cast<T>(small);
}

inline void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

/// printf-style formatting of one number.
inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// 1234567 -> "1,234,567".
inline std::string grouped(std::uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

/// utime + stime of a process (all its threads) in seconds; nullopt once it
/// is gone.
inline std::optional<double> cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line))
    return std::nullopt;
  // The command name (field 2) may hold spaces; fields after it are plain.
  const auto close = line.rfind(')');
  if (close == std::string::npos)
    return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  std::uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14)
      utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15)
      stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), 0 if unknown.
inline std::uint64_t status_kib(pid_t pid, const std::string& field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field + ":", 0) == 0)
      return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10);
  return 0;
}

} // namespace kith::bench
