#include "kith/storage/store.hpp"

#include "layout.hpp"

#include "kith/causality/codec.hpp"

#include <nlohmann/json.hpp>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>

namespace kith::storage {

namespace lay = layout;
using causality::container;
using causality::node_clock;
using causality::sibling;
using protocol::replica_binding;

namespace {

/// A writer summary's place among those held: its replica and the
/// replica whose writes it reports (the same for a writer's own).
using summary_key = std::pair<replica_id, replica_id>;

summary_key key_of(const protocol::writer_summary& ws) { return {ws.rid, ws.signer()}; }

} // namespace

struct store::topic_state {
  topic_descriptor desc;
  /// The topic's number in its rows.
  layout::topic_rows rows{0};
  node_clock clock;
  causality::dot_key_map dkm;
  causality::watermark marks;
  /// Keys stored with a context not yet empty (the 'u' rows). Nearly
  /// always none, so held out of line: one pointer while empty keeps the
  /// whole state within jemalloc's 448-byte class (checked below).
  std::unique_ptr<const std::set<key_type>> unstripped_;
  [[nodiscard]] const std::set<key_type>& unstripped() const {
    static const std::set<key_type> none;
    return unstripped_ ? *unstripped_ : none;
  }
  void set_unstripped(std::set<key_type> keys) {
    if (keys.empty())
      unstripped_.reset();
    else
      unstripped_ = std::make_unique<const std::set<key_type>>(std::move(keys));
  }
  /// The newest writer summary held per (replica, signer): a writer's own
  /// (signer = replica) and those a later replica of the same writer
  /// vouched with (protocol::writer_summary). The 'v' rows, loaded with
  /// the topic. Made by the first write that supersedes another, so held
  /// out of line (none in a topic nothing was overwritten or deleted in).
  using summary_map = std::map<summary_key, protocol::writer_summary>;
  struct summary_book {
    summary_map held;
    /// The last summary attach_summaries sent (it goes round them).
    summary_key cursor{replica_id{0}, replica_id{0}};
  };
  std::unique_ptr<summary_book> summaries_;
  [[nodiscard]] const summary_map& summaries() const {
    static const summary_map none;
    return summaries_ ? summaries_->held : none;
  }
  summary_map& summaries_to_change() {
    if (!summaries_)
      summaries_ = std::make_unique<summary_book>();
    return summaries_->held;
  }
  /// Members that owe a full resync -> our own base when they joined: the
  /// 'o' rows, loaded with the topic.
  std::map<replica_id, std::uint64_t> owed;
  /// Signed batches stored since the last sweep of spent ones, and what
  /// that sweep left and read (drop_spent_batches). In memory only: after
  /// a restart the first sweep comes after min_batches_per_sweep.
  std::size_t batches_since_sweep = 0;
  std::size_t batches_after_sweep = 0;
  std::size_t rows_read_by_sweep = 0;
};

struct store::commit_input {
  std::vector<causality::key_change> changes;
  std::vector<std::pair<dot, key_type>> new_dots;
  std::map<dot, write_header> headers; // known headers of dots involved
  /// Stored containers the caller already read (nullopt: not stored), so
  /// commit does not read them again.
  std::map<key_type, std::optional<container>> before;
  std::vector<signed_batch> batches;   // newly verified or signed
  std::vector<replica_binding> bindings;
  std::optional<std::pair<replica_id, node_clock>> observed;
  std::vector<replica_id> extra_members;
  /// A sender's own clock entry, vouched for first-hand (end of a resync).
  std::optional<std::pair<replica_id, causality::clock_entry>> join_entry;
  /// A trusted writer's whole clock, joined at the end of its resync
  /// (join_sender_entry with trust_writers).
  std::optional<node_clock> join_clock;
  /// Writer summaries to keep (each newer than the one held for its replica).
  std::vector<protocol::writer_summary> summaries;
  /// Resync debts to record (a base) or clear (nullopt). Debts of replicas
  /// that extra_members leaves out are cleared without being listed.
  std::map<replica_id, std::optional<std::uint64_t>> owed;
};

namespace {

error corrupt(const std::string& what) {
  return {errc::corrupt, what + " does not decode: the store is damaged (restore a backup, "
                                "or resync the topic from peers)"};
}

/// The outcome of a scan whose callback stops on an error of its own
/// (`inner`) or on a row that does not decode (`bad`, about `what`): the
/// scan's error first, then the callback's, then the damage.
status scan_outcome(const status& scan, const status& inner, bool bad, const std::string& what) {
  if (!scan)
    return scan;
  if (!inner)
    return inner;
  if (bad)
    return corrupt(what);
  return ok_status();
}

template <class T>
std::string encoded(const T& x) {
  causality::writer w;
  using causality::encode;
  using protocol::encode;
  encode(w, x);
  return w.take();
}

template <class T>
bool decoded(std::string_view bytes, T& out) {
  causality::reader r(bytes);
  using causality::decode;
  using protocol::decode;
  return decode(r, out) && !r.failed() && r.at_end();
}

// A document key is "<subject>\0<predicate>", the subject "<author id>/<path>".
std::string_view subject_of(std::string_view key) {
  return key.substr(0, key.find('\0'));
}
std::string_view predicate_of(std::string_view key) {
  auto z = key.find('\0');
  return z == std::string_view::npos ? std::string_view{} : key.substr(z + 1);
}
std::string_view author_text_of(std::string_view key) {
  auto s = subject_of(key);
  return s.substr(0, s.find('/'));
}

/// Whose documents a writer may touch: its own everywhere, and in a shared
/// topic also the creator's (the group's shared documents). Nobody writes
/// under a third person's id, so an open topic cannot be used to overwrite
/// someone else's documents.
bool may_touch(const topic_descriptor& t, const protocol::public_key& author,
               std::string_view key) {
  auto owner = author_text_of(key);
  if (key.size() <= owner.size() || key[owner.size()] != '/')
    return false;
  if (owner == protocol::to_text(author))
    return true;
  return t.kind == protocol::topic_kind::shared && owner == protocol::to_text(t.creator);
}

// --- derived indexes ----------------------------------------------------------

void append_hit_tail(std::string& row, std::uint64_t time_ms, dot d, const lay::topic_rows& topic,
                     std::string_view key) {
  lay::put_be64(row, ~time_ms); // newest first
  lay::put_be64(row, d.id.value());
  lay::put_be64(row, d.n.value());
  row.append(topic.view());
  row.append(key);
}

/// The hit a row's tail names; nullopt when the row is malformed or names
/// a topic number the store does not know.
std::optional<index_hit> parse_hit_tail(std::string_view row, std::size_t at,
                                        const std::map<std::uint32_t, protocol::topic_name>& names) {
  if (row.size() < at + 24 + lay::topic_rows::size)
    return std::nullopt;
  index_hit h;
  h.time_ms = ~lay::get_be64(row, at);
  h.d = dot{replica_id{lay::get_be64(row, at + 8)}, causality::counter{lay::get_be64(row, at + 16)}};
  auto rows = lay::topic_rows::parse(row.substr(at + 24));
  if (!rows)
    return std::nullopt;
  auto name = names.find(rows->number());
  if (name == names.end())
    return std::nullopt;
  h.topic = name->second;
  h.key = std::string(row.substr(at + 24 + lay::topic_rows::size));
  return h;
}

/// Calls fn(dot, body) for every live (not deleted, decodable) sibling.
template <class F>
void for_each_live(const container& c, F&& fn) {
  for (const auto& [d, s] : c.dots()) {
    if (s.deleted)
      continue;
    if (auto body = protocol::decode_body(s.bytes))
      fn(d, std::move(*body));
  }
}

/// The index rows of one stored key: a pure function of (topic, key,
/// container), which is what makes incremental maintenance and a rebuild
/// agree. Posts are keys "<id>/statuses/<name>\0text" holding a JSON string.
std::vector<std::string> index_rows_of(const lay::topic_rows& topic, std::string_view key,
                                       const container& c) {
  std::vector<std::string> rows;
  const auto predicate = predicate_of(key);
  if (predicate != "text" && predicate != "reply_to")
    return rows;
  auto subject = subject_of(key);
  auto author_text = author_text_of(key);
  if (subject.substr(author_text.size()).rfind("/statuses/", 0) != 0)
    return rows;
  auto author = protocol::parse_id(author_text);
  if (!author)
    return rows;
  if (predicate == "reply_to") {
    // "ir" <replied-to subject> \0 <hit>: the replies a node holds to a status.
    for_each_live(c, [&](dot d, const protocol::write_body& body) {
      auto j = nlohmann::json::parse(body.value, nullptr, false);
      if (j.is_discarded() || !j.is_string() || j.get<std::string>().empty() ||
          j.get<std::string>().find('\0') != std::string::npos)
        return;
      std::string row = "ir" + j.get<std::string>();
      row.push_back('\0');
      append_hit_tail(row, body.time_ms, d, topic, key);
      rows.push_back(std::move(row));
    });
    return rows;
  }
  for_each_live(c, [&](dot d, const protocol::write_body& body) {
    auto j = nlohmann::json::parse(body.value, nullptr, false);
    if (j.is_discarded() || !j.is_string())
      return;
    // "im" <mentioned key> <hit>: posts mentioning an identity.
    for (const auto& m : mentions(j.get<std::string>())) {
      if (auto pk = protocol::parse_id(m)) {
        std::string row = "im";
        row.append(pk->view());
        append_hit_tail(row, body.time_ms, d, topic, key);
        rows.push_back(std::move(row));
      }
    }
    std::string row = "ia";
    row.append(author->view());
    append_hit_tail(row, body.time_ms, d, topic, key);
    rows.push_back(std::move(row));
    for (const auto& tag : hashtags(j.get<std::string>())) {
      std::string t = "it" + tag;
      t.push_back('\0');
      append_hit_tail(t, body.time_ms, d, topic, key);
      rows.push_back(std::move(t));
      // "iw" <time, oldest first> <dot> <tag>: tags by time, so counting
      // the tags of a window reads only that window's rows (trending).
      std::string w = "iw";
      lay::put_be64(w, body.time_ms);
      lay::put_be64(w, d.id.value());
      lay::put_be64(w, d.n.value());
      w.append(tag);
      rows.push_back(std::move(w));
    }
  });
  return rows;
}

/// Bumped whenever index_rows_of changes what it writes: a store with
/// another version is reindexed on open. 2: tag-by-time rows ("iw").
/// 3: hits name the topic by its number (store format 2).
constexpr std::uint64_t index_version = 3;

std::string index_version_record() { return lay::version_record(index_version); }

std::uint64_t fresh_nonce() {
  protocol::ensure_sodium();
  std::uint64_t n = 0;
  randombytes_buf(&n, sizeof n);
  return n;
}

} // namespace

std::vector<std::string> hashtags(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '#')
      continue;
    std::string tag;
    std::size_t j = i + 1;
    for (; j < text.size(); ++j) {
      unsigned char ch = static_cast<unsigned char>(text[j]);
      if (std::isalnum(ch) || ch == '_' || ch >= 0x80)
        tag.push_back(static_cast<char>(ch < 0x80 ? std::tolower(ch) : ch));
      else
        break;
    }
    if (!tag.empty() && tag.size() <= 64 &&
        std::find(out.begin(), out.end(), tag) == out.end())
      out.push_back(tag);
    i = j - 1;
  }
  return out;
}

