/* log.h — sidetrack-server's messages: one line each on stderr ("sidetrack-server: LEVEL:
 * ..."), which journald timestamps. */
#ifndef SIDETRACK_SERVER_LOG_H
#define SIDETRACK_SERVER_LOG_H

void server_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
