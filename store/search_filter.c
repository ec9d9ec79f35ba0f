/* search_filter.c — MLflow's search language: parsing filters and order_by entries, and
 * matching a run or an experiment against a parsed filter (search.h says what the language
 * is). search.c builds the queries on top.
 *
 * The parser is a hand-written scanner over the text rather than a tokenizer plus grammar:
 * what a word means depends on where it stands (a number after `metrics.x >`, a name after
 * `metrics.`, an operator after an identifier), and reading in place gives every error the
 * exact column of what is wrong. Parsing happens once per query; matching then only compares.
 */
#include "search_internal.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- errors ---------------------------------------------------------------------------- */

void sf_error(char *err, size_t errlen, const char *what, const char *text, size_t pos,
              const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(text + pos);
    if (n == 0) {
        snprintf(err, errlen, "invalid %s at column %zu (its end): %s", what, pos + 1, msg);
        return;
    }
    /* a short excerpt, not cut inside a UTF-8 sequence */
    size_t show = n > 24 ? 24 : n;
    while (show < n && ((unsigned char)text[pos + show] & 0xc0) == 0x80)
        show--;
    snprintf(err, errlen, "invalid %s at column %zu, near '%.*s%s': %s", what, pos + 1,
             (int)show, text + pos, show < n ? "..." : "", msg);
}

struct sf_parser {
    const char *s;
    size_t p;
    enum sf_target target;
    const char *what; /* "filter", "order_by 'metrics.x DESC'" */
    char *err;
    size_t errlen;
};

#define FAIL(ps, pos, ...) \
    (sf_error((ps)->err, (ps)->errlen, (ps)->what, (ps)->s, (pos), __VA_ARGS__), -EINVAL)

static void skip_ws(struct sf_parser *ps)
{
    while (ps->s[ps->p] == ' ' || ps->s[ps->p] == '\t' || ps->s[ps->p] == '\n' ||
           ps->s[ps->p] == '\r')
        ps->p++;
}

/* Characters of an unquoted name: \w as MLflow's SQL tokenizer has it (UTF-8 letters
 * included), and / and - which sidetrack's own metric names use (train/loss). */
static bool name_char(char c)
{
    unsigned char u = (unsigned char)c;
    return isalnum(u) || c == '_' || c == '/' || c == '-' || c == '$' || c == '#' || u >= 0x80;
}

/* A keyword (AND, LIKE, ASC...) at the position: letters, then no more name characters. */
static bool keyword_at(const struct sf_parser *ps, size_t pos, const char *kw)
{
    size_t n = strlen(kw);
    return strncasecmp(ps->s + pos, kw, n) == 0 && !name_char(ps->s[pos + n]) &&
           ps->s[pos + n] != '.';
}

/* The length of the word at pos (name characters and dots): the offending text's extent. */
static size_t word_len(const char *s, size_t pos)
{
    size_t n = 0;
    while (name_char(s[pos + n]) || s[pos + n] == '.')
        n++;
    return n;
}

/* Reads a quoted string (quote: ' " or `) into a malloc'd *out. Inside, the quote doubled or
 * backslashed stands for itself, and \\ for a backslash; other backslashes are kept. */