std::vector<std::string> mentions(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '@')
      continue;
    std::size_t j = i + 1;
    while (j < text.size() && std::isalnum(static_cast<unsigned char>(text[j])))
      ++j;
    auto cand = text.substr(i + 1, j - i - 1);
    if (protocol::parse_id(cand))
      out.emplace_back(cand);
    i = j - 1;
  }
  return out;
}

// --- opening ------------------------------------------------------------------

store::store(std::unique_ptr<kv_store> kv, const protocol::identity& self,
             const store_options& o)
  : kv_(std::move(kv)), self_(self), opts_(o) {
}

store::~store() = default;

result<std::unique_ptr<store>> store::open(const std::string& dir, const protocol::identity& self,
                                           bool create, const store_options& opts) {
  auto kv = open_rocksdb(dir, create);
  if (!kv)
    return kv.err();
  std::unique_ptr<store> s(new store(std::move(kv.value()), self, opts));
  if (auto st = s->init(create); !st)
    return st.err();
  return s;
}

result<std::unique_ptr<store>> store::open(std::unique_ptr<kv_store> kv,
                                           const protocol::identity& self,
                                           const store_options& opts) {
  std::unique_ptr<store> s(new store(std::move(kv), self, opts));
  if (auto st = s->init(true); !st)
    return st.err();
  return s;
}

status store::init(bool may_create) {
  auto version = kv_->get(lay::meta("format"));
  if (!version)
    return version.err();
  feed_id_ = protocol::feed_topic(self_.pub()).id;
  if (!*version) {
    if (!may_create)
      return error{errc::not_found, "the store has no format record; it is empty or damaged"};
    // A new store: a new replica id, bound to the identity.
    binding_ = protocol::bind_replica(self_, opts_.replica_nonce ? opts_.replica_nonce
                                                                 : fresh_nonce());
    kv_batch b;
    b.put(lay::meta("format"), lay::version_record(format_version));
    b.put(lay::meta("binding"), encoded(binding_));
    b.put(lay::binding_row(binding_.rid), encoded(binding_));
    b.put(lay::topic_row(feed_id_), encoded(protocol::feed_topic(self_.pub())));
    const std::uint32_t feed_number = next_number();
    b.put(lay::number_row(feed_id_), std::string(lay::topic_rows{feed_number}.view()));
    b.put(lay::meta("index"), index_version_record());
    if (auto st = kv_->commit(b, true); !st)
      return st;
    remember_number(feed_id_, feed_number);
    return ok_status();
  }
  causality::reader r(**version);
  auto v = r.varint();
  if (r.failed())
    return corrupt("the format record");
  if (v != format_version && v != 1 && v != format_migrating_from_1)
    return error{errc::format_mismatch,
                 "the store has format version " + std::to_string(v) + " but this kith reads " +
                     std::to_string(format_version) + " (and converts 1); use a matching kith "
                     "version"};
  if (v == 1 || v == format_migrating_from_1) {
    // Written by an older kith: its rows are renamed in place, resumably.
    if (auto st = migrate_from_format_1(); !st)
      return st;
  }
  if (auto st = load_numbers(); !st)
    return st;
  auto b = kv_->get(lay::meta("binding"));
  if (!b)
    return b.err();
  if (!*b || !decoded(**b, binding_) || !protocol::check_binding(binding_))
    return corrupt("the replica binding");
  if (binding_.author != self_.pub())
    return error{errc::invalid, "this store belongs to " + protocol::to_text(binding_.author) +
                                    ", not to the identity " + protocol::to_text(self_.pub())};
  // Indexes are derived: a store written by an older kith gets the
  // current rows rebuilt once, on open.
  auto iv = kv_->get(lay::meta("index"));
  if (!iv)
    return iv.err();
  if (!*iv || **iv != index_version_record()) {
    if (auto r = reindex(); !r)
      return r.err();
  }
  return ok_status();
}

// --- topics ---------------------------------------------------------------------

status store::add_topic(const topic_descriptor& t) {
  std::lock_guard lock(mu_);
  std::string why;
  if (!protocol::check_topic(t, &why))
    return error{errc::invalid, "topic " + t.id + ": " + why};
  auto have = kv_->get(lay::topic_row(t.id));
  if (!have)
    return have.err();
  if (*have)
    return ok_status();
  const std::uint32_t n = next_number();
  if (n >= lay::topic_rows::limit)
    return error{errc::invalid, "this store holds " + std::to_string(names_.size()) +
                                    " topics, the most one store can"};
  kv_batch b;
  b.put(lay::topic_row(t.id), encoded(t));
  b.put(lay::number_row(t.id), std::string(lay::topic_rows{n}.view()));
  if (auto st = kv_->commit(b, opts_.sync); !st)
    return st;
  remember_number(t.id, n);
  return ok_status();
}

status store::load_numbers() {
  numbers_.clear();
  names_.clear();
  bool bad = false;
  auto st = kv_->scan("n", "o", [&](std::string_view k, std::string_view v) {
    auto rows = lay::topic_rows::parse(v);
    if (!rows || v.size() != lay::topic_rows::size || rows->number() == 0 ||
        !names_.emplace(rows->number(), std::string(k.substr(1))).second) {
      bad = true;
      return false;
    }
    numbers_[std::string(k.substr(1))] = rows->number();
    return true;
  });
  if (!st)
    return st;
  if (bad)
    return corrupt("the topic numbers");
  return ok_status();
}

std::optional<lay::topic_rows> store::rows_of(std::string_view topic) const {
  auto i = numbers_.find(topic);
  if (i == numbers_.end())
    return std::nullopt;
  return lay::topic_rows{i->second};
}

std::optional<topic_descriptor> store::topic(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto v = kv_->get(lay::topic_row(id));
  topic_descriptor t;
  if (!v || !*v || !decoded(**v, t))
    return std::nullopt;
  return t;
}

std::vector<std::string> store::topics() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  (void) kv_->scan("t", "u", [&](std::string_view k, std::string_view) {
    out.emplace_back(k.substr(1));
    return true;
  });
  return out;
}

result<store::topic_state*> store::state(const std::string& topic) {
  // Where the layout is the one measured (libstdc++, 64-bit), a topic's
  // state stays within jemalloc's 448-byte class (the next is 512).
#if defined(__GLIBCXX__) && !defined(_GLIBCXX_DEBUG) && UINTPTR_MAX == UINT64_MAX
  static_assert(sizeof(topic_state) <= 448, "a topic's state outgrew the 448-byte allocation class");
#endif
  if (auto i = topics_.find(topic); i != topics_.end())
    return i->second.get();
  auto ts = std::make_unique<topic_state>();
  auto d = kv_->get(lay::topic_row(topic));
  if (!d)
    return d.err();
  if (!*d)
    return error{errc::not_found, "unknown topic " + topic + " (follow or join it first)"};
  if (!decoded(**d, ts->desc))
    return corrupt("the descriptor of topic " + topic);
  auto rows = rows_of(topic);
  if (!rows)
    return error{errc::corrupt, "topic " + topic + " has no number in this store, so its rows "
                                "cannot be found: the store is damaged (restore a backup, or "
                                "start a new store and resync from peers)"};
  ts->rows = *rows;
  auto c = kv_->get(lay::clock_row(ts->rows));
  if (!c)
    return c.err();
  if (*c && !decoded(**c, ts->clock))
    return corrupt("the clock of topic " + topic);
  auto w = kv_->get(lay::marks_row(ts->rows));
  if (!w)
    return w.err();
  if (*w) {
    if (!decoded(**w, ts->marks))
      return corrupt("the watermark of topic " + topic);
  } else {
    ts->marks.set_members({binding_.rid});
  }
  bool bad = false;
  auto dp = lay::topic_prefix('d', ts->rows);
  auto st = kv_->scan(dp, prefix_end(dp), [&](std::string_view k, std::string_view v) {
    if (k.size() != dp.size() + 16) {
      bad = true;
      return false;
    }
    ts->dkm.insert(dot{replica_id{lay::get_be64(k, dp.size())},
                       causality::counter{lay::get_be64(k, dp.size() + 8)}},
                   std::string(v));
    return true;
  });
  if (!st)
    return st.err();
  if (bad)
    return corrupt("the dot-key map of topic " + topic);
  auto up = lay::topic_prefix('u', ts->rows);
  std::set<key_type> unstripped;
  st = kv_->scan(up, prefix_end(up), [&](std::string_view k, std::string_view) {
    unstripped.emplace(k.substr(up.size()));
    return true;
  });
  ts->set_unstripped(std::move(unstripped));
  if (!st)
    return st.err();
  auto vp = lay::topic_prefix('v', ts->rows);
  st = kv_->scan(vp, prefix_end(vp), [&](std::string_view, std::string_view v) {
    protocol::writer_summary ws;
    if (!decoded(v, ws)) {
      bad = true;
      return false;
    }
    const auto k = key_of(ws);
    ts->summaries_to_change()[k] = std::move(ws);
    return true;
  });
  if (!st)
    return st.err();
  if (bad)
    return corrupt("a writer summary of topic " + topic);
  auto op = lay::topic_prefix('o', ts->rows);
  st = kv_->scan(op, prefix_end(op), [&](std::string_view k, std::string_view v) {
    if (k.size() != op.size() + 8 || v.size() != 8) {
      bad = true;
      return false;
    }
    ts->owed[replica_id{lay::get_be64(k, op.size())}] = lay::get_be64(v, 0);
    return true;
  });
  if (!st)
    return st.err();
  if (bad)
    return corrupt("the resync debts of topic " + topic);
  return topics_.emplace(topic, std::move(ts)).first->second.get();
}

