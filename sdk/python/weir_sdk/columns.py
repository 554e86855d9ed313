"""Batches, columns, builders and selections over weir's Arrow-layout buffers.

Pure Python (no generated bindings), so operator logic can be unit-tested with
plain CPython. Buffers are little-endian, which is also the byte order of
wasm32 and of every host CPython runs on in practice.
"""

from array import array
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from .errors import InvalidInput

# Logical types (the WIT `data-type` cases).
BOOLEAN = "boolean"
INT32 = "int32"
INT64 = "int64"
FLOAT32 = "float32"
FLOAT64 = "float64"
UTF8 = "utf8"
BINARY = "binary"
TIMESTAMP = "timestamp"
LIST_UTF8 = "list-utf8"

TYPES = (BOOLEAN, INT32, INT64, FLOAT32, FLOAT64, UTF8, BINARY, TIMESTAMP, LIST_UTF8)

# Fixed-width types: memoryview / array.array format and byte width.
_FORMATS = {INT32: ("i", 4), INT64: ("q", 8), FLOAT32: ("f", 4), FLOAT64: ("d", 8), TIMESTAMP: ("q", 8)}
_VARIABLE = (UTF8, BINARY)
TIME_UNITS = ("second", "millisecond", "microsecond", "nanosecond")

_BIT_CHARS = bytes.maketrans(b"\x00\x01", b"01")


def bitmap_len(n: int) -> int:
    """Bytes of a bitmap of `n` bits."""
    return (n + 7) // 8


def pack_bits(bools: Iterable[Any]) -> bytes:
    """Packs truthy/falsy items into an LSB-first bitmap (Arrow's layout)."""
    flags = bytes(bytearray(map(bool, bools)))
    if not flags:
        return b""
    return int(flags[::-1].translate(_BIT_CHARS), 2).to_bytes(bitmap_len(len(flags)), "little")


def unpack_bits(bitmap: bytes, n: int) -> List[bool]:
    """The first `n` bits of an LSB-first bitmap as a list of bools."""
    if n == 0:
        return []
    text = format(int.from_bytes(bytes(bitmap[: bitmap_len(n)]), "little"), "0%db" % (bitmap_len(n) * 8))
    return [c == "1" for c in text[::-1][:n]]


def count_bits(bitmap: bytes, n: int) -> int:
    """Set bits among the first `n` bits of a bitmap."""
    if n == 0:
        return 0
    return (int.from_bytes(bytes(bitmap[: bitmap_len(n)]), "little") & ((1 << n) - 1)).bit_count()


def _and_bitmaps(a: bytes, b: bytes, n: int) -> bytes:
    size = bitmap_len(n)
    value = int.from_bytes(bytes(a[:size]), "little") & int.from_bytes(bytes(b[:size]), "little")
    return value.to_bytes(size, "little")


class Field:
    """A column's name, logical type and nullability (plus unit/time zone for timestamps)."""

    __slots__ = ("name", "type", "nullable", "unit", "timezone")

    def __init__(self, name: str, type: str, nullable: bool = True, unit: Optional[str] = None,
                 timezone: Optional[str] = None):
        if type not in TYPES:
            raise ValueError("unknown data type %r (expected one of %s)" % (type, ", ".join(TYPES)))
        if type == TIMESTAMP:
            unit = unit or "millisecond"
            if unit not in TIME_UNITS:
                raise ValueError("unknown time unit %r" % unit)
        self.name = name
        self.type = type
        self.nullable = nullable
        self.unit = unit
        self.timezone = timezone

    def __repr__(self) -> str:
        extra = "" if self.type != TIMESTAMP else ", unit=%r, timezone=%r" % (self.unit, self.timezone)
        return "Field(%r, %r, nullable=%r%s)" % (self.name, self.type, self.nullable, extra)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Field) and all(getattr(self, s) == getattr(other, s) for s in Field.__slots__)


class Strings(Sequence):
    """A lazy sequence over a utf8 (or binary) column: each item is decoded on access.

    Null rows read as "" (b"" for binary); use `Column.is_valid` or
    `Column.to_list()` to see nulls.
    """

    __slots__ = ("_offsets", "_data", "_len", "_binary")

    def __init__(self, offsets: memoryview, data: bytes, length: int, binary: bool = False):
        self._offsets = offsets
        self._data = data
        self._len = length
        self._binary = binary

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._len))]
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError("row %d out of range (%d rows)" % (i, self._len))
        raw = self._data[self._offsets[i]:self._offsets[i + 1]]
        return bytes(raw) if self._binary else str(raw, "utf-8")

    def __iter__(self) -> Iterator:
        data, offs = self._data, self._offsets
        if self._binary:
            for i in range(self._len):
                yield bytes(data[offs[i]:offs[i + 1]])
        else:
            for i in range(self._len):
                yield str(data[offs[i]:offs[i + 1]], "utf-8")


