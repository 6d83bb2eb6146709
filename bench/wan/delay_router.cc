// hips-wan-delay: the delay stage of the WAN testbed (bench/wan, issue 17).
//
//   hips-wan-delay --tun=tun-a,tun-b --delay_ms=40
//
// Attaches to each named TUN device (made beforehand with `ip tuntap add
// mode tun`), and writes every packet it reads from a device back into the
// same device `--delay_ms` later, in arrival order. The testbed routes a
// link's packets into its device by policy routing (by incoming interface);
// a packet written back arrives "from" the device and is routed by the main
// table to where it was going. The kernel has no netem here: this is the
// one-way delay of each direction of each link, and the rate is shaped by
// tbf in the kernel. Runs until SIGINT or SIGTERM; prints the packets and
// bytes it delayed per device on exit. Needs CAP_NET_ADMIN (root).

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Packet {
  Clock::time_point due;
  std::vector<char> bytes;
};

struct Device {
  std::string name;
  int fd = -1;
  std::deque<Packet> queue;  // due times ascend: one constant delay
  size_t queued_bytes = 0;
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t dropped = 0;
};

volatile sig_atomic_t stop = 0;

void OnSignal(int) { stop = 1; }

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "hips-wan-delay: %s\nusage: hips-wan-delay --tun=NAME[,NAME...] --delay_ms=MS "
               "[--max_queue_bytes=N]\n",
               why);
  std::exit(2);
}

int OpenTun(const std::string& name) {
  const int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

struct Args {
  std::vector<std::string> names;
  long delay_ms = -1;
  // A bound on what one device holds, so that a sender faster than the
  // link cannot grow the queue without end (the bottleneck's tbf drops
  // further on anyway): 64 MiB is 10 s of 50 Mbit/s.
  size_t max_queue_bytes = 64 << 20;
};

void ParseTunList(const std::string& list, std::vector<std::string>* names) {
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = list.find(',', start);
    const std::string name =
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (name.empty() || name.size() >= IFNAMSIZ) Usage("a --tun name is empty or too long");
    names->push_back(name);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--tun=", 0) == 0) {
      ParseTunList(arg.substr(6), &args.names);
    } else if (arg.rfind("--delay_ms=", 0) == 0) {
      char* end = nullptr;
      args.delay_ms = std::strtol(arg.c_str() + 11, &end, 10);
      if (*end != '\0' || arg.size() == 11 || args.delay_ms < 0 || args.delay_ms > 10000) {
        Usage("--delay_ms must be an integer in [0, 10000]");
      }
    } else if (arg.rfind("--max_queue_bytes=", 0) == 0) {
      char* end = nullptr;
      const long long v = std::strtoll(arg.c_str() + 18, &end, 10);
      if (*end != '\0' || v < 65536) Usage("--max_queue_bytes must be an integer >= 65536");
      args.max_queue_bytes = static_cast<size_t>(v);
    } else {
      Usage(("unknown argument " + arg).c_str());
    }
  }
  if (args.names.empty() || args.delay_ms < 0) Usage("--tun and --delay_ms are required");
  return args;
}

// Writes back every packet due by `now`; the next due time (max: none).
Clock::time_point WriteDue(std::vector<Device>& devices, Clock::time_point now) {
  Clock::time_point next = Clock::time_point::max();
  for (Device& d : devices) {
    while (!d.queue.empty() && d.queue.front().due <= now) {
      Packet& p = d.queue.front();
      // A full device queue (EAGAIN) drops the packet, as a router would.
      if (write(d.fd, p.bytes.data(), p.bytes.size()) < 0 && errno != EAGAIN) {
        std::fprintf(stderr, "hips-wan-delay: write to %s: %s\n", d.name.c_str(),
                     std::strerror(errno));
      }
      d.queued_bytes -= p.bytes.size();
      d.queue.pop_front();
    }
    if (!d.queue.empty() && d.queue.front().due < next) next = d.queue.front().due;
  }
  return next;
}

// Until `next` (at most 1 s: a signal is seen within it).
timespec TimeoutUntil(Clock::time_point next) {
  if (next == Clock::time_point::max()) return {1, 0};
  const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(next - Clock::now());
  const int64_t ns = std::max<int64_t>(0, wait.count());
  return {static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
}

// Drains what the device holds (at most 256 packets a turn); each packet is
// due `delay` after it came.
void QueueArrivals(Device& d, std::chrono::milliseconds delay, size_t max_queue_bytes,
                   std::vector<char>& buffer) {
  for (int n = 0; n < 256; ++n) {
    const ssize_t got = read(d.fd, buffer.data(), buffer.size());
    if (got <= 0) break;
    if (d.queued_bytes + got > max_queue_bytes) {
      ++d.dropped;
      continue;
    }
    d.queue.push_back(
        {Clock::now() + delay, std::vector<char>(buffer.begin(), buffer.begin() + got)});
    d.queued_bytes += got;
    ++d.packets;
    d.bytes += got;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::vector<Device> devices(args.names.size());
  for (size_t i = 0; i < args.names.size(); ++i) {
    devices[i].name = args.names[i];
    devices[i].fd = OpenTun(args.names[i]);
    if (devices[i].fd < 0) {
      std::fprintf(stderr, "hips-wan-delay: cannot attach to TUN device %s: %s\n",
                   args.names[i].c_str(), std::strerror(errno));
      return 1;
    }
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  const auto delay = std::chrono::milliseconds(args.delay_ms);
  std::vector<pollfd> fds(devices.size());
  std::vector<char> buffer(65536);
  std::printf("hips-wan-delay: delaying %zu devices by %ld ms\n", devices.size(), args.delay_ms);
  std::fflush(stdout);
  while (!stop) {
    const timespec timeout = TimeoutUntil(WriteDue(devices, Clock::now()));
    for (size_t i = 0; i < devices.size(); ++i) fds[i] = {devices[i].fd, POLLIN, 0};
    const int ready = ppoll(fds.data(), fds.size(), &timeout, nullptr);
    if (ready < 0 && errno != EINTR) {
      std::perror("hips-wan-delay: ppoll");
      return 1;
    }
    if (ready <= 0) continue;
    for (size_t i = 0; i < devices.size(); ++i) {
      if ((fds[i].revents & POLLIN) != 0) {
        QueueArrivals(devices[i], delay, args.max_queue_bytes, buffer);
      }
    }
  }
  for (const Device& d : devices) {
    std::printf("hips-wan-delay: %s: %llu packets, %llu bytes delayed, %llu dropped\n",
                d.name.c_str(), static_cast<unsigned long long>(d.packets),
                static_cast<unsigned long long>(d.bytes),
                static_cast<unsigned long long>(d.dropped));
  }
  return 0;
}