status store::set_members(const std::string& topic, std::vector<replica_id> members) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return ts.err();
  members.push_back(binding_.rid);
  commit_input in;
  in.extra_members = std::move(members);
  return commit(**ts, in);
}

result<bool> store::join_member(const std::string& topic, replica_id rid) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return ts.err();
  if ((*ts)->marks.is_member(rid))
    return false;
  commit_input in;
  in.extra_members = (*ts)->marks.members(); // self included
  in.extra_members.push_back(rid);
  in.owed[rid] = (*ts)->clock.base(binding_.rid);
  if (auto st = commit(**ts, in); !st)
    return st.err();
  return true;
}

bool store::owes_resync(const std::string& topic, replica_id rid) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  return ts && (*ts)->owed.count(rid) != 0;
}

status store::settle_resync(const std::string& topic, replica_id rid, const node_clock& c) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return ts.err();
  auto i = (*ts)->owed.find(rid);
  if (i == (*ts)->owed.end() || c.base(binding_.rid) < i->second)
    return ok_status();
  commit_input in;
  in.owed[rid] = std::nullopt;
  return commit(**ts, in);
}

result<std::optional<protocol::public_key>> store::author_of(replica_id rid) {
  auto rb = kv_->get(lay::binding_row(rid));
  if (!rb)
    return rb.err();
  std::optional<protocol::public_key> a;
  replica_binding b;
  if (*rb && decoded(**rb, b) && b.rid == rid)
    a = b.author;
  return a;
}

result<std::vector<replica_id>> store::members(const std::string& topic) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return ts.err();
  return (*ts)->marks.members();
}

status store::observe(const std::string& topic, replica_id from, const node_clock& c) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return ts.err();
  if (!(*ts)->marks.is_member(from))
    return ok_status();
  commit_input in;
  in.observed = std::make_pair(from, c);
  return commit(**ts, in);
}

namespace {

/// Scans every stored container of `topic` and, for each holding a dot
/// `drop(d, key)` says to drop (a result<bool>: true drops it), records the
/// container without those dots (its context kept) as a change in `in`.
template <class Input, class Drop>
status drop_stored_values(const kv_store& kv, const lay::topic_rows& rows, const std::string& topic,
                          Input& in, Drop drop) {
  const std::string prefix = layout::topic_prefix('c', rows);
  bool bad = false;
  status inner = ok_status();
  auto st = kv.scan(prefix, prefix_end(prefix), [&](std::string_view k, std::string_view v) {
    container c;
    if (!decoded(v, c)) {
      bad = true;
      return false;
    }
    container kept;
    bool stale = false;
    const auto stored_key = k.substr(prefix.size());
    for (const auto& [d, sib] : c.dots()) {
      auto gone = drop(d, stored_key);
      if (!gone) {
        inner = gone.err();
        return false;
      }
      if (*gone) {
        stale = true;
        continue;
      }
      kept.add(d, sib);
    }
    if (!stale)
      return true;
    for (const auto& [id, n] : c.context().entries())
      kept.context().raise(id, n);
    key_type key(k.substr(prefix.size()));
    in.before.emplace(key, std::move(c));
    in.changes.push_back({std::move(key), std::move(kept)});
    return true;
  });
  return scan_outcome(st, inner, bad, "a stored container of " + topic);
}

} // namespace

status store::join_sender_entry(const std::string& topic, replica_id sender,
                                const node_clock& sender_clock,
                                const node_clock* sender_held, bool trust_writers) {
  std::lock_guard lock(mu_);
  auto tsr = state(topic);
  if (!tsr)
    return tsr.err();
  topic_state& ts = **tsr;
  const causality::clock_entry* e = sender_clock.find(sender);
  if (!e)
    return ok_status();
  commit_input in;
  // Does the entry name dots we have not seen? Those are the sender's
  // writes the resync did not carry: overwritten or deleted there, their
  // records possibly pruned everywhere.
  const causality::clock_entry mine =
      ts.clock.find(sender) ? *ts.clock.find(sender) : causality::clock_entry{};
  causality::clock_entry joined = mine;
  joined.join(*e);
  const bool adds_dots = joined != mine;
  if (!sender_held) {
    in.join_entry = std::make_pair(sender, *e);
    return commit(ts, in);
  }
  // Whose writes the sender vouches for: its author's, under any replica
  // id (an author that lost its store writes on under a new id and
  // deletes posts of the old one). Bindings are proven when stored.
  std::map<replica_id, std::optional<protocol::public_key>> author_cache;
  auto author_of = [&](replica_id rid) -> result<std::optional<protocol::public_key>> {
    if (auto i = author_cache.find(rid); i != author_cache.end())
      return i->second;
    auto a = this->author_of(rid);
    if (!a)
      return a.err();
    author_cache.emplace(rid, *a);
    return *a;
  };
  auto sender_author = author_of(sender);
  if (!sender_author)
    return sender_author.err();
  const node_clock& held = *sender_held;
  bool unexplained = false;
  // What the resync says of a stored write we hold: nothing (the sender
  // holds it, or has not seen it), or that the sender saw it and no
  // longer holds it, so it was overwritten or deleted there.
  enum class verdict { none, dropped_by_author, dropped_by_other };
  auto judge = [&](dot d) -> result<verdict> {
    if (held.contains(d) || !sender_clock.contains(d))
      return verdict::none;
    if (d.id == sender)
      return verdict::dropped_by_author;
    if (!*sender_author)
      return verdict::dropped_by_other;
    auto a = author_of(d.id);
    if (!a)
      return a.err();
    return *a && **a == **sender_author ? verdict::dropped_by_author : verdict::dropped_by_other;
  };
  // The author's own word drops its writes. In a shared topic, a writer
  // may overwrite or delete any value of a key it may write (its own
  // documents and the creator's), so its complete resync also drops a
  // third party's write there that it no longer holds: a signed delete
  // from it would do the same. Otherwise a third party's write the
  // sender dropped is left to anti-entropy (see below).
  const bool sender_writes = trust_writers && *sender_author &&
                             ts.desc.kind == protocol::topic_kind::shared &&
                             protocol::may_write(ts.desc, **sender_author);
  auto dropped = drop_stored_values(*kv_, ts.rows, topic, in, [&](dot d, std::string_view key) -> result<bool> {
    auto j = judge(d);
    if (!j)
      return j.err();
    if (*j == verdict::dropped_by_other && sender_writes && may_touch(ts.desc, **sender_author, key))
      return true;
    unexplained = unexplained || *j == verdict::dropped_by_other;
    return *j == verdict::dropped_by_author;
  });
  if (!dropped)
    return dropped.err();
  // The entry may cover writes of the sender we never received (the
  // resync carries what it holds, not what it overwrote). Their effects
  // are unknown here: a write the sender overwrote may itself have
  // overwritten a third party's value we still hold. If we hold such a
  // value (the sender saw it and dropped it for a reason we do not know),
  // the entry is not joined: our clock then still misses those writes,
  // so the members that have them keep their records for us and
  // anti-entropy delivers them with their contexts. Joining would make
  // the clock claim them, and everyone would prune the only records that
  // can remove the value. The gap costs a later resync at most (the
  // sender asks again until our reports cover its writes).
  if (!(unexplained && adds_dots))
    in.join_entry = std::make_pair(sender, *e);
  // A trusted writer's complete resync carried or named every value it
  // holds and dropped the rest here; what its clock covers beyond that is
  // dead. Claiming it keeps a stale replica from handing us such a value
  // later as new (its delete or overwrite is then never sent again).
  if (sender_writes && !unexplained) {
    node_clock all = sender_clock;
    all.erase(binding_.rid); // our own entry is ours to keep
    in.join_clock = std::move(all);
  }
  if (in.changes.empty() && !in.join_entry)
    return ok_status();
  return commit(ts, in);
}

std::optional<protocol::writer_summary> store::summary(const std::string& topic, replica_id rid,
                                                      std::optional<replica_id> by) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return std::nullopt;
  auto it = (*ts)->summaries().find(summary_key{rid, by.value_or(rid)});
  if (it == (*ts)->summaries().end())
    return std::nullopt;
  return it->second;
}

std::optional<node_clock> store::clock_copy(const std::string& topic) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return std::nullopt;
  return (*ts)->clock;
}

const node_clock* store::clock(const std::string& topic) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  return ts ? &(*ts)->clock : nullptr;
}

// --- the single commit path ----------------------------------------------------

namespace {

/// The stored signed batch covering d, if any: the batch of d's replica
/// with the greatest first counter <= d's counter.
result<std::optional<signed_batch>> stored_batch_covering(const kv_store& kv,
                                                          const lay::topic_rows& topic, dot d) {
  auto row = kv.floor(lay::dot_row('b', topic, d), lay::batch_row(topic, d.id, 0));
  if (!row)
    return row.err();
  signed_batch sb;
  if (!*row || !decoded((*row)->second, sb) || !sb.covers(d))
    return std::optional<signed_batch>{};
  return std::optional<signed_batch>{std::move(sb)};
}

/// Reads stored containers, seeing this commit's pending changes first.
class kv_source : public causality::container_source {
public:
  kv_source(const kv_store& kv, const lay::topic_rows& rows, std::string topic)
      : kv_(kv), rows_(rows), topic_(std::move(topic)) {}
  std::optional<container> load(const key_type& k) const override {
    if (auto i = overlay_.find(k); i != overlay_.end())
      return i->second;
    auto v = kv_.get(lay::key_row('c', rows_, k));
    if (!v)
      throw std::runtime_error(v.err().message);
    if (!*v)
      return std::nullopt;
    container c;
    if (!decoded(**v, c))
      throw std::runtime_error("stored container of a key in " + topic_ + " does not decode");
    return c;
  }
  std::map<key_type, container> overlay_;

private:
  const kv_store& kv_;
  lay::topic_rows rows_;
  std::string topic_;
};

} // namespace

