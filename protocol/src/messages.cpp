#include "kith/protocol/messages.hpp"

#include "schema/kith.capnp.h"

#include "kith/protocol/detail/capnp_codec.hpp"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <new>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

namespace kith::protocol {

namespace {

namespace w = wire;

constexpr std::size_t hash_bytes = 32;
constexpr std::size_t sig_bytes = 64;

// --- small conversions ------------------------------------------------------------

using kith::protocol::detail::as_data;
using kith::protocol::detail::as_text;
using kith::protocol::detail::bytes;
using kith::protocol::detail::fail;
using kith::protocol::detail::fixed;
using kith::protocol::detail::limit;
using kith::protocol::detail::text;
using kith::protocol::detail::view_of;

std::size_t common_prefix(std::string_view a, std::string_view b) {
  const std::size_t n = std::min(a.size(), b.size());
  std::size_t i = 0;
  while (i < n && a[i] == b[i])
    ++i;
  return i;
}

struct dot_hash {
  std::size_t operator()(dot d) const noexcept {
    return std::hash<std::uint64_t>{}(d.id.value() * 0x9E3779B97F4A7C15ull ^ d.n.value());
  }
};

/// The batch leaf a record stands for, or nullopt when its body does not
/// decode. The encoder and decoder both go through here, so a leaf the
/// encoder left out is recomputed by exactly the same steps.
std::optional<hash256> leaf_of_record(std::string_view topic, const key_type& key, dot d,
                                      std::string_view body, const signed_limits& l) {
  auto b = decode_body(body, l);
  if (!b)
    return std::nullopt;
  return leaf_hash(topic, header_of(key, d, *b));
}

/// Dots index into a per-reply table of replica ids: ids are 8 random-
/// looking bytes that would not pack, and a reply names few of them.
class replica_table {
public:
  std::uint32_t add(replica_id r) {
    auto [it, fresh] = index_.try_emplace(r.value(), static_cast<std::uint32_t>(ids_.size()));
    if (fresh)
      ids_.push_back(r.value());
    return it->second;
  }
  [[nodiscard]] std::uint32_t at(replica_id r) const { return index_.at(r.value()); }
  [[nodiscard]] const std::vector<std::uint64_t>& ids() const { return ids_; }

private:
  std::unordered_map<std::uint64_t, std::uint32_t> index_;
  std::vector<std::uint64_t> ids_;
};

// --- size estimates ----------------------------------------------------------------

std::size_t words(std::size_t bytes) { return (bytes + 7) / 8; }

/// Unpacked size in bytes of an entry as the encoder lays it out (packing
/// usually makes it smaller; split_reply checks the real size after).
std::size_t entry_estimate(const signed_entry& e, std::size_t prefix) {
  std::size_t w = 1 + 3 + words(e.key.size() - prefix);
  if (!e.records.empty())
    w += 1;
  for (const auto& rec : e.records)
    w += 2 + 1 + words(rec.second.size());
  if (!e.resolves.empty())
    w += 1;
  for (const auto& h : e.resolves) {
    w += 3 + 3 + words(hash_bytes);
    if (!h.context.empty())
      w += words(causality::encoded_size(h.context));
    if (h.key != e.key)
      w += words(h.key.size());
  }
  return w * 8;
}

std::size_t batch_estimate(const signed_batch& b, const std::string& topic) {
  std::size_t w = 3 + 4 + words(b.leaves.size() * hash_bytes) + words(sig_bytes);
  if (b.topic != topic)
    w += words(b.topic.size() + 1);
  return w * 8;
}

constexpr std::size_t binding_estimate = (2 + 2 + 4 + 8) * 8;

// --- encoding -------------------------------------------------------------------

std::string clock_bytes(const causality::node_clock& c) {
  causality::writer wr;
  causality::encode(wr, c);
  return wr.take();
}

std::string context_bytes(const version_vector& v) {
  causality::writer wr;
  causality::encode(wr, v);
  return wr.take();
}

void put(w::Binding::Builder b, const replica_binding& x) {
  b.setAuthor(as_data(x.author.bytes));
  b.setNonce(x.nonce);
  b.setReplica(x.rid.value());
  b.setSignature(as_data(x.sig.bytes));
}

void put(w::TopicDescriptor::Builder b, const topic_descriptor& t) {
  b.setId(as_text(t.id));
  b.setKind(static_cast<w::TopicKind>(t.kind));
  b.setCreator(as_data(t.creator.bytes));
  b.setName(as_text(t.name));
  if (!t.writers.empty()) {
    auto ws = b.initWriters(static_cast<unsigned>(t.writers.size()));
    for (unsigned i = 0; i < ws.size(); ++i)
      ws.set(i, as_data(t.writers[i].bytes));
  }
  b.setNonce(t.nonce);
  b.setSignature(as_data(t.sig.bytes));
}

void put(w::Header::Builder b, const write_header& h, const key_type& entry_key,
         const replica_table& table) {
  b.setReplica(table.at(h.d.id));
  b.setCounter(h.d.n.value());
  b.setDeleted(h.deleted);
  b.setTimeMs(h.time_ms);
  if (!h.context.empty())
    b.setContext(as_data(context_bytes(h.context)));
  b.setValueHash(as_data(h.value_hash));
  if (h.key == entry_key)
    b.getKey().setSameAsEntry();
  else
    b.getKey().setOther(as_data(h.key));
}

void put(w::Reply::Builder b, const signed_reply& r) {
  replica_table table;
  for (const auto& e : r.entries) {
    for (const auto& [d, body] : e.records)
      table.add(d.id);
    for (const auto& h : e.resolves)
      table.add(h.d.id);
  }
  for (const auto& bt : r.batches)
    table.add(bt.rid);

  b.setTopic(as_text(r.topic));
  b.setFrom(r.from.value());
  if (!r.clock.empty())
    b.setClock(as_data(clock_bytes(r.clock)));
  if (!table.ids().empty()) {
    auto ids = b.initReplicas(static_cast<unsigned>(table.ids().size()));
    for (unsigned i = 0; i < ids.size(); ++i)
      ids.set(i, table.ids()[i]);
  }

  // The first record of each dot, in message order: the one a left-out
  // leaf is recomputed from (the decoder applies the same rule).
  struct first_record {
    const key_type* key;
    const std::string* body;
    bool used = false;
  };
  std::unordered_map<dot, first_record, dot_hash> records;

  if (!r.entries.empty()) {
    auto es = b.initEntries(static_cast<unsigned>(r.entries.size()));
    std::string_view prev;
    for (unsigned i = 0; i < es.size(); ++i) {
      const auto& e = r.entries[i];
      auto eb = es[i];
      const std::size_t p = common_prefix(prev, e.key);
      eb.setKeyPrefixLen(static_cast<std::uint32_t>(p));
      eb.setKeySuffix(as_data(std::string_view(e.key).substr(p)));
      if (!e.records.empty()) {
        auto rs = eb.initRecords(static_cast<unsigned>(e.records.size()));
        for (unsigned j = 0; j < rs.size(); ++j) {
          const auto& [d, body] = e.records[j];
          rs[j].setReplica(table.at(d.id));
          rs[j].setCounter(d.n.value());
          rs[j].setBody(as_data(body));
          records.try_emplace(d, first_record{&e.key, &body});
        }
      }
      if (!e.resolves.empty()) {
        auto hs = eb.initResolves(static_cast<unsigned>(e.resolves.size()));
        for (unsigned j = 0; j < hs.size(); ++j)
          put(hs[j], e.resolves[j], e.key, table);
      }
      prev = e.key;
    }
  }

  if (!r.batches.empty()) {
    const signed_limits body_limits{};
    auto bs = b.initBatches(static_cast<unsigned>(r.batches.size()));
    for (unsigned i = 0; i < bs.size(); ++i) {
      const auto& bt = r.batches[i];
      auto bb = bs[i];
      if (bt.topic == r.topic)
        bb.getTopic().setSameAsReply();
      else
        bb.getTopic().setOther(as_text(bt.topic));
      bb.setReplica(table.at(bt.rid));
      bb.setFirst(bt.first);
      bb.setLeafCount(static_cast<std::uint32_t>(bt.leaves.size()));
      // A leaf is left out only when the first record of its dot, not yet
      // used for another leaf, recomputes to exactly this leaf: then the
      // decoded batch always equals the encoded one, and a record that
      // does not match its leaf costs the full 32 bytes, not the batch.
      std::string bitmap;
      std::string kept;
      kept.reserve(bt.leaves.size() * hash_bytes);
      for (std::size_t k = 0; k < bt.leaves.size(); ++k) {
        bool elide = false;
        if (k <= std::numeric_limits<std::uint64_t>::max() - bt.first) {
          auto it = records.find(dot{bt.rid, counter{bt.first + k}});
          if (it != records.end() && !it->second.used) {
            auto leaf = leaf_of_record(bt.topic, *it->second.key, it->first, *it->second.body,
                                       body_limits);
            if (leaf && *leaf == bt.leaves[k]) {
              elide = true;
              it->second.used = true;
            }
          }
        }
        if (elide) {
          if (bitmap.size() <= k / 8)
            bitmap.resize(k / 8 + 1, '\0');
          bitmap[k / 8] = static_cast<char>(bitmap[k / 8] | (1u << (k % 8)));
        } else {
          kept.append(reinterpret_cast<const char*>(bt.leaves[k].data()), hash_bytes);
        }
      }
      if (!bitmap.empty())
        bb.setElided(as_data(bitmap));
      if (!kept.empty())
        bb.setLeaves(as_data(kept));
      bb.setSignature(as_data(bt.sig.bytes));
    }
  }

  if (!r.bindings.empty()) {
    auto bs = b.initBindings(static_cast<unsigned>(r.bindings.size()));
    for (unsigned i = 0; i < bs.size(); ++i)
      put(bs[i], r.bindings[i]);
  }
  if (!r.summaries.empty()) {
    auto ss = b.initSummaries(static_cast<unsigned>(r.summaries.size()));
    for (unsigned i = 0; i < ss.size(); ++i) {
      causality::writer cw;
      encode(cw, r.summaries[i]);
      const std::string bytes = cw.take();
      ss.set(i, as_data(bytes));
    }
  }
}

void put(w::Message::Builder b, const message& m) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, hello_msg>) {
          auto h = b.initHello();
          h.setVersion(x.version);
          put(h.initBinding(), x.binding);
          h.setAgent(as_text(x.agent));
          h.setResumes(x.resumes);
        } else if constexpr (std::is_same_v<T, subscribe_msg> ||
                             std::is_same_v<T, unsubscribe_msg>) {
          auto t = std::is_same_v<T, subscribe_msg> ? b.initSubscribe() : b.initUnsubscribe();
          auto ts = t.initTopics(static_cast<unsigned>(x.topics.size()));
          for (unsigned i = 0; i < ts.size(); ++i)
            ts.set(i, as_text(x.topics[i]));
        } else if constexpr (std::is_same_v<T, offer_msg>) {
          auto o = b.initOffer();
          auto ts = o.initTopics(static_cast<unsigned>(x.topics.size()));
          for (unsigned i = 0; i < ts.size(); ++i)
            put(ts[i], x.topics[i]);
          if (!x.resync.empty()) {
            auto rs = o.initResync(static_cast<unsigned>(x.resync.size()));
            for (unsigned i = 0; i < rs.size(); ++i)
              rs.set(i, as_text(x.resync[i]));
          }
        } else if constexpr (std::is_same_v<T, sync_request_msg> ||
                             std::is_same_v<T, watermark_msg>) {
          auto t = std::is_same_v<T, sync_request_msg> ? b.initSyncRequest() : b.initWatermark();
          t.setTopic(as_text(x.topic));
          if (!x.clock.empty())
            t.setClock(as_data(clock_bytes(x.clock)));
        } else if constexpr (std::is_same_v<T, data_msg>) {
          auto d = b.initData();
          d.setKind(static_cast<w::DataKind>(x.kind));
          d.setLast(x.last);
          put(d.initReply(), x.reply);
        } else if constexpr (std::is_same_v<T, resync_request_msg>) {
          auto q = b.initResyncRequest();
          q.setTopic(as_text(x.topic));
          q.setAfterKey(as_data(x.after_key));
          q.setMaxEntries(x.max_entries);
          if (!x.have.empty())
            q.setHave(as_data(clock_bytes(x.have)));
        } else if constexpr (std::is_same_v<T, resync_done_msg>) {
          auto q = b.initResyncDone();
          q.setTopic(as_text(x.topic));
          q.setNextAfter(as_data(x.next_after));
          q.setComplete(x.complete);
          if (!x.held.empty())
            q.setHeld(as_data(clock_bytes(x.held)));
        } else if constexpr (std::is_same_v<T, keepalive_msg>) {
          auto k = b.initKeepalive();
          k.setNonce(x.nonce);
          k.setReply(x.reply);
        } else if constexpr (std::is_same_v<T, query_msg>) {
          auto q = b.initQuery();
          q.setId(x.id);
          q.setKind(static_cast<w::QueryKind>(x.kind));
          q.setArg(as_text(x.arg));
          q.setLimit(x.limit);
          q.setSinceMs(x.since_ms);
          q.setUntilMs(x.until_ms);
        } else if constexpr (std::is_same_v<T, query_result_msg>) {
          auto q = b.initQueryResult();
          q.setId(x.id);
          if (!x.items.empty()) {
            auto is = q.initItems(static_cast<unsigned>(x.items.size()));
            for (unsigned i = 0; i < is.size(); ++i) {
              is[i].setAuthor(as_data(x.items[i].author.bytes));
              put(is[i].initReply(), x.items[i].reply);
            }
          }
          if (!x.tags.empty()) {
            auto ts = q.initTags(static_cast<unsigned>(x.tags.size()));
            for (unsigned i = 0; i < ts.size(); ++i) {
              ts[i].setTag(as_text(x.tags[i].tag));
              ts[i].setCount(x.tags[i].count);
            }
          }
          if (!x.refused.empty())
            q.setRefused(as_text(x.refused));
        } else {
          static_assert(std::is_same_v<T, error_msg>);
          auto e = b.initError();
          e.setCode(static_cast<std::uint16_t>(x.code));
          e.setReason(as_text(x.reason));
        }
      },
      m);
}

