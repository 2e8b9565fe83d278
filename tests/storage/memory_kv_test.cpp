// The in-memory kv_store (front-coded blocks) against a plain std::map:
// random batches of puts and deletes over keys that share long prefixes,
// then every read the interface has, compared with the model's answer.

#include "kith/storage/kv.hpp"

#include "support/seed.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace kith;
using namespace kith::storage;
using model = std::map<std::string, std::string>;

/// Keys alike the store's: a few kinds and long shared prefixes, bytes
/// 0 and 0xff among them, the empty key, and keys that are prefixes of
/// others.
std::string random_key(test::rng& g) {
  static const std::vector<std::string> heads = {
      "", std::string("c\0\0\0\1", 5), std::string("c\0\0\0\2", 5), "b", "\xff", "i",
      // Long enough for lengths of two and three varint bytes.
      "L" + std::string(140, 'l'), "M" + std::string(17'000, 'm')};
  std::string k = heads[test::pick(g, 0, heads.size() - 1)];
  if (test::chance(g, 0.6))
    k += std::string(40, 'a' + static_cast<char>(test::pick(g, 0, 2))); // an author id
  const auto n = test::pick(g, 0, 6);
  for (std::uint64_t i = 0; i < n; ++i) {
    static const char alphabet[] = {'\0', '/', 'x', 'y', 'z', '\x7f', '\xff'};
    k.push_back(alphabet[test::pick(g, 0, sizeof alphabet - 1)]);
  }
  return k;
}

std::string random_value(test::rng& g) {
  // Below and above the size at which values are shared, and empty;
  // some just below it, so that blocks reach their byte limit.
  const auto n = test::chance(g, 0.3)   ? test::pick(g, 40, 200)
                 : test::chance(g, 0.3) ? test::pick(g, 30, value_pool::min_shared - 1)
                                        : test::pick(g, 0, 20);
  return std::string(n, static_cast<char>('A' + test::pick(g, 0, 25)));
}

std::vector<std::pair<std::string, std::string>> scan_all(const kv_store& kv, std::string_view from,
                                                           std::string_view to,
                                                           std::size_t stop_after) {
  std::vector<std::pair<std::string, std::string>> out;
  REQUIRE(kv.scan(from, to, [&](std::string_view k, std::string_view v) {
    out.emplace_back(std::string(k), std::string(v));
    return out.size() < stop_after;
  }));
  return out;
}

std::vector<std::pair<std::string, std::string>> model_scan(const model& m, const std::string& from,
                                                            const std::string& to,
                                                            std::size_t stop_after) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!to.empty() && to <= from)
    return out; // [from, to) is empty
  auto end = to.empty() ? m.end() : m.lower_bound(to);
  for (auto i = m.lower_bound(from); i != end && out.size() < stop_after; ++i)
    out.emplace_back(i->first, i->second);
  return out;
}

std::optional<std::pair<std::string, std::string>> model_floor(const model& m, const std::string& key,
                                                               const std::string& lo) {
  auto i = m.upper_bound(key);
  if (i == m.begin())
    return std::nullopt;
  --i;
  if (i->first < lo)
    return std::nullopt;
  return std::make_pair(i->first, i->second);
}

/// Every read of the interface on kv agrees with the model, for keys
/// drawn at random and for every key the model holds.
void check_reads(const kv_store& kv, const model& m, test::rng& g) {
  CHECK(scan_all(kv, "", "", ~std::size_t{0}) == model_scan(m, "", "", ~std::size_t{0}));
  std::vector<std::string> probes;
  for (const auto& [k, v] : m)
    probes.push_back(k);
  for (int i = 0; i < 40; ++i)
    probes.push_back(random_key(g));
  for (const auto& k : probes) {
    auto got = kv.get(k);
    REQUIRE(got);
    auto want = m.find(k);
    CHECK(*got == (want == m.end() ? std::nullopt : std::optional<std::string>{want->second}));
    const auto lo = random_key(g);
    auto f = kv.floor(k, lo);
    REQUIRE(f);
    CHECK(*f == model_floor(m, k, lo));
    const auto to = test::chance(g, 0.2) ? std::string() : random_key(g);
    const std::size_t stop = test::pick(g, 1, 30);
    CHECK(scan_all(kv, k, to, stop) == model_scan(m, k, to, stop));
  }
}