bool store::changes_nothing(const topic_state& ts, const commit_input& in) const {
  if (!in.changes.empty() || !in.headers.empty() || !in.batches.empty() || !in.bindings.empty() ||
      !in.extra_members.empty() || in.join_entry || in.join_clock || !in.summaries.empty() ||
      !in.owed.empty())
    return false;
  for (const auto& nd : in.new_dots)
    if (!ts.clock.contains(nd.first))
      return false;
  return ts.marks.covers(binding_.rid, ts.clock) &&
         (!in.observed || ts.marks.covers(in.observed->first, in.observed->second));
}

status store::commit(topic_state& ts, commit_input& in) {
  // Most anti-entropy rounds end here: an answer or a reply that brings
  // nothing new, from a member whose report is already recorded. The
  // clock, watermark and dot-key map would come out as they are, and the
  // rows written would be the rows held.
  if (changes_nothing(ts, in))
    return ok_status();
  const std::string& topic = ts.desc.id;
  const lay::topic_rows& rows = ts.rows;
  kv_source src(*kv_, ts.rows, topic);
  kv_batch b;

  // The clock after: only dots not yet covered are new.
  node_clock clk = ts.clock;
  std::vector<std::pair<dot, key_type>> fresh;
  std::set<dot> fresh_dots;
  for (auto& [d, k] : in.new_dots)
    if (!clk.contains(d)) {
      clk.add(d);
      fresh.emplace_back(d, k);
      fresh_dots.insert(d);
    }
  if (in.join_entry)
    clk.join_entry(in.join_entry->first, in.join_entry->second);
  if (in.join_clock)
    clk.merge(*in.join_clock);

  // The watermark after, and what it lets us prune.
  causality::watermark marks = ts.marks;
  if (!in.extra_members.empty())
    marks.set_members(in.extra_members);
  marks.observe(binding_.rid, clk);
  if (in.observed)
    marks.observe(in.observed->first, in.observed->second);
  std::map<replica_id, std::uint64_t> prune_upto;
  auto pruned = [&](dot d) {
    auto i = prune_upto.find(d.id);
    if (i == prune_upto.end())
      i = prune_upto.emplace(d.id, marks.row_min(d.id)).first;
    return d.n.value() <= i->second;
  };
  auto in_dkm_after = [&](dot d) {
    if (pruned(d))
      return false;
    if (ts.dkm.find(d))
      return true;
    return fresh_dots.count(d) != 0;
  };

  // Containers, the unstripped set, headers of dots no longer held, indexes.
  std::set<key_type> unstripped = ts.unstripped();
  auto put_container = [&](const key_type& k, const container& old_c, const container& new_c,
                           bool had) {
    for (const auto& row : index_rows_of(rows, k, old_c))
      b.del(row);
    for (const auto& row : index_rows_of(rows, k, new_c))
      b.put(row, {});
    if (new_c.empty()) {
      if (had)
        b.del(lay::key_row('c', rows, k));
      unstripped.erase(k);
    } else {
      b.put(lay::key_row('c', rows, k), encoded(new_c));
      if (new_c.context().empty())
        unstripped.erase(k);
      else
        unstripped.insert(k);
    }
  };
  // Headers grouped by key once, not searched per changed key.
  std::map<key_type, std::vector<const std::pair<const dot, write_header>*>> headers_of;
  for (const auto& entry : in.headers)
    headers_of[entry.second.key].push_back(&entry);
  try {
    for (const auto& ch : in.changes) {
      auto known = in.before.find(ch.key);
      auto old = known != in.before.end() ? known->second : src.load(ch.key);
      container old_c = old.value_or(container{});
      // Headers of every write this key held or received, for the dots
      // that end up not held: overwritten and deleted writes stay
      // provable to peers until every member has them.
      std::map<dot, write_header> candidates;
      for (const auto& [d, s] : old_c.dots())
        if (auto body = protocol::decode_body(s.bytes))
          candidates.emplace(d, protocol::header_of(ch.key, d, *body));
      if (auto hs = headers_of.find(ch.key); hs != headers_of.end())
        for (const auto* entry : hs->second)
          candidates.emplace(entry->first, entry->second);
      for (const auto& [d, h] : candidates)
        if (!ch.stored.holds(d) && in_dkm_after(d))
          b.put(lay::dot_row('s', rows, d), encoded(h));
      put_container(ch.key, old_c, ch.stored, old.has_value());
      src.overlay_[ch.key] = ch.stored;
    }
    // Contexts the grown clock now covers are stripped in the same batch:
    // after fresh dots, and after a joined entry (the end of a resync),
    // which fills the gaps of writes the pages did not carry.
    // TODO(perf): this reads every unstripped key on each commit that adds
    // dots; index the unstripped keys by the ids their contexts name.
    if (!fresh.empty() || in.join_entry || in.join_clock) {
      for (const auto& k : std::set<key_type>(unstripped)) {
        auto cur = src.load(k);
        if (!cur)
          continue;
        container s = *cur;
        s.strip(clk);
        if (s.context().size() != cur->context().size()) {
          put_container(k, *cur, s, true);
          src.overlay_[k] = s;
        }
      }
    }
  } catch (const std::runtime_error& e) {
    return error{errc::corrupt, e.what()};
  }
  for (const auto& k : ts.unstripped())
    if (!unstripped.count(k))
      b.del(lay::key_row('u', rows, k));
  for (const auto& k : unstripped)
    if (!ts.unstripped().count(k))
      b.put(lay::key_row('u', rows, k), {});

  // Dot-key map rows: add the fresh ones not already below the watermark,
  // drop the pruned ones with their kept headers.
  std::vector<dot> drop;
  for (const auto& [origin, row] : ts.dkm.rows()) {
    auto upto = marks.row_min(origin);
    for (auto i = row.begin(); i != row.end() && i->first <= upto; ++i)
      drop.push_back(dot{origin, causality::counter{i->first}});
  }
  for (dot d : drop) {
    b.del(lay::dot_row('d', rows, d));
    b.del(lay::dot_row('s', rows, d));
  }
  for (const auto& [d, k] : fresh)
    if (!pruned(d))
      b.put(lay::dot_row('d', rows, d), k);

  for (const auto& sb : in.batches) {
    b.put(lay::batch_row(rows, sb.rid, sb.first), encoded(sb));
  }
  for (const auto& rb : in.bindings)
    b.put(lay::binding_row(rb.rid), encoded(rb));
  for (const auto& ws : in.summaries)
    b.put(lay::summary_row(rows, ws.rid, ws.signer()), encoded(ws));
  // Resync debts after: those listed, less those of replicas no longer
  // members (only a change of members or debts can change them).
  const bool owed_changes = !in.owed.empty() || !in.extra_members.empty();
  std::map<replica_id, std::uint64_t> owed;
  if (owed_changes) {
    owed = ts.owed;
    for (const auto& [rid, base] : in.owed)
      if (base)
        owed[rid] = *base;
      else
        owed.erase(rid);
    for (auto i = owed.begin(); i != owed.end();)
      i = marks.is_member(i->first) ? std::next(i) : owed.erase(i);
    for (const auto& [rid, base] : ts.owed)
      if (owed.count(rid) == 0)
        b.del(lay::owed_row(rows, rid));
    for (const auto& [rid, base] : owed)
      if (auto i = ts.owed.find(rid); i == ts.owed.end() || i->second != base) {
        std::string v;
        lay::put_be64(v, base);
        b.put(lay::owed_row(rows, rid), v);
      }
  }
  b.put(lay::clock_row(rows), encoded(clk));
  b.put(lay::marks_row(rows), encoded(marks));

  if (auto st = kv_->commit(b, opts_.sync); !st) {
    // Memory still holds the state before; the store has not changed.
    return st.err();
  }
  ts.clock = std::move(clk);
  for (const auto& [d, k] : fresh)
    if (!pruned(d))
      ts.dkm.insert(d, k);
  std::vector<replica_id> origins;
  for (const auto& [origin, row] : ts.dkm.rows())
    origins.push_back(origin);
  for (auto origin : origins)
    ts.dkm.prune(origin, marks.row_min(origin));
  ts.marks = std::move(marks);
  if (owed_changes)
    ts.owed = std::move(owed);
  ts.set_unstripped(std::move(unstripped));
  for (auto& ws : in.summaries) {
    const auto k = key_of(ws);
    ts.summaries_to_change()[k] = std::move(ws);
  }
  ts.batches_since_sweep += in.batches.size();
  if (ts.batches_since_sweep >=
      std::max({min_batches_per_sweep, ts.batches_after_sweep, ts.rows_read_by_sweep / 8})) {
    // What is committed stays committed: a sweep that fails leaves its
    // batches for the next one.
    (void)drop_spent_batches(ts);
  }
  return ok_status();
}

status store::drop_spent_batches(topic_state& ts) {
  ts.batches_since_sweep = 0;
  const lay::topic_rows& rows = ts.rows;
  // Every dot a batch may still have to prove: the writes keys hold and
  // the kept headers of writes they no longer hold.
  std::map<std::uint64_t, std::vector<std::uint64_t>> live; // replica -> counters
  std::size_t read = 0;
  bool bad = false;
  const std::string cp = lay::topic_prefix('c', rows);
  auto st = kv_->scan(cp, prefix_end(cp), [&](std::string_view, std::string_view v) {
    ++read;
    container c;
    if (!decoded(v, c)) {
      bad = true;
      return false;
    }
    for (const auto& [d, sib] : c.dots())
      live[d.id.value()].push_back(d.n.value());
    return true;
  });
  if (!st)
    return st;
  if (bad)
    return corrupt("a stored container of " + ts.desc.id);
  const std::string sp = lay::topic_prefix('s', rows);
  constexpr std::size_t dot_row_size = 1 + lay::topic_rows::size + 16;
  st = kv_->scan(sp, prefix_end(sp), [&](std::string_view k, std::string_view) {
    ++read;
    if (k.size() != dot_row_size) {
      bad = true;
      return false;
    }
    live[lay::get_be64(k, 1 + lay::topic_rows::size)].push_back(
        lay::get_be64(k, 1 + lay::topic_rows::size + 8));
    return true;
  });
  if (!st)
    return st;
  if (bad)
    return corrupt("a kept header row of " + ts.desc.id);
  for (auto& [rid, counters] : live)
    std::sort(counters.begin(), counters.end());
  kv_batch b;
  std::size_t kept = 0, dropped = 0;
  const std::string bp = lay::topic_prefix('b', rows);
  st = kv_->scan(bp, prefix_end(bp), [&](std::string_view k, std::string_view v) {
    ++read;
    signed_batch sb;
    if (k.size() != dot_row_size || !decoded(v, sb) || sb.leaves.empty()) {
      bad = true;
      return false;
    }
    const auto l = live.find(sb.rid.value());
    const bool needed = l != live.end() && [&] {
      auto i = std::lower_bound(l->second.begin(), l->second.end(), sb.first);
      return i != l->second.end() && *i <= sb.last();
    }();
    if (needed) {
      ++kept;
    } else {
      b.del(std::string(k));
      ++dropped;
    }
    return true;
  });
  if (!st)
    return st;
  if (bad)
    return corrupt("a stored signed batch of " + ts.desc.id);
  if (dropped > 0)
    if (auto c = kv_->commit(b, opts_.sync); !c)
      return c.err();
  ts.batches_after_sweep = kept;
  ts.rows_read_by_sweep = read;
  return ok_status();
}

