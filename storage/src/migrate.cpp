// Format 1 -> 2: rows of a topic named by its number instead of its id
// (layout.hpp). Every step is an atomic batch that leaves the store
// readable by the next attempt: numbers are given first (each kept once
// given), then each row is written under its new name and deleted under
// the old in the same batch, and the format record changes last. A crash
// anywhere in between leaves format 1 on disk, and the next open carries
// on with the rows still under their old names.

#include "kith/storage/store.hpp"

#include "layout.hpp"

#include "kith/causality/codec.hpp"

namespace kith::storage {

namespace lay = layout;

namespace {

/// Rows moved per batch: bounds the memory a migration of a large store
/// takes (RocksDB writes batches of this size at ~850k rows/s here).
constexpr std::size_t rows_per_batch = 10000;

/// Moves every row starting with old_prefix to new_prefix + the rest of
/// its key, in batches.
status move_rows(kv_store& kv, const std::string& old_prefix, const std::string& new_prefix) {
  const std::string end = prefix_end(old_prefix);
  for (;;) {
    kv_batch b;
    auto st = kv.scan(old_prefix, end, [&](std::string_view k, std::string_view v) {
      b.put(new_prefix + std::string(k.substr(old_prefix.size())), std::string(v));
      b.del(std::string(k));
      return b.ops().size() < 2 * rows_per_batch;
    });
    if (!st)
      return st;
    if (b.empty())
      return ok_status();
    if (auto c = kv.commit(b, false); !c)
      return c;
  }
}

} // namespace

status store::migrate_from_format_1() {
  // Numbers given by an interrupted migration stay as they were.
  if (auto st = load_numbers(); !st)
    return st;
  std::vector<std::string> ids;
  auto st = kv_->scan("t", "u", [&](std::string_view k, std::string_view) {
    ids.emplace_back(k.substr(1));
    return true;
  });
  if (!st)
    return st;
  kv_batch numbering;
  std::uint32_t next = names_.empty() ? 1 : names_.rbegin()->first + 1;
  for (const auto& id : ids) {
    if (numbers_.count(id) != 0)
      continue;
    if (id.empty() || id.front() == '\0' || next >= lay::topic_rows::limit)
      return error{errc::corrupt, "a topic of the format-1 store cannot be numbered"};
    numbering.put(lay::number_row(id), std::string(lay::topic_rows{next}.view()));
    numbers_[id] = next;
    names_[next] = id;
    ++next;
  }
  if (!numbering.empty())
    if (auto c = kv_->commit(numbering, true); !c)
      return c;

  for (const auto& id : ids) {
    const lay::topic_rows rows{numbers_.at(id)};
    for (char kind : std::string("cudsbvo")) {
      std::string old_prefix(1, kind);
      old_prefix += id;
      old_prefix.push_back('\0');
      if (auto m = move_rows(*kv_, old_prefix, lay::topic_prefix(kind, rows)); !m)
        return m;
    }
    for (char kind : std::string("kw")) {
      const std::string old_key = std::string(1, kind) + id;
      auto v = kv_->get(old_key);
      if (!v)
        return v.err();
      if (!*v)
        continue;
      kv_batch b;
      b.put(lay::topic_prefix(kind, rows), std::move(**v));
      b.del(old_key);
      if (auto c = kv_->commit(b, false); !c)
        return c;
    }
  }
  // The index rows still name topics by id; the index version changed
  // with the format, so init rebuilds them after this.
  causality::writer w;
  w.varint(format_version);
  kv_batch done;
  done.put(lay::meta("format"), w.take());
  return kv_->commit(done, true);
}

} // namespace kith::storage
