/* netaddr.h — the addresses sidetrack's daemons listen on, parsed one way everywhere:
 * sidetrack-server's --http, sidetrackd's --metrics-listen, and the Unix socket of the agent
 * that `sidetrack status` connects to. */
#ifndef SIDETRACK_SYNC_NETADDR_H
#define SIDETRACK_SYNC_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (all addresses; also "*:PORT", "0.0.0.0:PORT");
 * "localhost" is 127.0.0.1. HOST is numeric: a listener must not depend on DNS at boot.
 * 0 or -EINVAL. *v6 tells which family ss holds. */
int netaddr_parse_listen(const char *s, struct sockaddr_storage *ss, bool *v6);

/* Whether ss is a loopback address (127.0.0.0/8 or ::1). */
bool netaddr_is_loopback(const struct sockaddr_storage *ss);

/* A path to the Unix socket DIR/NAME short enough for sockaddr_un's 108 bytes: DIR/NAME
 * itself, or /proc/self/fd/N/NAME through a descriptor of DIR (then *dirfd >= 0: close it
 * once bound or connected; else -1). 0, or a negative errno (DIR cannot be opened). */
int netaddr_unix_path(char *out, size_t len, const char *dir, const char *name, int *dirfd);

#endif
