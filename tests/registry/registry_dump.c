/* registry_dump DIR — the model registry of the store in DIR as one JSON object, for the
 * process-level tests of registration from training code (test_register.py):
 *   {"models": {NAME: {"versions": [{version, source, run_id, digest, status,
 *                                    status_message, description}...],
 *                      "aliases": {ALIAS: version}}},
 *    "journal": [{model, path, aliases, digest, actor}...]}   (MODEL_REGISTER ops kept)
 * Read-only: safe while an agent or a server writes the store. */
#include "registry.h"
#include "store.h"

#include <jansson.h>
#include <stdio.h>

static int alias_one(const char *alias, uint64_t version, void *arg)
{
    return json_object_set_new(arg, alias, json_integer((json_int_t)version));
}

static int version_one(const struct store_mv *v, void *arg)
{
    return json_array_append_new(
        arg, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "version", (json_int_t)v->version,
                       "source", v->source, "run_id", v->run_id, "digest", v->digest, "status",
                       store_mv_status_name(v->status), "status_message", v->status_message,
                       "description", v->description));
}

struct walk {
    struct store_txn *t;
    json_t *models;
};

static int model_one(const struct store_rm *m, void *arg)
{
    struct walk *w = arg;
    json_t *versions = json_array(), *aliases = json_object();
    int r = store_mv_foreach(w->t, m->name, version_one, versions);
    if (r == 0)
        r = store_rm_aliases_foreach(w->t, m->name, alias_one, aliases);
    json_object_set_new(w->models, m->name,
                        json_pack("{s:o, s:o}", "versions", versions, "aliases", aliases));
    return r;
}

static int op_one(const struct store_op *op, void *arg)
{
    if (op->type != STORE_OP_MODEL_REGISTER)
        return 0;
    return json_array_append_new(arg, json_pack("{s:s, s:s, s:s, s:s, s:s}", "model", op->model,
                                                "path", op->key, "aliases", op->aliases,
                                                "digest", op->digest, "actor", op->actor));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: registry_dump DIR\n");
        return 2;
    }
    struct store *s;
    struct store_txn *t;
    int r = store_open(&s, argv[1], STORE_RDONLY, 0);
    if (r < 0 || (r = store_begin(s, false, &t)) < 0) {
        fprintf(stderr, "registry_dump: %s: %s\n", argv[1], store_strerror(r));
        return 1;
    }
    struct walk w = {t, json_object()};
    json_t *journal = json_array();
    r = store_rm_foreach(t, model_one, &w);
    if (r == 0)
        r = store_journal_read(t, 1, 0, op_one, journal);
    store_abort(t);
    store_close(s);
    if (r != 0) {
        fprintf(stderr, "registry_dump: %s\n", store_rm_strerror(r));
        return 1;
    }
    json_t *out = json_pack("{s:o, s:o}", "models", w.models, "journal", journal);
    json_dumpf(out, stdout, JSON_SORT_KEYS);
    putchar('\n');
    json_decref(out);
    return 0;
}
