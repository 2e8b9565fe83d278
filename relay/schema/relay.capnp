@0xc3f595649e6f1f3e;

# The kith relay protocol, version 1 (kith::relay::relay_protocol_version).
# docs/relay-protocol.md is the specification: meaning and limits of each
# field, the record signature, circuits and what the relay can see.
#
# One Message travels per sealed frame of the secure channel between a
# client and the relay (protocol/channel.hpp), packed-encoded. The same
# union serves both directions; a receiver refuses members meant for the
# other side.
#
# Evolution rules (Cap'n Proto's): never renumber, retype or remove a field;
# new fields take the next ordinal; a new message is a new union member. A
# relay that meets a member it does not know answers refused(unsupported)
# with the envelope's req, so a newer client learns what an older relay
# cannot do without losing its connection.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("kith::relay::wire");

struct Message {
  # Request id chosen by the client; echoed in the answer. 0 on messages
  # that answer nothing (events, circuit data).
  req @0 :UInt64;
  union {
    # --- client -> relay ------------------------------------------------
    announce @1 :Record;
    lookup @2 :Lookup;
    join @3 :TopicRef;
    leave @4 :TopicRef;
    members @5 :MembersQuery;
    watch @6 :TopicRef;
    unwatch @7 :TopicRef;
    openCircuit @8 :OpenCircuit;
    acceptCircuit @9 :CircuitRef;
    refuseCircuit @10 :CircuitEnd;
    closeCircuit @11 :CircuitEnd;
    ping @12 :Void;
    # --- both ways --------------------------------------------------------
    circuitData @13 :CircuitData;
    # --- relay -> client ------------------------------------------------
    welcome @14 :Welcome;
    ok @15 :Void;
    lookupResult @16 :LookupResult;
    membersPage @17 :MembersPage;
    topicEvent @18 :TopicEvent;
    circuitIncoming @19 :CircuitPeer;
    circuitOpened @20 :CircuitPeer;
    circuitClosed @21 :Reason;       # circuit + code + text
    refused @22 :Reason;             # code + text (circuit unused)
    reconnect @23 :Reconnect;
    goodbye @24 :Reason;             # code + text (circuit unused)
    pong @25 :Void;
    present @26 :Record;             # an identity watched for (Lookup.watch) announced itself
  }
}

# A signed reachability record. The signature covers the domain-separated
# encoding in docs/relay-protocol.md, not these Cap'n Proto bytes.
struct Record {
  id @0 :Data;                # ed25519 public key, 32 bytes
  addresses @1 :List(Text);
  expiryMs @2 :UInt64;        # unix time, ms
  seq @3 :UInt64;
  signature @4 :Data;         # 64 bytes
}

struct Lookup {
  id @0 :Data;                # 32 bytes
  watch @1 :Bool;             # if not found: send `present` once it is announced
}

struct TopicRef {
  topic @0 :Data;             # opaque, at most 64 bytes
}

struct MembersQuery {
  topic @0 :Data;
  cursor @1 :Data;            # empty = from the start, else a 32-byte id
  limit @2 :UInt32;           # 0 = the relay's page size
}

struct OpenCircuit {
  target @0 :Data;            # 32 bytes
}

struct CircuitRef {
  circuit @0 :UInt64;
}

struct CircuitEnd {
  circuit @0 :UInt64;
  reason @1 :Text;
}

struct CircuitData {
  circuit @0 :UInt64;
  payload @1 :Data;
}

struct Welcome {
  version @0 :UInt32;
  maxRecordTtlMs @1 :UInt64;
  maxRecordAddresses @2 :UInt32;
  maxTopicsPerConnection @3 :UInt32;
  maxPageSize @4 :UInt32;
  circuitMaxBytes @5 :UInt64;
  circuitMaxDurationMs @6 :UInt64;
  maxCircuitFrameBytes @7 :UInt32;
  idleTimeoutMs @8 :UInt64;
  requestRatePerS @9 :UInt32;
  requestBurst @10 :UInt32;
  observedIp @11 :Text;       # the client's address as the relay saw it
  resumes @12 :Bool;          # the relay keeps channel resumption tickets (false: as before)
  relayTimeMs @13 :UInt64;    # the relay's unix time in ms when it sent this (0: not given)
}

struct LookupResult {
  id @0 :Data;                # the identity asked for
  union {
    notFound @1 :Void;
    record @2 :Record;
  }
  watching @3 :Bool;          # not found, and the relay took the watch asked for
}

struct MembersPage {
  topic @0 :Data;
  ids @1 :List(Data);         # 32 bytes each, ascending
  nextCursor @2 :Data;        # empty = no more pages
}

struct TopicEvent {
  topic @0 :Data;
  id @1 :Data;
  joined @2 :Bool;            # false = left
}

struct CircuitPeer {
  circuit @0 :UInt64;
  peer @1 :Data;              # 32 bytes
}

struct Reason {
  circuit @0 :UInt64;
  code @1 :UInt16;
  text @2 :Text;
}

struct Reconnect {
  afterMs @0 :UInt64;
}
