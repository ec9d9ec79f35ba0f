/* encode.c — msgpack encoding of the variable ring records, with msgpack-c's packer writing
 * into a fixed buffer (these records are the cold path; the layouts are in shmlog/wire.h). */
#include "encode.h"

#include <errno.h>
#include <msgpack.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

static int enc_write(void *data, const char *buf, size_t len)
{
    struct st_enc *e = data;
    if (e->len + len > sizeof e->buf) {
        e->overflow = 1;
        return -1;
    }
    memcpy(e->buf + e->len, buf, len);
    e->len += len;
    return 0;
}

static void enc_init(struct st_enc *e, msgpack_packer *pk)
{
    e->len = 0;
    e->overflow = 0;
    msgpack_packer_init(pk, e, enc_write);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_bin16(msgpack_packer *pk, const uint8_t id[16])
{
    msgpack_pack_bin(pk, 16);
    msgpack_pack_bin_body(pk, id, 16);
}

static int enc_done(const struct st_enc *e) { return e->overflow ? -E2BIG : 0; }

int st__enc_keydef(struct st_enc *e, uint32_t id, const char *name)
{
    msgpack_packer pk;
    enc_init(e, &pk);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, id);
    pack_str(&pk, name);
    return enc_done(e);
}

int st__enc_rundef(struct st_enc *e, uint32_t slot, const uint8_t id[16])
{
    msgpack_packer pk;
    enc_init(e, &pk);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, slot);
    pack_bin16(&pk, id);
    return enc_done(e);
}

int st__enc_run_start(struct st_enc *e, const uint8_t id[16], const char *experiment,
                      const char *run_name, int64_t start_ms, const uint8_t *parent)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char user[256] = "";
    struct passwd pw, *res = NULL;
    char pwbuf[1024];
    if (getpwuid_r(getuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res)
        snprintf(user, sizeof user, "%s", pw.pw_name);
    msgpack_packer pk;
    enc_init(e, &pk);
    msgpack_pack_map(&pk, 5 + (run_name != NULL) + (parent != NULL));
    pack_str(&pk, "run");
    pack_bin16(&pk, id);
    pack_str(&pk, "exp");
    pack_str(&pk, experiment);
    if (run_name) {
        pack_str(&pk, "name");
        pack_str(&pk, run_name);
    }
    pack_str(&pk, "start");
    msgpack_pack_int64(&pk, start_ms);
    pack_str(&pk, "user");
    pack_str(&pk, user);
    pack_str(&pk, "host");
    pack_str(&pk, host);
    if (parent) {
        pack_str(&pk, "parent");
        pack_bin16(&pk, parent);
    }
    return enc_done(e);
}

int st__enc_run_end(struct st_enc *e, uint32_t slot, unsigned status, int64_t end_ms)
{
    msgpack_packer pk;
    enc_init(e, &pk);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, slot);
    msgpack_pack_unsigned_int(&pk, status);
    msgpack_pack_int64(&pk, end_ms);
    return enc_done(e);
}

int st__enc_kv(struct st_enc *e, uint32_t slot, const char *key, const char *value)
{
    msgpack_packer pk;
    enc_init(e, &pk);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint32(&pk, slot);
    pack_str(&pk, key);
    pack_str(&pk, value);
    return enc_done(e);
}

int st__enc_artifact(struct st_enc *e, uint32_t slot, const char *path, const char *spool_name,
                     uint64_t size)
{
    msgpack_packer pk;
    enc_init(e, &pk);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, slot);
    pack_str(&pk, path);
    pack_str(&pk, spool_name);
    msgpack_pack_uint64(&pk, size);
    return enc_done(e);
}

int st__enc_model_register(struct st_enc *e, uint32_t slot, const char *path, const char *name,
                           const char *const *aliases, size_t naliases,
                           const char *description)
{
    msgpack_packer pk;
    enc_init(e, &pk);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint32(&pk, slot);
    pack_str(&pk, path);
    pack_str(&pk, name);
    msgpack_pack_array(&pk, naliases);
    for (size_t i = 0; i < naliases; i++)
        pack_str(&pk, aliases[i]);
    pack_str(&pk, description ? description : "");
    return enc_done(e);
}
