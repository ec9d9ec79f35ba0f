/* registry_rules.h — the registry's naming rules as pure string checks, with no store behind
 * them: the one definition that the store (store_rm_name_check, store_rm_alias_check), the
 * client library (st_register_model checks its arguments before anything leaves the process)
 * and the agent (which checks again what it reads from a ring) all apply. Header-only so that
 * libsidetrack, which never links the store, can use it too.
 *
 * Aliases follow MLflow (mlflow/utils/validation.py): [A-Za-z0-9_-], at most
 * STORE_RM_ALIAS_MAX characters, `latest` in any case and `v<digits>`/`V<digits>` reserved.
 * A model name is 1..STORE_RM_NAME_MAX bytes with no NUL.
 */
#ifndef SIDETRACK_STORE_REGISTRY_RULES_H
#define SIDETRACK_STORE_REGISTRY_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define STORE_RM_NAME_MAX 256u
#define STORE_RM_ALIAS_MAX 255u

/* Why a name or an alias is refused (0: it is not). */
enum store_rm_rule {
    STORE_RM_RULE_OK = 0,
    STORE_RM_RULE_EMPTY,
    STORE_RM_RULE_TOO_LONG,
    STORE_RM_RULE_BAD_CHAR,   /* aliases: a character outside [A-Za-z0-9_-] */
    STORE_RM_RULE_LATEST,     /* aliases: "latest" in any case */
    STORE_RM_RULE_VERSION,    /* aliases: v<digits> */
};

static inline enum store_rm_rule store_rm_name_rule(const char *name)
{
    if (!name || !*name)
        return STORE_RM_RULE_EMPTY;
    return strnlen(name, STORE_RM_NAME_MAX + 1) > STORE_RM_NAME_MAX ? STORE_RM_RULE_TOO_LONG
                                                                   : STORE_RM_RULE_OK;
}

static inline enum store_rm_rule store_rm_alias_rule(const char *alias)
{
    if (!alias || !*alias)
        return STORE_RM_RULE_EMPTY;
    size_t n = strnlen(alias, STORE_RM_ALIAS_MAX + 1);
    if (n > STORE_RM_ALIAS_MAX)
        return STORE_RM_RULE_TOO_LONG;
    bool digits_after_v = n > 1 && (alias[0] == 'v' || alias[0] == 'V');
    for (size_t i = 0; i < n; i++) {
        char c = alias[i];
        bool digit = c >= '0' && c <= '9';
        if (!digit && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '_' && c != '-')
            return STORE_RM_RULE_BAD_CHAR;
        if (i > 0 && !digit)
            digits_after_v = false;
    }
    static const char latest[] = "latest";
    if (n == 6) {
        size_t i = 0;
        while (i < 6 && (alias[i] | 0x20) == latest[i])
            i++;
        if (i == 6)
            return STORE_RM_RULE_LATEST;
    }
    return digits_after_v ? STORE_RM_RULE_VERSION : STORE_RM_RULE_OK;
}

#endif
