#include "kith/node/tcp_transport.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <deque>
#include <map>

namespace kith::node {

namespace asio = boost::asio;
using asio::ip::tcp;
using actors::conn_id;

std::optional<std::pair<std::string, std::uint16_t>> split_host_port(const std::string& s,
                                                                    bool allow_zero) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon + 1 >= s.size())
    return std::nullopt;
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    return std::nullopt;
  unsigned long port = 0;
  for (char c : s.substr(colon + 1)) {
    if (c < '0' || c > '9')
      return std::nullopt;
    port = port * 10 + static_cast<unsigned long>(c - '0');
    if (port > 65535)
      return std::nullopt;
  }
  if (port == 0 && !allow_zero)
    return std::nullopt;
  return std::make_pair(host, static_cast<std::uint16_t>(port));
}

struct tcp_transport::impl : std::enable_shared_from_this<tcp_transport::impl> {
  struct conn {
    tcp::socket sock;
    caf::actor owner;
    std::deque<std::string> out;
    std::size_t pending = 0;
    bool writing = false;
    bool reading = false; // a read is outstanding
    bool paused = false;  // the owner asked to stop reading (backpressure)
    std::size_t undelivered = 0; // read and sent to the owner, not yet acknowledged
    std::size_t unreported = 0;  // written to the kernel, not yet reported to the owner
    std::string buf;
    explicit conn(tcp::socket s) : sock(std::move(s)) {}
  };

  asio::io_context& io;
  tcp_options opts;
  std::unique_ptr<tcp::acceptor> acceptor;
  caf::actor listener_owner;
  std::map<conn_id, std::shared_ptr<conn>> conns;
  conn_id next_id = 1;
  std::size_t pending_total = 0; // unsent bytes of every connection
  bool down = false;

  impl(asio::io_context& i, tcp_options o) : io(i), opts(o) {}

  static std::string peer_text(const tcp::socket& s) {
    boost::system::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec)
      return "?";
    return ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  /// `reset`: close with a TCP reset instead of a graceful close, for a
  /// peer that does not read: the kernel then frees the bytes queued to it
  /// at once instead of probing a zero window for minutes.
  void drop(conn_id id, const std::string& reason, bool notify, bool reset = false) {
    auto it = conns.find(id);
    if (it == conns.end())
      return;
    auto c = it->second;
    conns.erase(it);
    pending_total -= c->pending;
    c->pending = 0;
    // Free the queue now (the closed socket sends nothing more), all but a
    // buffer a write in flight still points into.
    c->out.erase(c->out.begin() + (c->writing && !c->out.empty() ? 1 : 0), c->out.end());
    boost::system::error_code ec;
    if (reset)
      c->sock.set_option(asio::socket_base::linger(true, 0), ec);
    else
      c->sock.shutdown(tcp::socket::shutdown_both, ec);
    c->sock.close(ec);
    if (notify)
      caf::anon_send(c->owner, actors::closed_atom::value, id, reason);
  }

  void read(conn_id id, std::shared_ptr<conn> c) {
    c->reading = true;
    c->buf.resize(opts.read_chunk);
    c->sock.async_read_some(asio::buffer(c->buf),
                            [self = shared_from_this(), id, c](boost::system::error_code ec, std::size_t n) {
                              if (self->conns.count(id) == 0)
                                return;
                              if (ec) {
                                self->drop(id, ec == asio::error::eof ? "connection closed by peer"
                                                                      : ec.message(),
                                           true);
                                return;
                              }
                              c->undelivered += n;
                              caf::anon_send(c->owner, actors::bytes_atom::value, id, c->buf.substr(0, n));
                              c->reading = false;
                              self->read_if_allowed(id, c, self->opts.max_undelivered);
                            });
  }

  /// Reads again unless the owner paused the connection or more than
  /// `limit` bytes are still unacknowledged (resume() and consumed() read
  /// again once the reason is gone).
  void read_if_allowed(conn_id id, const std::shared_ptr<conn>& c, std::size_t limit) {
    if (!c->reading && !c->paused && c->undelivered <= limit)
      read(id, c);
  }

