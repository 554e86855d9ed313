/*
 * Map: adds `amount_bucket` (int64 = floor(total_amount / 100), saturating
 * like Rust's `as i64`) and `tax_amount` (float64 = total_amount * tax_rate).
 * A null total_amount gives nulls; a negative one rejects the row
 * ("negative total_amount: <value>", formatted like Rust's f64 Display).
 * Declares reads = ["total_amount"], so only that column crosses in and only
 * the two new columns cross out. Same behaviour as
 * guest-examples/rust/enrich-order.
 *
 * Config (optional): {"tax_rate": 0.2}
 * Build: scripts/build-polyglot-guests c (-> target/guests/polyglot/c-enrich-order.wasm)
 */
#include <math.h>

#include "weir.h"

static double tax_rate = 0.2;

weir_status weir_init(const char *config, size_t len) {
    const weir_cfg keys[] = {{"tax_rate", WEIR_CFG_NUMBER, &tax_rate}};
    weir_status status = weir_parse_config(config, len, keys, 1);
    weir_reads("total_amount");
    return status;
}

weir_status weir_map(const weir_batch *batch, weir_output *out) {
    const weir_column *col = weir_batch_column(batch, "total_amount");
    if (!col)
        return weir_last_error();
    if (col->type != WEIR_FLOAT64)
        return weir_invalid_input("total_amount is %s, expected Float64", weir_type_name(col->type));
    size_t n = col->len;
    const double *amount = col->f64;
    weir_builder *bucket = weir_add_column(out, "amount_bucket", WEIR_INT64, true, n);
    weir_builder *tax = weir_add_column(out, "tax_amount", WEIR_FLOAT64, true, n);
    int64_t *buckets = weir_values_i64(bucket);
    double *taxes = weir_values_f64(tax);
    for (size_t i = 0; i < n; i++) {
        buckets[i] = weir_f64_to_i64(floor(amount[i] / 100.0));
        taxes[i] = amount[i] * tax_rate;
        if (amount[i] < 0.0 && weir_is_valid(col, i)) {
            char text[340];
            weir_format_f64(text, sizeof text, amount[i]);
            weir_reject(out, (uint32_t)i, "negative total_amount: %s", text);
        }
    }
    weir_copy_validity(bucket, col->validity); /* nulls in -> nulls out */
    weir_copy_validity(tax, col->validity);
    return WEIR_OK;
}
