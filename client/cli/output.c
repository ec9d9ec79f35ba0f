/* output.c — how the CLI writes things: JSON (escaped, always valid), numbers that round-trip,
 * times, durations, and text that is safe to show on a terminal.
 *
 * Two audiences, two rules. Machine output (JSON, CSV) prints doubles with "%.17g" so that a
 * reader gets back the exact bits that were logged. Human output (tables) prints the shortest
 * form that still reads back exactly, and escapes control characters, since run names, params
 * and tags come from any user of the node.
 */
#include "cli.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes there are not one:
 * stray continuation bytes, overlong forms, surrogates, code points past U+10FFFF. A NUL
 * fails the continuation test, so this never reads past the string's end. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xc2 || c > 0xf4)
        return 0;
    if ((s[1] & 0xc0) != 0x80)
        return 0;
    if (c < 0xe0)
        return 2;
    if ((s[2] & 0xc0) != 0x80 || (c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
        return 0;
    if (c < 0xf0)
        return 3;
    if ((s[3] & 0xc0) != 0x80 || (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
        return 0;
    return 4;
}

/* ---- JSON ---- */

void json_write_string(FILE *f, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', f);
    while (*s) {
        size_t n = utf8_len(s);
        if (n == 0) {
            fputs("\\ufffd", f); /* not UTF-8: keep the document valid */
            s++;
            continue;
        }
        if (n > 1) {
            fwrite(s, 1, n, f);
            s += n;
            continue;
        }
        switch (*s) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (*s < 0x20)
                fprintf(f, "\\u%04x", *s);
            else
                fputc(*s, f);
        }
        s++;
    }
    fputc('"', f);
}

void json_init(struct json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
}

static void newline_indent(struct json *j, int depth)
{
    fputc('\n', j->f);
    for (int i = 0; i < depth; i++)
        fputs("  ", j->f);
}

/* Separator and indentation before a value (or a key) in the current container. */
static void value_prefix(struct json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    int d = j->depth;
    if (d == 0)
        return;
    if (j->count[d]++)
        fputs(j->compact[d] ? ", " : ",", j->f);
    if (!j->compact[d])
        newline_indent(j, d);
}

static void begin(struct json *j, char open, bool compact)
{
    value_prefix(j);
    fputc(open, j->f);
    assert(j->depth + 1 < JSON_MAX_DEPTH);
    j->depth++;
    j->count[j->depth] = 0;
    j->compact[j->depth] = compact || j->compact[j->depth - 1];
}

static void end(struct json *j, char close)
{
    assert(j->depth > 0 && !j->after_key);
    int d = j->depth;
    if (!j->compact[d] && j->count[d])
        newline_indent(j, d - 1);
    fputc(close, j->f);
    j->depth--;
}

void json_begin_object(struct json *j, bool compact) { begin(j, '{', compact); }
void json_end_object(struct json *j) { end(j, '}'); }
void json_begin_array(struct json *j, bool compact) { begin(j, '[', compact); }
void json_end_array(struct json *j) { end(j, ']'); }

void json_key(struct json *j, const char *key)
{
    value_prefix(j);
    json_write_string(j->f, key);
    fputs(": ", j->f);
    j->after_key = true;
}

void json_string(struct json *j, const char *s)
{
    value_prefix(j);
    json_write_string(j->f, s);
}

void json_int(struct json *j, int64_t v)
{
    value_prefix(j);
    fprintf(j->f, "%" PRId64, v);
}

void json_uint(struct json *j, uint64_t v)
{
    value_prefix(j);
    fprintf(j->f, "%" PRIu64, v);
}

void json_double(struct json *j, double v)
{
    value_prefix(j);
    if (isnan(v))
        fputs("NaN", j->f);
    else if (isinf(v))
        fputs(v > 0 ? "Infinity" : "-Infinity", j->f);
    else
        fprintf(j->f, "%.17g", v);
}

void json_null(struct json *j)
{
    value_prefix(j);
    fputs("null", j->f);
}

void json_bool(struct json *j, bool v)
{
    value_prefix(j);
    fputs(v ? "true" : "false", j->f);
}

void json_finish(struct json *j)
{
    assert(j->depth == 0);
    fputc('\n', j->f);
}

void json_kv_string(struct json *j, const char *key, const char *s)
{
    json_key(j, key);
    json_string(j, s);
}

void json_kv_int(struct json *j, const char *key, int64_t v)
{
    json_key(j, key);
    json_int(j, v);
}

void json_kv_uint(struct json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_uint(j, v);
}

void json_kv_double(struct json *j, const char *key, double v)
{
    json_key(j, key);
    json_double(j, v);
}

void json_kv_string_or_null(struct json *j, const char *key, const char *s)
{
    json_key(j, key);
    if (s)
        json_string(j, s);
    else
        json_null(j);
}

/* ---- numbers, times ---- */

void format_double_csv(char *buf, size_t len, double v)
{
    if (isnan(v))
        snprintf(buf, len, "nan"); /* never "-nan": the sign of a NaN means nothing here */
    else if (isinf(v))
        snprintf(buf, len, v > 0 ? "inf" : "-inf");
    else
        snprintf(buf, len, "%.17g", v);
}

void format_double_short(char *buf, size_t len, double v)
{
    if (!isfinite(v)) {
        format_double_csv(buf, len, v);
        return;
    }
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, len, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

void format_time_ms(char *buf, size_t len, int64_t ms, bool with_ms)
{
    if (ms == 0) {
        snprintf(buf, len, "-");
        return;
    }
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        sec--;
        frac += 1000;
    }
    time_t tt = (time_t)sec;
    struct tm tm;
    if (!localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm)) {
        snprintf(buf, len, "%" PRId64, ms);
        return;
    }
    if (with_ms) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, ".%03d", (int)frac);
    }
}

