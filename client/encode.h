/* encode.h — msgpack bodies of the variable ring records (layouts in shmlog/wire.h). */
#ifndef SIDETRACK_ENCODE_H
#define SIDETRACK_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/* Big enough for the largest record: a 6000-character param (24 KB of UTF-8) and its key. */
#define ST_ENC_MAX (32 * 1024)

struct st_enc {
    size_t len;
    int overflow;
    char buf[ST_ENC_MAX];
};

int st__enc_keydef(struct st_enc *e, uint32_t id, const char *name);
int st__enc_rundef(struct st_enc *e, uint32_t slot, const uint8_t id[16]);
int st__enc_run_start(struct st_enc *e, const uint8_t id[16], const char *experiment,
                      const char *run_name, int64_t start_ms, const uint8_t *parent);
int st__enc_run_end(struct st_enc *e, uint32_t slot, unsigned status, int64_t end_ms);
int st__enc_kv(struct st_enc *e, uint32_t slot, const char *key, const char *value);
int st__enc_artifact(struct st_enc *e, uint32_t slot, const char *path, const char *spool_name,
                     uint64_t size);
int st__enc_model_register(struct st_enc *e, uint32_t slot, const char *path, const char *name,
                           const char *const *aliases, size_t naliases,
                           const char *description);

#endif
