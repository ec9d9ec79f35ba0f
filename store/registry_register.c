/* registry_register.c — a model version registered from training code (registry.h says the
 * contract): the ring record st_register_model() writes is drained by the agent into this
 * call, and the journal op it appends is replayed by the server (sync/apply.c) through this
 * same call, with the digest the node computed. So both ends make a registration the same
 * way, and the op that carries it says everything needed to make it again.
 */
#include "registry_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int reg_check(const struct store_mv_registration *reg)
{
    if (!reg || !reg->run || !reg->path || !*reg->path || reg->naliases > STORE_OP_ALIASES_MAX ||
        (reg->naliases && !reg->aliases))
        return -EINVAL;
    int rc = store_rm_name_check(reg->name, NULL, 0);
    for (size_t i = 0; rc == 0 && i < reg->naliases; i++)
        rc = store_rm_alias_check(reg->aliases[i], NULL, 0);
    if (rc == 0 && reg->digest && *reg->digest && strlen(reg->digest) != 64)
        rc = -EINVAL; /* store_mv_create checks the digits */
    return rc;
}

/* The version's status message when no artifact was found at path. */
static void missing_msg(const char *run_hex, const struct store_mv_registration *reg,
                        char *msg, size_t len)
{
    int n = snprintf(msg, len, "no artifacts were found at '%.200s' in run %s when the "
                               "registration was applied", reg->path, run_hex);
    if (reg->naliases && n > 0 && (size_t)n < len)
        snprintf(msg + n, len - (size_t)n, "; aliases not set: %.60s%s", reg->aliases[0],
                 reg->naliases > 1 ? ", ..." : "");
}

/* The op's aliases: one string, comma-separated (an alias has no comma), so that an op stays
 * a flat record of strings wherever it is decoded. */
#define ALIASES_JOINED_MAX (STORE_OP_ALIASES_MAX * (STORE_RM_ALIAS_MAX + 1))

static int journal_registration(struct store_txn *t, const struct store_mv_registration *reg,
                                const struct store_rm_by *by, const char *digest)
{
    char joined[ALIASES_JOINED_MAX] = "";
    size_t len = 0;
    for (size_t i = 0; i < reg->naliases; i++) {
        size_t n = strlen(reg->aliases[i]);
        if (i)
            joined[len++] = ',';
        memcpy(joined + len, reg->aliases[i], n);
        len += n;
    }
    joined[len] = '\0';
    struct store_op op = {.type = STORE_OP_MODEL_REGISTER,
                          .key = reg->path,
                          .model = reg->name,
                          .aliases = joined,
                          .description = reg->description ? reg->description : "",
                          .actor = by->actor ? by->actor : "",
                          .digest = digest,
                          .time_ms = by->now_ms};
    memcpy(op.run, reg->run, 16);
    return st_journal_put(t, &op);
}

int store_mv_register(struct store_txn *t, const struct store_mv_registration *reg,
                      const struct store_rm_by *by, uint64_t *version)
{
    int rc = reg_check(reg);
    if (rc < 0)
        return rc;
    if (!by)
        return -EINVAL;
    if ((rc = st_writable(t)) != 0)
        return rc;
    char run_hex[33], digest[65] = "";
    store_run_id_hex(reg->run, run_hex);
    if (reg->digest) {
        snprintf(digest, sizeof digest, "%s", reg->digest);
    } else {
        rc = store_mv_digest(t, reg->run, reg->path, digest, NULL, NULL);
        if (rc == -ENOENT)
            digest[0] = '\0';
        else if (rc < 0)
            return rc;
    }
    struct store_rm m;
    rc = store_rm_get(t, reg->name, &m);
    if (rc == -ENOENT)
        rc = store_rm_create(t, reg->name, NULL, by, NULL);
    if (rc < 0)
        return rc;
    char source[STORE_MV_SOURCE_MAX + 1], msg[STORE_MV_STATUS_MSG_MAX + 1] = "";
    if ((size_t)snprintf(source, sizeof source, "runs:/%s/%s", run_hex, reg->path) >=
        sizeof source)
        return -ENAMETOOLONG;
    bool found = digest[0] != '\0';
    if (!found)
        missing_msg(run_hex, reg, msg, sizeof msg);
    struct store_mv_new nv = {.source = source,
                              .run_id = run_hex,
                              .description = reg->description,
                              .digest = found ? digest : NULL,
                              .status = found ? STORE_MV_READY : STORE_MV_FAILED_REGISTRATION,
                              .status_message = msg};
    uint64_t v;
    if ((rc = store_mv_create(t, reg->name, &nv, by, &v)) < 0)
        return rc;
    for (size_t i = 0; found && i < reg->naliases; i++)
        if ((rc = store_rm_alias_set(t, reg->name, reg->aliases[i], v, by)) < 0)
            return rc;
    if (st_journaling(t) && (rc = journal_registration(t, reg, by, digest)) < 0)
        return rc;
    if (version)
        *version = v;
    return 0;
}

int store_mv_register_op(struct store_txn *t, const struct store_op *op, uint64_t *version)
{
    if (!op || op->type != STORE_OP_MODEL_REGISTER || !op->aliases)
        return -EINVAL;
    size_t total = strlen(op->aliases);
    if (total >= ALIASES_JOINED_MAX)
        return -EINVAL;
    char copy[ALIASES_JOINED_MAX];
    memcpy(copy, op->aliases, total + 1);
    const char *aliases[STORE_OP_ALIASES_MAX];
    size_t n = 0;
    for (char *p = copy; total && p;) {
        if (n == STORE_OP_ALIASES_MAX)
            return -EINVAL;
        aliases[n++] = p;
        if ((p = strchr(p, ',')))
            *p++ = '\0';
    }
    struct store_mv_registration reg = {.run = op->run,
                                        .path = op->key,
                                        .name = op->model,
                                        .aliases = aliases,
                                        .naliases = n,
                                        .description = op->description,
                                        .digest = op->digest ? op->digest : ""};
    struct store_rm_by by = {.actor = op->actor, .now_ms = op->time_ms};
    return store_mv_register(t, &reg, &by, version);
}
