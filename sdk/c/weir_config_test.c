/*
 * Unit test of the C SDK's config parser and number formatting
 * (weir_config.c), natively:
 *   cc -Wall -Wextra -Werror -Isdk/c sdk/c/weir_config.c sdk/c/weir_config_test.c -lm -o t && ./t
 * (scripts/test runs it). Prints the failed check and exits 1 on failure.
 * weir_invalid_config lives in weir.c (world glue); this file stands in for
 * it and keeps the message, so the checks see what an operator's init would
 * return to the host.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir.h"
#include "weir_check.h"


static char message[512];

weir_status weir_invalid_config(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return WEIR_INVALID_CONFIG;
}

/* The operator's slots, reset to their defaults before each parse. */
static double threshold;
static const char *column;
static bool strict;

static weir_status parse(const char *text) {
    threshold = 100;
    column = "amount";
    strict = false;
    message[0] = 0;
    const weir_cfg keys[] = {
        {"threshold", WEIR_CFG_NUMBER, &threshold},
        {"column", WEIR_CFG_STRING, &column},
        {"strict", WEIR_CFG_BOOL, &strict},
    };
    return weir_parse_config(text, strlen(text), keys, sizeof keys / sizeof *keys);
}

static void accepted_configs(void) {
    CHECK(parse("") == WEIR_OK && threshold == 100 && strcmp(column, "amount") == 0);
    CHECK(parse(" null ") == WEIR_OK && threshold == 100);
    CHECK(parse("{}") == WEIR_OK && !strict);
    CHECK(parse("{\"threshold\": 2.5e3, \"strict\": true}") == WEIR_OK && threshold == 2500 && strict);
    CHECK(parse("{\"threshold\":-0.125}") == WEIR_OK && threshold == -0.125);
    CHECK(parse("{\"column\": \"total\\u00e9\\n\"}") == WEIR_OK && strcmp(column, "total\xc3\xa9\n") == 0);
    free((char *)column);
    /* A surrogate pair: U+1F600 in four UTF-8 bytes. */
    CHECK(parse("{\"column\": \"\\ud83d\\ude00\"}") == WEIR_OK && strcmp(column, "\xf0\x9f\x98\x80") == 0);
    free((char *)column);
    /* A number longer than the parser's stack buffer. */
    CHECK(parse("{\"threshold\": 1.0000000000000000000000000000000000000000000000000000000000000000000001}") == WEIR_OK &&
          threshold == 1);
}

static void refused_configs(void) {
    CHECK(parse("[1, 2]") == WEIR_INVALID_CONFIG && strcmp(message, "config must be a JSON object, got [1, 2]") == 0);
    CHECK(parse("{\"limit\": 3}") == WEIR_INVALID_CONFIG && strcmp(message, "unknown field `limit`") == 0);
    CHECK(parse("{\"threshold\": \"high\"}") == WEIR_INVALID_CONFIG &&
          strcmp(message, "`threshold`: expected a number, got \"high\"") == 0);
    CHECK(parse("{\"strict\": 1}") == WEIR_INVALID_CONFIG && strcmp(message, "`strict`: expected a boolean, got 1") == 0);
    CHECK(parse("{\"column\": null}") == WEIR_INVALID_CONFIG &&
          strcmp(message, "`column`: expected a string, got null") == 0);
    const char *broken[] = {"{", "{\"threshold\": }", "{\"threshold\": 1,}", "{\"column\": \"a\\x\"}",
                            "{\"column\": \"\\ud83d\\u0041\"}", "{\"threshold\": 01}", "{\"threshold\": 1.}",
                            "{\"column\": \"unterminated}"};
    for (size_t i = 0; i < sizeof broken / sizeof *broken; i++) {
        weir_status status = parse(broken[i]);
        CHECK(status == WEIR_INVALID_CONFIG && strncmp(message, "config is not valid JSON", 24) == 0);
        if (status != WEIR_INVALID_CONFIG)
            fprintf(stderr, "   accepted: %s\n", broken[i]);
    }
    CHECK(parse("{} x") == WEIR_INVALID_CONFIG && strcmp(message, "config is not valid JSON: trailing characters") == 0);
    /* Nesting deeper than the parser follows is refused, not a stack overflow. */
    char deep[400];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "[");
    for (int i = 0; i < 150; i++) deep[n++] = '[';
    for (int i = 0; i < 151; i++) deep[n++] = ']';
    deep[n] = 0;
    CHECK(parse(deep) == WEIR_INVALID_CONFIG && strcmp(message, "config is not valid JSON") == 0);
}

static const char *formatted(double v) {
    static char buf[340];
    weir_format_f64(buf, sizeof buf, v);
    return buf;
}

static void formatting(void) {
    CHECK(strcmp(formatted(-5), "-5") == 0);
    CHECK(strcmp(formatted(-1.5), "-1.5") == 0);
    CHECK(strcmp(formatted(0.1), "0.1") == 0);
    CHECK(strcmp(formatted(1e-7), "0.0000001") == 0);
    CHECK(strcmp(formatted(1.5e22), "15000000000000000000000") == 0);
    CHECK(strcmp(formatted(-0.0), "-0") == 0);
    CHECK(strcmp(formatted(0.0 / 0.0), "NaN") == 0);
    CHECK(strcmp(formatted(-1.0 / 0.0), "-inf") == 0);
    char small[4];
    CHECK(weir_format_f64(small, sizeof small, 12345.5) == 7 && strcmp(small, "123") == 0);
    CHECK(weir_f64_to_i64(1e300) == INT64_MAX && weir_f64_to_i64(-1e300) == INT64_MIN);
    CHECK(weir_f64_to_i64(0.0 / 0.0) == 0 && weir_f64_to_i64(-2.9) == -2);
}

int main(void) {
    accepted_configs();
    refused_configs();
    formatting();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("weir_config: ok\n");
    return 0;
}
