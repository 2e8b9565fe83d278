// The in-memory kv_store of tests and the simulator.
//
// The simulator holds thousands of these in one process, so the cost per
// row decides how many nodes fit. A std::map<std::string, ...> paid about
// 80 bytes of tree node per row plus a heap copy of every key longer than
// 15 bytes, and the store's keys are long and alike (a row kind, a topic
// number, then document keys that begin with the author's 57-character
// id). Here rows sit in small sorted blocks, front-coded as in an SSTable
// block: each key is stored as the length it shares with the key before
// it and the bytes that differ. Short values sit in the block too; longer
// ones are shared (through the value pool when there is one).
//
// A block holds up to max_rows rows and about max_bytes of encoding; the
// tree maps each block's first key to it, and that first key is not
// repeated in the block (its first entry shares all of it). Reads decode
// one block from its start. A write decodes the block the key falls in,
// changes it, and encodes it again, split in two when too big and merged
// with the next one when small.

#include "kith/storage/kv.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <deque>
#include <map>
#include <optional>

namespace kith::storage {

namespace {

// 32 rows and 2 KiB: against 16 and 1 KiB, scale.toml peaks 1.3% lower
// at 1,000 nodes and 1.6% at 10,000, in the same user time; 64 and 4 KiB
// peaked higher (docs/simulation.md, "Session 24").
constexpr std::size_t max_rows = 32;
constexpr std::size_t max_bytes = 2048;
/// A block with fewer rows than this takes in the next one at a write.
constexpr std::size_t min_rows = 4;

void put_varint(std::string& out, std::size_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

/// Our own encoding, never bytes from outside: no bounds to check.
std::size_t get_varint(const char*& p) {
  std::size_t v = 0;
  for (int shift = 0;; shift += 7) {
    const auto b = static_cast<unsigned char>(*p++);
    v |= static_cast<std::size_t>(b & 0x7f) << shift;
    if (b < 0x80)
      return v;
  }
}

using shared_value = std::shared_ptr<const std::string>;

struct block {
  /// Per row: shared key length, length of the rest, the rest of the
  /// key, then a value tag: (length << 1) followed by the bytes for a
  /// value held here, or (index << 1) | 1 for values[index].
  std::string data;
  std::vector<shared_value> values;
  std::uint32_t rows = 0;
};

using block_map = std::map<std::string, block, std::less<>>;

std::size_t common_prefix(std::string_view a, std::string_view b) {
  const auto n = std::min(a.size(), b.size());
  std::size_t i = 0;
  while (i < n && a[i] == b[i])
    ++i;
  return i;
}

/// One encoded row as read from a block (the one reader of the format).
struct encoded_row {
  std::size_t shared;      // key bytes shared with the previous row's key
  std::string_view tail;   // the rest of the key
  std::string_view value;
  std::size_t value_index; // into the block's values, or npos if held inline
  static constexpr std::size_t npos = ~std::size_t{0};
};

/// Reads the row at p and moves p past it.
encoded_row read_row(const char*& p, const std::vector<shared_value>& values) {
  encoded_row r;
  r.shared = get_varint(p);
  const auto rest = get_varint(p);
  r.tail = std::string_view(p, rest);
  p += rest;
  const auto tag = get_varint(p);
  if (tag & 1) {
    r.value_index = tag >> 1;
    r.value = *values[r.value_index];
  } else {
    r.value_index = encoded_row::npos;
    r.value = std::string_view(p, tag >> 1);
    p += tag >> 1;
  }
  return r;
}

/// Walks the rows of one block in order; key() and value() stay valid
/// until the next call to next().
class cursor {
public:
  cursor(const std::string& first, const block& b) : cursor(first, b.data, b.values) {}
  cursor(const std::string& first, std::string_view data, const std::vector<shared_value>& values)
      : values_(values), p_(data.data()), end_(data.data() + data.size()), key_(first) {}

  /// Moves to the next row; false at the end of the block.
  bool next() {
    if (p_ == end_)
      return false;
    const auto r = read_row(p_, values_);
    key_.resize(r.shared);
    key_.append(r.tail);
    value_ = r.value;
    shared_ = r.value_index;
    return true;
  }
  [[nodiscard]] std::string_view key() const { return key_; }
  [[nodiscard]] std::string_view value() const { return value_; }
  /// The shared value of this row, if its value is not held in the block.
  [[nodiscard]] const shared_value* shared() const {
    return shared_ == encoded_row::npos ? nullptr : &values_[shared_];
  }

private:
  const std::vector<shared_value>& values_;
  const char* p_;
  const char* end_;
  std::string key_;
  std::string_view value_;
  std::size_t shared_ = encoded_row::npos;
};

/// The value of `target` in block b (first key `first` <= target), if
/// held. Keys are not rebuilt: m is how much of target the previous key
/// matches, and a row that shares more or less than m with it sorts
/// before or after target without looking at its bytes.
std::optional<std::string_view> find_in_block(std::string_view first, const block& b,
                                              std::string_view target) {
  const char* p = b.data.data();
  const char* end = p + b.data.size();
  std::size_t m = common_prefix(first, target);
  while (p != end) {
    const auto [shared, tail, value, index] = read_row(p, b.values);
    const auto rest = tail.size();
    if (shared > m)
      continue; // differs from target where the previous key did: smaller
    if (shared < m)
      return std::nullopt; // greater than the previous key where it matched target
    const auto c = common_prefix(tail, target.substr(m));
    if (c == rest) {
      if (m + rest == target.size())
        return value;
      m += rest; // a proper prefix of target: smaller
      continue;
    }
    if (m + c == target.size() ||
        static_cast<unsigned char>(tail[c]) > static_cast<unsigned char>(target[m + c]))
      return std::nullopt; // past target
    m += c;
  }
  return std::nullopt;
}

/// A row taken out of its block to be changed: views into the bytes of
/// one commit (see commit_scratch) or of the batch being applied.
struct row {
  std::string_view key;
  std::string_view value; // when held in the block
  shared_value shared;    // or this
};

/// What the rows of one commit point into: the encodings of the blocks
/// taken apart and the keys decoded from them. A deque, so that adding
/// one never moves the others (short strings live inside the object).
using commit_scratch = std::deque<std::string>;

class memory_kv final : public kv_store {
public:
  explicit memory_kv(std::shared_ptr<value_pool> pool) : pool_(std::move(pool)) {}

  result<std::optional<std::string>> get(std::string_view key) const override {
    std::optional<std::string> out;
    if (auto b = block_of(key); b != blocks_.end())
      if (auto v = find_in_block(b->first, b->second, key))
        out.emplace(*v);
    return out;
  }

  status scan(std::string_view from, std::string_view to, const visitor& fn) const override {
    // The visitor may write to this store (a reindex commits as it
    // scans): a commit may take apart or drop the block being read, so
    // after one the scan finds its place again from the last key seen.
    std::string last;
    bool resume = false;
    auto b = block_of(from);
    if (b == blocks_.end())
      b = blocks_.begin();
    while (b != blocks_.end()) {
      if (!to.empty() && b->first >= to)
        break;
      cursor c(b->first, b->second);
      bool moved = false;
      while (c.next()) {
        if (c.key() < from || (resume && c.key() <= last))
          continue;
        if (!to.empty() && c.key() >= to)
          return ok_status();
        const auto before = commits_;
        if (!fn(c.key(), c.value()))
          return ok_status();
        if (commits_ != before) {
          last.assign(c.key()); // the cursor's own copy: still valid
          resume = moved = true;
          break;
        }
      }
      if (moved) {
        b = block_of(last);
        if (b == blocks_.end())
          b = blocks_.begin();
      } else {
        ++b;
      }
    }
    return ok_status();
  }

  result<std::optional<std::pair<std::string, std::string>>>
  floor(std::string_view key, std::string_view lo) const override {
    using out = std::optional<std::pair<std::string, std::string>>;
    auto b = block_of(key);
    if (b == blocks_.end())
      return out{};
    // The block's first key is <= key, so some row of it is the floor.
    cursor c(b->first, b->second);
    out best;
    while (c.next() && c.key() <= key)
      best.emplace(std::string(c.key()), std::string(c.value()));
    if (!best || best->first < lo)
      return out{};
    return best;
  }

  status commit(const kv_batch& batch, bool) override {
    // Consecutive operations on one block change its decoded rows; the
    // block is encoded again when the next operation falls elsewhere.
    ++commits_;
    commit_scratch scratch;
    auto open = blocks_.end();
    std::vector<row> rows;
    bool appended = false; // a new key after the open block's last one
    // In key order, so that each block is taken apart once (a stable sort:
    // of two operations on one key, the later still wins).
    std::vector<const kv_batch::op*> ops;
    ops.reserve(batch.ops().size());
    for (const auto& o : batch.ops())
      ops.push_back(&o);
    std::stable_sort(ops.begin(), ops.end(),
                     [](const kv_batch::op* a, const kv_batch::op* b) { return a->key < b->key; });
    for (const auto* op : ops) {
      const auto& o = *op;
      auto b = block_for(o.key);
      if (open != blocks_.end() && b != open) {
        store(open, rows, appended, scratch); // may merge blocks: find o.key's again
        open = blocks_.end();
        b = block_for(o.key);
      }
      if (b == blocks_.end()) { // no blocks yet
        if (o.erase)
          continue;
        b = blocks_.emplace(o.key, block{}).first;
      }
      if (open == blocks_.end()) {
        open = b;
        appended = false;
        decode(b, rows, scratch);
      }
      auto at = std::lower_bound(rows.begin(), rows.end(), std::string_view(o.key),
                                 [](const row& r, std::string_view k) { return r.key < k; });
      const bool found = at != rows.end() && at->key == o.key;
      if (o.erase) {
        if (found)
          rows.erase(at);
        continue;
      }
      if (!found) {
        appended = appended || at == rows.end();
        at = rows.insert(at, row{o.key, {}, {}});
      }
      set_value(*at, o.value);
    }
    if (open != blocks_.end())
      store(open, rows, appended, scratch);
    return ok_status();
  }

  std::uint64_t memory_usage() const override {
    // Tree nodes and blocks, and every value as if it were not shared.
    std::uint64_t n = 0;
    for (const auto& [first, b] : blocks_) {
      n += 160 + first.size() + b.data.size() + 16 * b.values.size();
      for (const auto& v : b.values)
        n += v->size();
    }
    return n;
  }

private:
  /// The block whose key range holds key: the last one whose first key
  /// is <= key (end() if key sorts before every block).
  template <class Map>
  static auto block_in(Map& blocks, std::string_view key) -> decltype(blocks.end()) {
    auto b = blocks.upper_bound(key);
    return b == blocks.begin() ? blocks.end() : std::prev(b);
  }
  block_map::const_iterator block_of(std::string_view key) const { return block_in(blocks_, key); }
  block_map::iterator block_of(std::string_view key) { return block_in(blocks_, key); }

  /// The block a write of key goes to: its range's, or the first block
  /// for a key before them all (end() if there are no blocks).
  block_map::iterator block_for(std::string_view key) {
    auto b = block_of(key);
    return b == blocks_.end() ? blocks_.begin() : b;
  }

  void set_value(row& r, const std::string& v) {
    if (v.size() < value_pool::min_shared) {
      r.value = v; // the batch outlives the commit
      r.shared.reset();
    } else {
      r.value = {};
      r.shared = pool_ ? pool_->intern(v) : std::make_shared<const std::string>(v);
    }
  }

  /// Appends the rows of block b, whose bytes move to scratch (the block
  /// is left empty: store() replaces it).
  static void decode(block_map::iterator b, std::vector<row>& rows, commit_scratch& scratch) {
    const auto& data = scratch.emplace_back(std::move(b->second.data));
    auto& keys = scratch.emplace_back();
    // Each key's place in keys, whose buffer may move while it grows.
    std::array<std::pair<std::size_t, std::size_t>, max_rows> at;
    std::size_t n = 0;
    const auto start = rows.size();
    cursor c(b->first, data, b->second.values);
    while (c.next()) {
      assert(n < max_rows); // store() never writes more to a block
      at[n++] = {keys.size(), c.key().size()};
      keys += c.key();
      if (const auto* s = c.shared())
        rows.push_back(row{{}, {}, *s});
      else
        rows.push_back(row{{}, c.value(), {}});
    }
    for (std::size_t i = 0; i < n; ++i)
      rows[start + i].key = std::string_view(keys).substr(at[i].first, at[i].second);
  }

  /// Replaces block b with the rows (split or merged as their size asks).
  /// A block that overflowed with keys appended after its last one keeps
  /// max_rows and the new block takes the rest (rows written in key
  /// order, like counters, then fill their blocks); otherwise the rows
  /// are shared out evenly, so that inserts in random order do not leave
  /// a trail of nearly empty blocks.
  void store(block_map::iterator b, std::vector<row>& rows, bool appended,
             commit_scratch& scratch) {
    auto next = std::next(b);
    blocks_.erase(b);
    if (!rows.empty() && rows.size() < min_rows && next != blocks_.end()) {
      decode(next, rows, scratch);
      next = blocks_.erase(next);
      appended = false;
    }
    const std::size_t blocks_needed = (rows.size() + max_rows - 1) / max_rows;
    const std::size_t per_block =
        appended || blocks_needed < 2 ? max_rows : (rows.size() + blocks_needed - 1) / blocks_needed;
    std::string data;
    std::vector<shared_value> values;
    std::size_t i = 0;
    while (i < rows.size()) {
      data.clear();
      values.clear();
      const std::size_t first = i;
      std::string_view prev = rows[i].key;
      std::uint32_t count = 0;
      for (; i < rows.size(); ++i) {
        if (count == per_block || (count > 0 && data.size() >= max_bytes))
          break;
        auto& r = rows[i];
        const auto shared = common_prefix(prev, r.key);
        put_varint(data, shared);
        put_varint(data, r.key.size() - shared);
        data.append(r.key.substr(shared));
        if (r.shared) {
          put_varint(data, (values.size() << 1) | 1);
          values.push_back(std::move(r.shared));
        } else {
          put_varint(data, r.value.size() << 1);
          data.append(r.value);
        }
        prev = r.key;
        ++count;
      }
      // Copies at their size: the buffers above grew in steps.
      block out{data, {std::make_move_iterator(values.begin()), std::make_move_iterator(values.end())},
                count};
      next = std::next(blocks_.emplace_hint(next, std::string(rows[first].key), std::move(out)));
    }
    rows.clear();
  }

  std::shared_ptr<value_pool> pool_;
  block_map blocks_;
  std::uint64_t commits_ = 0; // lets a scan notice its visitor's writes
};

} // namespace

std::unique_ptr<kv_store> make_memory_kv(std::shared_ptr<value_pool> pool) {
  return std::make_unique<memory_kv>(std::move(pool));
}

} // namespace kith::storage