class Column:
    """One column: Arrow buffers (`data`, `offsets`, `validity`) and typed views over them.

    Read with `values()` (a zero-copy memoryview for numbers, a list of bools,
    or a lazy `Strings` sequence), `value(i)` / `to_list()` (None for nulls),
    `is_valid(i)`. Build with the class methods (`Column.float64([...])`, ...).
    """

    __slots__ = ("type", "length", "data", "offsets", "validity", "items", "unit", "timezone", "_view")

    def __init__(self, type: str, length: int, data: bytes = b"", offsets: bytes = b"",
                 validity: Optional[bytes] = None, items: Optional["Column"] = None,
                 unit: Optional[str] = None, timezone: Optional[str] = None):
        self.type = type
        self.length = length
        self.data = data
        self.offsets = offsets
        self.validity = validity
        self.items = items
        self.unit = unit
        self.timezone = timezone
        self._view = None

    # -- reading ---------------------------------------------------------

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return "Column(%s, %d rows, %d nulls)" % (self.type, self.length, self.null_count)

    @property
    def null_count(self) -> int:
        """Number of null rows."""
        if self.validity is None:
            return 0
        return self.length - count_bits(self.validity, self.length)

    def is_valid(self, i: int) -> bool:
        """Whether row `i` is not null."""
        v = self.validity
        return v is None or bool((v[i >> 3] >> (i & 7)) & 1)

    def is_null(self, i: int) -> bool:
        """Whether row `i` is null."""
        return not self.is_valid(i)

    def valid(self) -> List[bool]:
        """One bool per row, True = not null."""
        if self.validity is None:
            return [True] * self.length
        return unpack_bits(self.validity, self.length)

    def values(self):
        """The values, ignoring nulls (a null row holds an unspecified value):

        - int32/int64/float32/float64/timestamp: a memoryview of the buffer cast
          to `'i'`/`'q'`/`'f'`/`'d'`/`'q'` (no copy);
        - boolean: a list of bools;
        - utf8 / binary: a lazy `Strings` sequence of str / bytes;
        - list-utf8: a list of lists of str.
        """
        if self._view is not None:
            return self._view
        t = self.type
        if t in _FORMATS:
            fmt, width = _FORMATS[t]
            view = memoryview(self.data)[: self.length * width].cast("B").cast(fmt)
        elif t == BOOLEAN:
            view = unpack_bits(self.data, self.length)
        elif t in _VARIABLE:
            view = Strings(self._offsets_view(), self.data, self.length, binary=(t == BINARY))
        elif t == LIST_UTF8:
            offs = self._offsets_view()
            strings = self.items.values() if self.items is not None else []
            view = [list(strings[offs[i]:offs[i + 1]]) for i in range(self.length)]
        else:  # pragma: no cover
            raise InvalidInput("unsupported data type %s" % t)
        self._view = view
        return view

    def _offsets_view(self) -> memoryview:
        return memoryview(self.offsets)[: (self.length + 1) * 4].cast("B").cast("i")

    def value(self, i: int):
        """Row `i` as a Python value, None when null."""
        if not self.is_valid(i):
            return None
        return self.values()[i]

    def to_list(self) -> list:
        """All rows as Python values, None for nulls."""
        vals = self.values()
        if self.validity is None:
            return list(vals)
        return [v if ok else None for v, ok in zip(vals, self.valid())]

    def _expect(self, *types: str):
        if self.type not in types:
            raise InvalidInput("column is %s, expected %s" % (self.type, "/".join(types)))
        return self.values()

    def float64_values(self) -> memoryview:
        """The float64 values (memoryview `'d'`); InvalidInput for another type."""
        return self._expect(FLOAT64)

    def float32_values(self) -> memoryview:
        """The float32 values (memoryview `'f'`)."""
        return self._expect(FLOAT32)

    def int64_values(self) -> memoryview:
        """The int64 values (memoryview `'q'`)."""
        return self._expect(INT64)

    def int32_values(self) -> memoryview:
        """The int32 values (memoryview `'i'`)."""
        return self._expect(INT32)

    def timestamp_values(self) -> memoryview:
        """The timestamp values in the column's `unit` (memoryview `'q'`)."""
        return self._expect(TIMESTAMP)

    def bool_values(self) -> List[bool]:
        """The boolean values as a list of bools."""
        return self._expect(BOOLEAN)

    def str_values(self) -> Strings:
        """The utf8 values, decoded lazily."""
        return self._expect(UTF8)

    def numbers(self) -> Sequence:
        """The values of any numeric column (int32/int64/float32/float64)."""
        return self._expect(INT32, INT64, FLOAT32, FLOAT64)

    # -- building --------------------------------------------------------

    @staticmethod
    def _split_nulls(values, validity):
        """(values without None, validity bitmap or None)."""
        if isinstance(values, (array, memoryview, bytes, bytearray)):
            return values, validity
        values = values if isinstance(values, list) else list(values)
        if validity is None and None in values:
            validity = pack_bits(v is not None for v in values)
            values = [v for v in values]
            for i, v in enumerate(values):
                if v is None:
                    values[i] = 0
        return values, validity

    @staticmethod
    def _check_validity(validity, n: int):
        if validity is None:
            return None
        if not isinstance(validity, (bytes, bytearray, memoryview)):
            validity = pack_bits(validity)  # a sequence of bools
        validity = bytes(validity)
        if len(validity) > bitmap_len(n):
            validity = validity[: bitmap_len(n)]
        if len(validity) != bitmap_len(n):
            raise ValueError("validity bitmap has %d bytes, expected %d" % (len(validity), bitmap_len(n)))
        return validity

    @classmethod
    def _fixed(cls, type: str, values, validity, **kw) -> "Column":
        fmt, width = _FORMATS[type]
        values, validity = cls._split_nulls(values, validity)
        if isinstance(values, array):
            if values.typecode != fmt and not (fmt == "q" and values.typecode in ("l",) and values.itemsize == 8):
                values = array(fmt, values)
            data = values.tobytes()
        elif isinstance(values, memoryview):
            data = values.tobytes() if values.format in (fmt, "<" + fmt) else array(fmt, values).tobytes()
        elif isinstance(values, (bytes, bytearray)):
            data = bytes(values)
        else:
            data = array(fmt, values).tobytes()
        if len(data) % width:
            raise ValueError("%s buffer of %d bytes is not a multiple of %d" % (type, len(data), width))
        n = len(data) // width
        return cls(type, n, data=data, validity=cls._check_validity(validity, n), **kw)

    @classmethod
    def float64(cls, values, validity=None) -> "Column":
        """A float64 column from floats (None = null), an `array('d')` or a memoryview.

        `validity` may be a bitmap (bytes) or a sequence of bools.
        """
        return cls._fixed(FLOAT64, values, validity)

    @classmethod
    def float32(cls, values, validity=None) -> "Column":
        """A float32 column."""
        return cls._fixed(FLOAT32, values, validity)

    @classmethod
    def int64(cls, values, validity=None) -> "Column":
        """An int64 column from ints (None = null), an `array('q')` or a memoryview."""
        return cls._fixed(INT64, values, validity)

    @classmethod
    def int32(cls, values, validity=None) -> "Column":
        """An int32 column."""
        return cls._fixed(INT32, values, validity)

    @classmethod
    def timestamp(cls, values, unit: str = "millisecond", timezone: Optional[str] = None, validity=None) -> "Column":
        """A timestamp column of int64 values in `unit`."""
        return cls._fixed(TIMESTAMP, values, validity, unit=unit, timezone=timezone)

    @classmethod
    def boolean(cls, values, validity=None) -> "Column":
        """A boolean column from bools (None = null)."""
        values, validity = cls._split_nulls(values, validity)
        values = list(values)
        n = len(values)
        return cls(BOOLEAN, n, data=pack_bits(values), validity=cls._check_validity(validity, n))

    @classmethod
    def _variable(cls, type: str, values, validity) -> "Column":
        values = list(values)
        if validity is None and None in values:
            validity = pack_bits(v is not None for v in values)
        if type == UTF8:
            encoded = [b"" if v is None else v.encode("utf-8") for v in values]
        else:
            encoded = [b"" if v is None else bytes(v) for v in values]
        offsets = array("i", [0])
        total = 0
        for e in encoded:
            total += len(e)
            offsets.append(total)
        n = len(values)
        return cls(type, n, data=b"".join(encoded), offsets=offsets.tobytes(),
                   validity=cls._check_validity(validity, n))

    @classmethod
    def utf8(cls, values, validity=None) -> "Column":
        """A utf8 column from str (None = null)."""
        return cls._variable(UTF8, values, validity)

    @classmethod
    def binary(cls, values, validity=None) -> "Column":
        """A binary column from bytes (None = null)."""
        return cls._variable(BINARY, values, validity)

    @classmethod
    def list_utf8(cls, values, validity=None) -> "Column":
        """A list<utf8> column from lists of str (None = null list)."""
        values = list(values)
        if validity is None and None in values:
            validity = pack_bits(v is not None for v in values)
        flat: List[Optional[str]] = []
        offsets = array("i", [0])
        for v in values:
            if v is not None:
                flat.extend(v)
            offsets.append(len(flat))
        n = len(values)
        return cls(LIST_UTF8, n, offsets=offsets.tobytes(), items=cls.utf8(flat),
                   validity=cls._check_validity(validity, n))

    @classmethod
    def from_values(cls, type: str, values, validity=None) -> "Column":
        """A column of the given logical type (see the type-specific builders)."""
        builder = {
            BOOLEAN: cls.boolean, INT32: cls.int32, INT64: cls.int64, FLOAT32: cls.float32,
            FLOAT64: cls.float64, UTF8: cls.utf8, BINARY: cls.binary, TIMESTAMP: cls.timestamp,
            LIST_UTF8: cls.list_utf8,
        }[type]
        return builder(values, validity=validity)


