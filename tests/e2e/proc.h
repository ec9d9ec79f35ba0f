/* proc.h — process helpers for the end-to-end tests: real agents, real producers, real CLI. */
#ifndef SIDETRACK_TEST_PROC_H
#define SIDETRACK_TEST_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct scratch {
    char root[256];     /* removed at the end */
    char data[300];     /* the agent's store */
    char rings[300];    /* the ring directory, in /dev/shm when there is one */
};

/* Makes fresh directories for one test, and points libsidetrack at them (SIDETRACK_RING_DIR). */
void scratch_make(struct scratch *s, const char *name);
void scratch_remove(struct scratch *s);

/* Path of a built program, from $SIDETRACK_BUILD_DIR: e.g. bin_path("agent/sidetrackd"). */
const char *bin_path(const char *rel, char *buf, size_t len);

/* Starts sidetrackd on the scratch dirs with extra arguments (NULL-terminated). */
pid_t agent_start(const struct scratch *s, const char *const *extra);
/* Returns once the agent has its store, ring directory and signal handlers in place (its pid
 * is in DIR/agent.lock), or has exited. */
void agent_wait_ready(const char *data, pid_t pid);
/* Waits until the agent is up, sends SIGTERM and waits: returns the exit status (0 = drained
 * and stopped cleanly), -1 if it died of a signal or hung. */
int agent_stop_in(const char *data, pid_t pid);
#define agent_stop(s, pid) agent_stop_in((s)->data, (pid))
/* SIGKILL and reap. */
void agent_kill(pid_t pid);

/* Runs the CLI with --data of the scratch and the given arguments; returns its exit status
 * and its standard output in a malloc'd string (*out). */
int cli_run(const struct scratch *s, char **out, const char *const *args);

/* Waits for pid with a timeout in ms; returns the wait status or -1 on timeout (then kills). */
int wait_for(pid_t pid, int timeout_ms);

/* Sleeps this long (nanosleep). */
void sleep_ms(long ms);
void sleep_us(long us);

/* A test size from the environment (e.g. E2E_POINTS), or dflt when unset or empty. */
long env_long(const char *name, long dflt);

#endif