// --- decoding -------------------------------------------------------------------

/// Thrown inside the decoder only; decode_message turns it (and any
/// kj::Exception from Cap'n Proto's accessors) into nullopt + reason, so
/// the many checks below read as straight-line code.
using kith::protocol::detail::refusal;

class decoder {
public:
  explicit decoder(const message_limits& l) : l_(l), body_limits_(l.sig) {
    body_limits_.base.max_value_bytes = std::min(l.sig.base.max_value_bytes, l.max_value_bytes);
  }

  message read(w::Message::Reader m) {
    switch (m.which()) {
      case w::Message::HELLO:
        return hello(m.getHello());
      case w::Message::SUBSCRIBE:
        return subscribe_msg{topics(m.getSubscribe())};
      case w::Message::UNSUBSCRIBE:
        return unsubscribe_msg{topics(m.getUnsubscribe())};
      case w::Message::OFFER:
        return offer(m.getOffer());
      case w::Message::SYNC_REQUEST: {
        auto t = m.getSyncRequest();
        return sync_request_msg{topic(t.getTopic(), "sync_request topic"),
                                clock(t.getClock(), "sync_request clock")};
      }
      case w::Message::DATA:
        return data(m.getData());
      case w::Message::WATERMARK: {
        auto t = m.getWatermark();
        return watermark_msg{topic(t.getTopic(), "watermark topic"),
                             clock(t.getClock(), "watermark clock")};
      }
      case w::Message::RESYNC_REQUEST: {
        auto q = m.getResyncRequest();
        resync_request_msg out;
        out.topic = topic(q.getTopic(), "resync_request topic");
        out.after_key = bytes(q.getAfterKey(), l_.max_key_bytes, "resync_request after_key",
                              "max_key_bytes");
        out.max_entries = q.getMaxEntries();
        out.have = clock(q.getHave(), "resync_request have");
        return out;
      }
      case w::Message::RESYNC_DONE: {
        auto q = m.getResyncDone();
        resync_done_msg out;
        out.topic = topic(q.getTopic(), "resync_done topic");
        out.next_after = bytes(q.getNextAfter(), l_.max_key_bytes, "resync_done next_after",
                               "max_key_bytes");
        out.complete = q.getComplete();
        out.held = clock(q.getHeld(), "resync_done held");
        return out;
      }
      case w::Message::KEEPALIVE: {
        auto k = m.getKeepalive();
        return keepalive_msg{k.getNonce(), k.getReply()};
      }
      case w::Message::QUERY: {
        auto q = m.getQuery();
        query_msg out;
        out.id = q.getId();
        const auto kind = static_cast<unsigned>(q.getKind());
        if (kind > static_cast<unsigned>(query_kind::trending))
          fail("query: unknown kind " + std::to_string(kind));
        out.kind = static_cast<query_kind>(kind);
        out.arg = text(q.getArg(), l_.max_key_bytes, "query arg", "max_key_bytes");
        out.limit = q.getLimit();
        out.since_ms = q.getSinceMs();
        out.until_ms = q.getUntilMs();
        return out;
      }
      case w::Message::QUERY_RESULT: {
        auto q = m.getQueryResult();
        query_result_msg out;
        out.id = q.getId();
        auto is = q.getItems();
        limit(is.size(), l_.max_query_items, "query result items", "max_query_items");
        out.items.reserve(is.size());
        for (auto it : is) {
          query_item qi;
          fixed(it.getAuthor(), qi.author.bytes, "query item author");
          qi.reply = reply(it.getReply());
          out.items.push_back(std::move(qi));
        }
        auto ts = q.getTags();
        limit(ts.size(), l_.max_query_tags, "query result tags", "max_query_tags");
        for (auto t : ts)
          out.tags.push_back(tag_count_msg{
              text(t.getTag(), l_.max_key_bytes, "query result tag", "max_key_bytes"), t.getCount()});
        out.refused = text(q.getRefused(), l_.max_reason_bytes, "query refusal", "max_reason_bytes");
        return out;
      }
      case w::Message::ERROR: {
        auto e = m.getError();
        error_msg out;
        // Unknown codes are kept as numbers: a newer peer may send codes
        // this one does not know; the channel closes either way.
        out.code = static_cast<error_code>(e.getCode());
        out.reason = text(e.getReason(), l_.max_reason_bytes, "error reason", "max_reason_bytes");
        return out;
      }
    }
    fail("unsupported message (union member " + std::to_string(static_cast<unsigned>(m.which())) +
         ")");
  }

private:

