"""weir SDK for Python: write weir operators (filter, map, aggregate, sink) as
WebAssembly components with componentize-py.

    import weir_sdk as weir

    @weir.export
    class Big(weir.FilterOperator):
        CONFIG = {"threshold": 1000.0}

        def reads(self):
            return ["total_amount"]

        def evaluate(self, batch):
            col = batch.column("total_amount")
            t = self.config["threshold"]
            return weir.Selection.from_values(col.float64_values(), lambda v: v > t).and_validity(col.validity)

Event-time windows and distinct-count sketches for aggregates: `weir_sdk.window`
and `weir_sdk.sketch`; keyed state for incremental checkpoints:
`weir_sdk.state`. See docs/sdk-python.md.
"""

from . import log, sketch, state, window
from .columns import (BINARY, BOOLEAN, FLOAT32, FLOAT64, INT32, INT64, LIST_UTF8, TIMESTAMP, UTF8, Batch, Column,
                      Field, Selection, StringBuilder, Strings, count_bits, pack_bits, unpack_bits)
from .config import parse_config, required
from .fmt import format_f64
from .errors import (Failed, InvalidConfig, InvalidInput, OperatorError, Permanent, Rejection, RejectedRows,
                     Retryable, SinkError)
from .operators import (AggregateOperator, FilterOperator, MapOperator, MapOutput, Operator, SinkOperator,
                        export)
from .state import StateEntry

__all__ = [
    "BINARY", "BOOLEAN", "FLOAT32", "FLOAT64", "INT32", "INT64", "LIST_UTF8", "TIMESTAMP", "UTF8",
    "Batch", "Column", "Field", "Selection", "StringBuilder", "Strings", "count_bits", "pack_bits",
    "unpack_bits", "format_f64", "parse_config", "required", "Failed", "InvalidConfig", "InvalidInput", "OperatorError",
    "Permanent", "Rejection", "RejectedRows", "Retryable", "SinkError", "AggregateOperator",
    "FilterOperator", "MapOperator", "MapOutput", "Operator", "SinkOperator", "StateEntry", "export", "log", "sketch",
    "state", "window",
]
