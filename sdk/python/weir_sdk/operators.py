"""Base classes for the four operator kinds and `export`, which wires a class
to the component's exports (the `Filter`/`Map`/`Aggregate`/`Sink` class
componentize-py looks up in the app module, and `KeyedState` for aggregates
built against the `keyed-aggregate-operator` world).

The generated bindings (`wit_world`) are optional imports, so everything else
in the SDK runs under plain CPython too.
"""

import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .columns import (BINARY, BOOLEAN, FLOAT32, FLOAT64, INT32, INT64, LIST_UTF8, TIMESTAMP, UTF8, Batch,
                      Column, Field, Selection, bitmap_len, pack_bits)
from .config import parse_config
from .errors import (Failed, InvalidConfig, OperatorError, Permanent, Rejection, RejectedRows, Retryable,
                     SinkError)
from .state import StateEntry


class Operator:
    """Common base. Subclasses may declare `CONFIG = {key: default}` (see
    `weir_sdk.config`); the constructor receives the config dict."""

    CONFIG: Optional[Dict[str, Any]] = None
    KIND = ""

    def __init__(self, config: Dict[str, Any]):
        self.config = config

    def reads(self) -> Optional[List[str]]:
        """Columns the operator reads; the host passes only those. None = all."""
        return None


class FilterOperator(Operator):
    """Keeps or drops rows. `evaluate` returns a `Selection` (or bytes / bools)."""

    KIND = "filter"

    def evaluate(self, batch: Batch) -> Union[Selection, bytes, Iterable[bool]]:
        raise NotImplementedError


class MapOutput:
    """A map's result: the output batch and the rejected rows (`(row, reason)`)."""

    __slots__ = ("batch", "rejected")

    def __init__(self, batch: Batch, rejected: Iterable[Union[Rejection, Tuple[int, str]]] = ()):
        self.batch = batch
        self.rejected = [Rejection(int(r), str(m)) for r, m in rejected]


class MapOperator(Operator):
    """Transforms a batch row for row. With `reads()` declared, return only the
    columns you add or replace; the host merges them into the full batch."""

    KIND = "map"

    def process(self, batch: Batch) -> Union[Batch, MapOutput]:
        raise NotImplementedError


class AggregateOperator(Operator):
    """Stateful fold: `process` returns zero or more result batches."""

    KIND = "aggregate"

    def process(self, batch: Batch, watermark: Optional[int]) -> Union[None, Batch, Sequence[Batch]]:
        raise NotImplementedError

    def snapshot(self) -> bytes:
        raise NotImplementedError

    def restore(self, state: bytes) -> None:
        raise NotImplementedError

    def keyed_state(self) -> Any:
        """The state as keyed entries, for incremental checkpoints: return the
        `Windows` (or other keyed state, see `weir_sdk.state`) that holds the
        state, e.g. `return self.windows`, and build against the
        `keyed-aggregate-operator` world. None (default): each checkpoint
        stores the whole `snapshot()` as one entry."""
        return None


class SinkOperator(Operator):
    """Writes batches out; raise `Retryable`, `Permanent` or `RejectedRows` on failure."""

    KIND = "sink"

    def write(self, batch: Batch) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------
# Conversion between the generated WIT types and the SDK's.

# componentize-py makes the generated modules importable only while it builds
# (pre-initialisation), so they are imported here, at module import time.
try:
    from componentize_py_types import Err as _Err
    try:
        from wit_world.imports import types as _wit
    except ImportError:  # worlds that also import wasi:http name it after its package
        from wit_world.imports import weir_operator_types as _wit
except ImportError:  # plain CPython (unit tests): no bindings
    _Err = None
    _wit = None
try:
    from wit_world.imports import map_types as _map_types
except ImportError:
    _map_types = None
try:
    from wit_world.imports import sink_types as _sink_types
except ImportError:
    _sink_types = None
try:  # the keyed-aggregate-operator world only
    from wit_world.exports import keyed_state as _keyed_state
except ImportError:
    _keyed_state = None


def _bindings():
    if _wit is None:
        raise RuntimeError("weir_sdk: no generated bindings (not running inside a component)")
    return _wit