  std::string topic(capnp::Text::Reader t, const char* what) const {
    return text(t, l_.sig.max_topic_bytes, what, "max_topic_bytes");
  }

  /// A node_clock from the causality codec's bytes. Decoded entry by entry
  /// (the codec's own format) so the bitmaps of all entries share one
  /// budget, max_bitmap_bytes: per-entry limits alone would let a small
  /// message of run-length entries expand to max_ids * max_bitmap_bytes.
  causality::node_clock clock(capnp::Data::Reader d, const char* what) const {
    causality::node_clock c;
    if (d.size() == 0) // the encoder leaves an empty clock out
      return c;
    causality::reader r(view_of(d));
    const auto n = r.count(l_.sig.base.max_ids);
    std::size_t bitmap_bytes = 0;
    for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
      const replica_id id{r.varint()};
      causality::clock_entry e;
      if (!causality::decode(r, e, l_.sig.base))
        break;
      bitmap_bytes += e.bits().size() * 8;
      if (bitmap_bytes > l_.sig.base.max_bitmap_bytes)
        fail(std::string(what) + ": bitmaps over max_bitmap_bytes (" +
             std::to_string(l_.sig.base.max_bitmap_bytes) + ")");
      if (c.find(id) != nullptr)
        fail(std::string(what) + ": replica id listed twice");
      c.join_entry(id, e);
    }
    if (r.failed() || !r.at_end())
      fail(std::string(what) + ": malformed or over max_ids/max_bitmap_bytes");
    return c;
  }

  version_vector context(capnp::Data::Reader d, const char* what) const {
    version_vector v;
    if (d.size() == 0) // the encoder leaves an empty context out
      return v;
    if (!causality::decode_all(view_of(d), v, l_.sig.base))
      fail(std::string(what) + ": malformed or over max_ids");
    return v;
  }

  replica_binding binding(w::Binding::Reader b) const {
    replica_binding out;
    fixed(b.getAuthor(), out.author.bytes, "binding author");
    out.nonce = b.getNonce();
    out.rid = replica_id{b.getReplica()};
    fixed(b.getSignature(), out.sig.bytes, "binding signature");
    return out;
  }

  hello_msg hello(w::Hello::Reader h) const {
    hello_msg out;
    out.version = h.getVersion();
    out.binding = binding(h.getBinding());
    out.agent = text(h.getAgent(), l_.max_reason_bytes, "hello agent", "max_reason_bytes");
    out.resumes = h.getResumes();
    return out;
  }

  std::vector<std::string> topics(w::Topics::Reader t) const {
    auto ts = t.getTopics();
    limit(ts.size(), l_.max_topics, "topic list", "max_topics");
    std::vector<std::string> out;
    out.reserve(ts.size());
    for (auto x : ts)
      out.push_back(topic(x, "topic"));
    return out;
  }

  offer_msg offer(w::Offer::Reader o) const {
    auto ts = o.getTopics();
    limit(ts.size(), l_.max_topics, "offer", "max_topics");
    offer_msg out;
    out.topics.reserve(ts.size());
    for (auto t : ts) {
      topic_descriptor d;
      d.id = topic(t.getId(), "descriptor id");
      const auto kind = static_cast<unsigned>(t.getKind());
      if (kind > static_cast<unsigned>(topic_kind::open))
        fail("descriptor: unknown topic kind " + std::to_string(kind));
      d.kind = static_cast<topic_kind>(kind);
      fixed(t.getCreator(), d.creator.bytes, "descriptor creator");
      d.name = topic(t.getName(), "descriptor name");
      auto ws = t.getWriters();
      limit(ws.size(), l_.sig.max_writers, "descriptor writers", "max_writers");
      d.writers.resize(ws.size());
      for (unsigned i = 0; i < ws.size(); ++i)
        fixed(ws[i], d.writers[i].bytes, "descriptor writer");
      d.nonce = t.getNonce();
      fixed(t.getSignature(), d.sig.bytes, "descriptor signature");
      out.topics.push_back(std::move(d));
    }
    auto rs = o.getResync();
    limit(rs.size(), l_.max_topics, "offer resync list", "max_topics");
    for (auto x : rs)
      out.resync.push_back(topic(x, "resync topic"));
    return out;
  }

  data_msg data(w::DataMessage::Reader d) const {
    data_msg out;
    const auto kind = static_cast<unsigned>(d.getKind());
    if (kind > static_cast<unsigned>(data_kind::resync))
      fail("data: unknown kind " + std::to_string(kind));
    out.kind = static_cast<data_kind>(kind);
    out.last = d.getLast();
    out.reply = reply(d.getReply());
    return out;
  }

  signed_reply reply(w::Reply::Reader r) const {
    signed_reply out;
    out.topic = topic(r.getTopic(), "reply topic");
    out.from = replica_id{r.getFrom()};
    out.clock = clock(r.getClock(), "reply clock");

    auto reps = r.getReplicas();
    limit(reps.size(), l_.sig.base.max_ids, "replica table", "max_ids");
    std::vector<std::uint64_t> table;
    table.reserve(reps.size());
    for (auto id : reps)
      table.push_back(id);
    auto rid = [&](std::uint32_t i) {
      if (i >= table.size())
        fail("replica index " + std::to_string(i) + " outside the replica table");
      return replica_id{table[i]};
    };

    // Entries first: the records are what left-out leaves are rebuilt from.
    struct record_at {
      std::uint32_t entry;
      std::uint32_t record;
      bool used = false;
    };
    std::unordered_map<dot, record_at, dot_hash> first_records;

    auto es = r.getEntries();
    limit(es.size(), l_.max_entries, "entries", "max_entries");
    out.entries.reserve(es.size());
    std::string_view prev;
    for (auto e : es) {
      signed_entry se;
      const std::size_t p = e.getKeyPrefixLen();
      if (p > prev.size())
        fail("entry key shares " + std::to_string(p) + " bytes with a previous key of " +
             std::to_string(prev.size()));
      auto suffix = e.getKeySuffix();
      limit(p + suffix.size(), l_.max_key_bytes, "entry key", "max_key_bytes");
      se.key.reserve(p + suffix.size());
      se.key.append(prev.substr(0, p));
      se.key.append(view_of(suffix));

      auto rs = e.getRecords();
      auto hs = e.getResolves();
      limit(std::size_t{rs.size()} + hs.size(), l_.max_records_per_key, "records of one key",
            "max_records_per_key");
      se.records.reserve(rs.size());
      for (auto rec : rs) {
        const dot d{rid(rec.getReplica()), counter{rec.getCounter()}};
        auto body = view_of(rec.getBody());
        if (!decode_body(body, body_limits_))
          fail("record body is malformed or its value is over max_value_bytes (" +
               std::to_string(body_limits_.base.max_value_bytes) + ")");
        first_records.try_emplace(d, record_at{static_cast<std::uint32_t>(out.entries.size()),
                                               static_cast<std::uint32_t>(se.records.size())});
        se.records.emplace_back(d, std::string(body));
      }
      se.resolves.reserve(hs.size());
      for (auto h : hs)
        se.resolves.push_back(header(h, se.key, rid));
      out.entries.push_back(std::move(se));
      prev = out.entries.back().key;
    }

    auto bs = r.getBatches();
    limit(bs.size(), l_.max_batches, "batches", "max_batches");
    out.batches.reserve(bs.size());
    for (auto b : bs) {
      signed_batch sb;
      auto t = b.getTopic();
      switch (t.which()) {
        case w::Batch::Topic::SAME_AS_REPLY:
          sb.topic = out.topic;
          break;
        case w::Batch::Topic::OTHER:
          sb.topic = topic(t.getOther(), "batch topic");
          break;
        default:
          fail("batch: unknown topic variant");
      }
      sb.rid = rid(b.getReplica());
      sb.first = b.getFirst();
      const std::size_t n = b.getLeafCount();
      limit(n, l_.sig.max_batch_leaves, "batch leaves", "max_batch_leaves");
      if (n > 0 && sb.first > std::numeric_limits<std::uint64_t>::max() - (n - 1))
        fail("batch: counters overflow");
      auto bits = b.getElided();
      if (bits.size() > (n + 7) / 8 ||
          (n % 8 != 0 && bits.size() == (n + 7) / 8 && (bits[bits.size() - 1] >> (n % 8)) != 0))
        fail("batch: leaf bitmap longer than the batch");
      auto elided = [&](std::size_t k) {
        return k / 8 < bits.size() && ((bits[k / 8] >> (k % 8)) & 1u) != 0;
      };
      std::size_t n_elided = 0;
      for (std::size_t k = 0; k < n; ++k)
        n_elided += elided(k) ? 1 : 0;
      auto kept = b.getLeaves();
      if (kept.size() != (n - n_elided) * hash_bytes)
        fail("batch: " + std::to_string(kept.size()) + " bytes of leaves, expected " +
             std::to_string((n - n_elided) * hash_bytes));
      sb.leaves.resize(n);
      std::size_t pos = 0;
      for (std::size_t k = 0; k < n; ++k) {
        if (!elided(k)) {
          std::memcpy(sb.leaves[k].data(), kept.begin() + pos, hash_bytes);
          pos += hash_bytes;
          continue;
        }
        // Each record rebuilds at most one leaf, so left-out leaves never
        // outnumber the records actually sent (no cheap amplification).
        const dot d{sb.rid, counter{sb.first + k}};
        auto it = first_records.find(d);
        if (it == first_records.end() || it->second.used)
          fail("batch: a leaf was left out but its record is absent from the message");
        it->second.used = true;
        const auto& se = out.entries[it->second.entry];
        auto leaf = leaf_of_record(sb.topic, se.key, d, se.records[it->second.record].second,
                                   body_limits_);
        if (!leaf)
          fail("batch: a leaf was left out but its record does not decode");
        sb.leaves[k] = *leaf;
      }
      fixed(b.getSignature(), sb.sig.bytes, "batch signature");
      out.batches.push_back(std::move(sb));
    }

    auto bi = r.getBindings();
    limit(bi.size(), l_.max_bindings, "bindings", "max_bindings");
    out.bindings.reserve(bi.size());
    for (auto b : bi)
      out.bindings.push_back(binding(b));

    auto su = r.getSummaries();
    limit(su.size(), l_.max_summaries, "writer summaries", "max_summaries");
    out.summaries.reserve(su.size());
    for (auto d : su) {
      causality::reader cr(view_of(d));
      writer_summary ws;
      if (!decode(cr, ws, l_.sig) || cr.failed() || !cr.at_end())
        fail("a writer summary does not decode");
      out.summaries.push_back(std::move(ws));
    }
    return out;
  }

  template <class Rid>
  write_header header(w::Header::Reader h, const key_type& entry_key, Rid&& rid) const {
    write_header out;
    auto k = h.getKey();
    switch (k.which()) {
      case w::Header::Key::SAME_AS_ENTRY:
        out.key = entry_key;
        break;
      case w::Header::Key::OTHER:
        out.key = bytes(k.getOther(), l_.max_key_bytes, "header key", "max_key_bytes");
        break;
      default:
        fail("header: unknown key variant");
    }
    out.d = dot{rid(h.getReplica()), counter{h.getCounter()}};
    out.deleted = h.getDeleted();
    out.time_ms = h.getTimeMs();
    out.context = context(h.getContext(), "header context");
    fixed(h.getValueHash(), out.value_hash, "header value hash");
    return out;
  }

  const message_limits& l_;
  signed_limits body_limits_;
};

