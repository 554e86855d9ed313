/* Map: adds `amount_doubled` (float64) and rejects negative amounts. */
#include "weir.h"

weir_status weir_init(const char *config, size_t len) {
    weir_status status = weir_parse_config(config, len, NULL, 0);
    weir_reads("amount");
    return status;
}

weir_status weir_map(const weir_batch *batch, weir_output *out) {
    const weir_column *amount = weir_batch_column(batch, "amount");
    if (!amount)
        return weir_last_error();
    if (amount->type != WEIR_FLOAT64)
        return weir_invalid_input("amount is %s, expected Float64", weir_type_name(amount->type));
    size_t n = amount->len;
    weir_builder *doubled = weir_add_column(out, "amount_doubled", WEIR_FLOAT64, true, n);
    double *values = weir_values_f64(doubled);
    for (size_t i = 0; i < n; i++) {
        values[i] = amount->f64[i] * 2.0;
        if (amount->f64[i] < 0.0 && weir_is_valid(amount, i)) {
            char text[340];
            weir_format_f64(text, sizeof text, amount->f64[i]);
            weir_reject(out, (uint32_t)i, "negative amount: %s", text);
        }
    }
    weir_copy_validity(doubled, amount->validity);
    return WEIR_OK;
}