static int read_quoted(struct sf_parser *ps, char **out, size_t *len)
{
    size_t start = ps->p;
    char q = ps->s[ps->p++];
    size_t cap = 16, n = 0;
    char *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (;;) {
        char c = ps->s[ps->p];
        if (c == '\0') {
            free(b);
            return FAIL(ps, start, "the quote %c opened here is never closed", q);
        }
        if (c == '\\' && (ps->s[ps->p + 1] == q || ps->s[ps->p + 1] == '\\')) {
            c = ps->s[ps->p + 1];
            ps->p += 2;
        } else if (c == q && ps->s[ps->p + 1] == q) {
            ps->p += 2;
        } else if (c == q) {
            ps->p++;
            break;
        } else {
            ps->p++;
        }
        if (n + 2 > cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
        }
        b[n++] = c;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    return 0;
}

void sf_ident_free(struct sf_ident *id)
{
    free(id->key);
    id->key = NULL;
}

bool sf_attr_numeric(enum sf_attr a)
{
    return a == SF_START_TIME || a == SF_END_TIME || a == SF_EXP_ID || a == SF_CREATION_TIME ||
           a == SF_LAST_UPDATE_TIME;
}

static const struct { const char *name; enum sf_kind kind; } prefixes[] = {
    {"metric", SF_METRIC},    {"metrics", SF_METRIC},      {"param", SF_PARAM},
    {"params", SF_PARAM},     {"parameter", SF_PARAM},     {"parameters", SF_PARAM},
    {"tag", SF_TAG},          {"tags", SF_TAG},            {"attr", SF_ATTR},
    {"attribute", SF_ATTR},   {"attributes", SF_ATTR},     {"run", SF_ATTR},
    {"dataset", SF_DATASET},  {"datasets", SF_DATASET},
};

/* MLflow's names, with its aliases ("created" is start_time, "Run name" is run_name). */
static const struct { const char *name; enum sf_attr attr; } run_attrs[] = {
    {"run_id", SF_RUN_ID},          {"run_name", SF_RUN_NAME},   {"status", SF_STATUS},
    {"user_id", SF_USER_ID},        {"artifact_uri", SF_ARTIFACT_URI},
    {"start_time", SF_START_TIME},  {"end_time", SF_END_TIME},   {"created", SF_START_TIME},
    {"Created", SF_START_TIME},     {"run name", SF_RUN_NAME},   {"Run name", SF_RUN_NAME},
    {"Run Name", SF_RUN_NAME},
};
#define RUN_ATTRS "run_id, run_name, status, user_id, artifact_uri, start_time, end_time, created"

static const struct { const char *name; enum sf_attr attr; } exp_attrs[] = {
    {"name", SF_EXP_NAME},
    {"creation_time", SF_CREATION_TIME},
    {"last_update_time", SF_LAST_UPDATE_TIME},
    {"experiment_id", SF_EXP_ID}, /* order_by only, as in MLflow */
};

static const struct { const char *name; enum sf_attr attr; } ds_fields[] = {
    {"name", SF_DS_NAME}, {"digest", SF_DS_DIGEST}, {"context", SF_DS_CONTEXT},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Gives the identifier (prefix, or NULL; key) its meaning for the parser's target. The key
 * becomes id->key for metrics, params and tags; the caller frees it otherwise. */
static int resolve_ident(struct sf_parser *ps, size_t col, const char *prefix, char *key,
                         bool order, struct sf_ident *id)
{
    id->kind = SF_ATTR;
    id->attr = SF_NONE;
    id->key = NULL;
    if (prefix) {
        size_t i = 0;
        while (i < NELEM(prefixes) && strcasecmp(prefixes[i].name, prefix) != 0)
            i++;
        if (i == NELEM(prefixes))
            return FAIL(ps, col,
                        "unknown prefix '%s': use metrics., params., tags., attributes. or "
                        "datasets. (a name with a dot in it goes in backticks: `%s.%s`)",
                        prefix, prefix, key);
        id->kind = prefixes[i].kind;
    }
    if (ps->target == SF_EXPERIMENTS) {
        if (id->kind == SF_TAG && order)
            return FAIL(ps, col, "experiments are ordered by name, experiment_id, "
                                 "creation_time or last_update_time, not by tags");
        if (id->kind == SF_TAG)
            goto keyed;
        if (id->kind != SF_ATTR)
            return FAIL(ps, col, "experiments are searched by name, creation_time, "
                                 "last_update_time and tags.KEY");
        for (size_t i = 0; i < NELEM(exp_attrs); i++)
            if (strcmp(exp_attrs[i].name, key) == 0 &&
                (order || exp_attrs[i].attr != SF_EXP_ID))
                id->attr = exp_attrs[i].attr;
        if (id->attr == SF_NONE)
            return FAIL(ps, col, "unknown experiment attribute '%s': use name, creation_time, "
                                 "last_update_time%s", key, order ? " or experiment_id" : "");
        return 0;
    }
    switch (id->kind) {
    case SF_ATTR:
        for (size_t i = 0; i < NELEM(run_attrs); i++)
            if (strcmp(run_attrs[i].name, key) == 0)
                id->attr = run_attrs[i].attr;
        if (id->attr == SF_NONE)
            return FAIL(ps, col, "unknown attribute '%s': runs have " RUN_ATTRS
                                 " (and metrics., params., tags., datasets. prefixes)", key);
        return 0;
    case SF_DATASET:
        if (order)
            return FAIL(ps, col, "runs cannot be ordered by datasets");
        for (size_t i = 0; i < NELEM(ds_fields); i++)
            if (strcmp(ds_fields[i].name, key) == 0)
                id->attr = ds_fields[i].attr;
        if (id->attr == SF_NONE)
            return FAIL(ps, col, "unknown dataset field '%s': use name, digest or context", key);
        return 0;
    default:
        break;
    }
keyed:
    id->key = key;
    return 0;
}

/* identifier := name ['.' key] | quoted ['.' key];  key := quoted | name with dots */
static int parse_ident(struct sf_parser *ps, bool order, struct sf_ident *id, size_t *end)
{
    size_t col = ps->p;
    char *first = NULL, *key = NULL;
    size_t len;
    int rc;
    char c = ps->s[ps->p];
    if (c == '`' || c == '"') {
        if ((rc = read_quoted(ps, &first, &len)) < 0)
            return rc;
    } else {
        size_t n = 0;
        while (name_char(ps->s[ps->p + n]))
            n++;
        if (n == 0) {
            if (c == '(')
                return FAIL(ps, col, "parentheses are not supported: join clauses with AND");
            return FAIL(ps, col, "expected an identifier such as metrics.acc, params.lr, "
                                 "tags.team or status");
        }
        if (!(first = strndup(ps->s + ps->p, n)))
            return -ENOMEM;
        ps->p += n;
    }
    if (ps->s[ps->p] == '.') {
        ps->p++;
        c = ps->s[ps->p];
        if (c == '`' || c == '"' || c == '\'') {
            rc = read_quoted(ps, &key, &len);
        } else {
            size_t n = word_len(ps->s, ps->p);
            key = n ? strndup(ps->s + ps->p, n) : NULL;
            rc = n ? (key ? 0 : -ENOMEM) : FAIL(ps, ps->p, "a name must follow '%s.'", first);
            ps->p += n;
        }
        if (rc == 0 && !*key)
            rc = FAIL(ps, col, "the name after '%s.' is empty", first);
        if (rc < 0) {
            free(first);
            free(key);
            return rc;
        }
        rc = resolve_ident(ps, col, first, key, order, id);
        free(first);
    } else {
        key = first;
        rc = resolve_ident(ps, col, NULL, key, order, id);
    }
    if (id->key != key)
        free(key);
    *end = ps->p;
    return rc;
}

/* ---- clauses ----------------------------------------------------------------------------- */

static const char *const op_names[] = {"=", "!=", ">", ">=", "<", "<=", "LIKE", "ILIKE", "IN",
                                       "NOT IN"};

static int parse_op(struct sf_parser *ps, enum sf_op *op)
{
    const char *s = ps->s + ps->p;
    size_t col = ps->p;
    if (s[0] == '=' && s[1] == '=')
        return FAIL(ps, col, "'==' is not an operator: use =");
    if (s[0] == '<' && s[1] == '>')
        return FAIL(ps, col, "'<>' is not an operator: use !=");
    if (s[0] == '!' && s[1] == '=') { *op = SF_NE; ps->p += 2; return 0; }
    if (s[0] == '>' && s[1] == '=') { *op = SF_GE; ps->p += 2; return 0; }
    if (s[0] == '<' && s[1] == '=') { *op = SF_LE; ps->p += 2; return 0; }
    if (s[0] == '=') { *op = SF_EQ; ps->p++; return 0; }
    if (s[0] == '>') { *op = SF_GT; ps->p++; return 0; }
    if (s[0] == '<') { *op = SF_LT; ps->p++; return 0; }
    if (keyword_at(ps, col, "LIKE")) { *op = SF_LIKE; ps->p += 4; return 0; }
    if (keyword_at(ps, col, "ILIKE")) { *op = SF_ILIKE; ps->p += 5; return 0; }
    if (keyword_at(ps, col, "IN")) { *op = SF_IN; ps->p += 2; return 0; }
    if (keyword_at(ps, col, "NOT")) {
        ps->p += 3;
        skip_ws(ps);
        if (keyword_at(ps, ps->p, "IN")) {
            *op = SF_NOT_IN;
            ps->p += 2;
            return 0;
        }
        return FAIL(ps, ps->p, "NOT must be followed by IN");
    }
    return FAIL(ps, col, "expected a comparison operator (=, !=, >, >=, <, <=, LIKE, ILIKE, "
                         "IN, NOT IN)");
}

static bool op_numeric(enum sf_op op) { return op <= SF_LE; }

/* Checks that the operator suits the identifier (shown as written: text[col, end)). */
static int check_op(struct sf_parser *ps, const struct sf_clause *c, size_t col, size_t end,
                    size_t opcol)
{
    const struct sf_ident *id = &c->id;
    int n = (int)(end - col);
    const char *name = ps->s + col;
    bool numeric = id->kind == SF_METRIC || (id->kind == SF_ATTR && sf_attr_numeric(id->attr));
    bool lists = (id->kind == SF_ATTR && !numeric) || id->kind == SF_DATASET;
    if (numeric && !op_numeric(c->op))
        return FAIL(ps, opcol, "%.*s is a number: it compares with =, !=, >, >=, <, <=, not %s",
                    n, name, op_names[c->op]);
    if (!numeric && op_numeric(c->op) && c->op != SF_EQ && c->op != SF_NE)
        return FAIL(ps, opcol, "%.*s is a string: it compares with =, !=, LIKE, ILIKE%s, not %s",
                    n, name, lists ? ", IN, NOT IN" : "", op_names[c->op]);
    if (!lists && (c->op == SF_IN || c->op == SF_NOT_IN))
        return FAIL(ps, opcol, "%.*s compares with =, !=, LIKE, ILIKE: %s is for attributes "
                               "and datasets", n, name, op_names[c->op]);
    return 0;
}

/* A number as MLflow's SQL tokenizer takes one: [-]digits[.digits][e[-]digits], or .digits. */
static int parse_number(struct sf_parser *ps, const char *name, int nlen, double *out)
{
    const char *s = ps->s + ps->p;
    size_t i = 0, digits = 0;
    if (s[i] == '-' || s[i] == '+')
        i++;
    while (isdigit((unsigned char)s[i]))
        i++, digits++;
    if (s[i] == '.') {
        i++;
        while (isdigit((unsigned char)s[i]))
            i++, digits++;
    }
    if (digits && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (s[j] == '-' || s[j] == '+')
            j++;
        if (isdigit((unsigned char)s[j])) {
            while (isdigit((unsigned char)s[j]))
                j++;
            i = j;
        }
    }
    if (s[0] == '\'' || s[0] == '"')
        return FAIL(ps, ps->p, "%.*s compares with a number, not a string: write the number "
                               "without quotes", nlen, name);
    if (!digits || name_char(s[i]) || s[i] == '.' || i > 64)
        return FAIL(ps, ps->p, "%.*s compares with a number, found '%.*s'", nlen, name,
                    (int)(word_len(ps->s, ps->p) ? word_len(ps->s, ps->p) : 1), s);
    char buf[72];
    memcpy(buf, s, i);
    buf[i] = '\0';
    *out = strtod(buf, NULL);
    ps->p += i;
    return 0;
}

static int parse_string(struct sf_parser *ps, const char *name, int nlen, char **out,
                        size_t *len)
{
    char c = ps->s[ps->p];
    if (c == '\'' || c == '"')
        return read_quoted(ps, out, len);
    size_t n = word_len(ps->s, ps->p);
    if (c == '(')
        return FAIL(ps, ps->p, "a list in parentheses goes with IN or NOT IN");
    return FAIL(ps, ps->p, "%.*s compares with a quoted string, found %.*s: write '%.*s'", nlen,
                name, (int)(n ? n : 1), ps->s + ps->p, (int)(n ? n : 1), ps->s + ps->p);
}

static int parse_list(struct sf_parser *ps, struct sf_clause *c)
{
    size_t col = ps->p;
    if (ps->s[ps->p] != '(')
        return FAIL(ps, col, "%s takes a list of quoted strings in parentheses, like ('a', 'b')",
                    op_names[c->op]);
    ps->p++;
    size_t cap = 0;
    for (;;) {
        skip_ws(ps);
        if (ps->s[ps->p] == ')' && c->nlist == 0)
            return FAIL(ps, col, "the list is empty: give at least one quoted string");
        char q = ps->s[ps->p];
        if (q != '\'' && q != '"')
            return FAIL(ps, ps->p, "expected a quoted string in the list of %s",
                        op_names[c->op]);
        if (c->nlist == cap) {
            size_t nc = cap ? cap * 2 : 4;
            char **nl = realloc(c->list, nc * sizeof *nl);
            if (!nl)
                return -ENOMEM;
            c->list = nl;
            size_t *nn = realloc(c->lens, nc * sizeof *nn);
            if (!nn)
                return -ENOMEM;
            c->lens = nn;
            cap = nc;
        }
        int rc = read_quoted(ps, &c->list[c->nlist], &c->lens[c->nlist]);
        if (rc < 0)
            return rc;
        c->nlist++;
        skip_ws(ps);
        if (ps->s[ps->p] == ')') {
            ps->p++;
            return 0;
        }
        if (ps->s[ps->p] != ',')
            return FAIL(ps, ps->p, "expected , or ) in the list of %s", op_names[c->op]);
        ps->p++;
    }
}

static void clause_free(struct sf_clause *c)
{
    sf_ident_free(&c->id);
    free(c->str);
    for (size_t i = 0; i < c->nlist; i++)
        free(c->list[i]);
    free(c->list);
    free(c->lens);
}

static int parse_clause(struct sf_parser *ps, struct sf_clause *c)
{
    size_t col = ps->p, end;
    int rc = parse_ident(ps, false, &c->id, &end);
    if (rc < 0)
        return rc;
    const char *name = ps->s + col;
    int nlen = (int)(end - col);
    skip_ws(ps);
    size_t opcol = ps->p;
    if ((rc = parse_op(ps, &c->op)) < 0 || (rc = check_op(ps, c, col, end, opcol)) < 0)
        return rc;
    skip_ws(ps);
    if (c->op == SF_IN || c->op == SF_NOT_IN)
        return parse_list(ps, c);
    if (c->id.kind == SF_METRIC || (c->id.kind == SF_ATTR && sf_attr_numeric(c->id.attr)))
        return parse_number(ps, name, nlen, &c->num);
    return parse_string(ps, name, nlen, &c->str, &c->slen);
}

/* The run's own fields are in hand; metrics, params and tags cost a lookup each; datasets a
 * walk and JSON parsing. */
static int clause_cost(const struct sf_clause *c)
{
    switch (c->id.kind) {
    case SF_ATTR: return 0;
    case SF_DATASET: return 2;
    default: return 1;
    }
}

static int filter_parse(const char *text, enum sf_target target, struct store_filter **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    struct store_filter *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->target = target;
    struct sf_parser ps = {text ? text : "", 0, target, "filter", err, errlen};
    size_t cap = 0;
    int rc = 0;
    skip_ws(&ps);
    while (ps.s[ps.p]) {
        if (f->n == cap) {
            size_t nc = cap ? cap * 2 : 4;
            struct sf_clause *nv = realloc(f->c, nc * sizeof *nv);
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            f->c = nv;
            cap = nc;
        }
        memset(&f->c[f->n], 0, sizeof f->c[0]);
        rc = parse_clause(&ps, &f->c[f->n]);
        f->n++;
        if (rc < 0)
            break;
        skip_ws(&ps);
        if (!ps.s[ps.p])
            break;
        if (keyword_at(&ps, ps.p, "OR")) {
            rc = FAIL(&ps, ps.p, "OR is not supported: clauses can only be joined with AND");
            break;
        }
        if (!keyword_at(&ps, ps.p, "AND")) {
            rc = FAIL(&ps, ps.p, "expected AND or the end of the filter after a clause");
            break;
        }
        size_t and_at = ps.p;
        ps.p += 3;
        skip_ws(&ps);
        if (!ps.s[ps.p]) {
            rc = FAIL(&ps, and_at, "AND must be followed by another clause");
            break;
        }
    }
    if (rc < 0) {
        store_filter_free(f);
        return rc;
    }
    /* stable: cheap clauses first, the order written otherwise */
    for (size_t i = 1; i < f->n; i++) {
        struct sf_clause x = f->c[i];
        size_t j = i;
        for (; j > 0 && clause_cost(&f->c[j - 1]) > clause_cost(&x); j--)
            f->c[j] = f->c[j - 1];
        f->c[j] = x;
    }
    *out = f;
    return 0;
}

int store_filter_parse(const char *text, struct store_filter **out, char *err, size_t errlen)
{
    return filter_parse(text, SF_RUNS, out, err, errlen);
}

int store_filter_parse_experiments(const char *text, struct store_filter **out, char *err,
                                   size_t errlen)
{
    return filter_parse(text, SF_EXPERIMENTS, out, err, errlen);
}

void store_filter_free(struct store_filter *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        clause_free(&f->c[i]);
    free(f->c);
    free(f);
}

int sf_parse_order(const char *text, enum sf_target target, struct sf_ident *id, bool *asc,
                   char *err, size_t errlen)
{
    char what[96];
    snprintf(what, sizeof what, "order_by '%.60s%s'", text ? text : "",
             text && strlen(text) > 60 ? "..." : "");
    struct sf_parser ps = {text ? text : "", 0, target, what, err, errlen};
    memset(id, 0, sizeof *id);
    skip_ws(&ps);
    if (!ps.s[ps.p])
        return FAIL(&ps, ps.p, "expected a column such as metrics.rmse, params.lr or "
                               "start_time, then ASC or DESC");
    size_t end;
    int rc = parse_ident(&ps, true, id, &end);
    if (rc < 0)
        return rc;
    skip_ws(&ps);
    *asc = true;
    if (keyword_at(&ps, ps.p, "ASC")) {
        ps.p += 3;
    } else if (keyword_at(&ps, ps.p, "DESC")) {
        *asc = false;
        ps.p += 4;
    }
    skip_ws(&ps);
    if (ps.s[ps.p]) {
        sf_ident_free(id);
        return FAIL(&ps, ps.p, "expected ASC, DESC or the end after the column");
    }
    return 0;
}

/* ---- matching ------------------------------------------------------------------------- */

static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    size_t l = s[0] < 0x80 ? 1 : s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
    return l > n ? n : l;
}

/* SQL LIKE without an escape character: % any run of characters (none too), _ exactly one
 * character (a whole UTF-8 sequence). Greedy with backtracking to the last %: O(n*m) at
 * worst, linear for the usual 'prefix%' and '%infix%'. */
bool sf_like(const char *p, size_t pn, const char *s, size_t sn, bool icase)
{
    size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;
    while (si < sn) {
        if (pi < pn && p[pi] == '%') {
            star_p = ++pi;
            star_s = si;
        } else if (pi < pn && p[pi] == '_') {
            pi++;
            si += utf8_char_len((const unsigned char *)s + si, sn - si);
        } else if (pi < pn && (p[pi] == s[si] ||
                               (icase && tolower((unsigned char)p[pi]) ==
                                             tolower((unsigned char)s[si])))) {
            pi++;
            si++;
        } else if (star_p != (size_t)-1) {
            pi = star_p;
            star_s += utf8_char_len((const unsigned char *)s + star_s, sn - star_s);
            si = star_s;
        } else {
            return false;
        }
    }
    while (pi < pn && p[pi] == '%')
        pi++;
    return pi == pn;
}

static bool match_str(const struct sf_clause *c, const char *v, size_t n)
{
    switch (c->op) {
    case SF_EQ: return n == c->slen && memcmp(v, c->str, n) == 0;
    case SF_NE: return !(n == c->slen && memcmp(v, c->str, n) == 0);
    case SF_LIKE: return sf_like(c->str, c->slen, v, n, false);
    case SF_ILIKE: return sf_like(c->str, c->slen, v, n, true);
    case SF_IN:
    case SF_NOT_IN:
        for (size_t i = 0; i < c->nlist; i++)
            if (n == c->lens[i] && memcmp(v, c->list[i], n) == 0)
                return c->op == SF_IN;
        return c->op == SF_NOT_IN;
    default: return false;
    }
}

/* NaN compares false except with != (as in Python, whose comparison MLflow uses). */
static bool match_num(enum sf_op op, double v, double k)
{
    switch (op) {
    case SF_EQ: return v == k;
    case SF_NE: return v != k;
    case SF_GT: return v > k;
    case SF_GE: return v >= k;
    case SF_LT: return v < k;
    case SF_LE: return v <= k;
    default: return false;
    }
}

bool sf_run_attr(const struct store_run *r, enum sf_attr a, char *buf, size_t len,
                 const char **s, double *num)
{
    char hex[33];
    switch (a) {
    case SF_RUN_ID:
        store_run_id_hex(r->id, buf);
        *s = buf;
        return true;
    case SF_RUN_NAME: *s = r->name; return true;
    case SF_STATUS: *s = store_run_status_name(r->status); return true;
    case SF_USER_ID: *s = r->user; return true;
    case SF_ARTIFACT_URI:
        store_run_id_hex(r->id, hex);
        snprintf(buf, len, "mlflow-artifacts:/%llu/%s/artifacts",
                 (unsigned long long)r->experiment_id, hex);
        *s = buf;
        return true;
    case SF_START_TIME: *num = (double)r->start_ms; return true;
    case SF_END_TIME: *num = (double)r->end_ms; return r->end_ms != 0;
    default: return false;
    }
}

struct ds_ctx {
    const struct sf_clause *c;
};

/* One dataset input (its DatasetInput JSON): 1 when it matches the clause, else 0. A value
 * that is not such JSON is no dataset. */
static int ds_one(const char *key, const char *value, void *arg)
{
    (void)key;
    const struct sf_clause *c = ((struct ds_ctx *)arg)->c;
    json_t *doc = json_loads(value, 0, NULL);
    if (!doc)
        return 0;
    int hit = 0;
    if (c->id.attr == SF_DS_CONTEXT) {
        size_t i;
        json_t *tag;
        json_array_foreach(json_object_get(doc, "tags"), i, tag) {
            const char *k = json_string_value(json_object_get(tag, "key"));
            json_t *v = json_object_get(tag, "value");
            if (k && strcmp(k, "mlflow.data.context") == 0 && json_is_string(v) &&
                match_str(c, json_string_value(v), json_string_length(v)))
                hit = 1;
        }
    } else {
        json_t *v = json_object_get(json_object_get(doc, "dataset"),
                                    c->id.attr == SF_DS_NAME ? "name" : "digest");
        if (json_is_string(v))
            hit = match_str(c, json_string_value(v), json_string_length(v));
    }
    json_decref(doc);
    return hit;
}

static int match_run_clause(struct store_txn *t, const struct sf_clause *c,
                            const struct store_run *r)
{
    const char *s = NULL;
    size_t n = 0;
    double num = 0;
    char buf[128];
    int rc;
    switch (c->id.kind) {
    case SF_ATTR:
        if (!sf_run_attr(r, c->id.attr, buf, sizeof buf, &s, &num))
            return 0;
        if (sf_attr_numeric(c->id.attr))
            return match_num(c->op, num, c->num);
        return match_str(c, s, strlen(s));
    case SF_METRIC: {
        struct store_metric_summary sum;
        rc = store_metric_summary_get(t, r->id, c->id.key, &sum);
        if (rc == -ENOENT || rc == -ENAMETOOLONG)
            return 0;
        return rc < 0 ? rc : match_num(c->op, sum.latest.value, c->num);
    }
    case SF_PARAM:
    case SF_TAG:
        rc = c->id.kind == SF_PARAM ? store_param_get(t, r->id, c->id.key, &s, &n)
                                    : store_tag_get(t, r->id, c->id.key, &s, &n);
        /* MLflow keeps the run's name in this tag too; the store keeps it in the run. */
        if (rc == -ENOENT && c->id.kind == SF_TAG && r->name[0] &&
            strcmp(c->id.key, "mlflow.runName") == 0) {
            s = r->name;
            n = strlen(s);
            rc = 0;
        }
        if (rc == -ENOENT)
            return 0;
        return rc < 0 ? rc : match_str(c, s, n);
    case SF_DATASET: {
        struct ds_ctx d = {c};
        rc = store_inputs_foreach(t, r->id, ds_one, &d);
        return rc < 0 ? rc : rc > 0;
    }
    }
    return 0;
}

int store_filter_match_run(struct store_txn *t, const struct store_filter *f,
                           const struct store_run *r)
{
    if (!f)
        return 1;
    if (f->target != SF_RUNS)
        return -EINVAL;
    for (size_t i = 0; i < f->n; i++) {
        int rc = match_run_clause(t, &f->c[i], r);
        if (rc <= 0)
            return rc;
    }
    return 1;
}

struct exp_tag_ctx {
    const char *key;
    char *value; /* malloc'd when found */
};

static int exp_tag_one(const char *key, const char *value, void *arg)
{
    struct exp_tag_ctx *x = arg;
    if (strcmp(key, x->key) != 0)
        return 0;
    return (x->value = strdup(value)) ? 1 : -ENOMEM;
}

int sf_match_experiment(struct store_txn *t, const struct store_filter *f,
                        const struct store_experiment *e)
{
    if (!f)
        return 1;
    if (f->target != SF_EXPERIMENTS)
        return -EINVAL;
    for (size_t i = 0; i < f->n; i++) {
        const struct sf_clause *c = &f->c[i];
        int m;
        if (c->id.kind == SF_TAG) {
            struct exp_tag_ctx x = {c->id.key, NULL};
            int rc = store_exp_tags_foreach(t, e->id, exp_tag_one, &x);
            if (rc < 0)
                return rc;
            m = x.value && match_str(c, x.value, strlen(x.value));
            free(x.value);
        } else if (c->id.attr == SF_EXP_NAME) {
            m = match_str(c, e->name, strlen(e->name));
        } else {
            double v = (double)(c->id.attr == SF_CREATION_TIME ? e->created_ms : e->updated_ms);
            m = match_num(c->op, v, c->num);
        }
        if (!m)
            return 0;
    }
    return 1;
}