status store::sweep_batches(const std::string& topic) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return ts.err();
  return drop_spent_batches(**ts);
}

std::size_t store::batch_count(const std::string& topic) { return count_rows(topic, 'b'); }

// --- local writes ---------------------------------------------------------------

result<signed_reply> store::write(const std::string& topic, const std::vector<write_op>& ops,
                                  std::uint64_t time_ms) {
  std::lock_guard lock(mu_);
  auto tsr = state(topic);
  if (!tsr)
    return tsr.err();
  topic_state& ts = **tsr;
  if (ops.empty())
    return error{errc::invalid, "nothing to write"};
  if (ops.size() > protocol::signed_limits{}.max_batch_leaves)
    return error{errc::invalid, "at most " +
                                    std::to_string(protocol::signed_limits{}.max_batch_leaves) +
                                    " writes per batch"};
  if (!protocol::may_write(ts.desc, self_.pub()))
    return error{errc::unauthorized, "this identity may not write to topic " + topic};
  // What every replica will accept: a write that peers refuse to decode
  // would stop its key (and anti-entropy of the topic) from replicating.
  const protocol::signed_limits wire;
  for (const auto& op : ops) {
    if (!may_touch(ts.desc, self_.pub(), op.key))
      return error{errc::unauthorized,
                   "a document's subject must start with its author's id (" +
                       protocol::to_text(self_.pub()) +
                       "/...), or in a shared topic with the topic creator's id"};
    if (op.key.size() > wire.base.max_key_bytes)
      return error{errc::invalid, "a key is " + std::to_string(op.key.size()) +
                                      " bytes; the limit is " +
                                      std::to_string(wire.base.max_key_bytes)};
  }

  kv_source src(*kv_, ts.rows, topic);
  node_clock clk = ts.clock;
  std::map<key_type, container> filled;
  commit_input in;
  signed_reply push;
  push.topic = topic;
  push.from = binding_.rid;
  std::vector<protocol::hash256> leaves;
  std::map<key_type, std::size_t> entry_of;
  const std::uint64_t first = clk.base(binding_.rid) + 1;
  std::vector<std::uint64_t> superseded; // own counters this batch overwrites or deletes
  // ... and those of other replicas, which may be this writer's earlier ones.
  std::map<replica_id, std::vector<std::uint64_t>> superseded_other;
  try {
    for (const auto& op : ops) {
      auto it = filled.find(op.key);
      if (it == filled.end()) {
        auto stored = src.load(op.key);
        in.before.emplace(op.key, stored);
        container c = stored.value_or(container{});
        c.fill(clk);
        it = filled.emplace(op.key, std::move(c)).first;
      } else {
        it->second.fill(clk);
      }
      container& c = it->second;
      for (const auto& [od, sib] : c.dots())
        if (op.context.covers(od))
          (od.id == binding_.rid ? superseded : superseded_other[od.id]).push_back(od.n.value());
      c.discard(op.context);
      const dot d = clk.event(binding_.rid);
      protocol::write_body body{!op.value.has_value(), time_ms, op.context,
                                op.value.value_or(std::string{})};
      std::string bytes = protocol::encode_body(body);
      if (bytes.size() > wire.base.max_value_bytes) // the value with its time and context
        return error{errc::invalid,
                     "a property value with its metadata is " + std::to_string(bytes.size()) +
                         " bytes; the limit is " + std::to_string(wire.base.max_value_bytes) +
                         " (1 MiB): store large files elsewhere and link them"};
      write_header h = protocol::header_of(op.key, d, body);
      leaves.push_back(protocol::leaf_hash(topic, h));
      in.headers.emplace(d, std::move(h));
      in.new_dots.emplace_back(d, op.key);
      c.add(d, sibling{body.deleted, bytes});
      auto [e, fresh] = entry_of.emplace(op.key, push.entries.size());
      if (fresh)
        push.entries.push_back({op.key, {}, {}});
      push.entries[e->second].records.emplace_back(d, std::move(bytes));
    }
  } catch (const std::runtime_error& e) {
    return error{errc::corrupt, e.what()};
  }
  for (auto& [k, c] : filled) {
    container s = c;
    s.drop_delete_markers();
    s.strip(clk);
    in.changes.push_back({k, std::move(s)});
  }
  in.batches.push_back(protocol::sign_batch(self_, topic, binding_.rid, first, std::move(leaves)));
  in.bindings.push_back(binding_);
  push.batches = in.batches;
  push.bindings = in.bindings;
  push.clock = clk.base_only();
  if (!superseded.empty()) {
    // A new summary: what was live, plus this batch's counters, less
    // what it superseded (docs/architecture.md, "Signed writer summaries").
    protocol::writer_summary ws;
    if (auto held = ts.summaries().find(summary_key{binding_.rid, binding_.rid}); held != ts.summaries().end()) {
      ws = held->second;
    } else {
      ws.topic = topic;
      ws.rid = binding_.rid;
    }
    const std::uint64_t last = clk.base(binding_.rid);
    if (ws.upto < last)
      ws.add_live(ws.upto + 1, last);
    for (auto n : superseded)
      ws.remove_live(n);
    ws.coarsen(protocol::max_signed_live_runs);
    ws.upto = last;
    protocol::sign_summary(self_, ws);
    push.summaries.push_back(ws);
    in.summaries.push_back(std::move(ws));
  }
  for (auto& [rid, counters] : superseded_other) {
    // Writes of this writer's earlier replica (a store it lost): this one
    // vouches for them, as nobody else can once that replica is gone.
    auto author = author_of(rid);
    if (!author)
      return author.err();
    if (*author != self_.pub())
      continue; // another writer's: its own summaries speak for it
    protocol::writer_summary ws;
    if (auto held = ts.summaries().find(summary_key{rid, binding_.rid}); held != ts.summaries().end()) {
      ws = held->second;
    } else {
      ws.topic = topic;
      ws.rid = rid;
      ws.by = binding_.rid;
    }
    // Counters this replica never saw count as live: only its own
    // overwrites and deletes are reported, never a guess.
    const std::uint64_t top = *std::max_element(counters.begin(), counters.end());
    if (ws.upto < top) {
      ws.add_live(ws.upto + 1, top);
      ws.upto = top;
    }
    for (auto n : counters)
      ws.remove_live(n);
    ws.coarsen(protocol::max_signed_live_runs);
    ws.by_upto = clk.base(binding_.rid);
    protocol::sign_summary(self_, ws);
    push.summaries.push_back(ws);
    in.summaries.push_back(std::move(ws));
  }
  if (auto st = commit(ts, in); !st)
    return st.err();
  return push;
}

namespace {

key_view view_of(const container& c) {
  key_view v;
  for_each_live(c, [&](dot d, protocol::write_body&& body) {
    v.siblings.push_back({d, std::move(body.value), body.time_ms});
  });
  v.context = c.read_context();
  return v;
}

} // namespace

result<key_view> store::read(const std::string& topic, const key_type& k) {
  std::lock_guard lock(mu_);
  auto rows = rows_of(topic);
  if (!rows)
    return key_view{};
  auto v = kv_->get(lay::key_row('c', *rows, k));
  if (!v)
    return v.err();
  if (!*v)
    return key_view{};
  container c;
  if (!decoded(**v, c))
    return corrupt("the stored value of a key in " + topic);
  return view_of(c);
}

result<std::vector<std::pair<key_type, key_view>>> store::read_prefix(const std::string& topic,
                                                                     const std::string& prefix) {
  std::lock_guard lock(mu_);
  std::vector<std::pair<key_type, key_view>> out;
  auto rows = rows_of(topic);
  if (!rows)
    return out;
  const std::string from = lay::key_row('c', *rows, prefix);
  const std::size_t skip = lay::topic_prefix('c', *rows).size();
  bool bad = false;
  auto st = kv_->scan(from, prefix_end(from), [&](std::string_view k, std::string_view v) {
    container c;
    if (!decoded(v, c)) {
      bad = true;
      return false;
    }
    out.emplace_back(std::string(k.substr(skip)), view_of(c));
    return true;
  });
  if (!st)
    return st.err();
  if (bad)
    return corrupt("a stored value in " + topic);
  return out;
}

// --- replication ------------------------------------------------------------------

result<causality::sync_request> store::make_request(const std::string& topic) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return ts.err();
  return causality::sync_request{binding_.rid, (*ts)->clock};
}

namespace {

/// Collects the signed batches and bindings that prove a set of dots.
class proof_collector {
public:
  proof_collector(const kv_store& kv, const lay::topic_rows& rows, std::string topic)
      : kv_(kv), rows_(rows), topic_(std::move(topic)) {}

