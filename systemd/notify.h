/* notify.h — systemd's notify protocol (sd_notify(3)), for sidetrackd and sidetrack-server.
 *
 * Implemented here rather than by linking libsystemd: the protocol is one datagram of
 * "KEY=VALUE\n" lines to the unix socket named by $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace), stable and documented, and the daemons then run unchanged on nodes
 * without systemd. Without $NOTIFY_SOCKET every call is a no-op.
 *
 * The watchdog ping is sent from the caller's main loop (stn_tick), never from a thread of its
 * own: a hung loop then stops the pings and systemd restarts the daemon. */
#ifndef SIDETRACK_NOTIFY_H
#define SIDETRACK_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct st_notify {
    int fd;                       /* -1: no $NOTIFY_SOCKET, every call is a no-op */
    struct sockaddr_un addr;
    socklen_t addrlen;
    uint64_t watchdog_ns;         /* ping interval (half of $WATCHDOG_USEC); 0: no watchdog */
    uint64_t next_ping_ns;        /* CLOCK_MONOTONIC */
    uint64_t status_ns, next_status_ns;
};

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID (the watchdog is ours only when the
 * pid is unset or ours). status_interval_ms: how often stn_status_due() says yes. 0, or
 * -errno when $NOTIFY_SOCKET is set but unusable (n is then a no-op notifier). */
int stn_open(struct st_notify *n, uint32_t status_interval_ms);
void stn_close(struct st_notify *n);
bool stn_enabled(const struct st_notify *n);
/* Sends one message ("READY=1", "STOPPING=1", "STATUS=..."). 0 or -errno; 0 when disabled. */
int stn_send(struct st_notify *n, const char *msg);
/* Sends "STATUS=" + the formatted line. */
int stn_status(struct st_notify *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* From the main loop, every iteration: sends WATCHDOG=1 when the interval has passed. */
void stn_tick(struct st_notify *n);
/* True (and schedules the next) when a STATUS line is due. False when disabled. */
bool stn_status_due(struct st_notify *n);
/* The longest a loop may block (in ms, at most max_ms) and still ping in time. */
int stn_poll_ms(const struct st_notify *n, int max_ms);

#endif
