#include "kith/relay/messages.hpp"

#include "schema/relay.capnp.h"

#include "kith/protocol/detail/capnp_codec.hpp"

#include <cstring>
#include <iterator>
#include <new>
#include <stdexcept>
#include <type_traits>

namespace kith::relay {

namespace {

namespace w = wire;
using protocol::public_key;

// --- small conversions ------------------------------------------------------------

using protocol::detail::as_data;
using protocol::detail::as_text;
using protocol::detail::bytes;
using protocol::detail::fail;
using protocol::detail::fixed;
using protocol::detail::limit;
using protocol::detail::text;
using protocol::detail::view_of;

template <class T>
inline constexpr bool always_false = false;


// --- encoding -------------------------------------------------------------------

void put(w::Record::Builder b, const signed_record& r) {
  b.setId(as_data(r.id.bytes));
  if (!r.addresses.empty()) {
    auto as = b.initAddresses(static_cast<unsigned>(r.addresses.size()));
    for (unsigned i = 0; i < as.size(); ++i)
      as.set(i, as_text(r.addresses[i]));
  }
  b.setExpiryMs(r.expiry_ms);
  b.setSeq(r.seq);
  b.setSignature(as_data(r.sig.bytes));
}

void put_reason(w::Reason::Builder b, circuit_id c, code k, const std::string& text) {
  b.setCircuit(c);
  b.setCode(static_cast<std::uint16_t>(k));
  b.setText(as_text(text));
}

void put(w::Message::Builder b, const relay_message& m) {
  b.setReq(request_id_of(m));
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, announce_msg>) {
          put(b.initAnnounce(), x.record);
        } else if constexpr (std::is_same_v<T, lookup_msg>) {
          auto l = b.initLookup();
          l.setId(as_data(x.id.bytes));
          l.setWatch(x.watch);
        } else if constexpr (std::is_same_v<T, join_msg>) {
          b.initJoin().setTopic(as_data(x.topic));
        } else if constexpr (std::is_same_v<T, leave_msg>) {
          b.initLeave().setTopic(as_data(x.topic));
        } else if constexpr (std::is_same_v<T, members_msg>) {
          auto q = b.initMembers();
          q.setTopic(as_data(x.topic));
          q.setCursor(as_data(x.cursor));
          q.setLimit(x.limit);
        } else if constexpr (std::is_same_v<T, watch_msg>) {
          b.initWatch().setTopic(as_data(x.topic));
        } else if constexpr (std::is_same_v<T, unwatch_msg>) {
          b.initUnwatch().setTopic(as_data(x.topic));
        } else if constexpr (std::is_same_v<T, open_circuit_msg>) {
          b.initOpenCircuit().setTarget(as_data(x.target.bytes));
        } else if constexpr (std::is_same_v<T, accept_circuit_msg>) {
          b.initAcceptCircuit().setCircuit(x.circuit);
        } else if constexpr (std::is_same_v<T, refuse_circuit_msg>) {
          auto e = b.initRefuseCircuit();
          e.setCircuit(x.circuit);
          e.setReason(as_text(x.reason));
        } else if constexpr (std::is_same_v<T, close_circuit_msg>) {
          auto e = b.initCloseCircuit();
          e.setCircuit(x.circuit);
          e.setReason(as_text(x.reason));
        } else if constexpr (std::is_same_v<T, ping_msg>) {
          b.setPing();
        } else if constexpr (std::is_same_v<T, circuit_data_msg>) {
          auto d = b.initCircuitData();
          d.setCircuit(x.circuit);
          d.setPayload(as_data(x.payload));
        } else if constexpr (std::is_same_v<T, welcome_msg>) {
          auto wb = b.initWelcome();
          const auto& t = x.terms;
          wb.setVersion(t.version);
          wb.setMaxRecordTtlMs(t.max_record_ttl_ms);
          wb.setMaxRecordAddresses(t.max_record_addresses);
          wb.setMaxTopicsPerConnection(t.max_topics_per_connection);
          wb.setMaxPageSize(t.max_page_size);
          wb.setCircuitMaxBytes(t.circuit_max_bytes);
          wb.setCircuitMaxDurationMs(t.circuit_max_duration_ms);
          wb.setMaxCircuitFrameBytes(t.max_circuit_frame_bytes);
          wb.setIdleTimeoutMs(t.idle_timeout_ms);
          wb.setRequestRatePerS(t.request_rate_per_s);
          wb.setRequestBurst(t.request_burst);
          wb.setObservedIp(as_text(x.observed_ip));
          wb.setResumes(t.resumes);
          wb.setRelayTimeMs(x.relay_time_ms);
        } else if constexpr (std::is_same_v<T, ok_msg>) {
          b.setOk();
        } else if constexpr (std::is_same_v<T, lookup_result_msg>) {
          auto r = b.initLookupResult();
          r.setId(as_data(x.id.bytes));
          if (x.record)
            put(r.initRecord(), *x.record);
          else
            r.setNotFound();
          r.setWatching(x.watching);
        } else if constexpr (std::is_same_v<T, members_page_msg>) {
          auto p = b.initMembersPage();
          p.setTopic(as_data(x.topic));
          if (!x.ids.empty()) {
            auto ids = p.initIds(static_cast<unsigned>(x.ids.size()));
            for (unsigned i = 0; i < ids.size(); ++i)
              ids.set(i, as_data(x.ids[i].bytes));
          }
          p.setNextCursor(as_data(x.next_cursor));
        } else if constexpr (std::is_same_v<T, topic_event_msg>) {
          auto e = b.initTopicEvent();
          e.setTopic(as_data(x.topic));
          e.setId(as_data(x.id.bytes));
          e.setJoined(x.joined);
        } else if constexpr (std::is_same_v<T, circuit_incoming_msg>) {
          auto p = b.initCircuitIncoming();
          p.setCircuit(x.circuit);
          p.setPeer(as_data(x.from.bytes));
        } else if constexpr (std::is_same_v<T, circuit_opened_msg>) {
          auto p = b.initCircuitOpened();
          p.setCircuit(x.circuit);
          p.setPeer(as_data(x.peer.bytes));
        } else if constexpr (std::is_same_v<T, circuit_closed_msg>) {
          put_reason(b.initCircuitClosed(), x.circuit, x.code, x.reason);
        } else if constexpr (std::is_same_v<T, refused_msg>) {
          put_reason(b.initRefused(), 0, x.code, x.detail);
        } else if constexpr (std::is_same_v<T, reconnect_msg>) {
          b.initReconnect().setAfterMs(x.after_ms);
        } else if constexpr (std::is_same_v<T, goodbye_msg>) {
          put_reason(b.initGoodbye(), 0, x.code, x.reason);
        } else if constexpr (std::is_same_v<T, pong_msg>) {
          b.setPong();
        } else if constexpr (std::is_same_v<T, present_msg>) {
          put(b.initPresent(), x.record);
        } else if constexpr (std::is_same_v<T, unknown_msg>) {
          // It stands for bytes this build cannot write: a caller bug.
          throw std::invalid_argument("encode_relay_message: unknown_msg is decode-only");
        } else {
          static_assert(always_false<T>, "every message type is encoded");
        }
      },
      m);
}

