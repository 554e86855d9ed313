"""Number formatting that matches Rust's `Display` (so messages are identical
across the SDKs): no exponent, shortest round-trip digits, `-5` not `-5.0`."""

from decimal import Decimal


def format_f64(value: float) -> str:
    """Formats a float like Rust's `format!("{}", f64)`: `-5`, `0.25`, `1e21` as digits, `NaN`, `inf`."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
