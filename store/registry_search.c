/* registry_search.c — registered-models/search and model-versions/search over the store
 * (registry.h gives the filter language and the order).
 *
 * The run and experiment filter parser (search_filter.c) knows runs' and experiments' fields
 * only, so the registry's few fields (name, run_id, source_path, version_number, tags.KEY)
 * get this small parser of the same shape; its messages come out the same way (sf_error: the
 * column and the text at fault). Both searches walk models in name order through rm_name,
 * which is also what page tokens point into: the token is the last name returned (and, for
 * versions, the last version number), hex-encoded so that any name survives a URL.
 */
#include "registry_internal.h"
#include "search_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

enum rf_field { RF_NAME, RF_RUN_ID, RF_SOURCE, RF_VERSION, RF_TAG };
enum rf_op { RF_EQ, RF_NE, RF_LT, RF_LE, RF_GT, RF_GE, RF_LIKE, RF_ILIKE, RF_IN };

struct rf_clause {
    enum rf_field field;
    enum rf_op op;
    char *key;          /* tags.KEY */
    char **vals;        /* one string, or IN's list */
    size_t nvals;
    uint64_t num;       /* version_number */
};

struct rf {
    struct rf_clause *c;
    size_t n;
};

struct rf_parser {
    const char *s;
    size_t p;
    bool versions;
    char *err;
    size_t errlen;
};

#define RF_FAIL(ps, pos, ...) (sf_error((ps)->err, (ps)->errlen, "filter", (ps)->s, (pos), \
                                        __VA_ARGS__), -EINVAL)

static void rf_free(struct rf *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->c[i].key);
        for (size_t j = 0; j < f->c[i].nvals; j++)
            free(f->c[i].vals[j]);
        free(f->c[i].vals);
    }
    free(f->c);
    f->c = NULL;
    f->n = 0;
}

static void ws(struct rf_parser *ps)
{
    while (isspace((unsigned char)ps->s[ps->p]))
        ps->p++;
}

static bool word_at(const struct rf_parser *ps, const char *kw)
{
    size_t n = strlen(kw);
    if (strncasecmp(ps->s + ps->p, kw, n) != 0)
        return false; /* and the text may end before kw would */
    char after = ps->s[ps->p + n];
    return !isalnum((unsigned char)after) && after != '_';
}

