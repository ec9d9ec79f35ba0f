/* netaddr.c — see netaddr.h. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

int netaddr_parse_listen(const char *s, struct sockaddr_storage *ss, bool *v6)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -EINVAL;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port > 65535)
        return -EINVAL;
    char host[256];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host)
        return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(ss, 0, sizeof *ss);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *v6 = true;
        return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -EINVAL;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *v6 = false;
    if (!host[0] || !strcmp(host, "*") || !strcmp(host, "0.0.0.0")) {
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        return 0;
    }
    if (!strcmp(host, "localhost"))
        return inet_pton(AF_INET, "127.0.0.1", &a->sin_addr) == 1 ? 0 : -EINVAL;
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -EINVAL;
}

bool netaddr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return false;
}

int netaddr_unix_path(char *out, size_t len, const char *dir, const char *name, int *dirfd)
{
    *dirfd = -1;
    size_t cap = sizeof(((struct sockaddr_un *)0)->sun_path);
    if (len > cap)
        len = cap;
    int n = snprintf(out, len, "%s/%s", dir, name);
    if (n >= 0 && (size_t)n < len)
        return 0;
    /* Deep data directories are common (home directories on network mounts): go through a
     * descriptor of the directory, which the kernel resolves like the directory itself. */
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = snprintf(out, len, "/proc/self/fd/%d/%s", fd, name);
    if (n < 0 || (size_t)n >= len) {
        close(fd);
        return -ENAMETOOLONG;
    }
    *dirfd = fd;
    return 0;
}