_FROM_WIT = {
    "DataType_Boolean": BOOLEAN, "DataType_Int32": INT32, "DataType_Int64": INT64,
    "DataType_Float32": FLOAT32, "DataType_Float64": FLOAT64, "DataType_Utf8": UTF8,
    "DataType_Binary": BINARY, "DataType_Timestamp": TIMESTAMP, "DataType_ListUtf8": LIST_UTF8,
}
_TO_WIT = {v: k for k, v in _FROM_WIT.items()}


def batch_from_wit(b) -> Batch:
    """The SDK view of a WIT `batch` (no buffer is copied)."""
    n = b.num_rows
    pairs = []
    for f, c in zip(b.schema, b.columns):
        t = _FROM_WIT[type(f.data_type).__name__]
        unit = tz = None
        if t == TIMESTAMP:
            unit = f.data_type.value.unit.name.lower()
            tz = f.data_type.value.timezone
        items = None
        if c.items is not None:
            it = c.items
            items = Column(UTF8, max(len(it.offsets) // 4 - 1, 0), data=it.values, offsets=it.offsets,
                           validity=it.validity)
        col = Column(t, n, data=c.values, offsets=c.offsets, validity=c.validity, items=items, unit=unit,
                     timezone=tz)
        pairs.append((Field(f.name, t, f.nullable, unit, tz), col))
    return Batch(pairs, num_rows=n)


def _buf(b) -> bytes:
    return b if isinstance(b, bytes) else bytes(b)


def batch_to_wit(batch: Batch):
    """The WIT `batch` for an SDK batch."""
    types = _bindings()
    schema, columns = [], []
    for f, c in batch:
        cls = getattr(types, _TO_WIT[f.type])
        if f.type == TIMESTAMP:
            unit = types.TimeUnit[(f.unit or "millisecond").upper()]
            dt = cls(types.TimestampType(unit, f.timezone))
        else:
            dt = cls()
        schema.append(types.Field(f.name, dt, f.nullable))
        items = None
        if c.items is not None:
            it = c.items
            items = types.ListItems(None if it.validity is None else _buf(it.validity), _buf(it.offsets),
                                    _buf(it.data))
        columns.append(types.Column(None if c.validity is None else _buf(c.validity), _buf(c.offsets),
                                    _buf(c.data), items))
    return types.Batch(schema, columns, batch.num_rows)


def _operator_error(e: OperatorError):
    types = _bindings()
    cls = {"invalid-config": types.OperatorError_InvalidConfig,
           "invalid-input": types.OperatorError_InvalidInput}.get(e.kind, types.OperatorError_Failed)
    return cls(e.message)


def _err(value):
    return _Err(value)


def _selection_bytes(sel, n: int) -> bytes:
    if isinstance(sel, Selection):
        if sel.length != n:
            raise Failed("selection has %d rows, batch has %d" % (sel.length, n))
        return sel.to_bytes()
    if isinstance(sel, (bytes, bytearray, memoryview)):
        return bytes(sel)
    bits = pack_bits(sel)
    if len(bits) != bitmap_len(n):
        raise Failed("selection has %d bytes, batch of %d rows needs %d" % (len(bits), n, bitmap_len(n)))
    return bits


class _Exported:
    """Shared `init`: parses the config, creates the operator, reports `reads`."""

    cls: type = Operator
    instance: Any = None  # one operator per component instance (class attribute)

    def init(self, config: str):
        types = _bindings()
        cls = type(self).cls
        try:
            parsed = parse_config(config, getattr(cls, "CONFIG", None))
            op = cls(parsed)
            reads = op.reads()
        except OperatorError as e:
            raise _err(_operator_error(e))
        except (KeyError, TypeError, ValueError) as e:
            raise _err(types.OperatorError_InvalidConfig("%s: %s" % (type(e).__name__, e)))
        type(self).instance = op
        return types.OperatorInfo(None if reads is None else [str(r) for r in reads])

    def _op(self):
        op = type(self).instance
        if op is None:
            raise _err(_bindings().OperatorError_Failed("operator called before init"))
        return op


class _Filter(_Exported):
    def evaluate(self, input):
        op = self._op()
        try:
            return _selection_bytes(op.evaluate(batch_from_wit(input)), input.num_rows)
        except OperatorError as e:
            raise _err(_operator_error(e))


class _Map(_Exported):
    def process(self, input):
        map_types = _map_types
        types = _bindings()
        op = self._op()
        try:
            out = op.process(batch_from_wit(input))
        except OperatorError as e:
            raise _err(_operator_error(e))
        if isinstance(out, Batch):
            out = MapOutput(out)
        rejected = [types.RowRejection(r.row, r.reason) for r in out.rejected]
        return map_types.MapOutput(batch_to_wit(out.batch), rejected)


class _Aggregate(_Exported):
    def process(self, input, watermark):
        op = self._op()
        try:
            out = op.process(batch_from_wit(input), watermark)
        except OperatorError as e:
            raise _err(_operator_error(e))
        if out is None:
            return []
        if isinstance(out, Batch):
            out = [out]
        return [batch_to_wit(b) for b in out]

    def snapshot(self):
        try:
            return bytes(self._op().snapshot())
        except OperatorError as e:
            raise _err(_operator_error(e))

    def restore(self, state):
        try:
            self._op().restore(state)
        except OperatorError as e:
            raise _err(_operator_error(e))


class _KeyedState:
    """The `keyed-state` export of an aggregate: the operator's
    `keyed_state()` entries, or its whole snapshot as the one entry (key
    empty) when it returns None (as the Rust SDK does)."""

    aggregate: type = _Aggregate  # the `Aggregate` export class holding the instance

    def _op(self):
        op = type(self).aggregate.instance
        if op is None:
            raise _err(_bindings().OperatorError_Failed("operator called before init"))
        return op

    def _entries(self, changes: bool):
        op = self._op()
        try:
            keyed = op.keyed_state()
            if keyed is None:
                entries = [StateEntry(b"", bytes(op.snapshot()))]
            else:
                entries = keyed.changes() if changes else keyed.entries()
        except OperatorError as e:
            raise _err(_operator_error(e))
        cls = _keyed_state.StateEntry
        return [cls(bytes(key), None if value is None else bytes(value)) for key, value in entries]

    def snapshot_entries(self):
        return self._entries(False)

    def snapshot_changes(self):
        return self._entries(True)

    def restore_entries(self, entries):
        op = self._op()
        try:
            keyed = op.keyed_state()
            if keyed is not None:
                keyed.restore_entries([StateEntry(e.key, e.value) for e in entries])
                return
            whole = [e.value for e in entries if not e.key and e.value is not None]
            if whole:
                op.restore(whole[0])
        except OperatorError as e:
            raise _err(_operator_error(e))


class _Sink(_Exported):
    def write(self, input):
        sink_types = _sink_types
        types = _bindings()
        op = self._op()
        try:
            op.write(batch_from_wit(input))
        except Retryable as e:
            raise _err(sink_types.SinkError_Retryable(e.message))
        except Permanent as e:
            raise _err(sink_types.SinkError_Permanent(e.message))
        except RejectedRows as e:
            raise _err(sink_types.SinkError_RejectedRows([types.RowRejection(r.row, r.reason) for r in e.rows]))
        except OperatorError as e:
            # Like the Rust SDK: `failed` is retryable, config/input errors are permanent.
            if e.kind == "failed":
                raise _err(sink_types.SinkError_Retryable("failed: " + e.message))
            raise _err(sink_types.SinkError_Permanent(e.kind.replace("-", " ") + ": " + e.message))


_EXPORTS = {"filter": ("Filter", _Filter), "map": ("Map", _Map), "aggregate": ("Aggregate", _Aggregate),
            "sink": ("Sink", _Sink)}


def export(cls):
    """Class decorator: makes `cls` (a subclass of FilterOperator, MapOperator,
    AggregateOperator or SinkOperator) the component's operator, by defining
    the export class componentize-py expects (`Filter`, `Map`, `Aggregate` or
    `Sink`) in the module that defines `cls`; for an aggregate also
    `KeyedState`, used when the component is built against the
    `keyed-aggregate-operator` world (see `AggregateOperator.keyed_state`).
    Returns `cls` unchanged."""
    kind = getattr(cls, "KIND", "")
    if kind not in _EXPORTS:
        raise TypeError("%s must subclass FilterOperator, MapOperator, AggregateOperator or SinkOperator"
                        % cls.__name__)
    name, base = _EXPORTS[kind]
    module = sys.modules[cls.__module__]
    wrapper = type(name, (base,), {"cls": cls, "instance": None, "__module__": cls.__module__})
    setattr(module, name, wrapper)
    if kind == "aggregate":
        keyed = type("KeyedState", (_KeyedState,), {"aggregate": wrapper, "__module__": cls.__module__})
        setattr(module, "KeyedState", keyed)
    return cls
