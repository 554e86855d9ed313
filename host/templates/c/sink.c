/* Sink: logs how many rows each batch has (replace with your destination).
 * Return weir_retryable(...) for transient failures (the host retries with
 * backoff), weir_permanent(...) to dead-letter the batch, or reject single
 * rows with weir_sink_reject and return WEIR_SINK_REJECTED_ROWS. */
#include "weir.h"

weir_status weir_init(const char *config, size_t len) {
    return weir_parse_config(config, len, NULL, 0);
}

weir_sink_status weir_write(const weir_batch *batch) {
    weir_log(WEIR_INFO, "received %zu rows", batch->num_rows);
    return WEIR_WRITTEN;
}
