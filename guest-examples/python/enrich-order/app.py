"""Map: adds `amount_bucket` (int64 = floor(total_amount / 100)) and
`tax_amount` (float64 = total_amount * tax_rate). A null `total_amount` gives
nulls; a negative one rejects the row ("negative total_amount: <value>",
formatted like Rust). Declares reads = ["total_amount"], so only that column
crosses in and only the two new columns cross out. Same behaviour as
guest-examples/rust/enrich-order.

Config (optional): {"tax_rate": 0.2}
Build: scripts/build-polyglot-guests (-> target/guests/polyglot/python-enrich-order.wasm)
"""

from array import array
from math import floor

import weir_sdk as weir

I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)


def _bucket(a: float) -> int:
    """floor(a / 100) with Rust's saturating `as i64` (NaN -> 0)."""
    q = a / 100.0
    if q != q:
        return 0
    if q >= 9.223372036854775807e18:
        return I64_MAX
    if q <= -9.223372036854775808e18:
        return I64_MIN
    return floor(q)


@weir.export
class EnrichOrder(weir.MapOperator):
    CONFIG = {"tax_rate": 0.2}

    def reads(self):
        return ["total_amount"]

    def process(self, batch):
        col = batch.column("total_amount")
        if col.type != weir.FLOAT64:
            raise weir.InvalidInput("total_amount is %s, expected Float64" % col.type)
        amounts = col.values()
        rate = self.config["tax_rate"]
        try:
            buckets = array("q", [floor(a / 100.0) for a in amounts])
        except (ValueError, OverflowError):  # NaN, inf or beyond i64 (null slots may hold anything)
            buckets = array("q", [_bucket(a) for a in amounts])
        tax = array("d", [a * rate for a in amounts])
        rejected = [(i, "negative total_amount: " + weir.format_f64(a))
                    for i, a in enumerate(amounts) if a < 0.0 and col.is_valid(i)]
        out = weir.Batch([
            (weir.Field("amount_bucket", weir.INT64, True), weir.Column.int64(buckets, validity=col.validity)),
            (weir.Field("tax_amount", weir.FLOAT64, True), weir.Column.float64(tax, validity=col.validity)),
        ])
        return weir.MapOutput(out, rejected)
