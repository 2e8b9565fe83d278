#pragma once

// Shared by the benchmark programs: one JSON object per output line.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>

namespace kith::bench {

/// One JSON object on one line. Keys and string values are ours (no
/// characters needing escapes beyond quotes and backslashes).
class json_line {
public:
  json_line(const char* bench, std::uint64_t seed) {
    str("bench", bench);
    num("seed", seed);
  }
  json_line& str(const char* k, const std::string& v) {
    key(k);
    out_ << '"';
    for (char c : v) {
      if (c == '"' || c == '\\')
        out_ << '\\';
      out_ << c;
    }
    out_ << '"';
    return *this;
  }
  json_line& num(const char* k, std::uint64_t v) {
    key(k);
    out_ << v;
    return *this;
  }
  json_line& real(const char* k, double v) {
    key(k);
    if (!std::isfinite(v)) {
      out_ << "null";
      return *this;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    out_ << buf;
    return *this;
  }
  json_line& flag(const char* k, bool v) {
    key(k);
    out_ << (v ? "true" : "false");
    return *this;
  }
  json_line& null(const char* k) {
    key(k);
    out_ << "null";
    return *this;
  }
  void print() {
    std::cout << '{' << out_.str() << '}' << std::endl;
  }

private:
  void key(const char* k) {
    if (!first_)
      out_ << ',';
    first_ = false;
    out_ << '"' << k << "\":";
  }
  std::ostringstream out_;
  bool first_ = true;
};

} // namespace kith::bench
