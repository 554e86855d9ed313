"""Approximate distinct counting for aggregate state: a HyperLogLog sketch
(Flajolet et al. 2007, with the small-range linear-counting correction) that
fits in a window accumulator and merges when windows or sessions combine.

Same hash (FNV-1a 64-bit, then the SplitMix64 finaliser), register layout and
estimate as the Rust SDK's `weir_sdk::sketch`, so a Python operator's counts
agree with a Rust one's, and `to_json()` matches its serde form
(`{"precision": 12, "registers": "<hex>"}`).

    hll = HyperLogLog()
    for customer in ("c-1", "c-2", "c-1"):
        hll.insert(customer)
    assert hll.estimate() == 2
"""

import math
from typing import Any, Dict, Union

_MASK = (1 << 64) - 1


def hash64(value: Union[str, bytes, bytearray, memoryview]) -> int:
    """FNV-1a over the bytes (str: its UTF-8), then the SplitMix64 finaliser:
    stable across processes, platforms and languages."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & _MASK
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & _MASK
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & _MASK
    return h ^ (h >> 31)


class HyperLogLog:
    """A HyperLogLog sketch with 2**precision registers (precision clamped to
    4..16; the default 12 gives about 1.6% standard error)."""

    __slots__ = ("precision", "registers")

    def __init__(self, precision: int = 12):
        self.precision = min(max(int(precision), 4), 16)
        self.registers = bytearray(1 << self.precision)

    def insert(self, value: Union[str, bytes, bytearray, memoryview]) -> None:
        """Adds a value (str: its UTF-8 bytes)."""
        self.insert_hash(hash64(value))

    def insert_hash(self, h: int) -> None:
        """Adds a value by its `hash64` (hash once, insert into several windows)."""
        p = self.precision
        index = h >> (64 - p)
        rest = ((h << p) & _MASK) | (1 << (p - 1))
        rank = 64 - rest.bit_length() + 1
        if rank > self.registers[index]:
            self.registers[index] = rank

    def merge(self, other: "HyperLogLog") -> None:
        """Folds another sketch of the same precision in (a union); other precisions are ignored."""
        if other.precision != self.precision:
            return
        mine = self.registers
        for i, r in enumerate(other.registers):
            if r > mine[i]:
                mine[i] = r

    def estimate(self) -> int:
        """The estimated number of distinct values inserted."""
        m = len(self.registers)
        alpha = {16: 0.673, 32: 0.697, 64: 0.709}.get(m, 0.7213 / (1.0 + 1.079 / m))
        total = 0.0
        for r in self.registers:  # in register order, like the Rust sum
            total += 2.0 ** -r
        raw = alpha * m * m / total
        zeros = self.registers.count(0)
        estimate = m * math.log(m / zeros) if raw <= 2.5 * m and zeros > 0 else raw
        return int(math.floor(estimate + 0.5))  # Rust's f64::round (half away from zero)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HyperLogLog) and (self.precision, self.registers) == (other.precision, other.registers)

    def to_json(self) -> Dict[str, Any]:
        """The serde form of the Rust sketch: registers as lowercase hex."""
        return {"precision": self.precision, "registers": self.registers.hex()}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "HyperLogLog":
        """A sketch from `to_json()` output (or a Rust sketch's JSON)."""
        sketch = cls(data["precision"])
        registers = bytearray.fromhex(data["registers"])
        if len(registers) != len(sketch.registers):
            raise ValueError("HyperLogLog: %d registers for precision %d" % (len(registers), sketch.precision))
        sketch.registers = registers
        return sketch
