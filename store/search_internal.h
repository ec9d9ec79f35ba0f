/* search_internal.h — what search_filter.c (the language: parsing, matching) and search.c (the
 * queries: gathering, ordering, pages) share. Nobody outside the store sees it. */
#ifndef SIDETRACK_STORE_SEARCH_INTERNAL_H
#define SIDETRACK_STORE_SEARCH_INTERNAL_H

#include "search.h"

#include <stdbool.h>

enum sf_kind { SF_METRIC, SF_PARAM, SF_TAG, SF_ATTR, SF_DATASET };

/* Attributes: of runs, of experiments, and the dataset fields. */
enum sf_attr {
    SF_NONE,
    SF_RUN_ID, SF_RUN_NAME, SF_STATUS, SF_USER_ID, SF_ARTIFACT_URI, SF_START_TIME, SF_END_TIME,
    SF_EXP_NAME, SF_EXP_ID, SF_CREATION_TIME, SF_LAST_UPDATE_TIME,
    SF_DS_NAME, SF_DS_DIGEST, SF_DS_CONTEXT,
};

enum sf_op { SF_EQ, SF_NE, SF_GT, SF_GE, SF_LT, SF_LE, SF_LIKE, SF_ILIKE, SF_IN, SF_NOT_IN };

/* What an identifier is about: runs or experiments, in a filter or an order_by. */
enum sf_target { SF_RUNS, SF_EXPERIMENTS };

/* An identifier once resolved: metrics.KEY, params.KEY, tags.KEY, an attribute or a dataset
 * field. key is malloc'd for metrics, params and tags, NULL otherwise. */
struct sf_ident {
    enum sf_kind kind;
    enum sf_attr attr;
    char *key;
};

struct sf_clause {
    struct sf_ident id;
    enum sf_op op;
    double num;     /* numeric comparisons */
    char *str;      /* string comparisons (NUL-terminated; slen bytes) */
    size_t slen;
    char **list;    /* IN, NOT IN */
    size_t *lens;
    size_t nlist;
};

struct store_filter {
    enum sf_target target;
    struct sf_clause *c; /* the cheap clauses (the run's own fields) first */
    size_t n;
};

/* Parses one order_by entry ("metrics.rmse DESC"). -EINVAL with err set. */
int sf_parse_order(const char *text, enum sf_target target, struct sf_ident *id, bool *asc,
                   char *err, size_t errlen);
void sf_ident_free(struct sf_ident *id);
/* Whether an attribute holds a number (times, ids) rather than a string. */
bool sf_attr_numeric(enum sf_attr a);

/* A run's string attribute (run_id, run_name, status, user_id, artifact_uri) in buf (at least
 * 96 bytes), or its numeric one in *num; false for a missing value (end_time while running). */
bool sf_run_attr(const struct store_run *r, enum sf_attr a, char *buf, size_t len,
                 const char **s, double *num);
/* Whether experiment e (with tags read through t) matches f: 1, 0 or a negative errno. */
int sf_match_experiment(struct store_txn *t, const struct store_filter *f,
                        const struct store_experiment *e);

/* SQL LIKE (no escape character) of pattern p over s, both of the given lengths: % any run
 * of characters, _ exactly one (a whole UTF-8 sequence); icase ignores ASCII case. Shared by
 * the runs' and the registry's filters. */
bool sf_like(const char *p, size_t pn, const char *s, size_t sn, bool icase);

/* "invalid WHAT at column N, near 'TEXT': MESSAGE" (or "at the end") into err. */
void sf_error(char *err, size_t errlen, const char *what, const char *text, size_t pos,
              const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
