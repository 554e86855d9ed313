"""Map: adds `amount_doubled` (float64) and rejects negative amounts."""
from array import array

import weir_sdk as weir


@weir.export
class Operator(weir.MapOperator):
    CONFIG = {}

    def reads(self):
        return ["amount"]

    def process(self, batch):
        amount = batch.column("amount")
        values = amount.float64_values()
        doubled = array("d", [v * 2.0 for v in values])
        rejected = [(i, "negative amount: " + weir.format_f64(v))
                    for i, v in enumerate(values) if v < 0.0 and amount.is_valid(i)]
        out = weir.Batch([(weir.Field("amount_doubled", weir.FLOAT64, True),
                           weir.Column.float64(doubled, validity=amount.validity))])
        return weir.MapOutput(out, rejected)
