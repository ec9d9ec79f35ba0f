/* admin.c — sidetrackd's operator endpoint (admin.h), served by GNU libmicrohttpd: the same
 * HTTP library as sidetrack-server's front, so no second parser of requests exists in the
 * project. One thread per connection, at most a few connections: the handler blocks while
 * the main loop renders, and an operator's scrape or `sidetrack status` is rare.
 */
#include "admin.h"

#include "netaddr.h"

#include <errno.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct agent_admin {
    struct MHD_Daemon *unix_d, *tcp_d;
    char sock_path[4200]; /* DATA/agent.sock, removed at stop */
    uint16_t tcp_port;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t asked; /* requests for a rendering (a generation number) */
    uint64_t answered;      /* the generation the last rendering answers */
    char *status, *prom;    /* the last renderings (under mu) */
    uint64_t rendered_ms;   /* CLOCK_MONOTONIC time of the last rendering */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool agent_admin_wanted(struct agent_admin *ad)
{
    if (!ad)
        return false;
    /* answered is only written under mu by this same (main) thread: reading it here is safe */
    return atomic_load_explicit(&ad->asked, memory_order_acquire) != ad->answered;
}

void agent_admin_publish(struct agent_admin *ad, char *status_json, char *prometheus)
{
    pthread_mutex_lock(&ad->mu);
    free(ad->status);
    free(ad->prom);
    ad->status = status_json;
    ad->prom = prometheus;
    ad->rendered_ms = mono_ms();
    ad->answered = atomic_load_explicit(&ad->asked, memory_order_acquire);
    pthread_cond_broadcast(&ad->cv);
    pthread_mutex_unlock(&ad->mu);
}

/* Asks the main loop for a fresh rendering and waits up to ADMIN_WAIT_MS; returns a copy of
 * the one wanted (the last one when the loop did not answer in time: *fresh false), or NULL
 * before the loop has rendered anything. *age_ms: how old it is. */