void format_duration(char *buf, size_t len, int64_t ms)
{
    if (ms < 0)
        snprintf(buf, len, "-");
    else if (ms < 1000)
        snprintf(buf, len, "%dms", (int)ms);
    else if (ms < 60000)
        snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, len, "%dm%02ds", (int)(ms / 60000), (int)(ms / 1000 % 60));
    else if (ms < 86400000)
        snprintf(buf, len, "%dh%02dm", (int)(ms / 3600000), (int)(ms / 60000 % 60));
    else
        snprintf(buf, len, "%" PRId64 "d%02dh", ms / 86400000, (int)(ms / 3600000 % 24));
}

void format_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- text for terminals ---- */

/* Control characters (C0, DEL, C1) and bytes that are not UTF-8 become visible escapes. */
char *text_escape(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t cap = 4 * strlen(str) + 1, used = 0; /* an escape is at most 4 bytes per byte */
    char *out = malloc(cap);
    if (!out)
        return NULL;
    while (*s) {
        size_t n = utf8_len(s);
        bool c1 = n == 2 && s[0] == 0xc2 && s[1] < 0xa0;
        if (n == 1 && *s >= 0x20 && *s != 0x7f) {
            out[used++] = (char)*s++;
        } else if (n == 1 && (*s == '\n' || *s == '\t' || *s == '\r')) {
            out[used++] = '\\';
            out[used++] = *s == '\n' ? 'n' : *s == '\t' ? 't' : 'r';
            s++;
        } else if (n <= 1 || c1) { /* C0, DEL, a byte that is not UTF-8; C1 byte by byte */
            used += (size_t)snprintf(out + used, cap - used, "\\x%02x", *s++);
        } else {
            memcpy(out + used, s, n);
            used += n;
            s += n;
        }
    }
    out[used] = '\0';
    return out;
}

void print_text(FILE *f, const char *s)
{
    char *e = text_escape(s);
    fputs(e ? e : "?", f);
    free(e);
}

const char *format_count(uint64_t v, char *buf, size_t len)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < len; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}
