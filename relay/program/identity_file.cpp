#include "identity_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace kith::relay::program {

namespace fs = std::filesystem;

namespace {
constexpr const char* key_header = "kith-identity-v1";

bool write_fd(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}
} // namespace

std::string identity_path(const std::string& data_dir) {
  return data_dir + "/identity.key";
}

bool write_atomic(const std::string& path, const std::string& text, int mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return false;
  const bool ok = write_fd(fd, text) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::variant<protocol::identity, identity_error> create_identity(const std::string& data_dir) {
  using k = identity_error::kind;
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec)
    return identity_error{k::unreadable, "cannot create " + data_dir + ": " + ec.message()};
  ::chmod(data_dir.c_str(), 0700);
  const auto path = identity_path(data_dir);
  if (fs::exists(path, ec))
    return identity_error{k::exists, "a relay identity already exists in " + path +
                                         "; refusing to overwrite it (clients may pin this "
                                         "relay's id). Move it away first to start over."};
  const auto id = protocol::identity::generate();
  const std::string text =
      std::string(key_header) + "\n" +
      protocol::to_hex({reinterpret_cast<const char*>(id.seed().data()), id.seed().size()}) +
      "\n" + protocol::to_text(id.pub()) + "\n";
  if (!write_atomic(path, text, 0600))
    return identity_error{k::unreadable, "cannot write " + path + ": " + std::strerror(errno)};
  return id;
}

std::variant<protocol::identity, identity_error> load_identity(const std::string& data_dir) {
  using k = identity_error::kind;
  const auto path = identity_path(data_dir);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return identity_error{k::missing, "no relay identity in " + data_dir +
                                          "; run `kith-relay init --data-dir " + data_dir + "`"};
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return identity_error{k::unreadable, path + " is readable by others (mode " + mode +
                                             "); run `chmod 600 " + path + "`"};
  }
  std::ifstream in(path);
  if (!in)
    return identity_error{k::unreadable, "cannot read " + path};
  std::string header, hex, text;
  std::getline(in, header);
  std::getline(in, hex);
  std::getline(in, text);
  if (header != key_header || hex.size() != 64)
    return identity_error{k::invalid, path + " is not a kith identity file"};
  protocol::key_seed seed{};
  for (std::size_t i = 0; i < seed.size(); ++i) {
    const auto byte = hex.substr(2 * i, 2);
    if (byte.find_first_not_of("0123456789abcdef") != std::string::npos)
      return identity_error{k::invalid, path + " is damaged (bad hex)"};
    seed[i] = static_cast<std::uint8_t>(std::stoul(byte, nullptr, 16));
  }
  auto id = protocol::identity::from_seed(seed);
  if (!text.empty() && text != protocol::to_text(id.pub()))
    return identity_error{k::invalid, path + " is damaged: its key does not match its id line"};
  return id;
}

} // namespace kith::relay::program
