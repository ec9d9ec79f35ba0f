/* mlflow_batch.h — runs/log-batch's body, parsed without building a JSON tree
 * (mlflow_batch.c says why). */
#ifndef SIDETRACK_SERVER_MLFLOW_BATCH_H
#define SIDETRACK_SERVER_MLFLOW_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mf_jkind { MF_JABSENT = 0, MF_JNULL, MF_JNUM, MF_JSTR, MF_JOTHER };

/* A field as found: a number's text (s, n; in the body), a decoded string (s, NUL-terminated),
 * or another kind of value (s at its text). */
struct mf_jval {
    enum mf_jkind kind;
    const char *s;
    size_t n;
    bool is_int; /* MF_JNUM: no fraction, no exponent */
};

/* A metric {key, value, timestamp, step}, or a param or tag {key, value}. */
struct mf_jentry {
    bool is_object;
    struct mf_jval key, value, timestamp, step;
};

struct mf_jbatch {
    struct mf_jval run_id;
    struct mf_jentry *metrics, *params, *tags;
    size_t nm, np, nt;
    char *arena; /* the decoded strings */
};

/* Parses body (len bytes; body[len] must be readable, as the HTTP front's NUL). 0, -ENOMEM, or
 * -EINVAL with a sentence in err (what is wrong, line and column). Free b with mf_batch_free
 * whatever this returns. */
int mf_batch_parse(const char *body, size_t len, struct mf_jbatch *b, char *err, size_t errlen);
void mf_batch_free(struct mf_jbatch *b);

/* int64 from a number (whole) or a string of digits; double from a number or "NaN",
 * "Infinity", "-Infinity" (or a number's text in a string). false: not that type. */
bool mf_jval_i64(const struct mf_jval *v, int64_t *out);
bool mf_jval_double(const struct mf_jval *v, double *out);
/* For messages: the value as Python would print it (None, 'text', 1.5). */
void mf_jval_text(const struct mf_jval *v, char *buf, size_t len);

#endif