  void write_next(conn_id id, std::shared_ptr<conn> c) {
    if (c->writing || c->out.empty())
      return;
    c->writing = true;
    asio::async_write(c->sock, asio::buffer(c->out.front()),
                      [self = shared_from_this(), id, c](boost::system::error_code ec, std::size_t) {
                        c->writing = false;
                        if (self->conns.count(id) == 0)
                          return;
                        if (ec) {
                          self->drop(id, "write failed: " + ec.message(), true);
                          return;
                        }
                        const auto n = c->out.front().size();
                        c->pending -= n;
                        self->pending_total -= n;
                        c->out.pop_front();
                        // Reported in steps, and whenever the queue runs dry.
                        c->unreported += n;
                        if (c->unreported >= self->opts.read_chunk || c->out.empty()) {
                          caf::anon_send(c->owner, actors::written_atom::value, id,
                                         std::uint64_t{c->unreported});
                          c->unreported = 0;
                        }
                        self->write_next(id, c);
                      });
  }

  conn_id add(tcp::socket s, caf::actor owner) {
    boost::system::error_code ec;
    s.set_option(tcp::no_delay(true), ec);
    auto c = std::make_shared<conn>(std::move(s));
    c->owner = std::move(owner);
    const conn_id id = next_id++;
    conns.emplace(id, c);
    return id;
  }

  void accept() {
    acceptor->async_accept([self = shared_from_this()](boost::system::error_code ec, tcp::socket s) {
      if (self->down || !self->acceptor)
        return;
      if (!ec) {
        const auto addr = peer_text(s);
        auto id = self->add(std::move(s), self->listener_owner);
        caf::anon_send(self->listener_owner, actors::opened_atom::value, id, addr, false,
                       std::uint64_t{0});
        self->read(id, self->conns[id]);
      }
      self->accept();
    });
  }

  void dial(const std::string& address, caf::actor owner, std::uint64_t tag) {
    auto hp = split_host_port(address);
    if (!hp || down) {
      caf::anon_send(owner, actors::dialfail_atom::value, tag,
                     down ? std::string("shutting down")
                          : "not a host:port address: '" + address + "'");
      return;
    }
    auto resolver = std::make_shared<tcp::resolver>(io);
    resolver->async_resolve(
        hp->first, std::to_string(hp->second),
        [self = shared_from_this(), resolver, owner, tag, address](boost::system::error_code ec,
                                                                   tcp::resolver::results_type res) {
          if (ec) {
            caf::anon_send(owner, actors::dialfail_atom::value, tag,
                           "resolving " + address + ": " + ec.message());
            return;
          }
          auto sock = std::make_shared<tcp::socket>(self->io);
          asio::async_connect(*sock, res,
                              [self, sock, owner, tag, address](boost::system::error_code ec2,
                                                                const tcp::endpoint&) {
                                if (ec2 || self->down) {
                                  caf::anon_send(owner, actors::dialfail_atom::value, tag,
                                                 ec2 ? address + ": " + ec2.message()
                                                     : std::string("shutting down"));
                                  return;
                                }
                                auto id = self->add(std::move(*sock), owner);
                                caf::anon_send(owner, actors::opened_atom::value, id, address, true, tag);
                                self->read(id, self->conns[id]);
                              });
        });
  }

  void send(conn_id id, std::string bytes) {
    auto it = conns.find(id);
    if (it == conns.end())
      return;
    auto c = it->second;
    c->pending += bytes.size();
    pending_total += bytes.size();
    c->out.push_back(std::move(bytes));
    if (c->pending > opts.max_pending_write) {
      drop(id, "peer is not reading (" + std::to_string(c->pending) + " bytes unsent)", true, true);
      return;
    }
    write_next(id, c);
    while (pending_total > opts.max_pending_total && !conns.empty()) {
      auto most = std::max_element(conns.begin(), conns.end(), [](const auto& a, const auto& b) {
        return a.second->pending < b.second->pending;
      });
      drop(most->first,
           "slowest reader while " + std::to_string(pending_total) + " bytes are unsent in all (" +
               std::to_string(most->second->pending) + " to this peer)",
           true, true);
    }
  }