/* 'text' or "text" (or `text` for names); a doubled quote stands for itself. */
static int quoted(struct rf_parser *ps, char **out)
{
    char q = ps->s[ps->p];
    size_t start = ps->p++;
    char *buf = malloc(strlen(ps->s + ps->p) + 1);
    size_t n = 0;
    if (!buf)
        return -ENOMEM;
    for (;;) {
        char c = ps->s[ps->p];
        if (!c) {
            free(buf);
            return RF_FAIL(ps, start, "the quote %c is never closed", q);
        }
        ps->p++;
        if (c == q) {
            if (ps->s[ps->p] != q)
                break;
            ps->p++;
        } else if (c == '\\' && ps->s[ps->p] == q) {
            c = q;
            ps->p++;
        }
        buf[n++] = c;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int push_val(struct rf_clause *c, char *v)
{
    char **nv = realloc(c->vals, (c->nvals + 1) * sizeof *nv);
    if (!nv) {
        free(v);
        return -ENOMEM;
    }
    c->vals = nv;
    c->vals[c->nvals++] = v;
    return 0;
}

static int parse_field(struct rf_parser *ps, struct rf_clause *c)
{
    size_t col = ps->p, n = 0;
    char *word = NULL;
    int rc;
    if (ps->s[ps->p] == '`' || ps->s[ps->p] == '"') {
        if ((rc = quoted(ps, &word)) < 0)
            return rc;
    } else {
        while (isalnum((unsigned char)ps->s[ps->p + n]) || ps->s[ps->p + n] == '_')
            n++;
        if (n == 0)
            return RF_FAIL(ps, col, "expected a field such as name%s or tags.KEY",
                           ps->versions ? ", run_id, source_path, version_number" : "");
        if (!(word = strndup(ps->s + ps->p, n)))
            return -ENOMEM;
        ps->p += n;
    }
    if (ps->s[ps->p] == '.') {
        ps->p++;
        if (strcasecmp(word, "tags") != 0 && strcasecmp(word, "tag") != 0) {
            rc = RF_FAIL(ps, col, "unknown prefix '%s': only tags.KEY has one", word);
            free(word);
            return rc;
        }
        free(word);
        c->field = RF_TAG;
        char q = ps->s[ps->p];
        if (q == '`' || q == '"' || q == '\'')
            return quoted(ps, &c->key);
        for (n = 0; isalnum((unsigned char)ps->s[ps->p + n]) ||
                    (ps->s[ps->p + n] && strchr("_./-", ps->s[ps->p + n]));
             n++)
            ;
        if (n == 0)
            return RF_FAIL(ps, ps->p, "a tag key must follow 'tags.'");
        c->key = strndup(ps->s + ps->p, n);
        ps->p += n;
        return c->key ? 0 : -ENOMEM;
    }
    static const struct { const char *name; enum rf_field f; bool versions_only; } fields[] = {
        {"name", RF_NAME, false},        {"run_id", RF_RUN_ID, true},
        {"source_path", RF_SOURCE, true}, {"version_number", RF_VERSION, true},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (strcmp(word, fields[i].name) == 0 && (ps->versions || !fields[i].versions_only)) {
            c->field = fields[i].f;
            free(word);
            return 0;
        }
    rc = RF_FAIL(ps, col, "unknown field '%s': %s are searched by name%s and tags.KEY", word,
                 ps->versions ? "model versions" : "registered models",
                 ps->versions ? ", run_id, source_path, version_number" : "");
    free(word);
    return rc;
}

static int parse_op(struct rf_parser *ps, struct rf_clause *c)
{
    static const struct { const char *text; enum rf_op op; } ops[] = {
        {"!=", RF_NE}, {"<>", RF_NE}, {"<=", RF_LE}, {">=", RF_GE}, {"=", RF_EQ},
        {"<", RF_LT},  {">", RF_GT},
    };
    size_t col = ps->p;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strncmp(ps->s + ps->p, ops[i].text, strlen(ops[i].text)) == 0) {
            c->op = ops[i].op;
            ps->p += strlen(ops[i].text);
            break;
        }
    if (ps->p == col) {
        if (word_at(ps, "LIKE"))
            c->op = RF_LIKE, ps->p += 4;
        else if (word_at(ps, "ILIKE"))
            c->op = RF_ILIKE, ps->p += 5;
        else if (word_at(ps, "IN"))
            c->op = RF_IN, ps->p += 2;
        else
            return RF_FAIL(ps, col, "expected an operator: =, !=, LIKE, ILIKE%s",
                           ps->versions ? ", IN (run_id), <, <=, >, >= (version_number)" : "");
    }
    bool numeric = c->op >= RF_LT && c->op <= RF_GE;
    if (c->field == RF_VERSION ? c->op > RF_GE : numeric)
        return RF_FAIL(ps, col, c->field == RF_VERSION
                                    ? "version_number compares with =, !=, <, <=, > or >="
                                    : "a string field compares with =, !=, LIKE or ILIKE");
    if (c->op == RF_IN && c->field != RF_RUN_ID)
        return RF_FAIL(ps, col, "IN applies to run_id only");
    return 0;
}

static int parse_value(struct rf_parser *ps, struct rf_clause *c)
{
    size_t col = ps->p;
    char *v;
    int rc;
    if (c->field == RF_VERSION) {
        const char *s = ps->s + ps->p;
        bool q = *s == '\'' || *s == '"';
        size_t n = strspn(s + q, "0123456789");
        if (n == 0 || n > 19 || (q && s[n + 1] != *s))
            return RF_FAIL(ps, col, "version_number takes a whole number");
        c->num = strtoull(s + q, NULL, 10);
        ps->p += n + 2 * q;
        return 0;
    }
    if (c->op != RF_IN) {
        if (ps->s[ps->p] != '\'' && ps->s[ps->p] != '"')
            return RF_FAIL(ps, col, "expected a quoted string such as 'my-model'");
        return (rc = quoted(ps, &v)) < 0 ? rc : push_val(c, v);
    }
    if (ps->s[ps->p] != '(')
        return RF_FAIL(ps, col, "IN takes a list in parentheses: ('a', 'b')");
    ps->p++;
    for (;;) {
        ws(ps);
        if (ps->s[ps->p] != '\'' && ps->s[ps->p] != '"')
            return RF_FAIL(ps, ps->p, "expected a quoted string in the list");
        if ((rc = quoted(ps, &v)) < 0 || (rc = push_val(c, v)) < 0)
            return rc;
        ws(ps);
        if (ps->s[ps->p] == ')') {
            ps->p++;
            return 0;
        }
        if (ps->s[ps->p] != ',')
            return RF_FAIL(ps, ps->p, "expected ',' or ')' in the list");
        ps->p++;
    }
}

static int rf_parse(const char *text, bool versions, struct rf *f, char *err, size_t errlen)
{
    struct rf_parser ps = {text ? text : "", 0, versions, err, errlen};
    f->c = NULL;
    f->n = 0;
    ws(&ps);
    while (ps.s[ps.p]) {
        struct rf_clause *nc = realloc(f->c, (f->n + 1) * sizeof *nc);
        if (!nc) {
            rf_free(f);
            return -ENOMEM;
        }
        f->c = nc;
        struct rf_clause *c = &f->c[f->n++];
        memset(c, 0, sizeof *c);
        int rc = parse_field(&ps, c);
        if (rc == 0) {
            ws(&ps);
            rc = parse_op(&ps, c);
        }
        if (rc == 0) {
            ws(&ps);
            rc = parse_value(&ps, c);
        }
        if (rc == 0) {
            ws(&ps);
            if (word_at(&ps, "AND")) {
                ps.p += 3;
                ws(&ps);
                if (!ps.s[ps.p])
                    rc = RF_FAIL(&ps, ps.p, "a clause must follow AND");
            } else if (ps.s[ps.p]) {
                rc = RF_FAIL(&ps, ps.p, "expected AND or the end (OR and parentheses are "
                                        "not supported)");
            }
        }
        if (rc) {
            rf_free(f);
            return rc;
        }
    }
    return 0;
}

/* ---- matching ------------------------------------------------------------------------ */

static bool match_str(const struct rf_clause *c, const char *v)
{
    switch (c->op) {
    case RF_EQ: return strcmp(v, c->vals[0]) == 0;
    case RF_NE: return strcmp(v, c->vals[0]) != 0;
    case RF_LIKE: return sf_like(c->vals[0], strlen(c->vals[0]), v, strlen(v), false);
    case RF_ILIKE: return sf_like(c->vals[0], strlen(c->vals[0]), v, strlen(v), true);
    case RF_IN:
        for (size_t i = 0; i < c->nvals; i++)
            if (strcmp(v, c->vals[i]) == 0)
                return true;
        return false;
    default: return false;
    }
}

static bool match_num(const struct rf_clause *c, uint64_t v)
{
    switch (c->op) {
    case RF_EQ: return v == c->num;
    case RF_NE: return v != c->num;
    case RF_LT: return v < c->num;
    case RF_LE: return v <= c->num;
    case RF_GT: return v > c->num;
    case RF_GE: return v >= c->num;
    default: return false;
    }
}

/* A tag clause on model id's tag (version 0) or a version's: 1, 0, or an error. A missing
 * tag matches nothing, != included (as for runs). */
static int match_tag(struct store_txn *t, const struct rf_clause *c, uint64_t id,
                     uint64_t version)
{
    uint8_t owner[16], k[ST_MAX_KEY];
    rg_mvkey(owner, id, version);
    int kl = st_runkey(k, owner, c->key);
    if (kl < 0)
        return 0;
    MDB_val v;
    int rc = st_get(t, DB_RM_TAGS, k, (size_t)kl, &v);
    if (rc)
        return rc == -ENOENT ? 0 : rc;
    char *s = strndup(v.mv_data, v.mv_size);
    if (!s)
        return -ENOMEM;
    rc = match_str(c, s);
    free(s);
    return rc;
}

/* Clauses about the model (its name and, in a model search, its tags). */
static int match_model(struct store_txn *t, const struct rf *f, const struct store_rm *m,
                       bool versions)
{
    for (size_t i = 0; i < f->n; i++) {
        const struct rf_clause *c = &f->c[i];
        int rc = 1;
        if (c->field == RF_NAME)
            rc = match_str(c, m->name);
        else if (c->field == RF_TAG && !versions)
            rc = match_tag(t, c, m->id, 0);
        if (rc <= 0)
            return rc;
    }
    return 1;
}

static int match_version(struct store_txn *t, const struct rf *f, const struct store_mv *v)
{
    for (size_t i = 0; i < f->n; i++) {
        const struct rf_clause *c = &f->c[i];
        int rc = 1;
        switch (c->field) {
        case RF_RUN_ID: rc = match_str(c, v->run_id); break;
        case RF_SOURCE: rc = match_str(c, v->source); break;
        case RF_VERSION: rc = match_num(c, v->version); break;
        case RF_TAG: rc = match_tag(t, c, v->model_id, v->version); break;
        case RF_NAME: break; /* matched with the model */
        }
        if (rc <= 0)
            return rc;
    }
    return 1;
}

/* ---- tokens --------------------------------------------------------------------------- */

static void token_make(char *tok, const char *name, uint64_t version)
{
    size_t n = strlen(name);
    st_hex((const uint8_t *)name, n, tok);
    if (version)
        snprintf(tok + 2 * n, STORE_RM_TOKEN_MAX - 2 * n, ":%llu", (unsigned long long)version);
}

/* hex(name)[:version] -> name, version (0 when absent). */
static int token_read(const char *tok, bool versions, char name[STORE_RM_NAME_MAX + 1],
                      uint64_t *version, char *err, size_t errlen)
{
    size_t hn = strcspn(tok, ":"), n = hn / 2;
    bool ok = hn && hn % 2 == 0 && n <= STORE_RM_NAME_MAX && (tok[hn] == ':') == versions;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned b = 0;
        ok = isxdigit((unsigned char)tok[2 * i]) && isxdigit((unsigned char)tok[2 * i + 1]) &&
             sscanf(tok + 2 * i, "%2x", &b) == 1 && b != 0;
        name[i] = (char)b;
    }
    name[ok ? n : 0] = '\0';
    *version = 0;
    if (ok && versions) {
        const char *d = tok + hn + 1;
        ok = *d && strspn(d, "0123456789") == strlen(d) && strlen(d) <= 19;
        *version = ok ? strtoull(d, NULL, 10) : 0;
        ok = ok && *version > 0;
    }
    if (!ok && err && errlen)
        snprintf(err, errlen, "invalid page token: pass the next_page_token of the previous "
                              "page of the same search, or none");
    return ok ? 0 : -EINVAL;
}

static int max_read(size_t *max, size_t dflt, size_t top, char *err, size_t errlen)
{
    if (*max == 0)
        *max = dflt;
    if (*max <= top)
        return 0;
    if (err && errlen)
        snprintf(err, errlen, "invalid max_results %zu: at most %zu", *max, top);
    return -EINVAL;
}

/* ---- walking models in name order ------------------------------------------------------ */

/* Calls fn for each model whose name is > after (>= when inclusive), in name order. */
static int models_from(struct store_txn *t, const char *after, bool inclusive,
                       int (*fn)(const struct store_rm *m, void *arg), void *arg)
{
    if (!st_has_db(t, DB_RM_NAME))
        return 0;
    struct store_rm *m = malloc(sizeof *m);
    MDB_cursor *c = NULL;
    int rc = m ? mdb_cursor_open(t->txn, t->s->dbi[DB_RM_NAME], &c) : ENOMEM;
    if (rc) {
        free(m);
        return rc == ENOMEM ? -ENOMEM : st_txn_err(t, rc);
    }
    MDB_val k = {strlen(after), (void *)after}, v;
    rc = mdb_cursor_get(c, &k, &v, k.mv_size ? MDB_SET_RANGE : MDB_FIRST);
    if (rc == 0 && !inclusive && k.mv_size == strlen(after) &&
        memcmp(k.mv_data, after, k.mv_size) == 0)
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    int r = 0;
    while (rc == 0) {
        if (v.mv_size != 8) {
            r = -EBADMSG;
            break;
        }
        if ((r = store_rm_get_id(t, st_rd_be64(v.mv_data), m)) != 0 || (r = fn(m, arg)) != 0)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    free(m);
    if (r)
        return r == -ENOENT ? -EBADMSG : r;
    return rc == MDB_NOTFOUND ? 0 : st_txn_err(t, rc);
}

/* ---- registered models ----------------------------------------------------------------- */

struct rm_search {
    struct store_txn *t;
    const struct rf *f;
    struct store_rm_page *out;
    size_t max;
};

static int rm_search_one(const struct store_rm *m, void *arg)
{
    struct rm_search *s = arg;
    int rc = match_model(s->t, s->f, m, false);
    if (rc <= 0)
        return rc;
    if (s->out->n == s->max) {
        token_make(s->out->next_page_token, s->out->names[s->out->n - 1], 0);
        return 1;
    }
    strcpy(s->out->names[s->out->n++], m->name);
    return 0;
}

int store_rm_search(struct store_txn *t, const struct store_rm_query *q,
                    struct store_rm_page *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    size_t max = q->max_results;
    char after[STORE_RM_NAME_MAX + 1] = "";
    uint64_t unused;
    struct rf f;
    int rc = max_read(&max, STORE_RM_SEARCH_DEFAULT_MAX, STORE_RM_SEARCH_MAX_MAX, err, errlen);
    if (rc || (q->page_token && *q->page_token &&
               (rc = token_read(q->page_token, false, after, &unused, err, errlen)) < 0))
        return rc;
    if ((rc = rf_parse(q->filter, false, &f, err, errlen)) < 0)
        return rc;
    out->names = malloc((max + 1) * sizeof *out->names);
    if (!out->names) {
        rf_free(&f);
        return -ENOMEM;
    }
    struct rm_search s = {t, &f, out, max};
    rc = models_from(t, after, false, rm_search_one, &s);
    rf_free(&f);
    if (rc < 0) {
        store_rm_page_free(out);
        return rc;
    }
    return 0;
}

void store_rm_page_free(struct store_rm_page *p)
{
    if (!p)
        return;
    free(p->names);
    p->names = NULL;
    p->n = 0;
}

/* ---- model versions -------------------------------------------------------------------- */

struct mv_search {
    struct store_txn *t;
    const struct rf *f;
    struct store_mv_page *out;
    size_t max;
    const char *eq_name;  /* a name = '...' clause: only that model */
    const char *tok_name; /* the page token's model: only versions below tok_version */
    uint64_t tok_version;
    uint64_t below;       /* the current model's versions from here on were handed out */
    struct rg_u64s hits;  /* versions of the current model that match, ascending */
};

static int mv_hit(const struct store_mv *v, void *arg)
{
    struct mv_search *s = arg;
    if (s->below && v->version >= s->below)
        return 1; /* ascending: the rest are on earlier pages */
    int rc = match_version(s->t, s->f, v);
    if (rc <= 0)
        return rc;
    return rg_u64s_add(&s->hits, v->version);
}

static int mv_search_model(const struct store_rm *m, void *arg)
{
    struct mv_search *s = arg;
    if (s->eq_name && strcmp(m->name, s->eq_name) != 0)
        return 1; /* past the one model asked for */
    int rc = match_model(s->t, s->f, m, true);
    if (rc <= 0)
        return rc;
    s->hits.n = 0;
    s->below = s->tok_name && strcmp(m->name, s->tok_name) == 0 ? s->tok_version : 0;
    rc = rg_mv_foreach_model(s->t, m, mv_hit, s);
    if (rc < 0)
        return rc;
    struct store_mv_page *o = s->out;
    for (size_t i = s->hits.n; i-- > 0;) {
        if (o->n == s->max) {
            token_make(o->next_page_token, o->refs[o->n - 1].name, o->refs[o->n - 1].version);
            return 1;
        }
        strcpy(o->refs[o->n].name, m->name);
        o->refs[o->n++].version = s->hits.v[i];
    }
    return 0;
}

int store_mv_search(struct store_txn *t, const struct store_rm_query *q,
                    struct store_mv_page *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    size_t max = q->max_results;
    char after[STORE_RM_NAME_MAX + 1] = "";
    uint64_t tok_version = 0;
    struct rf f;
    int rc = max_read(&max, STORE_MV_SEARCH_DEFAULT_MAX, STORE_MV_SEARCH_MAX_MAX, err, errlen);
    bool tok = q->page_token && *q->page_token;
    if (rc || (tok && (rc = token_read(q->page_token, true, after, &tok_version, err,
                                       errlen)) < 0))
        return rc;
    if ((rc = rf_parse(q->filter, true, &f, err, errlen)) < 0)
        return rc;
    struct mv_search s = {.t = t, .f = &f, .out = out, .max = max,
                         .tok_name = tok ? after : NULL, .tok_version = tok_version};
    for (size_t i = 0; i < f.n; i++)
        if (f.c[i].field == RF_NAME && f.c[i].op == RF_EQ)
            s.eq_name = f.c[i].vals[0];
    /* Start at the token's model (its lower versions are left), else at the named one. */
    const char *from = after;
    if (s.eq_name && strcmp(s.eq_name, after) > 0)
        from = s.eq_name, s.tok_name = NULL;
    out->refs = malloc(max * sizeof *out->refs + 1);
    if (!out->refs)
        rc = -ENOMEM;
    else
        rc = models_from(t, from, true, mv_search_model, &s);
    free(s.hits.v);
    rf_free(&f);
    if (rc < 0) {
        store_mv_page_free(out);
        return rc;
    }
    return 0;
}

void store_mv_page_free(struct store_mv_page *p)
{
    if (!p)
        return;
    free(p->refs);
    p->refs = NULL;
    p->n = 0;
}