class StringBuilder:
    """Appends strings (or None) one by one and produces a utf8 column."""

    def __init__(self):
        self._parts: List[bytes] = []
        self._offsets = array("i", [0])
        self._valid: List[bool] = []
        self._total = 0

    def append(self, value: Optional[str]) -> None:
        if value is None:
            self._valid.append(False)
        else:
            b = value.encode("utf-8")
            self._parts.append(b)
            self._total += len(b)
            self._valid.append(True)
        self._offsets.append(self._total)

    def __len__(self) -> int:
        return len(self._valid)

    def finish(self) -> Column:
        n = len(self._valid)
        validity = None if all(self._valid) else pack_bits(self._valid)
        return Column(UTF8, n, data=b"".join(self._parts), offsets=self._offsets.tobytes(), validity=validity)


class Batch:
    """Named columns of equal length.

    Read: `batch.column("name")` or `batch["name"]` (InvalidInput when
    missing), `batch.num_rows`, `batch.fields`, `batch.names`, iteration over
    `(field, column)` pairs. Build: `Batch({"a": Column.int64([...]), ...})`
    or `Batch([(Field(...), column), ...])`; all columns must have one length.
    """

    __slots__ = ("fields", "columns", "num_rows", "_index")

    def __init__(self, columns: Union[Dict[str, Column], Iterable[Tuple[Union[str, Field], Column]]] = (),
                 num_rows: Optional[int] = None):
        pairs = columns.items() if isinstance(columns, dict) else columns
        self.fields: List[Field] = []
        self.columns: List[Column] = []
        for key, col in pairs:
            if not isinstance(col, Column):
                raise TypeError("column %r is %s, expected weir_sdk.Column" % (key, type(col).__name__))
            field = key if isinstance(key, Field) else Field(key, col.type, True, col.unit, col.timezone)
            if field.type != col.type:
                raise ValueError("field %r is %s but its column is %s" % (field.name, field.type, col.type))
            self.fields.append(field)
            self.columns.append(col)
        lengths = {len(c) for c in self.columns}
        if len(lengths) > 1:
            raise ValueError("columns have different lengths: %s" % sorted(lengths))
        if num_rows is None:
            num_rows = lengths.pop() if lengths else 0
        elif lengths and lengths != {num_rows}:
            raise ValueError("columns have %s rows, batch has %d" % (sorted(lengths), num_rows))
        self.num_rows = num_rows
        self._index = {f.name: i for i, f in enumerate(self.fields)}

    def __len__(self) -> int:
        return self.num_rows

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[Tuple[Field, Column]]:
        return iter(zip(self.fields, self.columns))

    def __getitem__(self, name: str) -> Column:
        return self.column(name)

    def __repr__(self) -> str:
        return "Batch(%d rows, %s)" % (self.num_rows, ", ".join("%s: %s" % (f.name, f.type) for f in self.fields))

    @property
    def names(self) -> List[str]:
        return [f.name for f in self.fields]

    def column(self, name: str) -> Column:
        """The column called `name`; raises InvalidInput when there is none."""
        i = self._index.get(name)
        if i is None:
            raise InvalidInput("no column `%s` in the batch (columns: %s)" % (name, ", ".join(self.names)))
        return self.columns[i]

    def field(self, name: str) -> Field:
        """The field called `name`; raises InvalidInput when there is none."""
        self.column(name)
        return self.fields[self._index[name]]

    def get(self, name: str) -> Optional[Column]:
        """The column called `name`, or None."""
        i = self._index.get(name)
        return None if i is None else self.columns[i]

    def rows(self) -> Iterator[Dict[str, Any]]:
        """Rows as dicts of Python values (slow; for sinks and debugging)."""
        lists = [c.to_list() for c in self.columns]
        names = self.names
        for i in range(self.num_rows):
            yield {name: values[i] for name, values in zip(names, lists)}