  void pause(conn_id id) {
    if (auto it = conns.find(id); it != conns.end())
      it->second->paused = true;
  }

  void resume(conn_id id) {
    auto it = conns.find(id);
    if (it == conns.end())
      return;
    auto c = it->second;
    c->paused = false;
    read_if_allowed(id, c, opts.max_undelivered);
  }

  void consumed(conn_id id, std::uint64_t n) {
    auto it = conns.find(id);
    if (it == conns.end())
      return;
    auto c = it->second;
    c->undelivered -= std::min<std::size_t>(c->undelivered, n);
    // Half the limit: one read per acknowledgement would otherwise follow
    // every chunk once the window is full.
    read_if_allowed(id, c, opts.max_undelivered / 2);
  }

  void close_all() {
    down = true;
    if (acceptor) {
      boost::system::error_code ec;
      acceptor->close(ec);
    }
    std::vector<conn_id> ids;
    for (auto& [id, c] : conns)
      ids.push_back(id);
    for (auto id : ids)
      drop(id, "shutting down", false);
  }
};

namespace {

actors::transport_actor::behavior_type bridge(actors::transport_actor::pointer,
                                              std::shared_ptr<tcp_transport::impl> im) {
  return {
      [im](actors::dial_atom, const std::string& address, const caf::actor& owner, std::uint64_t tag) {
        asio::post(im->io, [im, address, owner, tag] { im->dial(address, owner, tag); });
      },
      [im](actors::send_atom, conn_id id, std::string& bytes) {
        asio::post(im->io, [im, id, b = std::move(bytes)]() mutable { im->send(id, std::move(b)); });
      },
      [im](actors::close_atom, conn_id id, const std::string& reason) {
        asio::post(im->io, [im, id, reason] { im->drop(id, reason, false); });
      },
      [im](actors::close_atom, conn_id id, const std::string& reason, bool reset) {
        asio::post(im->io, [im, id, reason, reset] { im->drop(id, reason, false, reset); });
      },
      [im](actors::pause_atom, conn_id id) { asio::post(im->io, [im, id] { im->pause(id); }); },
      [im](actors::resume_atom, conn_id id) { asio::post(im->io, [im, id] { im->resume(id); }); },
      [im](actors::consumed_atom, conn_id id, std::uint64_t n) {
        asio::post(im->io, [im, id, n] { im->consumed(id, n); });
      },
  };
}

} // namespace

tcp_transport::tcp_transport(asio::io_context& io, caf::actor_system& sys, tcp_options o)
    : impl_(std::make_shared<impl>(io, o)) {
  actor_ = sys.spawn(bridge, impl_);
}

tcp_transport::~tcp_transport() = default;

std::variant<std::uint16_t, std::string> tcp_transport::listen(const std::string& host,
                                                               std::uint16_t port,
                                                               caf::actor owner) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec)
    return "not an IP address: '" + host + "'";
  auto acc = std::make_unique<tcp::acceptor>(impl_->io);
  tcp::endpoint ep(addr, port);
  acc->open(ep.protocol(), ec);
  if (!ec)
    acc->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec)
    acc->bind(ep, ec);
  if (!ec)
    acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message();
  const auto bound = acc->local_endpoint(ec).port();
  impl_->listener_owner = std::move(owner);
  impl_->acceptor = std::move(acc);
  asio::post(impl_->io, [im = impl_] { im->accept(); });
  return bound;
}

void tcp_transport::shutdown() {
  asio::post(impl_->io, [im = impl_] { im->close_all(); });
}

} // namespace kith::node
