"""Sink: logs how many rows each batch has (replace with your destination)."""
import weir_sdk as weir


@weir.export
class Operator(weir.SinkOperator):
    CONFIG = {}

    def write(self, batch):
        weir.log.info("received %d rows" % batch.num_rows)