// --- splitting ------------------------------------------------------------------

class splitter {
public:
  splitter(const signed_reply& r, std::size_t max_bytes) : r_(r), max_(max_bytes) {
    std::unordered_map<std::uint64_t, std::vector<std::size_t>> by_rid;
    for (std::size_t i = 0; i < r.batches.size(); ++i)
      by_rid[r.batches[i].rid.value()].push_back(i);
    for (auto& [rid, list] : by_rid)
      std::sort(list.begin(), list.end(),
                [&](std::size_t a, std::size_t b) { return r.batches[a].first < r.batches[b].first; });
    // needs_[i]: the batches entry i's records and resolves need, and for
    // each the number of its records whose leaf the batch can leave out.
    needs_.resize(r.entries.size());
    for (std::size_t i = 0; i < r.entries.size(); ++i) {
      auto& need = needs_[i];
      auto add = [&](dot d, bool is_record) {
        auto it = by_rid.find(d.id.value());
        if (it == by_rid.end())
          return;
        const auto& list = it->second;
        auto pos = std::upper_bound(list.begin(), list.end(), d.n.value(),
                                    [&](std::uint64_t n, std::size_t b) {
                                      return n < r_.batches[b].first;
                                    });
        if (pos == list.begin() || !r_.batches[*(pos - 1)].covers(d))
          return;
        const std::size_t b = *(pos - 1);
        auto found = std::find_if(need.begin(), need.end(),
                                  [&](const auto& x) { return x.first == b; });
        if (found == need.end())
          found = need.insert(need.end(), {b, 0});
        if (is_record)
          ++found->second;
      };
      for (const auto& rec : r.entries[i].records)
        add(rec.first, true);
      for (const auto& h : r.entries[i].resolves)
        add(h.d, false);
    }
    base_ = (1 + 1 + 2 + 2 + 2 + 6 + 5) * 8 + words(r.topic.size() + 1) * 8 +
            words(causality::encoded_size(r.clock)) * 8;
  }

