#pragma once

// The median of a benchmark's rounds (the mean of the middle two for an
// even count; 0 for none), shared by the programs that report medians.

#include <algorithm>
#include <vector>

namespace kith::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n == 0 ? 0.0 : (n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2);
}

} // namespace kith::bench
