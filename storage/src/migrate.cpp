// Format 1 -> 2: rows of a topic named by its number instead of its id
// (layout.hpp). Every step is an atomic batch that leaves the store
// readable by the next attempt. First the format record says "migrating"
// (a value no kith of format 1 accepts: a half-renamed store must never
// be opened by one, which would read a topic whose clock row had moved
// as empty and sign new writes with counters already used). Then numbers
// are given (each kept once given), then each row is written under its
// new name and deleted under the old in the same batch, and the format
// record says 2 last. A crash anywhere in between leaves "migrating" on
// disk, and the next open carries on with the rows still under their old
// names.

#include "kith/storage/store.hpp"

#include "layout.hpp"

namespace kith::storage {

namespace lay = layout;

namespace {

/// Rows moved per batch: bounds the memory a migration of a large store
/// takes (RocksDB writes batches of this size at ~850k rows/s here).
constexpr std::size_t rows_per_batch = 10000;

/// Moves every row starting with old_prefix to new_prefix + the rest of
/// its key, in batches. Each batch's scan starts after the last key moved,
/// not at the prefix: on RocksDB the rows already moved are tombstones a
/// scan from the start would walk again every time.
status move_rows(kv_store& kv, const std::string& old_prefix, const std::string& new_prefix) {
  const std::string end = prefix_end(old_prefix);
  std::string from = old_prefix;
  for (;;) {
    kv_batch b;
    std::string last;
    auto st = kv.scan(from, end, [&](std::string_view k, std::string_view v) {
      b.put(new_prefix + std::string(k.substr(old_prefix.size())), std::string(v));
      b.del(std::string(k));
      last = std::string(k);
      return b.ops().size() < 2 * rows_per_batch;
    });
    if (!st)
      return st;
    if (b.empty())
      return ok_status();
    if (auto c = kv.commit(b, false); !c)
      return c;
    from = std::move(last);
    from.push_back('\0'); // the first key after the last one moved
  }
}


} // namespace

status store::migrate_from_format_1() {
  {
    kv_batch marking;
    marking.put(lay::meta("format"), lay::version_record(format_migrating_from_1));
    if (auto c = kv_->commit(marking, true); !c)
      return c;
  }
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
  for (const auto& id : ids) {
    if (numbers_.count(id) != 0)
      continue;
    const std::uint32_t next = next_number();
    if (id.empty() || id.front() == '\0')
      return error{errc::corrupt, "the format-1 store has a topic row with an empty or invalid "
                                  "id: the store is damaged (restore a backup)"};
    if (next >= lay::topic_rows::limit)
      return error{errc::invalid, "the format-1 store holds more than " +
                                      std::to_string(lay::topic_rows::limit - 1) +
                                      " topics, more than one store can number"};
    numbering.put(lay::number_row(id), std::string(lay::topic_rows{next}.view()));
    remember_number(id, next); // before the commit: the next topic's number follows it
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
  kv_batch done;
  done.put(lay::meta("format"), lay::version_record(format_version));
  return kv_->commit(done, true);
}

} // namespace kith::storage
