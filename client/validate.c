/* validate.c — MLflow's validation rules (mlflow/utils/validation.py), so that a record
 * that leaves this process is one that any MLflow server would also accept. */
#include "validate.h"

#include "sidetrack.h"
/* The registry's naming rules, header-only: the store applies the same definitions. */
#include "../store/registry_rules.h"

#include <errno.h>
#include <string.h>

long st__utf8_len(const char *s, size_t max_bytes)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    size_t bytes = 0;
    while (*p) {
        unsigned c = *p;
        int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
                                 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (extra < 0 || (extra == 1 && c < 0xc2) || (c == 0xf4 && extra == 3 && p[1] > 0x8f) ||
            c > 0xf4)
            return -1;
        for (int i = 1; i <= extra; i++)
            if ((p[i] & 0xc0) != 0x80)
                return -1;
        if ((extra == 2 && c == 0xe0 && p[1] < 0xa0) || (extra == 3 && c == 0xf0 && p[1] < 0x90) ||
            (extra == 2 && c == 0xed && p[1] > 0x9f))
            return -1; /* overlong forms and surrogates */
        p += extra + 1;
        bytes += (size_t)extra + 1;
        if (bytes > max_bytes)
            return -1;
        n++;
    }
    return n;
}

/* MLflow: ^[/\w.\- ]*$ where \w is Unicode-aware; we accept any non-ASCII UTF-8 letter-range
 * byte sequence as \w, and ASCII letters, digits and '_'. */
static bool key_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '/' || c == '.' || c == '-' || c == ' ' || c >= 0x80;
}

/* MLflow's path_not_unique(): the key must equal posixpath.normpath(key), must not be '.',
 * and must not start with '..' or '/'. */
static bool path_is_normal(const char *s)
{
    if (s[0] == '/' || strncmp(s, "..", 2) == 0 || strcmp(s, ".") == 0)
        return false;
    const char *seg = s;
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if (n == 0)
                return false; /* '//' or trailing '/' */
            if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*p == '\0')
                return true;
            seg = p + 1;
        }
    }
}

int st__check_key(const char *key)
{
    if (!key || !*key)
        return ST_EKEY;
    /* 250 characters (MLflow), and at most ST_MAX_KEY_BYTES of UTF-8 so that run id + key
     * fits LMDB's 511-byte key in the store. */
    long n = st__utf8_len(key, ST_MAX_KEY_BYTES);
    if (n < 0 || n > ST_MAX_KEY_LEN)
        return ST_EKEY;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (!key_char_ok(*p))
            return ST_EKEY;
    return path_is_normal(key) ? 0 : ST_EKEY;
}

int st__check_value(const char *value, size_t max_chars)
{
    if (!value)
        return ST_EVALUE;
    long n = st__utf8_len(value, max_chars * 4);
    return (n < 0 || (size_t)n > max_chars) ? ST_EVALUE : 0;
}

int st__check_name(const char *name, size_t max_chars)
{
    if (!name || !*name)
        return ST_ENAME;
    long n = st__utf8_len(name, max_chars * 4);
    return (n < 0 || (size_t)n > max_chars) ? ST_ENAME : 0;
}

int st__check_artifact_path(const char *path)
{
    if (!path || !*path || strlen(path) > 1024 || st__utf8_len(path, 4096) < 0)
        return ST_EPATH;
    return path_is_normal(path) ? 0 : ST_EPATH;
}

int st__check_model_name(const char *name)
{
    return store_rm_name_rule(name) == STORE_RM_RULE_OK ? 0 : ST_ENAME;
}

int st__check_model_alias(const char *alias)
{
    return store_rm_alias_rule(alias) == STORE_RM_RULE_OK ? 0 : ST_EALIAS;
}