class Selection:
    """Which rows a filter keeps: an LSB-first bitmap, one bit per row, 1 = keep."""

    __slots__ = ("bits", "length")

    def __init__(self, length: int, bits: Optional[Union[bytes, bytearray]] = None):
        self.length = length
        if bits is None:
            self.bits = bytearray(bitmap_len(length))
        else:
            if len(bits) != bitmap_len(length):
                raise ValueError("selection of %d rows needs %d bytes, got %d" % (length, bitmap_len(length), len(bits)))
            self.bits = bytearray(bits)

    @classmethod
    def all(cls, length: int) -> "Selection":
        """Keeps every row."""
        value = (1 << length) - 1
        return cls(length, value.to_bytes(bitmap_len(length), "little"))

    @classmethod
    def none(cls, length: int) -> "Selection":
        """Keeps no row."""
        return cls(length)

    @classmethod
    def from_bools(cls, keep: Iterable[Any]) -> "Selection":
        """Keeps row i when the i-th item is truthy."""
        flags = bytes(bytearray(map(bool, keep)))
        sel = cls(len(flags))
        if flags:
            sel.bits = bytearray(int(flags[::-1].translate(_BIT_CHARS), 2).to_bytes(bitmap_len(len(flags)), "little"))
        return sel

    @classmethod
    def from_values(cls, values: Iterable[Any], predicate: Callable[[Any], bool]) -> "Selection":
        """Keeps row i when `predicate(values[i])` holds (combine with `and_validity` to drop nulls)."""
        return cls.from_bools(map(predicate, values))

    def keep(self, i: int) -> None:
        """Marks row `i` as kept."""
        self.bits[i >> 3] |= 1 << (i & 7)

    def drop(self, i: int) -> None:
        """Marks row `i` as dropped."""
        self.bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF

    def is_kept(self, i: int) -> bool:
        return bool((self.bits[i >> 3] >> (i & 7)) & 1)

    def __len__(self) -> int:
        return self.length

    def count(self) -> int:
        """Number of kept rows."""
        return count_bits(self.bits, self.length)

    def and_validity(self, validity: Optional[bytes]) -> "Selection":
        """Drops the rows that are null in `validity` (a column's bitmap; None = no nulls)."""
        if validity is not None:
            self.bits = bytearray(_and_bitmaps(self.bits, validity, self.length))
        return self

    def and_(self, other: "Selection") -> "Selection":
        """Keeps rows kept by both."""
        self.bits = bytearray(_and_bitmaps(self.bits, other.bits, self.length))
        return self

    def or_(self, other: "Selection") -> "Selection":
        """Keeps rows kept by either."""
        size = bitmap_len(self.length)
        value = int.from_bytes(bytes(self.bits), "little") | int.from_bytes(bytes(other.bits[:size]), "little")
        self.bits = bytearray(value.to_bytes(size, "little"))
        return self

    def invert(self) -> "Selection":
        """Keeps exactly the rows that were dropped."""
        size = bitmap_len(self.length)
        value = ~int.from_bytes(bytes(self.bits), "little") & ((1 << self.length) - 1)
        self.bits = bytearray(value.to_bytes(size, "little"))
        return self

    def to_bytes(self) -> bytes:
        """The bitmap (`ceil(len / 8)` bytes), with bits past the last row cleared."""
        if self.length % 8:
            self.bits[-1] &= (1 << (self.length % 8)) - 1
        return bytes(self.bits)
