/*
 * Filter: keeps rows whose `column` (float64, int64 or int32) is greater
 * than `threshold`; null values are dropped. Only that column crosses into
 * the guest (reads). Same behaviour as guest-examples/rust/high-value-orders.
 *
 * Config (both optional): {"column": "total_amount", "threshold": 1000.0}
 * Build: scripts/build-polyglot-guests c (-> target/guests/polyglot/c-high-value-orders.wasm)
 */
#include "weir.h"

static const char *column = "total_amount";
static double threshold = 1000.0;

weir_status weir_init(const char *config, size_t len) {
    const weir_cfg keys[] = {
        {"column", WEIR_CFG_STRING, &column},
        {"threshold", WEIR_CFG_NUMBER, &threshold},
    };
    weir_status status = weir_parse_config(config, len, keys, 2);
    if (status == WEIR_OK)
        weir_reads(column);
    return status;
}

weir_status weir_filter(const weir_batch *batch, weir_selection *keep) {
    const weir_column *col = weir_batch_column(batch, column);
    if (!col)
        return weir_last_error();
    size_t n = col->len;
    switch (col->type) {
    case WEIR_FLOAT64:
        for (size_t i = 0; i < n; i++) weir_keep(keep, i, col->f64[i] > threshold);
        break;
    case WEIR_INT64:
        for (size_t i = 0; i < n; i++) weir_keep(keep, i, (double)col->i64[i] > threshold);
        break;
    case WEIR_INT32:
        for (size_t i = 0; i < n; i++) weir_keep(keep, i, (double)col->i32[i] > threshold);
        break;
    default:
        return weir_invalid_input("column `%s` is %s, expected float64/int64/int32", column,
                                  weir_type_name(col->type));
    }
    weir_selection_and_validity(keep, col);
    return WEIR_OK;
}