// --- decoding -------------------------------------------------------------------

using protocol::detail::refusal;

class decoder {
public:
  explicit decoder(const wire_limits& l) : l_(l) {}

  relay_message read(w::Message::Reader m) const {
    const std::uint64_t req = m.getReq();
    switch (m.which()) {
      case w::Message::ANNOUNCE:
        return announce_msg{req, record(m.getAnnounce())};
      case w::Message::LOOKUP: {
        lookup_msg out{req, {}};
        fixed(m.getLookup().getId(), out.id.bytes, "lookup id");
        out.watch = m.getLookup().getWatch();
        return out;
      }
      case w::Message::JOIN:
        return join_msg{req, topic(m.getJoin().getTopic())};
      case w::Message::LEAVE:
        return leave_msg{req, topic(m.getLeave().getTopic())};
      case w::Message::MEMBERS: {
        auto q = m.getMembers();
        members_msg out;
        out.req = req;
        out.topic = topic(q.getTopic());
        out.cursor = cursor(q.getCursor(), "members cursor");
        out.limit = q.getLimit();
        return out;
      }
      case w::Message::WATCH:
        return watch_msg{req, topic(m.getWatch().getTopic())};
      case w::Message::UNWATCH:
        return unwatch_msg{req, topic(m.getUnwatch().getTopic())};
      case w::Message::OPEN_CIRCUIT: {
        open_circuit_msg out{req, {}};
        fixed(m.getOpenCircuit().getTarget(), out.target.bytes, "open_circuit target");
        return out;
      }
      case w::Message::ACCEPT_CIRCUIT:
        return accept_circuit_msg{req, m.getAcceptCircuit().getCircuit()};
      case w::Message::REFUSE_CIRCUIT: {
        auto e = m.getRefuseCircuit();
        return refuse_circuit_msg{req, e.getCircuit(), reason(e.getReason(), "refuse reason")};
      }
      case w::Message::CLOSE_CIRCUIT: {
        auto e = m.getCloseCircuit();
        return close_circuit_msg{req, e.getCircuit(), reason(e.getReason(), "close reason")};
      }
      case w::Message::PING:
        return ping_msg{req};
      case w::Message::CIRCUIT_DATA: {
        auto d = m.getCircuitData();
        return circuit_data_msg{
            d.getCircuit(),
            bytes(d.getPayload(), l_.max_payload_bytes, "circuit payload", "max_payload_bytes")};
      }
      case w::Message::WELCOME: {
        auto wr = m.getWelcome();
        welcome_msg out;
        auto& t = out.terms;
        t.version = wr.getVersion();
        t.max_record_ttl_ms = wr.getMaxRecordTtlMs();
        t.max_record_addresses = wr.getMaxRecordAddresses();
        t.max_topics_per_connection = wr.getMaxTopicsPerConnection();
        t.max_page_size = wr.getMaxPageSize();
        t.circuit_max_bytes = wr.getCircuitMaxBytes();
        t.circuit_max_duration_ms = wr.getCircuitMaxDurationMs();
        t.max_circuit_frame_bytes = wr.getMaxCircuitFrameBytes();
        t.idle_timeout_ms = wr.getIdleTimeoutMs();
        t.request_rate_per_s = wr.getRequestRatePerS();
        t.request_burst = wr.getRequestBurst();
        t.resumes = wr.getResumes();
        out.observed_ip = reason(wr.getObservedIp(), "observed ip");
        out.relay_time_ms = wr.getRelayTimeMs();
        return out;
      }
      case w::Message::OK:
        return ok_msg{req};
      case w::Message::LOOKUP_RESULT: {
        auto r = m.getLookupResult();
        lookup_result_msg out;
        out.req = req;
        fixed(r.getId(), out.id.bytes, "lookup_result id");
        switch (r.which()) {
          case w::LookupResult::NOT_FOUND:
            break;
          case w::LookupResult::RECORD:
            out.record = record(r.getRecord());
            break;
          default:
            fail("lookup_result: unknown variant");
        }
        out.watching = r.getWatching();
        return out;
      }
      case w::Message::MEMBERS_PAGE: {
        auto p = m.getMembersPage();
        members_page_msg out;
        out.req = req;
        out.topic = topic(p.getTopic());
        auto ids = p.getIds();
        limit(ids.size(), l_.max_page_ids, "members page", "max_page_ids");
        out.ids.resize(ids.size());
        for (unsigned i = 0; i < ids.size(); ++i)
          fixed(ids[i], out.ids[i].bytes, "member id");
        out.next_cursor = cursor(p.getNextCursor(), "members next_cursor");
        return out;
      }
      case w::Message::TOPIC_EVENT: {
        auto e = m.getTopicEvent();
        topic_event_msg out;
        out.topic = topic(e.getTopic());
        fixed(e.getId(), out.id.bytes, "topic_event id");
        out.joined = e.getJoined();
        return out;
      }
      case w::Message::CIRCUIT_INCOMING: {
        auto p = m.getCircuitIncoming();
        circuit_incoming_msg out;
        out.circuit = p.getCircuit();
        fixed(p.getPeer(), out.from.bytes, "circuit_incoming peer");
        return out;
      }
      case w::Message::CIRCUIT_OPENED: {
        auto p = m.getCircuitOpened();
        circuit_opened_msg out;
        out.req = req;
        out.circuit = p.getCircuit();
        fixed(p.getPeer(), out.peer.bytes, "circuit_opened peer");
        return out;
      }
      case w::Message::CIRCUIT_CLOSED: {
        auto r = m.getCircuitClosed();
        // Unknown codes are kept as numbers: a newer relay may send codes
        // this build does not know; code_name says "unknown".
        return circuit_closed_msg{r.getCircuit(), static_cast<code>(r.getCode()),
                                  reason(r.getText(), "circuit_closed reason")};
      }
      case w::Message::REFUSED: {
        auto r = m.getRefused();
        return refused_msg{req, static_cast<code>(r.getCode()),
                           reason(r.getText(), "refused detail")};
      }
      case w::Message::RECONNECT:
        return reconnect_msg{m.getReconnect().getAfterMs()};
      case w::Message::GOODBYE: {
        auto r = m.getGoodbye();
        return goodbye_msg{static_cast<code>(r.getCode()), reason(r.getText(), "goodbye reason")};
      }
      case w::Message::PONG:
        return pong_msg{req};
      case w::Message::PRESENT:
        return present_msg{record(m.getPresent())};
    }
    return unknown_msg{req, static_cast<std::uint16_t>(m.which())};
  }

private:




