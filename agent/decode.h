/* decode.h — turning ring records (shmlog/wire.h) into checked values.
 *
 * Every byte of a record comes from another process and is not trusted: each decoder checks
 * lengths, types and ranges and fails with -EBADMSG instead of reading past the record.
 * Strings point into the record or into the decoder's zone; they are NUL-terminated copies
 * valid until decode_reset().
 */
#ifndef SIDETRACK_AGENT_DECODE_H
#define SIDETRACK_AGENT_DECODE_H

#include "shmlog.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct decoded {
    uint8_t type;
    uint32_t slot;   /* run slot (RUNDEF, RUN_END, PARAM, TAG, ARTIFACT) or key id (KEYDEF) */
    const char *key; /* KEYDEF name, PARAM/TAG key, ARTIFACT and MODEL_REGISTER path */
    const char *value; /* PARAM/TAG value, ARTIFACT spool file, MODEL_REGISTER model name */
    uint8_t run_id[16]; /* RUNDEF, RUN_START */
    /* RUN_START */
    const char *experiment, *run_name, *user, *host, *source;
    bool has_parent;
    uint8_t parent[16];
    int64_t time_ms; /* RUN_START start, RUN_END end */
    uint32_t status; /* RUN_END */
    uint64_t size;   /* ARTIFACT */
    uint64_t spill_upto; /* SPILL_MARK */
    /* MODEL_REGISTER */
    const char *description;
    uint32_t naliases;
    const char *aliases[WIRE_MODEL_ALIASES_MAX];
    /* METRIC / METRICS */
    const struct wire_metric *metric;
    const struct wire_metrics *metrics;
};

struct decoder {
    char **strs; /* copies handed out since the last reset */
    size_t nstrs, cap;
};

void decode_init(struct decoder *d);
void decode_reset(struct decoder *d);
void decode_free(struct decoder *d);
/* Decodes a published record of len bytes (its header included). */
int decode_record(struct decoder *d, const struct shmlog_rec *rec, uint32_t len,
                  struct decoded *out);

#endif
