#ifndef HIPS_CLI_LISTEN_PORTS_H_
#define HIPS_CLI_LISTEN_PORTS_H_

#include <cstdint>
#include <random>
#include <set>
#include <utility>

// The ports hips local has its servers listen on, chosen below the
// kernel's ephemeral range. A server that dies is restarted on the same port
// (its peers know it there); a port of the ephemeral range may meanwhile
// be taken as the local end of an outgoing connection (seen in CI: an
// aggregator killed by the chaos test could not listen again, "Address
// already in use", and spent its restarts in half a second). The kernel
// never hands out a port below the range that way (docs/faults.md).

namespace hips {

// The kernel's ephemeral ports, [low, high] (from
// /proc/sys/net/ipv4/ip_local_port_range; Linux's default 32768-60999 when
// it cannot be read or makes no sense).
std::pair<int, int> EphemeralPortRange();

class ListenPorts {
 public:
  // The lowest port handed out.
  static constexpr int kLowest = 10000;
  explicit ListenPorts(uint64_t seed) : rng_(seed) {}

  // A port in [kLowest, the ephemeral range's low end) that a loopback
  // socket could bind just now and that was not handed out before; 0 when
  // none was found in a bounded number of tries (the child then lets the
  // kernel choose, as before).
  int Next();

 private:
  std::mt19937_64 rng_;
  std::set<int> handed_out_;
};

}  // namespace hips

#endif  // HIPS_CLI_LISTEN_PORTS_H_
