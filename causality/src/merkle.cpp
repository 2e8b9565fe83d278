#include "kith/causality/merkle.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace kith::causality {

// --- hashing -----------------------------------------------------------------

namespace {

// The splitmix64 finaliser: a bijection on 64 bits with full avalanche.
constexpr std::uint64_t finalise(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

constexpr std::uint64_t golden = 0x9e3779b97f4a7c15ULL;

} // namespace

std::uint64_t merkle_hash(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a offset basis
  for (char c : bytes) {
    h ^= static_cast<std::uint8_t>(c);
    h *= 0x100000001b3ULL; // FNV prime
  }
  return finalise(h);
}

std::uint64_t merkle_mix(std::uint64_t a, std::uint64_t b) {
  return finalise(a ^ finalise(b + golden));
}

// --- the tree ----------------------------------------------------------------

merkle_tree::merkle_tree(std::size_t leaves, std::size_t fanout) : fanout_(fanout) {
  if (fanout < 2)
    throw std::invalid_argument("merkle_fanout must be at least 2");
  if (leaves < fanout || leaves > max_leaves)
    throw std::invalid_argument("merkle_leaves must be between merkle_fanout and 2^24");
  std::size_t n = 1;
  while (n < leaves) {
    n *= fanout;
    ++depth_;
  }
  if (n != leaves)
    throw std::invalid_argument("merkle_leaves must be a power of merkle_fanout");
  leaves_.assign(leaves, 0);
  dirty_mark_.assign(leaves, false);
  inner_.resize(depth_);
  for (std::size_t level = depth_; level-- > 0;) {
    inner_[level].resize(nodes_at(level));
    for (std::size_t i = 0; i < inner_[level].size(); ++i)
      inner_[level][i] = combine(level, i);
  }
}

std::size_t merkle_tree::nodes_at(std::size_t level) const {
  std::size_t n = 1;
  for (std::size_t i = 0; i < level; ++i)
    n *= fanout_;
  return n;
}

void merkle_tree::toggle(std::size_t leaf, std::uint64_t contribution) {
  leaves_.at(leaf) ^= contribution;
  if (!dirty_mark_[leaf]) {
    dirty_mark_[leaf] = true;
    dirty_.push_back(leaf);
  }
}

std::uint64_t merkle_tree::combine(std::size_t level, std::size_t index) const {
  std::uint64_t h = golden;
  const std::size_t first = index * fanout_;
  for (std::size_t j = 0; j < fanout_; ++j)
    h = merkle_mix(h, level + 1 == depth_ ? leaves_[first + j] : inner_[level + 1][first + j]);
  return h;
}

void merkle_tree::refresh() const {
  if (dirty_.empty())
    return;
  // Recompute only the ancestors of changed leaves, bottom-up.
  std::vector<std::size_t> nodes = std::move(dirty_);
  dirty_.clear();
  for (auto leaf : nodes)
    dirty_mark_[leaf] = false;
  for (std::size_t level = depth_; level-- > 0;) {
    for (auto& n : nodes)
      n /= fanout_;
    std::sort(nodes.begin(), nodes.end());
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    for (auto n : nodes)
      inner_[level][n] = combine(level, n);
  }
}

std::uint64_t merkle_tree::hash(std::size_t level, std::size_t index) const {
  if (level == depth_)
    return leaves_.at(index);
  refresh();
  return inner_.at(level).at(index);
}

// --- message framing ---------------------------------------------------------

namespace {

enum msg_type : std::uint8_t {
  push_msg = 1,
  root_msg = 2,
  in_sync_msg = 3,
  nodes_msg = 4,
  descend_msg = 5,
  digests_msg = 6,
  objects_msg = 7,
};

void put_hash(writer& w, std::uint64_t h) {
  char b[8];
  for (int i = 0; i < 8; ++i)
    b[i] = static_cast<char>((h >> (8 * i)) & 0xff);
  w.raw(std::string_view{b, 8});
}

std::uint64_t get_hash(reader& r) {
  const auto b = r.raw(8);
  if (b.size() != 8)
    return 0;
  std::uint64_t h = 0;
  for (int i = 0; i < 8; ++i)
    h |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(b[i])) << (8 * i);
  return h;
}

/// A message made only of sync metadata.
message sync_only(writer& w) {
  message m;
  m.bytes = w.take();
  m.split.sync_meta = m.bytes.size();
  return m;
}

/// Reads a count (at most `bound`) and that many strictly ascending indices
/// below `bound`; sets r.failed() on bad input.
std::vector<std::size_t> read_indices(reader& r, std::size_t bound) {
  const auto n = r.count(bound);
  std::vector<std::size_t> out;
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
    const auto idx = r.varint();
    if (idx >= bound || (!out.empty() && idx <= out.back())) {
      r.fail();
      break;
    }
    out.push_back(static_cast<std::size_t>(idx));
  }
  return out;
}

} // namespace

