//! arrow-udf scalar functions for weir's peer benchmark (issue 8), called by
//! `arrowudf-driver` through `arrow-udf-wasm` on the `total_amount` column.
//! The same logic as every other contender's filter and map workloads.
//! Arguments are not `Option`s, so arrow-udf maps a null input to a null
//! output without calling the function.

use arrow_udf::function;

/// filter: keep an order iff `total_amount > 1000` (the host drops nulls).
#[function("high_value(float64) -> boolean")]
fn high_value(total_amount: f64) -> bool {
    total_amount > 1000.0
}

/// map: `amount_bucket = floor(total_amount / 100)`.
#[function("amount_bucket(float64) -> int64")]
fn amount_bucket(total_amount: f64) -> i64 {
    (total_amount / 100.0).floor() as i64
}

/// map: `tax_amount = total_amount * 0.2`.
#[function("tax_amount(float64) -> float64")]
fn tax_amount(total_amount: f64) -> f64 {
    total_amount * 0.2
}
