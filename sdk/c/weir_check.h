/*
 * The C SDK's unit tests (*_test.c): CHECK prints a failed condition with
 * its place and counts it in `failures`; each test's main returns 1 when
 * any failed. Not part of the SDK.
 */
#ifndef WEIR_CHECK_H
#define WEIR_CHECK_H

#include <stdio.h>

static int failures;
#define CHECK(cond)                                                    \
    do {                                                               \
        if (!(cond)) {                                                 \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                \
        }                                                              \
    } while (0)

#endif