  std::vector<signed_reply> run() {
    std::vector<signed_reply> parts;
    if (r_.entries.empty()) {
      parts.push_back(r_);
      return parts;
    }
    // Greedy on the estimate, then each part is encoded once; one that
    // still comes out too large is halved until it fits or is one entry.
    std::size_t begin = 0;
    std::size_t size = base_;
    std::unordered_set<std::size_t> batches;
    std::unordered_set<std::uint64_t> rids;
    for (std::size_t i = 0; i < r_.entries.size(); ++i) {
      auto cost = [&](bool fresh) {
        const std::size_t prefix =
            fresh || i == begin ? 0 : common_prefix(r_.entries[i - 1].key, r_.entries[i].key);
        std::size_t add = entry_estimate(r_.entries[i], prefix);
        std::size_t saved = 0;
        for (const auto& [b, n_records] : needs_[i]) {
          if (fresh || !batches.count(b)) {
            add += batch_estimate(r_.batches[b], r_.topic);
            if (fresh || !rids.count(r_.batches[b].rid.value()))
              add += binding_estimate;
          }
          saved += n_records * hash_bytes;
        }
        return add > saved ? add - saved : 0;
      };
      std::size_t c = cost(false);
      if (i > begin && size + c > max_) {
        emit(begin, i, parts);
        begin = i;
        size = base_;
        batches.clear();
        rids.clear();
        c = cost(true);
      }
      size += c;
      for (const auto& need : needs_[i]) {
        batches.insert(need.first);
        rids.insert(r_.batches[need.first].rid.value());
      }
    }
    emit(begin, r_.entries.size(), parts);
    // The summaries ride on the last part, with their writers' bindings.
    auto& last = parts.back();
    last.summaries = r_.summaries;
    for (const auto& su : r_.summaries)
      for (const auto& b : r_.bindings)
        if (b.rid == su.rid &&
            std::none_of(last.bindings.begin(), last.bindings.end(),
                         [&](const replica_binding& x) { return x.rid == b.rid; }))
          last.bindings.push_back(b);
    return parts;
  }

private:
  signed_reply part(std::size_t begin, std::size_t end) const {
    signed_reply p;
    p.topic = r_.topic;
    p.from = r_.from;
    p.clock = r_.clock;
    p.entries.assign(r_.entries.begin() + begin, r_.entries.begin() + end);
    std::vector<std::size_t> batches;
    for (std::size_t i = begin; i < end; ++i)
      for (const auto& need : needs_[i])
        batches.push_back(need.first);
    std::sort(batches.begin(), batches.end());
    batches.erase(std::unique(batches.begin(), batches.end()), batches.end());
    std::unordered_set<std::uint64_t> rids;
    for (auto b : batches) {
      p.batches.push_back(r_.batches[b]);
      rids.insert(r_.batches[b].rid.value());
    }
    for (const auto& b : r_.bindings)
      if (rids.count(b.rid.value()))
        p.bindings.push_back(b);
    return p;
  }