TEST_CASE("the in-memory kv store answers every read as a plain ordered map does, through "
          "random batches of puts and deletes",
          "[kv][property]") {
  const auto seed = test::base_seed();
  const int runs = test::cases(40);
  for (int run = 0; run < runs; ++run) {
    test::rng g(seed + static_cast<std::uint64_t>(run));
    CAPTURE(seed, run);
    auto pool = test::chance(g, 0.5) ? std::make_shared<value_pool>() : nullptr;
    auto kv = make_memory_kv(pool);
    model m;
    const auto batches = test::pick(g, 1, 60);
    for (std::uint64_t b = 0; b < batches; ++b) {
      kv_batch batch;
      // Mostly small batches, some large ones (several blocks at once),
      // and the same key more than once in a batch.
      const auto ops = test::chance(g, 0.1) ? test::pick(g, 50, 300) : test::pick(g, 1, 8);
      std::string last;
      for (std::uint64_t i = 0; i < ops; ++i) {
        const auto key = (!last.empty() && test::chance(g, 0.1)) ? last : random_key(g);
        last = key;
        // Deletes more often in some runs, so blocks empty and merge.
        if (test::chance(g, run % 3 == 0 ? 0.5 : 0.2)) {
          batch.del(key);
          m.erase(key);
        } else {
          auto v = random_value(g);
          batch.put(key, v);
          m[key] = v;
        }
      }
      REQUIRE(kv->commit(batch, false));
      if (b % 10 == 9 || b + 1 == batches)
        check_reads(*kv, m, g);
    }
  }
}

TEST_CASE("a scan of the in-memory kv store goes on in order while its visitor writes to the "
          "store",
          "[kv]") {
  // store::reindex commits as it scans. The scan may or may not see rows
  // written after its current key (RocksDB's does not, a std::map's
  // did), but it visits every row that was there throughout, once and in
  // order.
  test::rng g(test::base_seed());
  for (int run = 0; run < 50; ++run) {
    CAPTURE(run);
    auto kv = make_memory_kv();
    std::vector<std::string> kept;
    kv_batch load;
    for (int i = 0; i < 300; ++i) {
      auto k = "c" + std::to_string(1000 + i);
      load.put(k, "v");
      if (i % 3 != 0)
        kept.push_back(k); // the others may be deleted during the scan
    }
    REQUIRE(kv->commit(load, false));
    std::vector<std::string> seen;
    REQUIRE(kv->scan("c", "d", [&](std::string_view k, std::string_view) {
      seen.emplace_back(k);
      kv_batch b;
      // Rows before, at and after the scan's place, new and old.
      for (int j = 0; j < 5; ++j) {
        const int i = static_cast<int>(test::pick(g, 0, 299));
        if (i % 3 == 0)
          b.del("c" + std::to_string(1000 + i));
        b.put("c" + std::to_string(1000 + i) + "x", "new");
        b.put("i" + std::to_string(test::pick(g, 0, 999)), std::string(60, 'i'));
      }
      REQUIRE(kv->commit(b, false));
      return true;
    }));
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
    CHECK(std::includes(seen.begin(), seen.end(), kept.begin(), kept.end()));
  }
}

TEST_CASE("rows put into the in-memory kv store one at a time in random order fill its blocks",
          "[kv]") {
  // A block that overflows is split evenly: splitting off only the row
  // that did not fit left blocks about a quarter full, at ~160 bytes of
  // tree node and buffers per block.
  test::rng g(test::base_seed());
  auto kv = make_memory_kv();
  std::uint64_t raw = 0;
  const int n = 20'000;
  for (int i = 0; i < n; ++i) {
    std::string k(12, '\0');
    for (auto& c : k)
      c = static_cast<char>('a' + test::pick(g, 0, 25));
    kv_batch b;
    b.put(k, "0123456789");
    raw += k.size() + 10;
    REQUIRE(kv->commit(b, false));
  }
  // Under 24 bytes per row over the rows' own bytes: blocks hold about 7
  // rows or more on average (a quarter-full one would be ~40 bytes).
  CHECK(kv->memory_usage() < raw + 24ull * n);
}

TEST_CASE("the in-memory kv store keeps a 20,000-row load (inserted backwards) in order and deletes it down "
          "to nothing",
          "[kv]") {
  auto kv = make_memory_kv();
  // Keys in descending order: every insert lands before every block.
  const int n = 20'000;
  auto key = [](int i) {
    std::string k = "c" + std::string(50, 'q');
    for (int s = 24; s >= 0; s -= 8)
      k.push_back(static_cast<char>((i >> s) & 0xff));
    return k;
  };
  for (int i = n - 1; i >= 0; i -= 100) {
    kv_batch b;
    for (int j = i; j > i - 100 && j >= 0; --j)
      b.put(key(j), std::to_string(j));
    REQUIRE(kv->commit(b, false));
  }
  int seen = 0;
  bool ordered = true;
  REQUIRE(kv->scan("", "", [&](std::string_view k, std::string_view v) {
    ordered = ordered && k == key(seen) && v == std::to_string(seen);
    ++seen;
    return true;
  }));
  CHECK(ordered);
  CHECK(seen == n);
  // Delete every other row, then the rest: the blocks merge and go.
  for (int pass = 0; pass < 2; ++pass) {
    kv_batch b;
    for (int i = pass; i < n; i += 2)
      b.del(key(i));
    REQUIRE(kv->commit(b, false));
  }
  CHECK(scan_all(*kv, "", "", 10).empty());
  CHECK(kv->memory_usage() == 0);
  CHECK(!kv->get(key(0)).value());
}

} // namespace
