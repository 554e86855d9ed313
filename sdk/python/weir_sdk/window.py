"""Event-time windows for aggregate operators, so window bookkeeping is not
rewritten per operator: the operator supplies the key and the fold (an
`Accumulator` class); `Windows` assigns rows to tumbling, hopping or session
windows, keeps one accumulator per (window, key), and hands out the final
results once the host's watermark has passed a window's end. Its state
snapshots to JSON bytes for the host's checkpoints and hot swaps, and, as a
keyed state (`weir_sdk.state`), hands the host one entry per key with only
the keys changed since the previous checkpoint (incremental checkpoints).

Same semantics as the Rust SDK's `weir_sdk::window` (windows aligned to the
epoch; a session ends `gap_ms` after its last row and merges with the
sessions a row bridges), and the same snapshot layout for string keys.

    from weir_sdk.window import Accumulator, WindowSpec, Windows

    class Revenue(Accumulator):
        def __init__(self):
            self.orders, self.total = 0, 0.0
        def add(self, amount):
            self.orders += 1
            self.total += amount
        def merge(self, other):
            self.orders += other.orders
            self.total += other.total

    windows = Windows(WindowSpec.tumbling(3_600_000), Revenue)
    windows.add("berlin", 1_000, 25.0)
    windows.add("berlin", 3_599_999, 75.0)
    assert windows.close(3_599_999) == []            # the hour is still open
    [(window, key, acc)] = windows.close(3_600_000)
    assert (acc.orders, acc.total) == (2, 100.0)
"""

import json
from typing import Any, Dict, Hashable, List, NamedTuple, Optional, Tuple

from .columns import INT64, TIMESTAMP, Column
from .errors import InvalidConfig, InvalidInput
from .state import StateEntry

_SCALE = {"second": (1000, 1), "millisecond": (1, 1), "microsecond": (1, 1000), "nanosecond": (1, 1_000_000)}


