#include "bench/tcp_transfer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace hips::bench {
namespace {

constexpr int64_t kWriteBytes = int64_t{1} << 20;

absl::Status Errno(const char* what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

bool WriteAll(int fd, const char* data, int64_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, static_cast<size_t>(std::min(size, kWriteBytes)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= n;
  }
  return true;
}

bool ReadAll(int fd, char* data, int64_t size) {
  while (size > 0) {
    const ssize_t n = read(fd, data, static_cast<size_t>(size));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= n;
  }
  return true;
}

// The receiving process: reads `transfers` transfers of `bytes` each into
// one buffer, answering a byte after each. Returns the exit code.
int Receive(int listener, int64_t bytes, int transfers) {
  const int fd = accept(listener, nullptr, nullptr);
  if (fd < 0) return 1;
  std::unique_ptr<char[]> buffer(new char[bytes]);
  std::memset(buffer.get(), 0, bytes);  // fault the pages in, as a reused buffer is
  for (int t = 0; t < transfers; ++t) {
    char done = 1;
    if (!ReadAll(fd, buffer.get(), bytes) || !WriteAll(fd, &done, 1)) return 1;
  }
  close(fd);
  return 0;
}

}  // namespace

absl::StatusOr<std::vector<double>> TimeTcpTransfers(int64_t bytes, int repeats) {
  if (bytes <= 0 || repeats <= 0) return absl::InvalidArgumentError("nothing to transfer");
  Fd listener(socket(AF_INET, SOCK_STREAM, 0));
  if (listener.get() < 0) return Errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener.get(), 1) != 0 ||
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Errno("listen on 127.0.0.1");
  }
  const int transfers = repeats + 1;  // one warm-up
  const pid_t child = fork();
  if (child < 0) return Errno("fork");
  if (child == 0) _exit(Receive(listener.get(), bytes, transfers));

  std::vector<double> seconds;
  absl::Status status;
  {
    Fd fd(socket(AF_INET, SOCK_STREAM, 0));
    const int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      status = Errno("connect");
    } else {
      std::unique_ptr<char[]> buffer(new char[bytes]);
      std::memset(buffer.get(), 1, bytes);
      for (int t = 0; t < transfers && status.ok(); ++t) {
        const absl::Time start = absl::Now();
        char done = 0;
        if (!WriteAll(fd.get(), buffer.get(), bytes) || !ReadAll(fd.get(), &done, 1)) {
          status = absl::InternalError("the receiving process went away");
        } else if (t > 0) {
          seconds.push_back(absl::ToDoubleSeconds(absl::Now() - start));
        }
      }
    }
  }
  int wstatus = 0;
  while (waitpid(child, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!status.ok()) return status;
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::InternalError("the receiving process failed");
  }
  return seconds;
}

}  // namespace hips::bench
