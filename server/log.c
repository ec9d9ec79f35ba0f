/* log.c — see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

void server_log(const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sidetrack-server: %s: ", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
