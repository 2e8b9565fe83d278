@0x806e3395eaff340e;

# The kith wire protocol, version 1 (kith::protocol::protocol_version).
# docs/protocol.md is the specification: meaning and limits of each field,
# framing, session flow and the rules for changing this file.
#
# One Message travels per sealed channel frame, packed-encoded.
#
# Evolution rules (Cap'n Proto's, restated): never renumber, retype or
# remove a field; new fields take the next ordinal and are appended; a new
# message type is a new member of Message's union. A receiver that meets
# a union member it does not know answers error(protocol,
# "unsupported message"). Incompatible changes bump protocol_version,
# which hello carries.
#
# Compactness choices (see docs/protocol.md):
# - clocks and contexts are Data holding the causality codec's compact
#   encoding (varints, bitmaps or run lengths), not structured lists;
# - a batch leaf whose write travels in the same message is left out and
#   recomputed by the receiver;
# - an entry's key is sent as the length of the prefix it shares with the
#   previous entry's key plus the rest;
# - dots name their replica by an index into the reply's replica table.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kith::protocol::wire");

struct Message {
  union {
    hello @0 :Hello;
    subscribe @1 :Topics;
    unsubscribe @2 :Topics;
    offer @3 :Offer;
    syncRequest @4 :TopicClock;
    data @5 :DataMessage;
    watermark @6 :TopicClock;
    resyncRequest @7 :ResyncRequest;
    resyncDone @8 :ResyncDone;
    keepalive @9 :Keepalive;
    error @10 :Error;
    query @11 :Query;
    queryResult @12 :QueryResult;
  }
}

# --- shared pieces -------------------------------------------------------------

struct Binding {
  author @0 :Data;      # ed25519 public key, 32 bytes
  nonce @1 :UInt64;
  replica @2 :UInt64;   # the replica id derived from author and nonce
  signature @3 :Data;   # 64 bytes
}

enum TopicKind {
  feed @0;
  shared @1;
  open @2;
}

struct TopicDescriptor {
  id @0 :Text;
  kind @1 :TopicKind;
  creator @2 :Data;          # 32 bytes
  name @3 :Text;
  writers @4 :List(Data);    # 32 bytes each
  nonce @5 :UInt64;
  signature @6 :Data;        # 64 bytes (all zero for a feed)
}

# --- messages ---------------------------------------------------------------------

struct Hello {
  version @0 :UInt32;
  binding @1 :Binding;
  agent @2 :Text;
  resumes @3 :Bool;          # keeps channel resumption tickets (false: as before)
}

struct Topics {
  topics @0 :List(Text);
}

struct Offer {
  topics @0 :List(TopicDescriptor);
  resync @1 :List(Text);  # ids among topics the receiver must fully resync
}

# syncRequest and watermark.
struct TopicClock {
  topic @0 :Text;
  clock @1 :Data;   # causality codec encoding of a node_clock
}

enum DataKind {
  push @0;
  answer @1;
  resync @2;
}

struct DataMessage {
  kind @0 :DataKind;
  last @1 :Bool = true;
  reply @2 :Reply;
}

struct Reply {
  topic @0 :Text;
  from @1 :UInt64;
  clock @2 :Data;              # causality codec encoding of a node_clock
  replicas @3 :List(UInt64);   # the replica table dots index into
  entries @4 :List(Entry);
  batches @5 :List(Batch);
  bindings @6 :List(Binding);
  summaries @7 :List(Data);    # writer summaries, signed_write codec encoding each
}

struct Entry {
  keyPrefixLen @0 :UInt32;   # bytes shared with the previous entry's key
  keySuffix @1 :Data;        # the rest of the key
  records @2 :List(Record);
  resolves @3 :List(Header);
}

struct Record {
  replica @0 :UInt32;   # index into Reply.replicas
  counter @1 :UInt64;
  body @2 :Data;        # encoded write_body (encode_body)
}

struct Header {
  replica @0 :UInt32;   # index into Reply.replicas
  counter @1 :UInt64;
  deleted @2 :Bool;
  timeMs @3 :UInt64;
  context @4 :Data;     # causality codec encoding of a version_vector
  valueHash @5 :Data;   # BLAKE2b-256, 32 bytes
  key :union {
    sameAsEntry @6 :Void;
    other @7 :Data;
  }
}

struct Batch {
  topic :union {
    sameAsReply @0 :Void;
    other @1 :Text;
  }
  replica @2 :UInt32;    # index into Reply.replicas
  first @3 :UInt64;
  leafCount @4 :UInt32;
  elided @5 :Data;       # bitmap, bit i (LSB first) set = leaf i left out
  leaves @6 :Data;       # the other leaves, 32 bytes each, in order
  signature @7 :Data;    # 64 bytes
}

struct ResyncRequest {
  topic @0 :Text;
  afterKey @1 :Data;
  maxEntries @2 :UInt32;
  have @3 :Data;      # the asker's clock (causality codec); keys whose dots
                      # it covers are named in ResyncDone.held, not sent
}

struct ResyncDone {
  topic @0 :Text;
  nextAfter @1 :Data;
  complete @2 :Bool;
  held @3 :Data;      # node_clock (causality codec) of the dots of keys left
                      # out of the page because the asker's clock covers them
}

struct Keepalive {
  nonce @0 :UInt64;
  reply @1 :Bool;
}

struct Error {
  code @0 :UInt16;
  reason @1 :Text;
}

# --- aggregator queries (docs/protocol.md, "Queries") -------------------------------

enum QueryKind {
  mentions @0;   # arg: an identity's text form
  thread @1;     # arg: a status subject
  tag @2;        # arg: a tag, lower-case, without '#'
  trending @3;   # arg: empty; sinceMs..untilMs is the window
}

struct Query {
  id @0 :UInt64;        # echoed in the result
  kind @1 :QueryKind;
  arg @2 :Text;
  limit @3 :UInt32;     # items (or tags) wanted
  sinceMs @4 :UInt64;
  untilMs @5 :UInt64;   # 0 = no upper bound
}

# One document of one author's feed with everything that proves it.
struct QueryItem {
  author @0 :Data;      # 32 bytes; reply.topic must be this author's feed
  reply @1 :Reply;
}

struct TagCount {
  tag @0 :Text;
  count @1 :UInt64;
}

struct QueryResult {
  id @0 :UInt64;
  items @1 :List(QueryItem);
  tags @2 :List(TagCount);
  refused @3 :Text;     # non-empty: the query was not served, and why
}
