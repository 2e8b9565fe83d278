#pragma once

#include "kith/storage/store.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>

namespace kith::storage {

using json = nlohmann::json;

/// JSON documents over the store. A document's subject is
/// "<author id>/<path>"; each top-level property is a predicate stored as
/// one key ("<subject>\0<predicate>") holding the property's JSON text.
/// Every key lives in a topic: the author's feed unless another is named.
/// Borrows the store. `on_push` receives every signed write this object
/// commits (the node sends it to the topic's subscribers).
class documents {
public:
  using push_sink = std::function<void(const signed_reply&)>;
  explicit documents(store& s, push_sink on_push = {}) : store_(s), on_push_(std::move(on_push)) {}

  /// Writes every top-level property of obj (an object) as one signed
  /// batch. `contexts` maps predicates to the context a read returned
  /// (see get()); a predicate without one replaces what this node has
  /// seen of it, the usual "my write wins here" edit.
  [[nodiscard]] result<std::vector<dot>> put(const std::string& subject, const json& obj,
                                             std::uint64_t time_ms, std::string topic = {},
                                             const json& contexts = json::object());
  /// Writes several documents of one topic (each replacing what this node
  /// has seen of its properties) as one signed batch: one signature and
  /// one stored batch for all of them instead of one each, e.g. a list of
  /// follows. All or nothing: a bad document, a subject given twice or
  /// subjects in different topics refuse the whole batch. At most
  /// max_documents_per_batch documents.
  static constexpr std::size_t max_documents_per_batch = 1024;
  [[nodiscard]] result<std::vector<dot>>
  put_many(const std::vector<std::pair<std::string, json>>& docs, std::uint64_t time_ms,
           std::string topic = {});
  /// Reassembles a document: {"subject", "topic", "doc": {pred: value},
  /// "conflicts": {pred: [values]} for predicates with siblings,
  /// "context": {pred: {replica: counter}}}. doc shows the newest sibling.
  /// A document with no live property is returned as null.
  [[nodiscard]] result<json> get(const std::string& subject, std::string topic = {});
  /// Deletes one property, or with nullopt every property of the subject.
  /// Returns the number of keys deleted.
  [[nodiscard]] result<std::size_t> del(const std::string& subject,
                                        const std::optional<std::string>& predicate,
                                        std::uint64_t time_ms, std::string topic = {});
  /// Posts a status "<me>/statuses/<time>-<n>" with its #tags and
  /// @mentions parsed. Returns the subject.
  /// `reply_to` (may be empty) names the status this one answers.
  [[nodiscard]] result<std::string> post(const std::string& text, std::uint64_t time_ms,
                                         const std::string& reply_to = {});
  /// The newest posts of an author (older than before_ms when not 0), or
  /// carrying a tag, as documents. Each post found through an index has a
  /// "cursor" ("<time>.<replica>.<counter>"); passing the last one shown as
  /// `cursor` gives the next page without skipping posts that share its
  /// millisecond (it replaces before_ms).
  [[nodiscard]] result<json> feed(const protocol::public_key& author, std::size_t limit,
                                  std::uint64_t before_ms = 0, const std::string& cursor = {});
  /// The newest posts that @mention `who`.
  [[nodiscard]] result<json> mentioning(const protocol::public_key& who, std::size_t limit,
                                        std::uint64_t before_ms = 0);
  /// A status and the replies this node holds, replies of replies
  /// included (breadth first, at most `limit` in all), oldest first:
  /// {"root": <doc or null>, "replies": [<doc>...]}.
  [[nodiscard]] result<json> thread(const std::string& subject, std::size_t limit);
  /// Replies this node holds to any status of `author`, newest first.
  [[nodiscard]] result<json> replies_to_author(const protocol::public_key& author,
                                               std::size_t limit);
  [[nodiscard]] result<json> tagged(const std::string& tag, std::size_t limit);

private:
  /// Refuses a write to another author's document in the feeds (topic empty).
  status check_own(const std::string& subject, const std::string& topic) const;
  result<std::vector<write_op>> ops_for(const std::string& topic, const std::string& subject,
                                        const json& obj, const json& contexts);
  result<std::vector<dot>> commit(const std::string& topic, const std::vector<write_op>& ops,
                                  std::uint64_t time_ms);
  result<std::string> topic_for(const std::string& subject, std::string topic) const;
  result<json> hits_to_json(const std::vector<index_hit>& hits);
  store& store_;
  push_sink on_push_;
};

/// Checks a subject's form: "<valid id>/<non-empty path>", no NUL bytes.
[[nodiscard]] status check_subject(const std::string& subject);
/// A context as JSON ({"<replica>": counter}) and back.
[[nodiscard]] json context_to_json(const version_vector& v);
/// A post's place in newest-first index order, as text: "<time>.<replica>.<counter>".
[[nodiscard]] std::string cursor_text(std::uint64_t time_ms, dot d);
[[nodiscard]] std::optional<std::pair<std::uint64_t, dot>> parse_cursor(std::string_view text);
[[nodiscard]] std::optional<version_vector> context_from_json(const json& j);

} // namespace kith::storage
