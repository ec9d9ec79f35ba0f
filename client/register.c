/* register.c — st_register_model(): a model version registered from training code. Like the
 * other log calls it checks its arguments (the registry's own rules, store/registry_rules.h)
 * and publishes one record; the agent makes the version in its store, and the sync journal
 * carries it to the server (store/registry_register.c). */
#include "client_internal.h"
#include "encode.h"
#include "validate.h"
#include "wire.h"

#include <errno.h>
#include <string.h>

_Static_assert(ST_MAX_MODEL_ALIASES == WIRE_MODEL_ALIASES_MAX, "one bound on aliases");

int st_register_model(st_run *run, const char *artifact_path, const char *name,
                      const char *const *aliases, const char *description)
{
    if (!run)
        return -EINVAL;
    int r = st__check_artifact_path(artifact_path);
    if (r < 0)
        return r;
    if ((r = st__check_model_name(name)) < 0)
        return r;
    size_t n = 0;
    while (aliases && aliases[n]) {
        if (n == ST_MAX_MODEL_ALIASES)
            return ST_EALIAS;
        if ((r = st__check_model_alias(aliases[n])) < 0)
            return r;
        n++;
    }
    if (description && (strlen(description) > ST_MAX_MODEL_DESCRIPTION_BYTES ||
                        st__utf8_len(description, ST_MAX_MODEL_DESCRIPTION_BYTES) < 0))
        return ST_EVALUE;
    struct st_enc e;
    if ((r = st__enc_model_register(&e, run->slot, artifact_path, name, aliases, n,
                                    description)) < 0)
        return r;
    return st__log_record(run, WIRE_MODEL_REGISTER, &e);
}
