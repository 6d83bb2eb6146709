"""The one way the test scripts wait: on a condition, for a bounded time.

wait_for(condition, seconds) calls condition() every `every` seconds until
it returns something true (which it returns) or `seconds` have passed
(None). Exceptions listed in `ignore` (a peer not answering yet) count as
"not yet". A condition is seen at most `every` late: what a test does next
(a kill at a version) happens close to when the condition began to hold.
"""
import time


def wait_for(condition, seconds, every=0.05, ignore=()):
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = condition()
            if value:
                return value
        except ignore:
            pass
        now = time.monotonic()
        if now >= deadline:
            return None
        time.sleep(min(every, deadline - now))
