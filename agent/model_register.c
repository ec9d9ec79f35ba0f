/* model_register.c — a WIRE_MODEL_REGISTER record (st_register_model) into the store: the
 * registration is checked again (the record comes from another process), attributed to the
 * producer as the kernel reports it (the ring's owner, by user name, at this node) and made
 * with store_mv_register() in the drain's transaction, which also journals it for the server.
 * The artifacts it names were logged earlier in the same lane, so they are in this
 * transaction or an earlier one. */
#include "agent.h"
#include "registry.h"
#include "validate.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

_Static_assert(WIRE_MODEL_ALIASES_MAX == STORE_OP_ALIASES_MAX, "one bound on aliases");

/* "user@host", as the history of the registry shows who made a change. */
static void actor_of(uint32_t uid, char *out, size_t len)
{
    char user[64] = "", host[64] = "";
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r((uid_t)uid, &pw, buf, sizeof buf, &res) == 0 && res)
        snprintf(user, sizeof user, "%s", pw.pw_name);
    else
        snprintf(user, sizeof user, "uid%u", (unsigned)uid);
    if (gethostname(host, sizeof host - 1) < 0)
        host[0] = '\0';
    snprintf(out, len, "%s@%s", user, host);
}

static bool record_ok(const struct decoded *d)
{
    if (st__check_artifact_path(d->key) < 0 || st__check_model_name(d->value) < 0)
        return false;
    for (uint32_t i = 0; i < d->naliases; i++)
        if (st__check_model_alias(d->aliases[i]) < 0)
            return false;
    return true;
}

int agent_model_register(struct store_txn *t, uint32_t uid, const uint8_t run[16],
                         const struct decoded *d)
{
    char hex[33];
    store_run_id_hex(run, hex);
    if (!record_ok(d)) {
        agent_log("warning", "run %s: a model registration with a bad path, name or alias "
                             "was skipped", hex);
        return 1;
    }
    char actor[STORE_RM_ACTOR_MAX + 1];
    actor_of(uid, actor, sizeof actor);
    struct store_rm_by by = {.actor = actor, .now_ms = (int64_t)(agent_now_ns() / 1000000)};
    struct store_mv_registration reg = {.run = run,
                                        .path = d->key,
                                        .name = d->value,
                                        .aliases = d->aliases,
                                        .naliases = d->naliases,
                                        .description = d->description};
    uint64_t version = 0;
    int r = store_mv_register(t, &reg, &by, &version);
    if (r == -EINVAL || r == -ENAMETOOLONG) {
        agent_log("warning", "run %s: model %.100s from %s not registered: %s", hex, d->value,
                  d->key, store_rm_strerror(r));
        return 1;
    }
    if (r < 0)
        return r; /* the store's trouble: the pass is retried */
    agent_log("info", "run %s: %s registered as model %.100s version %llu", hex, d->key,
              d->value, (unsigned long long)version);
    return 0;
}
