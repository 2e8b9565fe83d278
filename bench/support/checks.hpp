#pragma once

// Verification and timing helpers shared by the benchmark programs.

#include <chrono>
#include <iostream>
#include <string>

namespace kith::bench {

/// Set when any verification fails; main() turns it into exit status 1.
inline bool any_failure = false;

/// Records a failed verification (printed at once) and returns ok.
inline bool check(bool ok, const std::string& what) {
  if (!ok) {
    any_failure = true;
    std::cerr << "VERIFICATION FAILED: " << what << '\n';
  }
  return ok;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace kith::bench
