"""Keyed aggregate state, for incremental checkpoints (contract 0.1.1,
`weir:operator/keyed-state`): the host stores an aggregate's state as one
record per key and, at each checkpoint, writes only the keys changed or
removed since the previous one.

`weir_sdk.window.Windows` is such a state; an aggregate whose state is a
`Windows` returns it from `AggregateOperator.keyed_state()` and is built
against the `keyed-aggregate-operator` world. Any other aggregate built
against that world is checkpointed as one entry holding its whole
`snapshot()` (under the empty key).

A keyed state is any object with these three methods (the Rust SDK's
`KeyedState` trait):

    changes() -> list of StateEntry     keys changed or removed since the last
                                        call of any of the three
    entries() -> list of StateEntry     every key (values all present); starts
                                        change tracking afresh
    restore_entries(entries) -> None    replaces the state with entries from
                                        `entries()` and `changes()` of an
                                        earlier instance, merged by the host
"""

from typing import NamedTuple, Optional


class StateEntry(NamedTuple):
    """One key of the state: its serialised value, or None when removed."""

    key: bytes
    value: Optional[bytes]
