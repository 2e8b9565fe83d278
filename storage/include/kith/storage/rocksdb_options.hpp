#pragma once

// The RocksDB options of a node's store, in one place: the store opens
// with them (open_rocksdb), and the benchmarks' raw-RocksDB baselines use
// them so that both read and write the same files the same way.

#include <rocksdb/options.h>

namespace kith::storage {

/// A personal node's options: small memtables, few background threads,
/// bloom filters so point lookups of absent keys stay cheap, paranoid
/// checks on open.
[[nodiscard]] rocksdb::Options store_rocksdb_options(bool create);

} // namespace kith::storage
