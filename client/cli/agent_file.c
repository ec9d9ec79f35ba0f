/* agent_file.c — the agent's status document (agent/status.c): asked of the running agent
 * on its socket DATA/agent.sock (agent/admin.h), else read from DATA/agent.status, the file it
 * replaces once a second and leaves behind when it stops. One top-level key per line, two
 * spaces in, so that a few string searches read it without a JSON parser. Shared by
 * `sidetrack status` and `sidetrack sync`. */
#include "cli.h"

#include "http_client.h"
#include "netaddr.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STALE_MS 5000

/* GET /status on the agent's socket; NULL when no agent answers there (none runs, or one
 * from before the socket existed). The agent answers within 2 s, stuck or not. */
static char *doc_from_socket(const char *data_dir)
{
    char path[108];
    int dirfd;
    if (netaddr_unix_path(path, sizeof path, data_dir, "agent.sock", &dirfd) < 0)
        return NULL;
    char *doc = NULL;
    CURL *h = curl_easy_init();
    struct http_sink sink = {.max = 1 << 20};
    sync_buf_init(&sink.buf);
    char errbuf[CURL_ERROR_SIZE];
    struct http_client_opts o = {.user_agent = "sidetrack-cli", .connect_timeout_ms = 1000};
    long code = 0;
    if (h && !http_client_setup(h, &sink, errbuf, &o) &&
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, path) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_URL, "http://localhost/status") == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L) == CURLE_OK &&
        curl_easy_perform(h) == CURLE_OK &&
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 &&
        sync_buf_str(&sink.buf))
        doc = strdup(sync_buf_str(&sink.buf));
    if (h)
        curl_easy_cleanup(h);
    sync_buf_free(&sink.buf);
    if (dirfd >= 0)
        close(dirfd);
    return doc;
}

bool cli_agent_doc_running(const char *doc)
{
    char state[32];
    cli_af_str(doc, "state", state, sizeof state);
    if (strcmp(state, "running"))
        return false;
    /* An answer on the socket is proof of life; a file is trusted while fresh. */
    return cli_af_find(doc, "loop_answering") ||
           cli_agent_alive(cli_af_u64(doc, "pid"), cli_af_u64(doc, "updated_ms"));
}

char *cli_agent_doc_read(const char *data_dir)
{
    char *live = doc_from_socket(data_dir);
    if (live)
        return live;
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

