/* Filter: keeps rows whose `amount` is above `threshold` (config, default 100). */
#include "weir.h"

static double threshold = 100.0;

weir_status weir_init(const char *config, size_t len) {
    const weir_cfg keys[] = {{"threshold", WEIR_CFG_NUMBER, &threshold}};
    weir_status status = weir_parse_config(config, len, keys, 1);
    weir_reads("amount");
    return status;
}

weir_status weir_filter(const weir_batch *batch, weir_selection *keep) {
    const weir_column *amount = weir_batch_column(batch, "amount");
    if (!amount)
        return weir_last_error();
    if (amount->type != WEIR_FLOAT64)
        return weir_invalid_input("amount is %s, expected Float64", weir_type_name(amount->type));
    for (size_t i = 0; i < amount->len; i++)
        weir_keep(keep, i, weir_is_valid(amount, i) && amount->f64[i] > threshold);
    return WEIR_OK;
}
