/* agent_file.c — reading DATA/agent.status, the file sidetrackd replaces once a second
 * (agent/status.c): one top-level key per line, two spaces in, so that a few string searches
 * read it without a JSON parser. Shared by `sidetrack status` and `sidetrack sync`. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STALE_MS 5000

char *cli_agent_doc_read(const char *data_dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/agent.status", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *doc = malloc(1 << 20);
    ssize_t n = doc ? read(fd, doc, (1 << 20) - 1) : -1;
    close(fd);
    if (n <= 0) {
        free(doc);
        return NULL;
    }
    doc[n] = 0;
    return doc;
}

bool cli_agent_alive(uint64_t pid, uint64_t updated_ms)
{
    int64_t age = cli_now_ms() - (int64_t)updated_ms;
    bool alive = pid > 0 && pid < (1u << 31) && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
    return alive && age < STALE_MS && age > -STALE_MS;
}

/* The value of top-level key `key` in the agent's file (each on its own line, two spaces in):
 * a pointer just past "key": , or NULL. */
const char *cli_af_find(const char *doc, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\n  \"%s\": ", key);
    const char *p = strstr(doc, pat);
    return p ? p + strlen(pat) : NULL;
}

uint64_t cli_af_u64(const char *doc, const char *key)
{
    const char *p = cli_af_find(doc, key);
    return p ? strtoull(p, NULL, 10) : 0;
}

/* Decodes a JSON string as agent/status.c writes it (\" \\ \u00XX escapes). */
void cli_af_str(const char *doc, const char *key, char *out, size_t len)
{
    const char *p = cli_af_find(doc, key);
    size_t n = 0;
    if (p && *p++ == '"') {
        while (*p && *p != '"' && n + 1 < len) {
            char ch = *p++;
            if (ch == '\\' && *p) {
                ch = *p++;
                if (ch == 'u' && strlen(p) >= 4) {
                    char hex[5] = {p[0], p[1], p[2], p[3], 0};
                    ch = (char)strtoul(hex, NULL, 16);
                    p += 4;
                }
            }
            out[n++] = ch;
        }
    }
    out[n] = 0;
}