// --- merkle_replica ----------------------------------------------------------

merkle_replica::merkle_replica(scheme_kind kind, replica_id self, const scheme_options& opts)
    : kind_(kind), self_(self), tree_(opts.merkle_leaves, opts.merkle_fanout),
      index_(opts.merkle_leaves) {}

void merkle_replica::set_members(std::vector<replica_id> members) {
  members_ = std::move(members);
}

void merkle_replica::retire(replica_id member) {
  members_.erase(std::remove(members_.begin(), members_.end(), member), members_.end());
}

void merkle_replica::header(writer& w, std::uint8_t type) const {
  w.u8(type);
  w.u8(static_cast<std::uint8_t>(kind_));
}

void merkle_replica::note_stored(const key_type& k, bool live) {
  const auto kh = merkle_hash(k);
  const auto leaf = tree_.leaf_of(kh);
  writer w;
  const auto value_bytes = encode_object(k, w);
  auto [it, inserted] = index_[leaf].try_emplace(k);
  key_record& rec = it->second;
  if (inserted) {
    ++keys_;
  } else {
    tree_.toggle(leaf, merkle_mix(rec.key_hash, rec.object_hash));
    tombstones_ -= rec.live ? 0 : 1;
    meta_bytes_ -= rec.meta_bytes;
    data_bytes_ -= rec.data_bytes;
  }
  rec.key_hash = kh;
  rec.object_hash = merkle_hash(w.str());
  rec.data_bytes = value_bytes;
  rec.meta_bytes = w.size() - value_bytes;
  rec.live = live;
  tree_.toggle(leaf, merkle_mix(rec.key_hash, rec.object_hash));
  tombstones_ += rec.live ? 0 : 1;
  meta_bytes_ += rec.meta_bytes;
  data_bytes_ += rec.data_bytes;
}

message merkle_replica::make_push(const key_type& k) const {
  writer w;
  header(w, push_msg);
  w.bytes(k);
  const auto before = w.size();
  const auto value_bytes = encode_object(k, w);
  message m;
  m.split.data = k.size() + value_bytes;
  m.split.key_meta = varint_size(k.size()) + (w.size() - before - value_bytes);
  m.bytes = w.take();
  m.split.sync_meta = m.bytes.size() - m.split.data - m.split.key_meta;
  return m;
}

bool merkle_replica::deliver(const message& m) {
  reader r{m.bytes};
  const auto type = r.u8();
  const auto scheme = r.u8();
  if (r.failed() || type != push_msg || scheme != static_cast<std::uint8_t>(kind_))
    return false;
  const key_type k{r.bytes(limits_.max_key_bytes)};
  if (r.failed())
    return false;
  auto merge = decode_object(k, r);
  if (!merge || r.failed() || !r.at_end())
    return false;
  merge();
  return true;
}

scheme_stats merkle_replica::stats() const {
  scheme_stats s;
  s.keys = keys_;
  s.tombstones = tombstones_;
  s.key_meta_bytes = meta_bytes_;
  s.node_meta_bytes = 8 * static_cast<std::uint64_t>(tree_.leaves());
  s.data_bytes = data_bytes_;
  return s;
}

message merkle_replica::sync_start() {
  writer w;
  header(w, root_msg);
  w.varint(tree_.leaves());
  w.varint(tree_.fanout());
  put_hash(w, tree_.root());
  return sync_only(w);
}

std::optional<message> merkle_replica::sync_step(const message& m) {
  reader r{m.bytes};
  const auto type = r.u8();
  const auto scheme = r.u8();
  if (r.failed() || scheme != static_cast<std::uint8_t>(kind_))
    return std::nullopt;
  switch (type) {
  case root_msg:
    return reply_root(r);
  case nodes_msg:
    return on_nodes(r);
  case descend_msg:
    return reply_descend(r);
  case digests_msg:
    return reply_digests(r);
  case objects_msg:
    (void)merge_objects(r); // the session ends whether or not the bytes were good
    return std::nullopt;
  case in_sync_msg: // B's roots matched: nothing to do
  default:
    return std::nullopt;
  }
}

// At B: compare A's root with ours.
std::optional<message> merkle_replica::reply_root(reader& r) const {
  const auto leaves = r.varint();
  const auto fanout = r.varint();
  const auto h = get_hash(r);
  if (r.failed() || !r.at_end() || leaves != tree_.leaves() || fanout != tree_.fanout())
    return std::nullopt; // trees of different shapes cannot be compared
  if (h == tree_.root()) {
    writer w;
    header(w, in_sync_msg);
    return sync_only(w);
  }
  return nodes_message(0, {0});
}