  status need(dot d) {
    if (find(d))
      return ok_status();
    auto found = stored_batch_covering(kv_, rows_, d);
    if (!found)
      return found.err();
    if (!*found)
      return error{errc::corrupt, "no signed batch for a stored write in " + topic_};
    signed_batch sb = std::move(**found);
    if (!std::any_of(bindings_.begin(), bindings_.end(),
                     [&](const auto& b) { return b.rid == sb.rid; })) {
      auto rb = kv_.get(lay::binding_row(sb.rid));
      if (!rb)
        return rb.err();
      protocol::replica_binding binding;
      if (!*rb || !decoded(**rb, binding))
        return error{errc::corrupt, "no replica binding for a stored batch in " + topic_};
      bindings_.push_back(binding);
    }
    by_start_.emplace(std::make_pair(sb.rid.value(), sb.first), batches_.size());
    batches_.push_back(std::move(sb));
    return ok_status();
  }
  /// The collected batch covering d, if any (batches of one replica do
  /// not overlap, so the last one starting at or before d decides).
  [[nodiscard]] const signed_batch* find(dot d) const {
    auto i = by_start_.upper_bound(std::make_pair(d.id.value(), d.n.value()));
    if (i == by_start_.begin())
      return nullptr;
    const signed_batch& b = batches_[std::prev(i)->second];
    return b.covers(d) ? &b : nullptr;
  }
  /// The header matches the leaf of the collected batch covering it.
  [[nodiscard]] bool matches(std::string_view topic, const write_header& h) const {
    const signed_batch* b = find(h.d);
    return b && b->leaf(h.d) == protocol::leaf_hash(topic, h);
  }
  std::vector<signed_batch> batches_;
  std::vector<protocol::replica_binding> bindings_;

private:
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::size_t> by_start_;
  const kv_store& kv_;
  lay::topic_rows rows_;
  std::string topic_;
};

} // namespace

namespace {

/// Every stored key of `topic` whose row lies in [from, to), at most
/// max_keys, appended to `out` with all their writes and the batches and
/// bindings that prove them; a key that would start after max_bytes of
/// keys and values is left for the next page (the first always fits).
/// Returns whether the range was exhausted; `last_key` is the last key read.
/// Where collect_proven leaves out keys the receiver already has: every
/// stored dot of such a key is in `have`, and goes into `held` instead of
/// the reply (see store::page).
struct held_filter {
  const node_clock& have;
  node_clock& held;
  std::size_t held_bitmap_bytes = 0; // of `held`, kept up to date
};

/// Bitmap bytes of `held` that a decoder will allocate for it: a page
/// keeps them under held_budget_bytes (a quarter of the decoder's
/// max_bitmap_bytes), sending a key in full rather than naming it when
/// naming it would go over (a sparse run of high counters).
constexpr std::size_t held_budget_bytes = 1u << 20;

std::size_t bitmap_bytes(const node_clock& c) {
  std::size_t n = 0;
  for (const auto& [id, e] : c.entries())
    n += e.bits().size() * 8;
  return n;
}

/// Bytes `held` would grow by if d were added (an upper bound).
std::size_t growth_if_added(const node_clock& held, dot d) {
  const auto* e = held.find(d.id);
  const std::uint64_t base = e ? e->base() : 0;
  const std::size_t now = e ? e->bits().size() * 8 : 0;
  if (d.n.value() <= base + 1)
    return 0;
  const std::size_t need = static_cast<std::size_t>((d.n.value() - base - 2) / 64 + 1) * 8;
  return need > now ? need - now : 0;
}

result<bool> collect_proven(const kv_store& kv, const lay::topic_rows& rows,
                            const std::string& topic, const std::string& from,
                            const std::string& to, std::size_t max_keys, signed_reply& out,
                            std::string& last_key,
                            std::size_t max_bytes = std::numeric_limits<std::size_t>::max(),
                            held_filter* filter = nullptr) {
  const std::size_t skip = lay::topic_prefix('c', rows).size();
  proof_collector proofs(kv, rows, topic);
  bool complete = true;
  bool bad = false;
  status inner = ok_status();
  std::size_t bytes = 0;
  std::size_t keys = 0; // keys sent or left out (max_keys bounds the scan)
  auto st = kv.scan(from, to, [&](std::string_view k, std::string_view v) {
    if (keys >= max_keys || bytes >= max_bytes) {
      complete = false;
      return false;
    }
    container c;
    if (!decoded(v, c)) {
      bad = true;
      return false;
    }
    ++keys;
    signed_entry se;
    se.key = std::string(k.substr(skip));
    if (filter && !c.dots().empty() &&
        std::all_of(c.dots().begin(), c.dots().end(),
                    [&](const auto& ds) { return filter->have.contains(ds.first); })) {
      std::size_t grow = 0;
      for (const auto& ds : c.dots())
        grow += growth_if_added(filter->held, ds.first);
      if (filter->held_bitmap_bytes + grow <= held_budget_bytes) {
        for (const auto& ds : c.dots())
          filter->held.add(ds.first);
        filter->held_bitmap_bytes = bitmap_bytes(filter->held);
        last_key = std::move(se.key);
        return true;
      }
      // Over the budget: the key travels in full below.
    }
    for (const auto& [d, sib] : c.dots()) {
      if (auto ps = proofs.need(d); !ps) {
        inner = ps;
        return false;
      }
      se.records.emplace_back(d, sib.bytes);
      bytes += sib.bytes.size();
    }
    bytes += se.key.size();
    last_key = se.key;
    if (!se.records.empty())
      out.entries.push_back(std::move(se));
    return true;
  });
  if (auto done = scan_outcome(st, inner, bad, "a stored value in " + topic); !done)
    return done.err();
  out.batches = std::move(proofs.batches_);
  out.bindings = std::move(proofs.bindings_);
  return complete;
}

} // namespace

result<store::page_result> store::page(const std::string& topic, const std::string& after_key,
                                      std::size_t max_keys, std::size_t max_bytes,
                                      const node_clock* have) {
  std::lock_guard lock(mu_);
  auto tsr = state(topic);
  if (!tsr)
    return tsr.err();
  page_result out;
  out.reply.topic = topic;
  out.reply.from = binding_.rid;
  out.reply.clock = (*tsr)->clock;
  const lay::topic_rows& rows = (*tsr)->rows;
  std::string from = lay::key_row('c', rows, after_key);
  if (!after_key.empty())
    from.push_back('\0'); // the first key after after_key
  std::optional<held_filter> filter;
  if (have)
    filter.emplace(held_filter{*have, out.held});
  auto done = collect_proven(*kv_, rows, topic, from, prefix_end(lay::topic_prefix('c', rows)),
                             max_keys, out.reply, out.next_after, max_bytes,
                             filter ? &*filter : nullptr);
  if (!done)
    return done.err();
  out.complete = *done;
  if (out.complete)
    attach_summaries(**tsr, nullptr, out.reply);
  // Our own binding always travels: the end of the resync recognises our
  // author's writes under other replica ids by it (join_sender_entry).
  if (std::none_of(out.reply.bindings.begin(), out.reply.bindings.end(),
                   [&](const replica_binding& b) { return b.rid == binding_.rid; }))
    out.reply.bindings.push_back(binding_);
  return out;
}

result<signed_reply> store::prove_prefix(const std::string& topic, const std::string& prefix,
                                         std::size_t max_keys) {
  std::lock_guard lock(mu_);
  auto tsr = state(topic);
  if (!tsr)
    return tsr.err();
  signed_reply out;
  out.topic = topic;
  out.from = binding_.rid;
  const std::string from = lay::key_row('c', (*tsr)->rows, prefix);
  std::string last;
  auto done = collect_proven(*kv_, (*tsr)->rows, topic, from, prefix_end(from), max_keys, out, last);
  if (!done)
    return done.err();
  return out;
}

result<signed_reply> store::answer(const std::string& topic, const causality::sync_request& req) {
  std::lock_guard lock(mu_);
  auto tsr = state(topic);
  if (!tsr)
    return tsr.err();
  topic_state& ts = **tsr;
  // The asker's clock is its own report of what it has.
  if (ts.marks.is_member(req.from)) {
    commit_input in;
    in.observed = std::make_pair(req.from, req.clock);
    if (auto st = commit(ts, in); !st)
      return st.err();
  }
  kv_source src(*kv_, ts.rows, topic);
  std::vector<causality::delta_entry> entries;
  try {
    entries = causality::plan_reply_entries(ts.clock, ts.dkm, src, req.clock);
  } catch (const std::runtime_error& e) {
    return error{errc::corrupt, e.what()};
  }
  signed_reply out;
  out.topic = topic;
  out.from = binding_.rid;
  out.clock = ts.clock;
  proof_collector proofs(*kv_, ts.rows, topic);
  for (auto& e : entries) {
    signed_entry se;
    se.key = e.key;
    for (const auto& [d, s] : e.dcc.dots()) {
      if (auto st = proofs.need(d); !st)
        return st.err();
      se.records.emplace_back(d, s.bytes);
    }
    for (dot d : e.resolves) {
      // A resolved dot without a kept header cannot be justified to the
      // asker: it is left out and the asker keeps what it has.
      auto h = kv_->get(lay::dot_row('s', ts.rows, d));
      if (!h)
        return h.err();
      write_header hdr;
      if (!*h || !decoded(**h, hdr))
        continue;
      if (auto st = proofs.need(d); !st)
        return st.err();
      se.resolves.push_back(std::move(hdr));
    }
    if (!se.records.empty() || !se.resolves.empty())
      out.entries.push_back(std::move(se));
  }
  out.batches = std::move(proofs.batches_);
  out.bindings = std::move(proofs.bindings_);
  attach_summaries(ts, &req.clock, out);
  return out;
}

