#include "cli/listen_ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>

namespace hips {

namespace {

// Whether a TCP socket can bind 127.0.0.1:port now.
bool CanBind(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool bound = bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return bound;
}

}  // namespace

std::pair<int, int> EphemeralPortRange() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  int high = 0;
  if (in >> low >> high && low >= 1024 && low <= high && high <= 65535) return {low, high};
  return {32768, 60999};
}

int ListenPorts::Next() {
  const int below = EphemeralPortRange().first;
  if (below <= kLowest + 100) return 0;  // (no room below the range)
  std::uniform_int_distribution<int> pick(kLowest, below - 1);
  for (int attempt = 0; attempt < 64; ++attempt) {
    const int port = pick(rng_);
    if (handed_out_.count(port) > 0 || !CanBind(port)) continue;
    handed_out_.insert(port);
    return port;
  }
  return 0;
}

}  // namespace hips
