/* mlflow_batch.c — the body of runs/log-batch, read by a parser made for it.
 *
 * log-batch carries up to 1000 metrics (~90 KB of JSON) and is what MLflow's clients send
 * most. Building a jansson tree of it took ~60% of the server's time per request (an object,
 * a hash table and four values per metric, all malloc'd and freed); this reads the same JSON
 * (RFC 8259, UTF-8 checked, \u escapes and surrogate pairs decoded, duplicate names refused
 * as jansson's JSON_REJECT_DUPLICATES does) straight into the batch: one allocation for the
 * decoded strings, none per metric. Fields it does not know are skipped, whatever they hold.
 *
 * What a field holds is kept as found (a number's text, a string, or "something else"), and
 * the rules (MLflow's types and limits) are applied after the parse by mf_batch_check, so that
 * a wrong type gets MLflow's message and bad JSON gets MALFORMED_REQUEST. */
#include "mlflow_batch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

struct jp {
    const char *p, *end, *start;
    char *arena; /* decoded strings: never longer than their JSON text */
    size_t used;
    const char *err;
};

static bool fail(struct jp *j, const char *what)
{
    if (!j->err)
        j->err = what;
    return false;
}

static void ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static bool eat(struct jp *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    unsigned cp = c & (0xFF >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* A string, decoded into the arena (NUL-terminated). */
static bool jstring(struct jp *j, const char **out)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"')
        return fail(j, "expected a string");
    j->p++;
    char *o = j->arena + j->used, *start = o;
    for (;;) {
        /* the common run: plain ASCII */
        const char *q = j->p;
        while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 &&
               (unsigned char)*q < 0x80)
            q++;
        memcpy(o, j->p, (size_t)(q - j->p));
        o += q - j->p;
        j->p = q;
        if (j->p >= j->end)
            return fail(j, "unterminated string");
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20)
            return fail(j, "control character in a string");
        if (c >= 0x80) {
            size_t n = utf8_seq((const unsigned char *)j->p, (const unsigned char *)j->end);
            if (!n)
                return fail(j, "a string is not valid UTF-8");
            memcpy(o, j->p, n);
            o += n;
            j->p += n;
            continue;
        }
        /* an escape */
        if (j->end - j->p < 2)
            return fail(j, "unterminated string");
        char e = j->p[1];
        j->p += 2;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            int cp = j->end - j->p >= 4 ? hex4(j->p) : -1;
            if (cp < 0)
                return fail(j, "invalid \\u escape");
            j->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' ? hex4(j->p + 2)
                                                                                : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(j, "invalid \\u surrogate pair");
                j->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(j, "invalid \\u surrogate pair");
            } else if (cp == 0) {
                return fail(j, "\\u0000 is not allowed");
            }
            o += put_utf8(o, (unsigned)cp);
            break;
        }
        default: return fail(j, "invalid escape");
        }
    }
    *o++ = '\0';
    j->used += (size_t)(o - start);
    *out = start;
    return true;
}