  std::string topic(capnp::Data::Reader d) const {
    return bytes(d, l_.max_topic_bytes, "topic", "max_topic_bytes");
  }

  std::string reason(capnp::Text::Reader t, const char* what) const {
    return text(t, l_.max_reason_bytes, what, "max_reason_bytes");
  }

  static std::string cursor(capnp::Data::Reader d, const char* what) {
    if (d.size() != 0 && d.size() != 32)
      fail(std::string(what) + ": " + std::to_string(d.size()) + " bytes, expected 0 or 32");
    return std::string(view_of(d));
  }

  signed_record record(w::Record::Reader r) const {
    signed_record out;
    fixed(r.getId(), out.id.bytes, "record id");
    auto as = r.getAddresses();
    limit(as.size(), l_.max_addresses, "record addresses", "max_addresses");
    out.addresses.reserve(as.size());
    for (auto a : as)
      out.addresses.push_back(text(a, l_.max_address_bytes, "record address", "max_address_bytes"));
    out.expiry_ms = r.getExpiryMs();
    out.seq = r.getSeq();
    fixed(r.getSignature(), out.sig.bytes, "record signature");
    return out;
  }

  const wire_limits& l_;
};

constexpr const char* names[] = {
    "announce",       "lookup",           "join",          "leave",
    "members",        "watch",            "unwatch",       "open_circuit",
    "accept_circuit", "refuse_circuit",   "close_circuit", "ping",
    "circuit_data",   "welcome",          "ok",            "lookup_result",
    "members_page",   "topic_event",      "circuit_incoming", "circuit_opened",
    "circuit_closed", "refused",          "reconnect",     "goodbye",
    "pong",           "present",          "unknown"};
