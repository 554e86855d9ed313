"""Aggregate: running count per `key`; emits the keys touched by each batch."""
import json

import weir_sdk as weir


@weir.export
class Operator(weir.AggregateOperator):
    CONFIG = {}

    def __init__(self, config):
        super().__init__(config)
        self.counts = {}

    def reads(self):
        return ["key"]

    def process(self, batch, watermark):
        touched = []
        for key in batch.column("key").to_list():
            if key is None:
                continue
            if key not in self.counts:
                self.counts[key] = 0
            self.counts[key] += 1
            if key not in touched:
                touched.append(key)
        if not touched:
            return None
        return weir.Batch([(weir.Field("key", weir.UTF8, False), weir.Column.utf8(touched)),
                           (weir.Field("count", weir.INT64, False), weir.Column.int64([self.counts[k] for k in touched]))])

    def snapshot(self):
        return json.dumps(self.counts, sort_keys=True).encode()

    def restore(self, state):
        self.counts = json.loads(state)
