"""The errors hips.Worker raises for what retrying does not cure."""


class HipsError(Exception):
    """A refusal that retrying does not cure (another model, a bad token...)."""


class HipsRpcError(HipsError):
    """A call to an aggregator that failed for good: its status is final
    (a wrong token, a malformed request...), or the worker gave up after
    max_attempts attempts. Names the RPC, the status and the aggregator, so
    that the message alone says what to look at."""

    def __init__(self, rpc, code, details, aggregator, attempts, final):
        self.rpc = rpc  # "PullWeights", "PushGradient"
        self.code = code  # a grpc.StatusCode
        self.details = details
        self.aggregator = aggregator  # the address of the last attempt
        self.attempts = attempts
        self.final = final  # the status was final, not the attempts used up
        why = ("a final status: not retried" if final
               else f"gave up after {attempts} failed attempts in a row: max_attempts={attempts}")
        super().__init__(f"{rpc} to aggregator {aggregator}: {code.name}: {details} ({why})")
