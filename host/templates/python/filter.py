"""Filter: keeps rows whose `amount` is above `threshold` (config, default 100)."""
import weir_sdk as weir


@weir.export
class Operator(weir.FilterOperator):
    CONFIG = {"threshold": 100.0}

    def reads(self):
        return ["amount"]

    def evaluate(self, batch):
        amount = batch.column("amount")
        t = self.config["threshold"]
        return weir.Selection.from_bools([v > t for v in amount.float64_values()]).and_validity(amount.validity)
