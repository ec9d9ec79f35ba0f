/* log.c — the daemon's messages: one line each on stderr, which journald timestamps. */
#include "agent.h"

#include <stdarg.h>
#include <stdio.h>

void agent_log(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sidetrackd: %s: ", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