static char *wait_rendering(struct agent_admin *ad, bool prom, bool *fresh, uint64_t *age_ms)
{
    pthread_mutex_lock(&ad->mu);
    uint64_t want = atomic_fetch_add_explicit(&ad->asked, 1, memory_order_acq_rel) + 1;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ADMIN_WAIT_MS / 1000;
    dl.tv_nsec += (long)(ADMIN_WAIT_MS % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int r = 0;
    while (ad->answered < want && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&ad->cv, &ad->mu, &dl);
    *fresh = ad->answered >= want;
    const char *doc = prom ? ad->prom : ad->status;
    char *copy = doc ? strdup(doc) : NULL;
    *age_ms = mono_ms() - ad->rendered_ms;
    pthread_mutex_unlock(&ad->mu);
    return copy;
}

/* The status document with how fresh it is added as its last members: a reader learns that
 * the drain loop is stuck without comparing clocks. */
static char *status_with_age(char *doc, bool fresh, uint64_t age_ms)
{
    char *end = strrchr(doc, '}');
    if (!end)
        return doc;
    *end = '\0';
    while (end > doc && (end[-1] == '\n' || end[-1] == ' '))
        *--end = '\0';
    char *out;
    if (asprintf(&out, "%s,\n  \"loop_answering\": %d,\n  \"rendered_ms_ago\": %llu\n}\n", doc,
                 fresh ? 1 : 0, (unsigned long long)age_ms) < 0)
        out = NULL;
    free(doc);
    return out;
}

static char *prom_with_age(char *doc, bool fresh, uint64_t age_ms)
{
    char *out;
    if (asprintf(&out,
                 "%s# HELP sidetrack_agent_loop_answering 1 when the drain loop rendered these "
                 "figures on request, 0 when it did not answer within %u ms (stuck).\n"
                 "# TYPE sidetrack_agent_loop_answering gauge\n"
                 "sidetrack_agent_loop_answering %d\n"
                 "# HELP sidetrack_agent_figures_age_seconds Age of the figures above.\n"
                 "# TYPE sidetrack_agent_figures_age_seconds gauge\n"
                 "sidetrack_agent_figures_age_seconds %.3f\n",
                 doc, ADMIN_WAIT_MS, fresh ? 1 : 0, (double)age_ms / 1000.0) < 0)
        out = NULL;
    free(doc);
    return out;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
                             char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result r = MHD_queue_response(c, code, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned code, const char *msg)
{
    char *body = strdup(msg);
    return body ? reply(c, code, "text/plain; charset=utf-8", body) : MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    struct agent_admin *ad = cls;
    if (*upload_data_size) { /* a body nobody asked for: drop it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    bool is_status = !strcmp(url, "/status"), is_metrics = !strcmp(url, "/metrics");
    if (!is_status && !is_metrics)
        return text(c, MHD_HTTP_NOT_FOUND,
                    "sidetrackd serves GET /status (JSON) and GET /metrics (Prometheus)\n");
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
    bool fresh;
    uint64_t age;
    char *doc = wait_rendering(ad, is_metrics, &fresh, &age);
    if (!doc)
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "sidetrackd is starting: its drain loop has not run yet\n");
    if (is_status) {
        doc = status_with_age(doc, fresh, age);
        return doc ? reply(c, MHD_HTTP_OK, "application/json", doc) : MHD_NO;
    }
    doc = prom_with_age(doc, fresh, age);
    return doc ? reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", doc) : MHD_NO;
}

static struct MHD_Daemon *start_daemon(struct agent_admin *ad, int fd, bool v6)
{
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                (v6 ? MHD_USE_IPv6 : 0),
                            0, NULL, NULL, on_request, ad, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)8,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
}

static int listen_unix(struct agent_admin *ad, const char *data_dir, char *err, size_t errlen)
{
    snprintf(ad->sock_path, sizeof ad->sock_path, "%s/%s", data_dir, ADMIN_SOCKET_NAME);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int dirfd;
    int r = netaddr_unix_path(sa.sun_path, sizeof sa.sun_path, data_dir, ADMIN_SOCKET_NAME,
                              &dirfd);
    if (r < 0) {
        snprintf(err, errlen, "cannot make the status socket %s: %s", ad->sock_path,
                 strerror(-r));
        return r;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    /* Whoever made a socket here before is gone: this agent holds the store's lock. */
    unlink(sa.sun_path);
    /* Any local user may ask, as any may read DATA/agent.status: the answers hold nothing
     * more than that file, and nothing can be changed through them. */
    mode_t old = umask(0111);
    r = bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
    umask(old);
    if (r == 0 && listen(fd, 16) < 0)
        r = -errno;
    if (r == 0 && !(ad->unix_d = start_daemon(ad, fd, false)))
        r = -EIO;
out:
    if (r < 0) {
        snprintf(err, errlen, "cannot listen on the status socket %s: %s", ad->sock_path,
                 strerror(-r));
        if (fd >= 0)
            close(fd);
        ad->sock_path[0] = '\0';
    }
    if (dirfd >= 0)
        close(dirfd);
    return r;
}

static int listen_tcp(struct agent_admin *ad, const char *addr, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    bool v6;
    if (netaddr_parse_listen(addr, &ss, &v6) < 0) {
        snprintf(err, errlen, "metrics-listen: '%s' is not HOST:PORT with a numeric host "
                 "(like 127.0.0.1:9464 or [::1]:9464)", addr);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r = fd < 0 ? -errno : 0;
    int one = 1;
    if (r == 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (r == 0 && bind(fd, (struct sockaddr *)&ss, len) < 0)
        r = -errno;
    if (r == 0 && listen(fd, 16) < 0)
        r = -errno;
    if (r == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        ad->tcp_port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                : ((struct sockaddr_in *)&ss)->sin_port);
    if (r == 0 && !(ad->tcp_d = start_daemon(ad, fd, v6)))
        r = -EIO;
    if (r < 0) {
        snprintf(err, errlen, "cannot listen for Prometheus on %s: %s", addr, strerror(-r));
        if (fd >= 0)
            close(fd);
    }
    return r;
}

int agent_admin_start(struct agent_admin **out, const struct agent_admin_options *o, char *err,
                      size_t errlen)
{
    *out = NULL;
    struct agent_admin *ad = calloc(1, sizeof *ad);
    if (!ad)
        return -ENOMEM;
    pthread_mutex_init(&ad->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ad->cv, &ca);
    pthread_condattr_destroy(&ca);
    int r = listen_unix(ad, o->data_dir, err, errlen);
    if (r == 0 && o->metrics_listen && *o->metrics_listen)
        r = listen_tcp(ad, o->metrics_listen, err, errlen);
    if (r < 0) {
        agent_admin_stop(ad);
        return r;
    }
    *out = ad;
    return 0;
}

uint16_t agent_admin_tcp_port(const struct agent_admin *ad) { return ad ? ad->tcp_port : 0; }

void agent_admin_stop(struct agent_admin *ad)
{
    if (!ad)
        return;
    /* Wake waiting handlers first: MHD joins their threads. */
    pthread_mutex_lock(&ad->mu);
    ad->answered = UINT64_MAX;
    pthread_cond_broadcast(&ad->cv);
    pthread_mutex_unlock(&ad->mu);
    if (ad->tcp_d)
        MHD_stop_daemon(ad->tcp_d);
    if (ad->unix_d)
        MHD_stop_daemon(ad->unix_d);
    if (ad->sock_path[0])
        unlink(ad->sock_path);
    pthread_cond_destroy(&ad->cv);
    pthread_mutex_destroy(&ad->mu);
    free(ad->status);
    free(ad->prom);
    free(ad);
}
