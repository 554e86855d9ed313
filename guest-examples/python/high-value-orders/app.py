"""Filter: keeps rows whose `column` (float64, int64 or int32) is greater than
`threshold`; null values are dropped. Only that column crosses into the guest
(`reads`). Same behaviour as guest-examples/rust/high-value-orders.

Config (both optional): {"column": "total_amount", "threshold": 1000.0}
Build: scripts/build-polyglot-guests (-> target/guests/polyglot/python-high-value-orders.wasm)
"""

import weir_sdk as weir

_RUST_NAMES = {"boolean": "Boolean", "int32": "Int32", "int64": "Int64", "float32": "Float32",
               "float64": "Float64", "utf8": "Utf8", "binary": "Binary", "timestamp": "Timestamp",
               "list-utf8": "ListUtf8"}


@weir.export
class HighValueOrders(weir.FilterOperator):
    CONFIG = {"column": "total_amount", "threshold": 1000.0}

    def reads(self):
        return [self.config["column"]]

    def evaluate(self, batch):
        name, t = self.config["column"], self.config["threshold"]
        col = batch.column(name)
        if col.type == weir.FLOAT64:
            keep = [v > t for v in col.values()]
        elif col.type in (weir.INT64, weir.INT32):
            keep = [float(v) > t for v in col.values()]
        else:
            raise weir.InvalidInput("column `%s` is %s, expected float64/int64/int32"
                                    % (name, _RUST_NAMES.get(col.type, col.type)))
        return weir.Selection.from_bools(keep).and_validity(col.validity)