static_assert(std::size(names) == std::variant_size_v<relay_message>);

constexpr const char* code_names[] = {
    "none",          "rate_limited",     "limit_reached",     "not_found",
    "bad_record",    "forbidden",        "not_connected",     "peer_refused",
    "timeout",       "bad_request",      "unsupported",       "closed_by_peer",
    "byte_limit",    "duration_limit",   "peer_gone",         "replaced",
    "idle",          "abuse",            "shutdown",          "handshake_failed",
    "handshake_timeout", "transport"};
static_assert(std::size(code_names) == code_count);

} // namespace

const char* code_name(code c) {
  const auto i = static_cast<std::uint16_t>(c);
  return i > 0 && i < code_count ? code_names[i] : "unknown";
}

std::string encode_relay_message(const relay_message& m) {
  capnp::MallocMessageBuilder builder;
  put(builder.initRoot<w::Message>(), m);
  return protocol::detail::write_packed(builder);
}

std::optional<relay_message> decode_relay_message(std::string_view bytes, const wire_limits& l,
                                                  std::string* why) {
  return protocol::detail::read_packed<w::Message>(
      bytes, {l.max_message_bytes, l.traversal_limit_words, l.nesting_limit}, why,
      [&](w::Message::Reader root) { return decoder(l).read(root); });
}

const char* relay_message_name(std::size_t index) {
  return index < std::size(names) ? names[index] : "unknown";
}

const char* relay_message_name(const relay_message& m) { return relay_message_name(m.index()); }

std::uint64_t request_id_of(const relay_message& m) {
  return std::visit(
      [](const auto& x) -> std::uint64_t {
        if constexpr (detail::has_req<std::decay_t<decltype(x)>>::value)
          return x.req;
        else
          return 0;
      },
      m);
}

} // namespace kith::relay
