"""Which failed calls hips.Worker repeats, how long it waits in between and
when it gives up: the C++ worker's rules (services/time/retry.{h,cc},
worker/worker.cc PushWithRetry and Loop).

Not thread-safe: each Retries belongs to the training thread.
"""
import random

import grpc

from .errors import HipsRpcError

# IsRetryable in services/time/retry.cc: the aggregator is down, restarting
# or overloaded, the call timed out or was cancelled (to fail over), or the
# stream broke (INTERNAL: a push that ended without an acknowledgement;
# UNKNOWN: a connection lost mid-call). Everything else is a refusal of the
# request itself (UNAUTHENTICATED, INVALID_ARGUMENT, FAILED_PRECONDITION...)
# and repeating it would be refused again.
RETRYABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
})


def is_retryable(code):
    return code in RETRYABLE


class Backoff:
    """Exponential backoff with full jitter: each wait is uniform in [0, b),
    b doubling from min_s up to max_s, so that the workers of a restarted
    aggregator do not all come back in the same instant."""

    def __init__(self, min_s, max_s, uniform=random.uniform):
        self._min_s, self._max_s = min_s, max_s
        self._bound = min_s
        self._uniform = uniform

    def next(self):
        wait = self._uniform(0.0, self._bound)
        self._bound = min(2 * self._bound, self._max_s)
        return wait

    def reset(self):
        self._bound = self._min_s


class Retries:
    """The attempts of one operation (getting the next weights, pushing one
    gradient): after each failure, either the wait before the next attempt
    or HipsRpcError when the failure is final or `max_attempts` attempts
    have failed in a row. max_attempts=None retries for as long as the
    worker runs, as the C++ worker does."""

    def __init__(self, min_backoff_s, max_backoff_s, max_attempts=None, uniform=random.uniform):
        self._backoff = Backoff(min_backoff_s, max_backoff_s, uniform)
        self._max_attempts = max_attempts
        self.failures = 0  # failed attempts in a row

    def failed(self, rpc, error, aggregator):
        """The wait (seconds) before attempting `rpc` again after `error` (a
        grpc.RpcError) from `aggregator`; raises HipsRpcError instead when
        that would be pointless or the attempts are used up."""
        self.failures += 1
        code = error.code()
        if not is_retryable(code):
            raise HipsRpcError(rpc, code, error.details(), aggregator, self.failures, final=True)
        if self._max_attempts is not None and self.failures >= self._max_attempts:
            raise HipsRpcError(rpc, code, error.details(), aggregator, self.failures, final=False)
        return self._backoff.next()

    def succeeded(self):
        self.failures = 0
        self._backoff.reset()
