/* mlflow_validate.c — MLflow's rules for names and values (mlflow/utils/validation.py), with
 * its messages, so that a client sees what an MLflow server would have told it.
 *
 * Keys of metrics, params and tags: characters from [/\w.\- ] (Python's \w is Unicode: any
 * non-ASCII character is let through here, where Python would accept letters and digits
 * only), and the key must be its own normalised path (posixpath.normpath): no leading '/',
 * no empty, '.' or '..' component, no trailing '/'. Lengths count characters as Python does. */
#include "mlflow_internal.h"

#include <string.h>

size_t mf_utf8_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xC0) != 0x80;
    return n;
}

/* The first `chars` characters of s, as a byte count. */
static size_t utf8_prefix(const char *s, size_t chars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;
    for (; p[i]; i++) {
        if ((p[i] & 0xC0) != 0x80 && n++ == chars)
            break;
    }
    return i;
}

static bool key_char_ok(unsigned char c)
{
    return c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '/' || c == '.' || c == '-' || c == ' ';
}

/* posixpath.normpath for the message: components without '', '.', and with '..' resolved. */
static void normpath(const char *in, char *out, size_t cap)
{
    const char *comp[256];
    size_t clen[256], n = 0;
    bool abs = in[0] == '/';
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 1 && p[0] == '.') {
        } else if (l == 2 && !memcmp(p, "..", 2) && n && !(clen[n - 1] == 2 &&
                                                           !memcmp(comp[n - 1], "..", 2))) {
            n--;
        } else if (l == 2 && !memcmp(p, "..", 2) && abs) {
        } else if (n < 256) {
            comp[n] = p;
            clen[n++] = l;
        }
        p += l;
    }
    size_t o = 0;
    if (abs && o + 1 < cap)
        out[o++] = '/';
    for (size_t i = 0; i < n; i++) {
        if (i && o + 1 < cap)
            out[o++] = '/';
        size_t l = clen[i] < cap - 1 - o ? clen[i] : cap - 1 - o;
        memcpy(out + o, comp[i], l);
        o += l;
    }
    if (o == 0 && cap > 1)
        out[o++] = '.';
    out[o] = '\0';
}

static bool path_not_unique(const char *name)
{
    char norm[1024];
    normpath(name, norm, sizeof norm);
    return strcmp(norm, name) != 0 || !strcmp(norm, ".") || !strncmp(norm, "..", 2) ||
           norm[0] == '/';
}

bool mf_check_key(struct mf *m, const char *what, const char *key)
{
    const char *label = !strcmp(what, "metric") ? "Metric name"
                        : !strcmp(what, "parameter") ? "Param key"
                                                     : "Tag key";
    const char *title = !strcmp(what, "metric") ? "Metric" : !strcmp(what, "parameter") ? "Parameter" : "Tag";
    if (!key) {
        mf_invalid(m, "%s name cannot be None. A key name must be provided.", title);
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (!key_char_ok(*p)) {
            mf_invalid(m,
                       "Invalid %s name: '%s'. Names may only contain alphanumerics, underscores "
                       "(_), dashes (-), periods (.), spaces ( ), and slashes (/).",
                       what, key);
            return false;
        }
    if (path_not_unique(key)) {
        char norm[1024];
        normpath(key, norm, sizeof norm);
        mf_invalid(m,
                   "Invalid %s name: '%s'. Names may be treated as files in certain cases, and "
                   "must not resolve to other names when treated as such. This name would "
                   "resolve to '%s'",
                   what, key, norm);
        return false;
    }
    if (!mf_check_len(m, label, key, MF_MAX_KEY))
        return false;
    if (strlen(key) > 490) { /* the store's bound, in bytes: only long non-ASCII keys meet it */
        mf_invalid(m, "%s '%.*s' had %zu bytes in UTF-8, which exceeded this server's limit of "
                   "490 bytes", label, (int)utf8_prefix(key, 250), key, strlen(key));
        return false;
    }
    return true;
}

bool mf_check_len(struct mf *m, const char *label, const char *value, size_t limit)
{
    if (!value)
        return true;
    size_t n = mf_utf8_len(value);
    if (n <= limit)
        return true;
    mf_invalid(m, "%s '%.*s' had length %zu, which exceeded length limit of %zu", label,
               (int)utf8_prefix(value, 250), value, n, limit);
    return false;
}

/* Artifact paths name files under a run's artifact root: relative, and no component that
 * would climb out of it or alias another name. */
bool mf_check_artifact_path(struct mf *m, const char *path, bool empty_ok)
{
    if (!path || !*path) {
        if (empty_ok)
            return true;
        mf_invalid(m, "Invalid path: an artifact path is required");
        return false;
    }
    bool bad = path[0] == '/' || strchr(path, '\\') != NULL || strlen(path) >= 1024;
    for (const unsigned char *c = (const unsigned char *)path; !bad && *c; c++)
        bad = *c < 0x20 || *c == 0x7f;
    for (const char *p = path; !bad && *p;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        bad = l == 0 || (l == 1 && p[0] == '.') || (l == 2 && !memcmp(p, "..", 2));
        p += l;
        if (*p == '/') {
            p++;
            bad = bad || !*p; /* a trailing '/' */
        }
    }
    if (bad)
        mf_invalid(m, "Invalid path: '%s' (artifact paths are relative, with no empty, '.' or "
                   "'..' component)", path);
    return !bad;
}