result<apply_stats> store::apply(const signed_reply& r) {
  std::lock_guard lock(mu_);
  auto tsr = state(r.topic);
  if (!tsr)
    return tsr.err();
  topic_state& ts = **tsr;
  const protocol::signed_limits limits;
  apply_stats stats;

  // 1. Who wrote: replica bindings, each checked (derivation + signature).
  std::map<replica_id, protocol::public_key> authors;
  commit_input in;
  for (const auto& b : r.bindings) {
    if (!protocol::check_binding(b))
      return error{errc::bad_signature, "a replica binding from " +
                                            std::to_string(r.from.value()) + " does not verify"};
    authors[b.rid] = b.author;
    in.bindings.push_back(b);
  }
  auto author_of = [&](replica_id rid) -> result<protocol::public_key> {
    if (auto i = authors.find(rid); i != authors.end())
      return i->second;
    auto rb = kv_->get(lay::binding_row(rid));
    if (!rb)
      return rb.err();
    replica_binding b;
    if (!*rb || !decoded(**rb, b))
      return error{errc::bad_signature, "no binding for replica " + std::to_string(rid.value())};
    authors[rid] = b.author;
    return b.author;
  };

  // 2. Batches: the topic's write rule, then one signature check per batch
  // not already stored.
  std::vector<signed_batch> batches;
  for (const auto& sb : r.batches) {
    if (sb.topic != r.topic || sb.leaves.empty() || sb.first == 0 ||
        sb.leaves.size() > limits.max_batch_leaves)
      return error{errc::invalid, "a malformed signed batch"};
    auto pk = author_of(sb.rid);
    if (!pk)
      return pk.err();
    if (!protocol::may_write(ts.desc, *pk))
      return error{errc::unauthorized, protocol::to_text(*pk) + " may not write to " + r.topic};
    auto have = kv_->get(lay::batch_row(ts.rows, sb.rid, sb.first));
    if (!have)
      return have.err();
    signed_batch stored;
    if (*have && decoded(**have, stored) && stored.sig == sb.sig && stored.leaves == sb.leaves) {
      batches.push_back(sb);
      continue;
    }
    if (!protocol::check_batch(sb, *pk))
      return error{errc::bad_signature, "a batch signature by " + protocol::to_text(*pk) +
                                            " does not verify"};
    ++stats.batches_verified;
    // A replica signs each counter once: a second, different batch for
    // counters already signed is equivocation (only its author's key can
    // make one). Refused, so what we hold and serve stays verifiable.
    auto before = stored_batch_covering(*kv_, ts.rows, causality::dot{sb.rid, causality::counter{sb.first}});
    if (!before)
      return before.err();
    auto inside = kv_->floor(lay::batch_row(ts.rows, sb.rid, sb.last()),
                             lay::batch_row(ts.rows, sb.rid, sb.first));
    if (!inside)
      return inside.err();
    if (*before || *inside)
      return error{errc::bad_signature,
                   protocol::to_text(*pk) + " signed two different batches for the same writes "
                                            "(replica " + std::to_string(sb.rid.value()) + ")"};
    batches.push_back(sb);
    in.batches.push_back(sb);
  }
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::size_t> batch_at;
  for (std::size_t i = 0; i < batches.size(); ++i)
    batch_at.emplace(std::make_pair(batches[i].rid.value(), batches[i].first), i);
  // A write is proven by a leaf of a batch received now or stored before.
  auto proven = [&](const write_header& h) -> status {
    const signed_batch* by = nullptr;
    if (auto i = batch_at.upper_bound({h.d.id.value(), h.d.n.value()}); i != batch_at.begin())
      if (batches[std::prev(i)->second].covers(h.d))
        by = &batches[std::prev(i)->second];
    std::optional<signed_batch> stored;
    if (!by) {
      auto found = stored_batch_covering(*kv_, ts.rows, h.d);
      if (!found)
        return found.err();
      stored = std::move(*found);
      if (!stored)
        return error{errc::bad_signature, "a write comes without a signed batch"};
      by = &*stored;
    }
    if (by->leaf(h.d) != protocol::leaf_hash(r.topic, h))
      return error{errc::bad_signature, "a write does not match its signed batch"};
    auto pk = author_of(h.d.id);
    if (!pk)
      return pk.err();
    if (!may_touch(ts.desc, *pk, h.key))
      return error{errc::unauthorized, "a write by " + protocol::to_text(*pk) +
                                           " to a document under another person's id"};
    return ok_status();
  };

  // 3. Writer summaries, each signed by its replica's author, a writer
  // of the topic; the newest per replica and signer. One we cannot
  // attribute (no binding) is left out; a bad one refuses everything.
  std::map<summary_key, const protocol::writer_summary*> newest;
  for (const auto& ws : r.summaries) {
    if (ws.topic != r.topic)
      return error{errc::invalid, "a writer summary names another topic"};
    if (ws.signer() == binding_.rid)
      continue; // ours: we are the writer
    const auto k = key_of(ws);
    if (auto held = ts.summaries().find(k);
        held != ts.summaries().end() && held->second.signer_upto() >= ws.signer_upto())
      continue;
    if (auto n = newest.find(k); n != newest.end() && n->second->signer_upto() >= ws.signer_upto())
      continue;
    newest[k] = &ws;
  }
  std::vector<protocol::writer_summary> summaries;
  for (const auto& [k, ws] : newest) {
    const auto rid = k.first;
    auto pk = author_of(rid);
    if (!pk) {
      if (pk.err().code == errc::bad_signature)
        continue; // no binding for it here
      return pk.err();
    }
    if (!protocol::may_write(ts.desc, *pk))
      return error{errc::unauthorized, "a writer summary by " + protocol::to_text(*pk) +
                                           ", who may not write to " + r.topic};
    if (!protocol::check_summary(*ws, *pk))
      return error{errc::bad_signature, "a writer summary by " + protocol::to_text(*pk) +
                                            " does not verify"};
    summaries.push_back(*ws);
  }
  // A write its writer's summary (held or just received) says was
  // superseded is not stored again when a stale peer sends it: it counts
  // as resolved, like a kept header. Every summary says only what was
  // true when signed, so any one of them that drops it is enough.
  auto superseded = [&](dot dt) {
    for (const auto& ws : summaries)
      if (ws.drops(dt))
        return true;
    for (auto held = ts.summaries().lower_bound(summary_key{dt.id, replica_id{0}});
         held != ts.summaries().end() && held->first.first == dt.id; ++held)
      if (held->second.drops(dt))
        return true;
    return false;
  };

  // 4. Every record and header, checked; the contexts that may discard
  // data come from these signed headers only, never from the sender's clock.
  causality::delta d;
  d.from = r.from;
  for (const auto& e : r.entries) {
    if (e.key.size() > limits.base.max_key_bytes || e.records.size() > limits.base.max_dots)
      return error{errc::invalid, "an entry exceeds the size limits"};
    container c;
    version_vector ctx;
    std::vector<dot> resolves;
    for (const auto& [dt, bytes] : e.records) {
      auto body = protocol::decode_body(bytes, limits);
      if (!body)
        return error{errc::invalid, "a write body does not decode"};
      write_header h = protocol::header_of(e.key, dt, *body);
      if (auto st = proven(h); !st)
        return st.err();
      if (c.holds(dt))
        continue;
      ctx.join(body->context);
      ctx.raise(dt.id, dt.n.value());
      if (superseded(dt)) {
        resolves.push_back(dt);
      } else {
        c.add(dt, sibling{body->deleted, bytes});
      }
      in.headers.emplace(dt, std::move(h));
    }
    for (const auto& h : e.resolves) {
      if (h.key != e.key)
        return error{errc::invalid, "a resolved write names another key"};
      if (auto st = proven(h); !st)
        return st.err();
      ctx.join(h.context);
      ctx.raise(h.d.id, h.d.n.value());
      resolves.push_back(h.d);
      in.headers.emplace(h.d, h);
    }
    for (const auto& [id, n] : ctx.entries())
      c.context().raise(id, n);
    d.entries.push_back({e.key, std::move(c), std::move(resolves)});
  }

  kv_source src(*kv_, ts.rows, r.topic);
  causality::apply_plan plan;
  try {
    plan = causality::plan_apply(ts.clock, src, d, false);
  } catch (const std::runtime_error& e) {
    return error{errc::corrupt, e.what()};
  }
  stats.keys_changed = plan.changes.size();
  for (const auto& [dt, k] : plan.new_dots)
    stats.new_dots += ts.clock.contains(dt) ? 0 : 1;
  in.changes = std::move(plan.changes);
  in.new_dots = std::move(plan.new_dots);
  if (ts.marks.is_member(r.from))
    in.observed = std::make_pair(r.from, r.clock);

  if (auto st = commit(ts, in); !st)
    return st.err();
  if (!summaries.empty())
    if (auto st = apply_summaries(ts, std::move(summaries)); !st)
      return st.err();
  return stats;
}

status store::apply_summaries(topic_state& ts, std::vector<protocol::writer_summary> summaries) {
  // Values of a summarised replica that its writer no longer holds go:
  // they were overwritten or deleted there, and that writer's word is
  // signed. A scan of the topic's containers, once per newer summary.
  // A replica whose clock has every counter a summary speaks of has
  // stored the effect of each (a clock covers a dot only with its
  // effect): nothing to drop, only the summary to keep and pass on.
  // TODO(perf): the scan is O(keys of the topic) per newer summary when
  // the clock has a gap; an index of stored dots by replica would make it
  // O(dropped).
  // A vouched summary's effect is that of its signer's writes: a clock
  // with every counter of the signer up to signer_upto holds it.
  std::map<replica_id, std::vector<const protocol::writer_summary*>> by_rid;
  for (const auto& ws : summaries)
    if (ts.clock.base(ws.signer()) < ws.signer_upto())
      by_rid[ws.rid].push_back(&ws);
  commit_input in;
  if (by_rid.empty()) {
    in.summaries = std::move(summaries);
    return commit(ts, in);
  }
  auto dropped = drop_stored_values(*kv_, ts.rows, ts.desc.id, in, [&](dot d, std::string_view) -> result<bool> {
    auto w = by_rid.find(d.id);
    return w != by_rid.end() && std::any_of(w->second.begin(), w->second.end(),
                                            [d](const protocol::writer_summary* ws) { return ws->drops(d); });
  });
  if (!dropped)
    return dropped;
  in.summaries = std::move(summaries);
  return commit(ts, in);
}

std::size_t store::attach_summaries(topic_state& ts, const node_clock* asker,
                                    signed_reply& out) {
  // More than fit in one reply: each call starts where the last one
  // stopped, so every summary goes out within a few rounds (otherwise in
  // replica order).
  std::size_t n = 0;
  // Added, skipped (covered, or no binding to attribute it), or full.
  auto add = [&](const protocol::writer_summary& ws) {
    if (n == max_summaries_per_reply)
      return false;
    // An asker whose clock has every counter of the signer up to the
    // summary's has seen the writes that superseded the dropped ones.
    if (asker && asker->base(ws.signer()) >= ws.signer_upto())
      return true;
    if (std::none_of(out.bindings.begin(), out.bindings.end(),
                     [&](const replica_binding& b) { return b.rid == ws.rid; })) {
      auto rb = kv_->get(lay::binding_row(ws.rid));
      replica_binding b;
      if (!rb || !*rb || !decoded(**rb, b))
        return true; // cannot be attributed by the receiver either
      out.bindings.push_back(std::move(b));
    }
    out.summaries.push_back(ws);
    ts.summaries_->cursor = key_of(ws); // there are summaries: the book is there
    ++n;
    return true;
  };
  if (!ts.summaries_)
    return 0;
  auto& all = ts.summaries_->held;
  const auto start = all.size() <= max_summaries_per_reply ? all.begin() : all.upper_bound(ts.summaries_->cursor);
  bool room = true;
  for (auto i = start; room && i != all.end(); ++i)
    room = add(i->second);
  for (auto i = all.begin(); room && i != start; ++i)
    room = add(i->second);
  return n;
}

