// Prints the rows the format workload leaves in Ann's and Bob's stores,
// as this build writes them: how tests/storage/data/format1.txt was made
// (see tests/storage/data/README.md). Not part of the suite.

#include "format_workload.hpp"

#include <iostream>

namespace {

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

void dump(const char* name, const kith::storage::kv_store& kv) {
  std::cout << "# " << name << "\n";
  (void) kv.scan("", "", [](std::string_view k, std::string_view v) {
    std::cout << hex(k) << ' ' << hex(v) << '\n';
    return true;
  });
}

} // namespace

int main() {
  auto a = kith::storage::make_memory_kv();
  auto b = kith::storage::make_memory_kv();
  try {
    kith::test::format::run(*a, *b);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  dump("ann", *a);
  dump("bob", *b);
  return 0;
}
