#ifndef HIPS_SERVICES_NET_STREAM_GUARD_H_
#define HIPS_SERVICES_NET_STREAM_GUARD_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace hips {

// Bounds the streaming calls (pushes and weight pulls) a server serves at
// once, and cancels a push stream that stalls: one that has not delivered a
// chunk for `idle` (its partial data is dropped with the call). What a
// server can be made to hold is then at most max_streams calls, each with
// at most one model's worth of buffer (docs/security.md). Thread-safe; a
// thread of its own watches the idle streams, joined by the destructor
// (after every slot was released).
class StreamGuard {
 public:
  // One open stream, released when destroyed (the call is done). Move-only;
  // a default-constructed slot holds nothing.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    ~Slot();
    // The stream made progress (a chunk arrived).
    void Progress();
    // The whole upload arrived: what is left is the server's answer, which
    // may wait for a round to close or for the tier above (an aggregator
    // acknowledges after HQ). That wait is not idleness: the stream is no
    // longer watched (its caller's deadline bounds it).
    void Arrived();

   private:
    friend class StreamGuard;
    Slot(StreamGuard* guard, int64_t id) : guard_(guard), id_(id) {}
    StreamGuard* guard_ = nullptr;
    int64_t id_ = 0;
  };

  // At most `max_streams` open at once (0: no limit), of them at most
  // `max_per_caller` by one caller (0: no limit); pushes whose upload makes
  // no progress for `idle` are cancelled (InfiniteDuration: never), each
  // calling `on_stall`.
  StreamGuard(int max_streams, absl::Duration idle, std::function<void()> on_stall = nullptr,
              int max_per_caller = 0);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

  // A slot for the call of `ctx` (watched for stalls if `watch_idle`) from
  // `caller` ("": not known), or RESOURCE_EXHAUSTED when max_streams are
  // open, or max_per_caller of `caller`'s.
  absl::StatusOr<Slot> Open(grpc::ServerContextBase* ctx, bool watch_idle,
                            const std::string& caller = "");

  int open() const;
  int64_t stalled() const;

 private:
  struct Stream {
    grpc::ServerContextBase* ctx = nullptr;
    bool watched = false;
    absl::Time last_progress;
    bool cancelling = false;  // TryCancel running outside the lock
    std::string caller;
  };
  void Progress(int64_t id);
  void Unwatch(int64_t id);
  void Close(int64_t id);
  void Watch();

  // How many members `caller` speaks for: the homes of a range
  // (HomeRange), else 1.
  static int64_t HomesOfCaller(absl::string_view caller);

  const int max_streams_;
  const int max_per_caller_;
  const absl::Duration idle_;
  const std::function<void()> on_stall_;
  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // a stream watched, a cancel done, or stop_
  absl::flat_hash_map<int64_t, Stream> streams_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int> per_caller_ ABSL_GUARDED_BY(mu_);  // open, by caller
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t stalled_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watcher_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_NET_STREAM_GUARD_H_
