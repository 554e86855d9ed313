/*
 * weir C SDK: the operator config parser (weir_parse_config: a JSON object
 * read into the slots a weir_cfg table names) and number formatting
 * (weir_format_f64, weir_f64_to_i64). Independent of the operator world:
 * compiled into every operator, and into the host-side unit test
 * (weir_config_test.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir.h"
#include "weir_internal.h"

/* ---------------------------------------------------------------- config */

typedef struct {
    const char *p, *end;
} json;

static void ws(json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static void put_utf8(char *out, size_t *n, unsigned cp) {
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static bool hex4(json *j, unsigned *v) {
    if (j->end - j->p < 4)
        return false;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        *v <<= 4;
        if (c >= '0' && c <= '9') *v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') *v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') *v |= (unsigned)(c - 'A' + 10);
        else return false;
    }
    return true;
}

/* Parses a JSON string at j->p (at the quote) into a malloc'd C string. */
static char *json_string(json *j) {
    if (j->p >= j->end || *j->p != '"')
        return NULL;
    j->p++;
    char *out = xmalloc((size_t)(j->end - j->p) + 1);
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20)
            goto bad;
        if (c != '\\') {
            out[n++] = c;
            continue;
        }
        if (j->p >= j->end)
            goto bad;
        c = *j->p++;
        switch (c) {
        case '"': case '\\': case '/': out[n++] = c; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(j, &cp))
                goto bad;
            if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
                j->p += 2;
                if (!hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    goto bad;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            put_utf8(out, &n, cp);
            break;
        }
        default: goto bad;
        }
    }
    if (j->p >= j->end)
        goto bad;
    j->p++;
    out[n] = 0;
    return out;
bad:
    free(out);
    return NULL;
}

static bool json_number(json *j, double *v) {
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return false;
    if (*j->p == '0') j->p++;
    else while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return false;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9') return false;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    }
    char buf[64];
    size_t n = (size_t)(j->p - s);
    if (n >= sizeof buf) {
        char *big = xmalloc(n + 1);
        memcpy(big, s, n);
        big[n] = 0;
        *v = strtod(big, NULL);
        free(big);
    } else {
        memcpy(buf, s, n);
        buf[n] = 0;
        *v = strtod(buf, NULL);
    }
    return true;
}

static bool literal(json *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return false;
    j->p += n;
    return true;
}

/* Skips any JSON value. */
static bool json_skip(json *j, int depth) {
    ws(j);
    if (j->p >= j->end || depth > 64)
        return false;
    char c = *j->p;
    if (c == '"') {
        char *s = json_string(j);
        free(s);
        return s != NULL;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                ws(j);
                char *k = json_string(j);
                if (!k) return false;
                free(k);
                ws(j);
                if (j->p >= j->end || *j->p++ != ':') return false;
            }
            if (!json_skip(j, depth + 1)) return false;
            ws(j);
            if (j->p >= j->end) return false;
            if (*j->p == ',') { j->p++; continue; }
            if (*j->p == close) { j->p++; return true; }
            return false;
        }
    }
    double d;
    return literal(j, "true") || literal(j, "false") || literal(j, "null") || json_number(j, &d);
}

static const char *kind_name(weir_cfg_kind k) {
    return k == WEIR_CFG_NUMBER ? "a number" : k == WEIR_CFG_STRING ? "a string" : "a boolean";
}

weir_status weir_parse_config(const char *text, size_t len, const weir_cfg *keys, size_t n) {
    json j = {text, text + len};
    ws(&j);
    if (j.p == j.end || literal(&j, "null")) {
        ws(&j);
        return j.p == j.end ? WEIR_OK : weir_invalid_config("config is not valid JSON");
    }
    if (*j.p != '{') {
        json probe = j;
        if (!json_skip(&probe, 0))
            return weir_invalid_config("config is not valid JSON");
        return weir_invalid_config("config must be a JSON object, got %.*s", (int)(probe.p - j.p), j.p);
    }
    j.p++;
    ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            ws(&j);
            char *key = json_string(&j);
            if (!key)
                return weir_invalid_config("config is not valid JSON");
            ws(&j);
            if (j.p >= j.end || *j.p++ != ':') {
                free(key);
                return weir_invalid_config("config is not valid JSON");
            }
            ws(&j);
            const weir_cfg *slot = NULL;
            for (size_t i = 0; i < n; i++)
                if (strcmp(keys[i].key, key) == 0)
                    slot = &keys[i];
            if (!slot) {
                weir_status s = weir_invalid_config("unknown field `%s`", key);
                free(key);
                return s;
            }
            const char *start = j.p;
            bool ok;
            if (slot->kind == WEIR_CFG_NUMBER) {
                ok = json_number(&j, (double *)slot->slot);
            } else if (slot->kind == WEIR_CFG_BOOL) {
                ok = literal(&j, "true") ? (*(bool *)slot->slot = true, true)
                   : literal(&j, "false") ? (*(bool *)slot->slot = false, true) : false;
            } else {
                char *s = json_string(&j);
                ok = s != NULL;
                if (ok)
                    *(const char **)slot->slot = s; /* lives as long as the instance */
            }
            if (!ok) {
                j.p = start;
                json probe = j;
                bool valid = json_skip(&probe, 0);
                weir_status s = valid ? weir_invalid_config("`%s`: expected %s, got %.*s", key, kind_name(slot->kind),
                                                            (int)(probe.p - start), start)
                                      : weir_invalid_config("config is not valid JSON");
                free(key);
                return s;
            }
            free(key);
            ws(&j);
            if (j.p < j.end && *j.p == ',') { j.p++; continue; }
            if (j.p < j.end && *j.p == '}') { j.p++; break; }
            return weir_invalid_config("config is not valid JSON");
        }
    }
    ws(&j);
    return j.p == j.end ? WEIR_OK : weir_invalid_config("config is not valid JSON: trailing characters");
}

/* ------------------------------------------------------------ formatting */

static size_t put(char *buf, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (cap) {
        size_t m = n < cap - 1 ? n : cap - 1;
        memcpy(buf, s, m);
        buf[m] = 0;
    }
    return n;
}

size_t weir_format_f64(char *buf, size_t cap, double v) {
    if (isnan(v)) return put(buf, cap, "NaN");
    if (isinf(v)) return put(buf, cap, v > 0 ? "inf" : "-inf");
    if (v == 0) return put(buf, cap, signbit(v) ? "-0" : "0");
    char sci[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(sci, sizeof sci, "%.*e", p - 1, v);
        if (strtod(sci, NULL) == v)
            break;
    }
    /* sci: [-]d[.ddd]e[+-]xx */
    char digits[20];
    size_t nd = 0;
    const char *s = sci;
    bool neg = *s == '-';
    if (neg) s++;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[nd++] = *s;
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char out[340];
    size_t n = 0;
    if (neg) out[n++] = '-';
    int point = exp + 1; /* digits before the decimal point */
    if (point <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -point; i++) out[n++] = '0';
        for (size_t i = 0; i < nd; i++) out[n++] = digits[i];
    } else if ((size_t)point >= nd) {
        for (size_t i = 0; i < nd; i++) out[n++] = digits[i];
        for (size_t i = nd; i < (size_t)point; i++) out[n++] = '0';
    } else {
        for (size_t i = 0; i < nd; i++) {
            if (i == (size_t)point) out[n++] = '.';
            out[n++] = digits[i];
        }
    }
    out[n] = 0;
    return put(buf, cap, out);
}

int64_t weir_f64_to_i64(double v) {
    if (isnan(v)) return 0;
    if (v >= 9223372036854775808.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}
