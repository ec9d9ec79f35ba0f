/* fuzz_mlflow_batch.c — libFuzzer target: runs/log-batch's own JSON reader
 * (server/mlflow_batch.c), which takes request bodies from any HTTP client of the server.
 *
 * Besides "no crash": a refusal always comes with a message; an accepted body's entries are
 * within the body's size (at most one entry per 2 bytes), every string field is NUL-terminated
 * within the arena, and the value readers (i64, double, text) take whatever was accepted. */
#include "mlflow_batch.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(const struct mf_jval *v)
{
    char text[64];
    int64_t i;
    double d;
    (void)mf_jval_i64(v, &i);
    (void)mf_jval_double(v, &d);
    mf_jval_text(v, text, sizeof text);
    if (!memchr(text, '\0', sizeof text))
        abort();
    if (v->kind == MF_JSTR && strlen(v->s) > 1u << 26)
        abort();
}

static void entries(const struct mf_jentry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        touch(&e[i].key);
        touch(&e[i].value);
        touch(&e[i].timestamp);
        touch(&e[i].step);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The HTTP front hands bodies NUL-terminated (body[len] readable). */
    char *body = malloc(size + 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    struct mf_jbatch b;
    char err[256] = "";
    int r = mf_batch_parse(body, size, &b, err, sizeof err);
    if (r == -EINVAL) {
        if (!err[0])
            abort(); /* a refusal must say why */
    } else if (r == 0) {
        if (b.nm + b.np + b.nt > size / 2 + 1)
            abort();
        touch(&b.run_id);
        entries(b.metrics, b.nm);
        entries(b.params, b.np);
        entries(b.tags, b.nt);
    } else if (r != -ENOMEM) {
        abort();
    }
    mf_batch_free(&b); /* whatever the parse returned, as the server does */
    free(body);
    return 0;
}