// --- indexes ------------------------------------------------------------------------

namespace {

result<std::vector<index_hit>> scan_hits(const kv_store& kv,
                                         const std::map<std::uint32_t, protocol::topic_name>& names,
                                         const std::string& prefix,
                                         std::size_t limit, std::uint64_t before_ms = 0,
                                         const std::optional<dot>& after = std::nullopt) {
  std::vector<index_hit> out;
  bool bad = false;
  // Rows sort newest first (the time is stored inverted), then by dot:
  // starting at the inverted `before` skips everything at or after it; a
  // cursor (time, dot) starts right after that post's rows.
  std::string from = prefix;
  if (after) {
    lay::put_be64(from, ~before_ms);
    lay::put_be64(from, after->id.value());
    lay::put_be64(from, after->n.value());
    from = prefix_end(from);
  } else if (before_ms > 0) {
    lay::put_be64(from, ~(before_ms - 1));
  }
  auto st = kv.scan(from, prefix_end(prefix), [&](std::string_view k, std::string_view) {
    auto h = parse_hit_tail(k, prefix.size(), names);
    if (!h) {
      bad = true;
      return false;
    }
    out.push_back(std::move(*h));
    return out.size() < limit;
  });
  if (!st)
    return st.err();
  if (bad)
    return corrupt("an index row (run `kith reindex`)");
  return out;
}

} // namespace

result<std::vector<index_hit>> store::by_author(const protocol::public_key& a, std::size_t limit,
                                                std::uint64_t before_ms,
                                                const std::optional<dot>& after) {
  std::lock_guard lock(mu_);
  return scan_hits(*kv_, names_, "ia" + std::string(a.view()), limit, before_ms, after);
}

result<std::vector<index_hit>> store::by_mention(const protocol::public_key& who, std::size_t limit,
                                                 std::uint64_t before_ms) {
  std::lock_guard lock(mu_);
  return scan_hits(*kv_, names_, "im" + std::string(who.view()), limit, before_ms);
}

result<std::vector<index_hit>> store::replies_to(const std::string& subject, std::size_t limit) {
  std::lock_guard lock(mu_);
  std::string p = "ir" + subject;
  p.push_back('\0');
  return scan_hits(*kv_, names_, p, limit);
}

result<std::vector<index_hit>> store::by_tag(const std::string& tag, std::size_t limit) {
  std::lock_guard lock(mu_);
  std::string p = "it" + tag;
  p.push_back('\0');
  return scan_hits(*kv_, names_, p, limit);
}

result<std::vector<tag_count>> store::trending(std::uint64_t since_ms, std::uint64_t until_ms,
                                                std::size_t limit) {
  std::lock_guard lock(mu_);
  std::map<std::string, std::uint64_t> counts;
  std::string from = "iw";
  lay::put_be64(from, since_ms);
  std::string to = "iw";
  if (until_ms == std::numeric_limits<std::uint64_t>::max())
    to = "ix";
  else
    lay::put_be64(to, until_ms + 1);
  constexpr std::size_t fixed_part = 2 + 24;
  bool bad = false;
  auto st = kv_->scan(from, to, [&](std::string_view k, std::string_view) {
    if (k.size() <= fixed_part) {
      bad = true;
      return false;
    }
    ++counts[std::string(k.substr(fixed_part))];
    return true;
  });
  if (!st)
    return st.err();
  if (bad)
    return corrupt("an index row (run `kith reindex`)");
  std::vector<tag_count> out;
  out.reserve(counts.size());
  for (auto& [tag, n] : counts)
    out.push_back(tag_count{tag, n});
  // Most used first; ties by name so the answer is the same everywhere.
  std::sort(out.begin(), out.end(), [](const tag_count& a, const tag_count& b) {
    return a.count != b.count ? a.count > b.count : a.tag < b.tag;
  });
  if (out.size() > limit)
    out.resize(limit);
  return out;
}

result<std::size_t> store::reindex() {
  std::lock_guard lock(mu_);
  // Drop every index row, in bounded batches.
  for (;;) {
    kv_batch b;
    auto st = kv_->scan("i", "j", [&](std::string_view k, std::string_view) {
      b.del(std::string(k));
      return b.ops().size() < 100000;
    });
    if (!st)
      return st.err();
    if (b.empty())
      break;
    if (auto c = kv_->commit(b, opts_.sync); !c)
      return c.err();
  }
  // Rebuild from the stored containers.
  std::size_t rows = 0;
  kv_batch b;
  bool bad = false;
  std::string bad_topic;
  auto st = kv_->scan("c", "d", [&](std::string_view k, std::string_view v) {
    // Rows of no registered topic (a damaged store) get no index rows:
    // queries could not name their topic.
    auto topic = lay::topic_rows::parse(k.substr(1));
    if (!topic || names_.count(topic->number()) == 0)
      return true;
    container c;
    if (!decoded(v, c)) {
      bad = true;
      return false;
    }
    for (auto& row : index_rows_of(*topic, k.substr(1 + lay::topic_rows::size), c)) {
      b.put(std::move(row), {});
      ++rows;
    }
    if (b.ops().size() >= 100000) {
      if (!kv_->commit(b, false)) {
        bad = true;
        return false;
      }
      b = kv_batch{};
    }
    return true;
  });
  if (!st)
    return st.err();
  if (bad)
    return corrupt("a stored container");
  b.put(lay::meta("index"), index_version_record());
  if (auto c = kv_->commit(b, true); !c)
    return c.err();
  return rows;
}

result<std::vector<std::string>> store::index_rows() {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  auto st = kv_->scan("i", "j", [&](std::string_view k, std::string_view) {
    out.emplace_back(k);
    return true;
  });
  if (!st)
    return st.err();
  return out;
}

// --- checks -------------------------------------------------------------------------

status store::check_topic(const std::string& topic) {
  std::lock_guard lock(mu_);
  auto tsr = state(topic);
  if (!tsr)
    return tsr.err();
  topic_state& ts = **tsr;
  if (!ts.clock.check_invariant())
    return error{errc::corrupt, "the clock of " + topic + " is not normalised"};
  if (const auto* own = ts.clock.find(binding_.rid); own && !own->bits().empty())
    return error{errc::corrupt, "own writes in " + topic + " have gaps"};
  const std::string p = lay::topic_prefix('c', ts.rows);
  std::optional<error> problem;
  proof_collector proofs(*kv_, ts.rows, topic);
  std::size_t unstripped = 0;
  auto st = kv_->scan(p, prefix_end(p), [&](std::string_view k, std::string_view v) {
    key_type key(k.substr(p.size()));
    container c;
    if (!decoded(v, c) || c.empty()) {
      problem = error{errc::corrupt, "a stored container in " + topic + " does not decode"};
      return false;
    }
    if (!c.context().empty())
      ++unstripped;
    for (const auto& [d, s] : c.dots()) {
      auto body = protocol::decode_body(s.bytes);
      if (s.deleted || !body || !ts.clock.contains(d)) {
        problem = error{errc::corrupt, "a stored write in " + topic +
                                           " is a delete marker, garbled, or not in the clock"};
        return false;
      }
      if (!proofs.need(d) || !proofs.matches(topic, protocol::header_of(key, d, *body))) {
        problem = error{errc::corrupt, "a stored write in " + topic + " does not match its batch"};
        return false;
      }
    }
    return true;
  });
  if (!st)
    return st.err();
  if (problem)
    return *problem;
  if (unstripped != ts.unstripped().size())
    return error{errc::corrupt, "the unstripped-key set of " + topic + " is out of date"};
  return ok_status();
}

std::vector<dot> store::kept_dots(const std::string& topic) {
  std::lock_guard lock(mu_);
  std::vector<dot> out;
  auto rows = rows_of(topic);
  if (!rows)
    return out;
  const std::string p = lay::topic_prefix('s', *rows);
  (void) kv_->scan(p, prefix_end(p), [&](std::string_view k, std::string_view) {
    if (k.size() == p.size() + 16)
      out.push_back(dot{replica_id{lay::get_be64(k, p.size())},
                        causality::counter{lay::get_be64(k, p.size() + 8)}});
    return true;
  });
  return out;
}

std::optional<store::metadata_sizes> store::metadata(const std::string& topic) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return std::nullopt;
  metadata_sizes m;
  m.members = (*ts)->marks.members().size();
  m.dot_map_entries = (*ts)->dkm.size();
  m.unstripped_keys = (*ts)->unstripped().size();
  return m;
}

result<store::key_sizes> store::key_metadata(const std::string& topic) {
  std::lock_guard lock(mu_);
  auto ts = state(topic);
  if (!ts)
    return ts.err();
  const std::string p = lay::topic_prefix('c', (*ts)->rows);
  key_sizes out;
  bool bad = false;
  auto st = kv_->scan(p, prefix_end(p), [&](std::string_view, std::string_view v) {
    container c;
    if (!decoded(v, c)) {
      bad = true;
      return false;
    }
    ++out.keys;
    out.max_siblings = std::max(out.max_siblings, c.dots().size());
    out.max_context_entries = std::max(out.max_context_entries, c.context().size());
    return true;
  });
  if (!st)
    return st.err();
  if (bad)
    return error{errc::corrupt, "a stored container in " + topic + " does not decode"};
  return out;
}

std::size_t store::superseded_count(const std::string& topic) { return count_rows(topic, 's'); }

std::size_t store::count_rows(const std::string& topic, char kind) {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  auto rows = rows_of(topic);
  if (!rows)
    return n;
  const std::string p = lay::topic_prefix(kind, *rows);
  (void) kv_->scan(p, prefix_end(p), [&](std::string_view, std::string_view) {
    ++n;
    return true;
  });
  return n;
}

} // namespace kith::storage
