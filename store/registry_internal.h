/* registry_internal.h — what the registry's files share: registry.c (schema, models, tags,
 * aliases), registry_versions.c (versions), registry_history.c (the audit history and
 * rollback) and registry_search.c (search). Nobody outside the store sees it. */
#ifndef SIDETRACK_STORE_REGISTRY_INTERNAL_H
#define SIDETRACK_STORE_REGISTRY_INTERNAL_H

#include "registry.h"
#include "store_internal.h"

#include <stddef.h>

/* One change as the history keeps it (store_rm_event without the parts the writer knows). */
struct rg_change {
    int kind;             /* enum store_rm_change */
    uint64_t version;
    const char *key;      /* alias or tag key */
    uint64_t from, to;    /* alias changes */
    uint64_t undoes;      /* rollback */
    const char *before, *after;
};

/* Records are msgpack maps of short keys; a table of fields says where each key's value lives
 * in the C struct, so that one reader and one writer serve models, versions and history. */
enum rg_ftype {
    RG_STR,  /* char[size] */
    RG_I64,  /* int64_t */
    RG_U64,  /* uint64_t */
    RG_INT,  /* int, stored as an integer */
    RG_ENUM, /* int read from an unsigned integer; one past max reads as 0 (unknown) */
};
struct rg_field {
    const char *key;
    enum rg_ftype type;
    size_t off, size; /* size: of an RG_STR's buffer */
    int max;          /* RG_ENUM */
};
#define RG_FIELD(T, key, type, member) \
    {key, type, offsetof(T, member), sizeof ((T *)0)->member, 0}

/* Reads record v's known keys into rec (others are skipped; absent ones left as they are). */
int rg_rec_decode(const MDB_val *v, const struct rg_field *f, size_t nf, void *rec);
/* Writes rec's fields, in the table's order, as the value of key in db. */
int rg_rec_put(struct store_txn *t, enum st_db db, const void *key, size_t klen,
               const struct rg_field *f, size_t nf, const void *rec);
/* Puts the map that w holds (an allocation it failed is reported here) and frees w. */
int rg_mpw_put(struct store_txn *t, enum st_db db, const void *key, size_t klen,
               struct st_mpw *w);

/* model id (8) + version (8), big-endian: keys of mv, owners of rm_tags, rm_hist keys. */
void rg_mvkey(uint8_t k[16], uint64_t id, uint64_t version);
int rg_del_prefix(struct store_txn *t, enum st_db db, const void *prefix, size_t plen);
/* Appends a history entry of model m (its id and current name) under the next seq. */
int rg_hist_put(struct store_txn *t, const struct store_rm *m, const struct store_rm_by *by,
                const struct rg_change *c);
int rg_mv_load(struct store_txn *t, const struct store_rm *m, uint64_t version,
               struct store_mv *out);
int rg_mv_foreach_model(struct store_txn *t, const struct store_rm *m,
                        int (*cb)(const struct store_mv *v, void *arg), void *arg);
int rg_alias_lookup(struct store_txn *t, uint64_t id, const char *alias, uint64_t *version);
/* Points alias from version `from` (0: unset) at `to` (0: removes it), stamps the model and
 * records c with the alias and both versions filled in. */
int rg_alias_move(struct store_txn *t, struct store_rm *m, const char *alias, uint64_t from,
                  uint64_t to, const struct rg_change *c, const struct store_rm_by *by);
/* The common start of a write on a model: a writable txn, a good actor, the model. */
int rg_rm_for_write(struct store_txn *t, const char *name, const struct store_rm_by *by,
                    struct store_rm *m);

/* A growing list of numbers (version numbers gathered by a walk); v is the caller's to free. */
struct rg_u64s {
    uint64_t *v;
    size_t n, cap;
};
int rg_u64s_add(struct rg_u64s *l, uint64_t x);

/* 0 when s is NULL or at most max bytes, else -ENAMETOOLONG. */
int rg_opt_str(const char *s, size_t max);
/* Stamps model m as changed at by->now_ms, saves it and records c. */
int rg_rm_touch_log(struct store_txn *t, struct store_rm *m, const struct store_rm_by *by,
                    const struct rg_change *c);
int rg_mv_save(struct store_txn *t, const struct store_mv *mv);
/* The common start of a write on a version: its model and the version itself. */
int rg_mv_for_write(struct store_txn *t, const char *name, uint64_t version,
                    const struct store_rm_by *by, struct store_rm *m, struct store_mv *mv);

#endif