def event_times_ms(column: Column) -> List[Optional[int]]:
    """Event time of each row in Unix milliseconds (None for nulls), from an
    int64 column (already ms) or a timestamp column of any unit (sub-ms
    units are floored)."""
    if column.type == INT64:
        return column.to_list()
    if column.type != TIMESTAMP:
        raise InvalidInput("event-time column is %s; expected int64 (Unix ms) or timestamp" % column.type)
    mul, div = _SCALE.get(column.unit or "millisecond", (1, 1))
    if mul == 1 and div == 1:
        return column.to_list()
    return [None if v is None else v * mul // div for v in column.to_list()]


class Window(NamedTuple):
    """A window: `[start_ms, end_ms)` in event time (sorts by start, then end)."""

    start_ms: int
    end_ms: int


class WindowSpec:
    """Which windows a row belongs to: `WindowSpec.tumbling(size_ms)`,
    `WindowSpec.hopping(size_ms, slide_ms)` or `WindowSpec.session(gap_ms)`."""

    __slots__ = ("type", "size_ms", "slide_ms", "gap_ms")

    def __init__(self, type: str, size_ms: int = 0, slide_ms: int = 0, gap_ms: int = 0):
        if type not in ("tumbling", "hopping", "session"):
            raise InvalidConfig("unknown window type %r (tumbling, hopping or session)" % type)
        self.type = type
        self.size_ms = int(size_ms)
        self.slide_ms = int(slide_ms)
        self.gap_ms = int(gap_ms)

    @classmethod
    def tumbling(cls, size_ms: int) -> "WindowSpec":
        """Fixed, non-overlapping windows of `size_ms`, aligned to the epoch."""
        return cls("tumbling", size_ms=size_ms)

    @classmethod
    def hopping(cls, size_ms: int, slide_ms: int) -> "WindowSpec":
        """Windows of `size_ms` starting every `slide_ms` (a row is in `size_ms / slide_ms` of them)."""
        return cls("hopping", size_ms=size_ms, slide_ms=slide_ms)

    @classmethod
    def session(cls, gap_ms: int) -> "WindowSpec":
        """Per key, activity separated by gaps shorter than `gap_ms`; a session ends `gap_ms` after its last row."""
        return cls("session", gap_ms=gap_ms)

    def __repr__(self) -> str:
        return "WindowSpec(%s)" % ", ".join("%s=%r" % kv for kv in self.to_json().items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowSpec) and self.to_json() == other.to_json()

    def assign(self, t: int) -> List[Window]:
        """The fixed (tumbling or hopping) windows that contain `t`, oldest
        first; empty for sessions, which depend on the other rows of the key."""
        if self.type == "tumbling":
            start = t // self.size_ms * self.size_ms
            return [Window(start, start + self.size_ms)]
        if self.type == "hopping":
            size, slide = self.size_ms, self.slide_ms
            start = t // slide * slide
            windows = []
            while start > t - size:
                windows.append(Window(start, start + size))
                start -= slide
            windows.reverse()
            return windows
        return []

    def validate(self) -> "WindowSpec":
        """Checks the sizes (positive, a hop no longer than the window); raises InvalidConfig."""
        ok = {"tumbling": self.size_ms > 0,
              "hopping": self.size_ms > 0 and 0 < self.slide_ms <= self.size_ms,
              "session": self.gap_ms > 0}[self.type]
        if not ok:
            raise InvalidConfig("invalid window %r: sizes must be positive and slide <= size" % self)
        return self

    def to_json(self) -> Dict[str, Any]:
        """The Rust SDK's serde form, e.g. `{"type": "hopping", "size_ms": 300000, "slide_ms": 60000}`."""
        if self.type == "tumbling":
            return {"type": "tumbling", "size_ms": self.size_ms}
        if self.type == "hopping":
            return {"type": "hopping", "size_ms": self.size_ms, "slide_ms": self.slide_ms}
        return {"type": "session", "gap_ms": self.gap_ms}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "WindowSpec":
        return cls(data["type"], data.get("size_ms", 0), data.get("slide_ms", 0), data.get("gap_ms", 0))


class Accumulator:
    """The operator's fold. Subclass it: `__init__()` (no arguments) starts
    an empty result, `add(row)` adds a row, `merge(other)` adds another
    accumulator of the same key (sessions merge when a row bridges them).

    Snapshots use `to_json()` / `from_json(data)`; the defaults copy the
    instance's attributes, so override them when an attribute is not plain
    JSON (a set, a `HyperLogLog`)."""

    def add(self, row: Any) -> None:
        raise NotImplementedError

    def merge(self, other: "Accumulator") -> None:
        raise NotImplementedError

    def to_json(self) -> Any:
        return dict(vars(self))

    @classmethod
    def from_json(cls, data: Any) -> "Accumulator":
        acc = cls()
        vars(acc).update(data)
        return acc


class Windows:
    """Open windows and their accumulators, by key. Keys are usually strings
    (they must sort among themselves; whole snapshots turn them into
    strings, keyed entries keep str, int, float, bool, None and tuples of
    them).

    As a keyed state (`changes()`, `entries()`, `restore_entries()`): one
    entry per key holding its open windows. From the first of these calls
    on, the keys `add`, `get`, `touch` and `close` touched since the last
    one are tracked; a key whose windows all closed is removed (an entry
    with value None)."""

    __slots__ = ("spec", "accumulator", "open", "changed")

    def __init__(self, spec: WindowSpec, accumulator: type):
        self.spec = spec
        self.accumulator = accumulator
        # Per key, its open windows (sorted by start) with their accumulators.
        self.open: Dict[Hashable, List[Tuple[Window, Any]]] = {}
        # Keys changed (or removed) since the last checkpoint; None until the
        # host first asks for entries (a pipeline without checkpoints never
        # does, so nothing accumulates there).
        self.changed: Optional[set] = None

    def add(self, key: Hashable, t: int, row: Any) -> None:
        """Adds `row` with event time `t` (ms) under `key`."""
        self.touch(key)
        windows = self.open.setdefault(key, [])
        if self.spec.type == "session":
            start, end = t, t + self.spec.gap_ms
            acc = self.accumulator()
            acc.add(row)
            kept = []
            for window, other in windows:  # merge every open session this row touches
                if window.start_ms <= end and start <= window.end_ms:
                    start, end = min(start, window.start_ms), max(end, window.end_ms)
                    acc.merge(other)
                else:
                    kept.append((window, other))
            kept.append((Window(start, end), acc))
            kept.sort(key=lambda pair: pair[0])
            windows[:] = kept
            return
        for window in self.spec.assign(t):
            i = _find(windows, window)
            if i < len(windows) and windows[i][0] == window:
                windows[i][1].add(row)
            else:
                acc = self.accumulator()
                acc.add(row)
                windows.insert(i, (window, acc))

    def is_late(self, t: int, watermark: int) -> bool:
        """Whether a row at `t` would only land in windows the `watermark`
        already closed (a late row: drop, dead-letter or side-output it)."""
        if self.spec.type == "session":
            return t + self.spec.gap_ms <= watermark
        return all(w.end_ms <= watermark for w in self.spec.assign(t))

    def close(self, watermark: int) -> List[Tuple[Window, Hashable, Any]]:
        """Removes and returns every window whose end is at or before
        `watermark`: `(window, key, accumulator)`, by window end, then key."""
        closed = []
        for key in list(self.open):
            windows = self.open[key]
            still = []
            for window, acc in windows:
                if window.end_ms <= watermark:
                    closed.append((window, key, acc))
                else:
                    still.append((window, acc))
            if len(still) == len(windows):
                continue
            self.touch(key)
            if still:
                windows[:] = still
            else:
                del self.open[key]
        closed.sort(key=lambda c: (c[0].end_ms, c[1], c[0].start_ms))
        return closed

    def get(self, key: Hashable, window: Window) -> Optional[Any]:
        """The accumulator of an open window of `key` (to read or flag it:
        early updates, alerts sent once), or None. Marks the key changed
        (the caller may change the accumulator), like the Rust `get_mut`."""
        windows = self.open.get(key)
        if not windows:
            return None
        i = _find(windows, window)
        if i < len(windows) and windows[i][0] == window:
            self.touch(key)
            return windows[i][1]
        return None

    def open_windows(self, key: Hashable) -> List[Tuple[Window, Any]]:
        """The open windows of `key` with their accumulators (sorted by start),
        to read; after changing one in place, call `touch(key)`."""
        return list(self.open.get(key, ()))

    def touch(self, key: Hashable) -> None:
        """Marks `key` changed, so the next checkpoint writes it (once the
        host started asking for changes)."""
        if self.changed is not None:
            self.changed.add(key)

    def len(self) -> int:
        """Open (window, key) pairs: the state size to bound and report."""
        return sum(len(w) for w in self.open.values())

    __len__ = len

    def snapshot(self) -> bytes:
        """The state as JSON bytes, for an aggregate's `snapshot`. Same layout
        as the Rust SDK's: `{"spec": ..., "open": {key: [[{"start_ms", "end_ms"}, acc], ...]}}`."""
        state = {
            "spec": self.spec.to_json(),
            "open": {str(k): [[w._asdict(), acc.to_json()] for w, acc in ws]
                     for k, ws in sorted(self.open.items(), key=lambda kv: kv[0])},
        }
        return json.dumps(state, separators=(",", ":")).encode("utf-8")

    def restore(self, state: bytes) -> None:
        """Replaces the state (and the spec) with `snapshot()` bytes, for an
        aggregate's `restore`; InvalidInput when they are not such a state."""
        try:
            data = json.loads(bytes(state).decode("utf-8"))
            spec = WindowSpec.from_json(data["spec"])
            from_json = self.accumulator.from_json
            open_ = {}
            for key, windows in data["open"].items():
                pairs = [(Window(int(w["start_ms"]), int(w["end_ms"])), from_json(acc)) for w, acc in windows]
                pairs.sort(key=lambda pair: pair[0])
                if pairs:
                    open_[key] = pairs
        except (ValueError, KeyError, TypeError, AttributeError, InvalidConfig) as e:
            raise InvalidInput("window state: %s: %s" % (type(e).__name__, e)) from None
        self.spec, self.open = spec, open_
        self.changed = None  # the host takes every entry after a whole restore

    # Keyed state (weir_sdk.state): one entry per key. The key is the key as
    # UTF-8 JSON (`"alice"`, `7`, `["eu", 3]` for a tuple); the value is the
    # key's open windows as JSON, the list a whole snapshot holds under that
    # key: `[[{"start_ms": ..., "end_ms": ...}, acc.to_json()], ...]`.

    def _entry(self, key: Hashable) -> StateEntry:
        windows = self.open.get(key)
        value = None
        if windows:
            value = _json([[w._asdict(), acc.to_json()] for w, acc in windows])
        return StateEntry(_json(key), value)

    def changes(self) -> List[StateEntry]:
        """The keys changed (value: their open windows) or removed (value
        None) since the last `changes()`, `entries()` or `restore_entries()`;
        every key present on the first call (tracking starts there)."""
        changed, self.changed = self.changed, set()
        if changed is None:
            return [self._entry(key) for key in self.open]
        return [self._entry(key) for key in changed]

    def entries(self) -> List[StateEntry]:
        """Every key with its open windows; starts change tracking afresh."""
        self.changed = set()
        return [self._entry(key) for key in self.open]

    def restore_entries(self, entries) -> None:
        """Replaces the open windows with `(key, value)` entries from
        `entries()` and `changes()` (the spec stays); InvalidInput when they
        are not such entries."""
        from_json = self.accumulator.from_json
        open_ = {}
        try:
            for key, value in entries:
                if value is None:
                    continue
                pairs = [(Window(int(w["start_ms"]), int(w["end_ms"])), from_json(acc))
                         for w, acc in json.loads(bytes(value).decode("utf-8"))]
                if pairs:
                    pairs.sort(key=lambda pair: pair[0])
                    open_[_hashable(json.loads(bytes(key).decode("utf-8")))] = pairs
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InvalidInput("window state entry: %s: %s" % (type(e).__name__, e)) from None
        self.open, self.changed = open_, set()


def _json(value: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII unescaped, as serde_json and JS write it)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _hashable(key: Any) -> Hashable:
    """A key read back from JSON: lists (tuples when written) become tuples."""
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _find(windows: List[Tuple[Window, Any]], window: Window) -> int:
    """Index of `window` in the start-sorted list, or where to insert it."""
    lo, hi = 0, len(windows)
    while lo < hi:
        mid = (lo + hi) // 2
        if windows[mid][0] < window:
            lo = mid + 1
        else:
            hi = mid
    return lo
