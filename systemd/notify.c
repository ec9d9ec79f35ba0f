/* notify.c — the sd_notify protocol: see notify.h. */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t env_u64(const char *name, bool *ok)
{
    const char *s = getenv(name);
    char *end;
    *ok = false;
    if (!s || !*s)
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return 0;
    *ok = true;
    return v;
}

int stn_open(struct st_notify *n, uint32_t status_interval_ms)
{
    memset(n, 0, sizeof *n);
    n->fd = -1;
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof n->addr.sun_path)
        return -EAFNOSUPPORT; /* vsock addresses (vsock:CID:PORT) are not for us */
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, path, len);
    if (path[0] == '@')
        n->addr.sun_path[0] = '\0'; /* abstract namespace: no terminating NUL counted */
    n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0)
        return -errno;

    bool ok, pid_ok;
    uint64_t usec = env_u64("WATCHDOG_USEC", &ok);
    uint64_t pid = env_u64("WATCHDOG_PID", &pid_ok);
    if (ok && usec > 0 && (!pid_ok || pid == (uint64_t)getpid())) {
        n->watchdog_ns = usec * 1000ull / 2; /* half, as sd_watchdog_enabled(3) advises */
        n->next_ping_ns = mono_ns() + n->watchdog_ns;
    }
    n->status_ns = (uint64_t)status_interval_ms * 1000000ull;
    n->next_status_ns = mono_ns();
    return 0;
}

void stn_close(struct st_notify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}

bool stn_enabled(const struct st_notify *n) { return n->fd >= 0; }

int stn_send(struct st_notify *n, const char *msg)
{
    if (n->fd < 0)
        return 0;
    ssize_t r;
    do
        r = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&n->addr,
                   n->addrlen);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

int stn_status(struct st_notify *n, const char *fmt, ...)
{
    if (n->fd < 0)
        return 0;
    char buf[512] = "STATUS=";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + 7, sizeof buf - 7, fmt, ap);
    va_end(ap);
    buf[strcspn(buf, "\n")] = '\0'; /* one line: a newline would start another assignment */
    return stn_send(n, buf);
}

void stn_tick(struct st_notify *n)
{
    if (n->fd < 0 || !n->watchdog_ns)
        return;
    uint64_t now = mono_ns();
    if (now < n->next_ping_ns)
        return;
    stn_send(n, "WATCHDOG=1");
    n->next_ping_ns = now + n->watchdog_ns;
}

bool stn_status_due(struct st_notify *n)
{
    if (n->fd < 0)
        return false;
    uint64_t now = mono_ns();
    if (now < n->next_status_ns)
        return false;
    n->next_status_ns = now + n->status_ns;
    return true;
}

int stn_poll_ms(const struct st_notify *n, int max_ms)
{
    if (n->fd < 0 || !n->watchdog_ns)
        return max_ms;
    uint64_t now = mono_ns();
    if (now >= n->next_ping_ns)
        return 0;
    uint64_t ms = (n->next_ping_ns - now + 999999) / 1000000;
    return ms < (uint64_t)max_ms ? (int)ms : max_ms;
}
