#ifndef HIPS_SERVICES_TESTING_WAIT_FOR_H_
#define HIPS_SERVICES_TESTING_WAIT_FOR_H_

#include <functional>

#include "absl/time/time.h"

namespace hips {

// Waits until `condition` holds or `timeout` has passed; true if it held.
// For tests that wait for another thread or process to get somewhere (a
// status to show a version, a port file to appear) when there is no event
// to wait on: it looks again after 1 ms, then ever less often (at most every
// 50 ms), so a condition that holds soon is seen soon and one that takes
// long costs little. A test that has an event waits on the event instead
// (absl::Notification, absl::Mutex::Await, WeightsBoard::WaitFor).
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);

}  // namespace hips

#endif  // HIPS_SERVICES_TESTING_WAIT_FOR_H_