// B's child hashes of the nodes `indices` at `level`.
message merkle_replica::nodes_message(std::size_t level,
                                      const std::vector<std::size_t>& indices) const {
  writer w;
  header(w, nodes_msg);
  w.varint(level);
  w.varint(indices.size());
  for (auto idx : indices) {
    w.varint(idx);
    for (std::size_t j = 0; j < tree_.fanout(); ++j)
      put_hash(w, tree_.hash(level + 1, idx * tree_.fanout() + j));
  }
  return sync_only(w);
}

// At A: compare B's child hashes with ours; descend, or list our keys of
// the differing leaves.
std::optional<message> merkle_replica::on_nodes(reader& r) const {
  const auto level = static_cast<std::size_t>(r.count(tree_.depth() - 1));
  const auto bound = tree_.nodes_at(level);
  const auto n = r.count(bound);
  std::vector<std::size_t> differ;
  std::uint64_t prev = 0;
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
    const auto idx = r.varint();
    if (idx >= bound || (i > 0 && idx <= prev)) {
      r.fail();
      break;
    }
    prev = idx;
    for (std::size_t j = 0; j < tree_.fanout() && !r.failed(); ++j) {
      const auto h = get_hash(r);
      const auto child = static_cast<std::size_t>(idx) * tree_.fanout() + j;
      if (!r.failed() && h != tree_.hash(level + 1, child))
        differ.push_back(child);
    }
  }
  if (r.failed() || !r.at_end() || differ.empty())
    return std::nullopt;

  writer w;
  if (level + 1 < tree_.depth()) {
    header(w, descend_msg);
    w.varint(level + 1);
    w.varint(differ.size());
    for (auto c : differ)
      w.varint(c);
    return sync_only(w);
  }
  header(w, digests_msg);
  w.varint(differ.size());
  for (auto leaf : differ) {
    w.varint(leaf);
    w.varint(index_[leaf].size());
    for (const auto& [k, rec] : index_[leaf]) {
      put_hash(w, rec.key_hash);
      put_hash(w, rec.object_hash);
    }
  }
  return sync_only(w);
}

// At B: the child hashes of the nodes A asks for.
std::optional<message> merkle_replica::reply_descend(reader& r) const {
  const auto level = static_cast<std::size_t>(r.count(tree_.depth() - 1));
  const auto indices = read_indices(r, tree_.nodes_at(level));
  if (r.failed() || !r.at_end() || indices.empty())
    return std::nullopt;
  return nodes_message(level, indices);
}

// At B: our objects in A's differing leaves that A lacks or holds otherwise.
std::optional<message> merkle_replica::reply_digests(reader& r) const {
  const auto n = r.count(tree_.leaves());
  std::vector<const key_type*> send;
  std::uint64_t total_keys = 0;
  std::uint64_t prev = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> theirs; // (key hash, object hash)
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
    const auto leaf = r.varint();
    if (leaf >= tree_.leaves() || (i > 0 && leaf <= prev)) {
      r.fail();
      break;
    }
    prev = leaf;
    const auto keys = r.count(limits_.max_entries - total_keys);
    total_keys += keys;
    theirs.clear();
    for (std::uint64_t j = 0; j < keys && !r.failed(); ++j) {
      const auto kh = get_hash(r);
      const auto oh = get_hash(r);
      theirs.emplace_back(kh, oh);
    }
    if (r.failed())
      break;
    std::sort(theirs.begin(), theirs.end());
    for (const auto& [k, rec] : index_[static_cast<std::size_t>(leaf)])
      if (!std::binary_search(theirs.begin(), theirs.end(),
                              std::make_pair(rec.key_hash, rec.object_hash)))
        send.push_back(&k);
  }
  if (r.failed() || !r.at_end() || n == 0)
    return std::nullopt;

  writer w;
  header(w, objects_msg);
  w.varint(send.size());
  byte_split split;
  for (const key_type* k : send) {
    w.bytes(*k);
    const auto before = w.size();
    const auto value_bytes = encode_object(*k, w);
    split.data += k->size() + value_bytes;
    split.key_meta += varint_size(k->size()) + (w.size() - before - value_bytes);
  }
  message m;
  m.bytes = w.take();
  split.sync_meta = m.bytes.size() - split.data - split.key_meta;
  m.split = split;
  return m;
}

bool merkle_replica::merge_objects(reader& r) {
  const auto n = r.count(limits_.max_entries);
  std::vector<pending_merge> merges;
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
    const key_type k{r.bytes(limits_.max_key_bytes)};
    if (r.failed())
      return false;
    auto merge = decode_object(k, r);
    if (!merge)
      return false;
    merges.push_back(std::move(merge));
  }
  if (r.failed() || !r.at_end())
    return false;
  for (auto& merge : merges)
    merge();
  return true;
}

} // namespace kith::causality
