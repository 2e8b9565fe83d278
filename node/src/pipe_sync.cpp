#include "kith/node/pipe_sync.hpp"

#include "kith/actors/node.hpp"
#include "kith/node/tcp_transport.hpp"

#include <sodium.h>

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iostream>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace kith::node {

namespace {

constexpr std::string_view pipe_magic = "KITHPIPE";

int complain(const std::string& what) {
  std::cerr << "kith sync: " << what << "\n";
  return 1;
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    auto w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_exact(int fd, char* p, std::size_t n) {
  while (n > 0) {
    auto r = ::read(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

int connect_to(const std::string& host, const std::string& port, std::string& why) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int e = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); e != 0) {
    why = gai_strerror(e);
    return -1;
  }
  int fd = -1;
  for (auto* a = res; a; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0)
      continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0)
      break;
    why = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  return fd;
}

} // namespace

int run_pipe_sync(const data_dir& home, const pipe_options& o) {
  std::signal(SIGPIPE, SIG_IGN); // a closed pipe is an error return, not a kill
  std::ifstream f(home.path() + "/peer.addr");
  std::string where;
  if (!(f >> where))
    return complain("no running node listens for peers in " + home.path() +
                    " (start `kith run`; a node run with --listen \"\" cannot sync over a pipe)");
  auto hp = split_host_port(where, false);
  if (!hp)
    return complain("bad address in " + home.path() + "/peer.addr: " + where);

  // Role agreement over the pipe.
  if (sodium_init() < 0)
    return complain("libsodium failed to initialise");
  char mine[16], theirs[16];
  std::memcpy(mine, pipe_magic.data(), 8);
  randombytes_buf(mine + 8, 8);
  if (!write_all(o.out_fd, mine, sizeof mine))
    return complain("cannot write to the pipe");
  if (!read_exact(o.in_fd, theirs, sizeof theirs))
    return complain("the pipe closed before the other end answered (is `kith sync --stdio` "
                    "running there?)");
  if (std::memcmp(theirs, pipe_magic.data(), 8) != 0)
    return complain("the other end of the pipe is not `kith sync --stdio`");
  const int order = std::memcmp(mine + 8, theirs + 8, 8);
  if (order == 0)
    return complain("both ends drew the same role bytes; run the command again");
  const bool initiator = order > 0;

  std::string why;
  int sock = connect_to(hp->first, std::to_string(hp->second), why);
  if (sock < 0)
    return complain("cannot reach the node at " + where + ": " + why);
  if (initiator && !write_all(sock, actors::pipe_initiate_preamble.data(),
                              actors::pipe_initiate_preamble.size()))
    return complain("the node closed the connection");
  std::cerr << "kith sync: connected the pipe to the node at " << where << " ("
            << (initiator ? "initiator" : "responder") << ")\n";

  pollfd fds[2] = {{o.in_fd, POLLIN, 0}, {sock, POLLIN, 0}};
  char buf[1 << 16];
  bool in_open = true;
  std::uint64_t to_node = 0, to_pipe = 0;
  const int timeout = o.idle_exit.count() > 0 ? static_cast<int>(o.idle_exit.count() * 1000) : -1;
  int rc = 0;
  for (;;) {
    fds[0].fd = in_open ? o.in_fd : -1;
    int n = ::poll(fds, 2, timeout);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = complain(std::string("poll: ") + std::strerror(errno));
      break;
    }
    if (n == 0) {
      std::cerr << "kith sync: idle for " << o.idle_exit.count() << " s, stopping\n";
      break;
    }
    if (in_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      auto r = ::read(o.in_fd, buf, sizeof buf);
      if (r <= 0) {
        in_open = false; // the other end is gone; the node notices the close
        break;
      }
      to_node += static_cast<std::uint64_t>(r);
      if (!write_all(sock, buf, static_cast<std::size_t>(r))) {
        rc = complain("the node closed the connection");
        break;
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      auto r = ::read(sock, buf, sizeof buf);
      if (r <= 0) {
        std::cerr << "kith sync: the node closed the connection\n";
        break;
      }
      to_pipe += static_cast<std::uint64_t>(r);
      if (!write_all(o.out_fd, buf, static_cast<std::size_t>(r))) {
        std::cerr << "kith sync: the pipe closed\n";
        break;
      }
    }
  }
  ::close(sock);
  std::cerr << "kith sync: done (" << to_node << " bytes in, " << to_pipe << " bytes out)\n";
  return rc;
}

} // namespace kith::node
