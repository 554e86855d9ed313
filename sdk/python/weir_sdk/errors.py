"""Errors an operator raises for a whole call, and sink outcomes.

Raise them from operator methods; the SDK turns them into the WIT
`operator-error` / `sink-error` values. Any other exception is a bug: it
traps the instance (like a Rust panic) and its traceback reaches the host log.
"""

from typing import Iterable, List, NamedTuple, Tuple, Union


class OperatorError(Exception):
    """Base class of the errors below."""

    kind = "failed"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidConfig(OperatorError):
    """The configuration given to `init` is unusable (the pipeline does not start)."""

    kind = "invalid-config"


class InvalidInput(OperatorError):
    """The input batch lacks the columns or types the operator needs."""

    kind = "invalid-input"


class Failed(OperatorError):
    """Any other failure; the host retries, then bisects the batch."""

    kind = "failed"


class Rejection(NamedTuple):
    """One row a map or sink refuses, with the reason (goes to the dead-letter topic)."""

    row: int
    reason: str


class SinkError(Exception):
    """Base class of the sink outcomes other than success."""


class Retryable(SinkError):
    """The destination is temporarily unavailable: the host retries the batch with backoff."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Permanent(SinkError):
    """The batch can never be written: every row goes to the dead-letter topic."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class RejectedRows(SinkError):
    """Every row was written except these (`(row, reason)` pairs)."""

    def __init__(self, rows: Iterable[Union[Rejection, Tuple[int, str]]]):
        self.rows: List[Rejection] = [Rejection(int(r), str(m)) for r, m in rows]
        super().__init__("%d rows rejected" % len(self.rows))
