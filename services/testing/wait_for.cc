#include "services/testing/wait_for.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace hips {

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    if (condition()) return true;
    const absl::Time now = absl::Now();
    if (now >= give_up) return false;
    absl::SleepFor(std::min(pause, give_up - now));
    pause = std::min(2 * pause, absl::Milliseconds(50));
  }
}

}  // namespace hips
