#pragma once

#include "kith/protocol/string_pool.hpp"
#include "kith/storage/result.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kith::storage {

/// Puts and deletes applied together or not at all.
class kv_batch {
public:
  void put(std::string key, std::string value) { ops_.push_back({std::move(key), std::move(value), false}); }
  void del(std::string key) { ops_.push_back({std::move(key), {}, true}); }
  struct op {
    std::string key;
    std::string value;
    bool erase;
  };
  [[nodiscard]] const std::vector<op>& ops() const { return ops_; }
  [[nodiscard]] bool empty() const { return ops_.empty(); }
  [[nodiscard]] std::size_t bytes() const;

private:
  std::vector<op> ops_;
};

/// An ordered byte-string map with atomic batches: all the node needs
/// from a database. Two implementations with the same semantics: RocksDB
/// for the node, and sorted front-coded blocks in memory for tests and
/// the simulator (thousands of nodes in one process cannot each have a
/// RocksDB; storage/src/memory_kv.cpp). The storage test suite runs
/// against both. Single writer; reads may interleave.
class kv_store {
public:
  using visitor = std::function<bool(std::string_view key, std::string_view value)>;
  virtual ~kv_store() = default;
  [[nodiscard]] virtual result<std::optional<std::string>> get(std::string_view key) const = 0;
  /// Visits keys in [from, to) in order until fn returns false. fn may
  /// write to the store; once it has, the key and value it was given are
  /// no longer valid, and rows written after the current key may or may
  /// not be visited (RocksDB's scan does not see them, the in-memory
  /// store's does).
  [[nodiscard]] virtual status scan(std::string_view from, std::string_view to,
                                    const visitor& fn) const = 0;
  /// The greatest key <= key that is >= lo, with its value.
  [[nodiscard]] virtual result<std::optional<std::pair<std::string, std::string>>>
  floor(std::string_view key, std::string_view lo) const = 0;
  /// Applies a batch atomically; with sync, durable on return (fsync).
  [[nodiscard]] virtual status commit(const kv_batch& b, bool sync) = 0;
  /// Approximate memory held by the store's caches and tables (bytes).
  [[nodiscard]] virtual std::uint64_t memory_usage() const = 0;
};

/// Opens (or with create, creates) a RocksDB store in dir.
[[nodiscard]] result<std::unique_ptr<kv_store>> open_rocksdb(const std::string& dir, bool create);
/// Values shared by the in-memory stores of one process: a value put in
/// several of them (the same signed batch, or the same key's container, at
/// every follower of a feed) is held once. Only memory changes; each store
/// behaves as if it held its own copy. Thread-safe.
class value_pool {
public:
  value_pool();
  ~value_pool();
  value_pool(const value_pool&) = delete;
  value_pool& operator=(const value_pool&) = delete;
  /// Values shorter than this are copied, not shared: the bookkeeping
  /// would cost more than they do.
  static constexpr std::size_t min_shared = 48;
  /// The shared copy of v (a copy of its own if shorter than min_shared).
  [[nodiscard]] std::shared_ptr<const std::string> intern(std::string_view v);
  /// Distinct values held now, and their bytes.
  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] std::uint64_t bytes() const;

private:
  std::shared_ptr<protocol::string_pool> impl_;
};

/// An empty in-memory store; with a pool, its values are shared through it.
[[nodiscard]] std::unique_ptr<kv_store> make_memory_kv(std::shared_ptr<value_pool> pool = nullptr);

/// The key one past every key that starts with prefix ("" if none).
[[nodiscard]] std::string prefix_end(std::string_view prefix);

} // namespace kith::storage