  void emit(std::size_t begin, std::size_t end, std::vector<signed_reply>& out) const {
    auto p = part(begin, end);
    if (end - begin > 1 && encode_message(data_msg{data_kind::answer, true, p}).size() > max_) {
      const std::size_t mid = begin + (end - begin) / 2;
      emit(begin, mid, out);
      emit(mid, end, out);
      return;
    }
    out.push_back(std::move(p));
  }

  const signed_reply& r_;
  std::size_t max_;
  std::size_t base_ = 0;
  std::vector<std::vector<std::pair<std::size_t, std::size_t>>> needs_;
};

/// Words to give the first segment: a data message sized so that it
/// usually fits in one segment (no far pointers, one allocation).
unsigned first_segment_words(const message& m) {
  const auto* d = std::get_if<data_msg>(&m);
  if (d == nullptr)
    return capnp::SUGGESTED_FIRST_SEGMENT_WORDS;
  std::size_t bytes = 4096;
  std::string_view prev;
  for (const auto& e : d->reply.entries) {
    bytes += entry_estimate(e, common_prefix(prev, e.key));
    prev = e.key;
  }
  for (const auto& b : d->reply.batches)
    bytes += batch_estimate(b, d->reply.topic);
  bytes += d->reply.bindings.size() * binding_estimate;
  return static_cast<unsigned>(std::min<std::size_t>(words(bytes), 1u << 26));
}

} // namespace

std::string encode_message(const message& m) {
  capnp::MallocMessageBuilder builder(first_segment_words(m));
  put(builder.initRoot<w::Message>(), m);
  return detail::write_packed(builder);
}

std::optional<message> decode_message(std::string_view bytes, const message_limits& l,
                                      std::string* why) {
  return detail::read_packed<w::Message>(
      bytes, {l.max_message_bytes, l.traversal_limit_words, l.nesting_limit}, why,
      [&](w::Message::Reader root) { return decoder(l).read(root); });
}

std::vector<signed_reply> split_reply(const signed_reply& r, std::size_t max_bytes) {
  return splitter(r, max_bytes).run();
}

const char* message_name(std::size_t index) {
  static constexpr const char* names[] = {
      "hello",    "subscribe",      "unsubscribe", "offer",     "sync_request", "data",
      "watermark", "resync_request", "resync_done", "keepalive", "error", "query",
      "query_result"};
  static_assert(std::size(names) == std::variant_size_v<message>);
  return index < std::size(names) ? names[index] : "unknown";
}

const char* message_name(const message& m) { return message_name(m.index()); }

} // namespace kith::protocol