/* A number: its text is checked against JSON's grammar and left in place. */
static bool jnumber(struct jp *j, struct mf_jval *v)
{
    const char *p = j->p, *s = p;
    bool is_int = true;
    if (p < j->end && *p == '-')
        p++;
    if (p < j->end && *p == '0')
        p++;
    else if (p < j->end && *p >= '1' && *p <= '9')
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    else
        return fail(j, "invalid number");
    if (p < j->end && *p == '.') {
        is_int = false;
        if (++p >= j->end || *p < '0' || *p > '9')
            return fail(j, "invalid number");
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        is_int = false;
        if (++p < j->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return fail(j, "invalid number");
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    v->kind = MF_JNUM;
    v->s = s;
    v->n = (size_t)(p - s);
    v->is_int = is_int;
    j->p = p;
    return true;
}

static bool jlit(struct jp *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return fail(j, "invalid value");
    j->p += n;
    return true;
}

static bool jskip(struct jp *j, int depth);

/* Any value, into v when it is a string, a number or null (else MF_JOTHER, skipped). */
static bool jvalue(struct jp *j, struct mf_jval *v, int depth)
{
    ws(j);
    if (j->p >= j->end)
        return fail(j, "unexpected end of the body");
    char c = *j->p;
    if (c == '"') {
        v->kind = MF_JSTR;
        return jstring(j, &v->s);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return jnumber(j, v);
    if (c == 'n') {
        v->kind = MF_JNULL;
        return jlit(j, "null");
    }
    if (c != '{' && c != '[' && c != 't' && c != 'f')
        return fail(j, "expected a value");
    v->kind = MF_JOTHER;
    v->s = j->p;
    return jskip(j, depth); /* it does not come back here for these: no endless recursion */
}

static bool jskip(struct jp *j, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(j, "nested too deeply");
    ws(j);
    if (j->p >= j->end)
        return fail(j, "unexpected end of the body");
    char c = *j->p;
    struct mf_jval v;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        if (eat(j, close))
            return true;
        do {
            if (c == '{') {
                const char *name;
                if (!jstring(j, &name) || !eat(j, ':'))
                    return fail(j, "expected \"name\": value");
            }
            if (!jvalue(j, &v, depth + 1))
                return false;
        } while (eat(j, ','));
        return eat(j, close) ? true : fail(j, "expected ',' or the end of a list or object");
    }
    if (c == 't')
        return jlit(j, "true");
    if (c == 'f')
        return jlit(j, "false");
    return jvalue(j, &v, depth);
}

/* An object's members: cb(name, j) reads each value. Duplicate names are refused. */
typedef bool (*member_fn)(struct jp *j, const char *name, void *arg);

static bool jobject(struct jp *j, member_fn cb, void *arg)
{
    if (!eat(j, '{'))
        return fail(j, "expected an object");
    if (eat(j, '}'))
        return true;
    do {
        const char *name;
        if (!jstring(j, &name) || !eat(j, ':'))
            return fail(j, "expected \"name\": value");
        if (!cb(j, name, arg))
            return false;
    } while (eat(j, ','));
    return eat(j, '}') ? true : fail(j, "expected ',' or '}'");
}

static bool once(struct jp *j, unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return fail(j, "duplicate object key");
    *seen |= bit;
    return true;
}

/* ---- the batch's shapes -------------------------------------------------------------------- */

struct entry_ctx {
    struct mf_jentry *e;
    unsigned seen;
};

static bool entry_member(struct jp *j, const char *name, void *arg)
{
    struct entry_ctx *c = arg;
    struct mf_jval *v = NULL; /* by first letter first: this runs 4000 times a request */
    switch (name[0]) {
    case 'k': v = !strcmp(name, "key") ? &c->e->key : NULL; break;
    case 'v': v = !strcmp(name, "value") ? &c->e->value : NULL; break;
    case 't': v = !strcmp(name, "timestamp") ? &c->e->timestamp : NULL; break;
    case 's': v = !strcmp(name, "step") ? &c->e->step : NULL; break;
    }
    if (v) {
        unsigned bit = v == &c->e->key ? 1u : v == &c->e->value ? 2u : v == &c->e->timestamp ? 4u
                                                                                              : 8u;
        if (!once(j, &c->seen, bit))
            return false;
        return jvalue(j, v, 2);
    }
    struct mf_jval skip;
    return jvalue(j, &skip, 2);
}

/* A list of entries (metrics, params or tags); an element that is not an object is kept as
 * MF_JOTHER in its key, for the checks to refuse with MLflow's words. */
static bool jentries(struct jp *j, struct mf_jentry **out, size_t *n, size_t *cap)
{
    ws(j);
    if (j->p < j->end && *j->p == 'n')
        return jlit(j, "null");
    if (!eat(j, '['))
        return fail(j, "expected a list");
    if (eat(j, ']'))
        return true;
    do {
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            struct mf_jentry *e = realloc(*out, nc * sizeof *e);
            if (!e)
                return fail(j, "out of memory");
            *out = e;
            *cap = nc;
        }
        struct mf_jentry *e = &(*out)[(*n)++];
        memset(e, 0, sizeof *e);
        ws(j);
        if (j->p < j->end && *j->p == '{') {
            struct entry_ctx c = {e, 0};
            if (!jobject(j, entry_member, &c))
                return false;
            e->is_object = true;
        } else if (!jskip(j, 2)) {
            return false;
        }
    } while (eat(j, ','));
    return eat(j, ']') ? true : fail(j, "expected ',' or ']'");
}

struct top_ctx {
    struct mf_jbatch *b;
    unsigned seen;
    size_t mcap, pcap, tcap;
};

static bool top_member(struct jp *j, const char *name, void *arg)
{
    struct top_ctx *c = arg;
    struct mf_jbatch *b = c->b;
    if (!strcmp(name, "run_id"))
        return once(j, &c->seen, 1) && jvalue(j, &b->run_id, 1);
    if (!strcmp(name, "metrics"))
        return once(j, &c->seen, 2) && jentries(j, &b->metrics, &b->nm, &c->mcap);
    if (!strcmp(name, "params"))
        return once(j, &c->seen, 4) && jentries(j, &b->params, &b->np, &c->pcap);
    if (!strcmp(name, "tags"))
        return once(j, &c->seen, 8) && jentries(j, &b->tags, &b->nt, &c->tcap);
    return jskip(j, 1);
}

int mf_batch_parse(const char *body, size_t len, struct mf_jbatch *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    struct jp j = {.p = body, .end = body + len, .start = body};
    if (!(b->arena = malloc(len + 1)))
        return -ENOMEM;
    j.arena = b->arena;
    struct top_ctx c = {.b = b};
    bool ok = jobject(&j, top_member, &c);
    if (ok) {
        ws(&j);
        ok = j.p == j.end || fail(&j, "text after the object");
    }
    if (ok)
        return 0;
    if (j.err && !strcmp(j.err, "out of memory"))
        return -ENOMEM;
    /* line and column, as jansson reports them */
    int line = 1, col = 1;
    for (const char *p = body; p < j.p; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    snprintf(err, errlen, "the request body is not valid JSON: %s (line %d, column %d)",
             j.err ? j.err : "invalid", line, col);
    return -EINVAL;
}

void mf_batch_free(struct mf_jbatch *b)
{
    free(b->arena);
    free(b->metrics);
    free(b->params);
    free(b->tags);
    memset(b, 0, sizeof *b);
}

/* ---- values ---------------------------------------------------------------------------------- */

bool mf_jval_i64(const struct mf_jval *v, int64_t *out)
{
    if (v->kind == MF_JNUM && v->is_int) {
        const char *p = v->s, *e = v->s + v->n;
        bool neg = *p == '-';
        p += neg;
        uint64_t x = 0;
        for (; p < e; p++) {
            if (x > (UINT64_MAX - 9) / 10)
                return false;
            x = x * 10 + (uint64_t)(*p - '0');
        }
        if (x > (uint64_t)INT64_MAX + neg)
            return false;
        *out = neg ? (int64_t)(0 - x) : (int64_t)x;
        return true;
    }
    if (v->kind == MF_JNUM) { /* 1e3, 5.0: whole numbers written otherwise */
        double d = strtod(v->s, NULL);
        if (d != floor(d) || fabs(d) >= 9.2e18)
            return false;
        *out = (int64_t)d;
        return true;
    }
    if (v->kind == MF_JSTR) { /* protobuf's JSON writes int64 as strings */
        char *end;
        errno = 0;
        long long x = strtoll(v->s, &end, 10);
        if (errno || end == v->s || *end)
            return false;
        *out = x;
        return true;
    }
    return false;
}

bool mf_jval_double(const struct mf_jval *v, double *out)
{
    if (v->kind == MF_JNUM) {
        *out = strtod(v->s, NULL); /* the text is JSON's grammar: strtod reads exactly it */
        return true;
    }
    if (v->kind != MF_JSTR)
        return false;
    if (!strcmp(v->s, "NaN"))
        *out = NAN;
    else if (!strcmp(v->s, "Infinity"))
        *out = INFINITY;
    else if (!strcmp(v->s, "-Infinity"))
        *out = -INFINITY;
    else {
        char *end;
        *out = strtod(v->s, &end);
        return end != v->s && !*end;
    }
    return true;
}

void mf_jval_text(const struct mf_jval *v, char *buf, size_t len)
{
    switch (v->kind) {
    case MF_JABSENT:
    case MF_JNULL: snprintf(buf, len, "None"); break;
    case MF_JNUM: snprintf(buf, len, "%.*s", (int)(v->n < 64 ? v->n : 64), v->s); break;
    case MF_JSTR: snprintf(buf, len, "'%.100s'", v->s); break;
    default: snprintf(buf, len, "%.*s", 40, v->s); break;
    }
}
