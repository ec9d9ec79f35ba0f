/* ring_util.c — see ring_util.h. */
#include "ring_util.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int scratch_make(struct scratch *s, const char *name)
{
    static const char *const roots[] = {"/dev/shm", "/tmp"};
    int err = -ENOENT;
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        /* a local template: gcc 12 with -fsanitize=undefined warns on s->dir (a false
         * "null destination pointer") */
        char tmpl[sizeof s->dir];
        snprintf(tmpl, sizeof tmpl, "%s/sidetrack-ring-test-XXXXXX", roots[i]);
        if (mkdtemp(tmpl)) {
            memcpy(s->dir, tmpl, sizeof tmpl);
            scratch_name(s, name);
            return 0;
        }
        err = -errno;
    }
    s->dir[0] = 0;
    return err;
}

void scratch_name(struct scratch *s, const char *name)
{
    snprintf(s->path, sizeof s->path, "%s/%s", s->dir, name);
}

void scratch_remove(struct scratch *s)
{
    if (!s->dir[0])
        return;
    DIR *d = opendir(s->dir);
    if (d) {
        struct dirent *e;
        char p[600];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", s->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(s->dir);
    s->dir[0] = 0;
}

int scratch_count(const struct scratch *s)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

uint64_t proc_start_time(pid_t pid) { return shmlog_pid_start(pid); }

bool pid_alive(pid_t pid, uint64_t pid_start)
{
    uint64_t st = proc_start_time(pid);
    return st != 0 && st == pid_start;
}

uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || x == 0)
        return fallback;
    return x;
}

uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t trec_value(uint32_t producer, uint64_t seq)
{
    return mix64(((uint64_t)producer << 40) ^ seq);
}

uint32_t trec_len(uint64_t seq)
{
    return (uint32_t)(sizeof(struct trec) + 8 * (mix64(seq) % 8));
}

void trec_fill(struct trec *r, uint32_t producer, uint64_t seq)
{
    uint32_t len = trec_len(seq);
    r->h.type = TREC_TYPE;
    r->h.flags = 0;
    r->h.aux = (uint16_t)producer;
    r->producer = producer;
    r->nwords = (len - (uint32_t)sizeof *r) / 8;
    r->seq = seq;
    r->value = trec_value(producer, seq);
    for (uint32_t k = 0; k < r->nwords; k++)
        r->words[k] = r->value + k;
}

bool trec_valid(const struct trec *r, int32_t len)
{
    if (len < (int32_t)sizeof *r || r->h.type != TREC_TYPE)
        return false;
    if ((uint32_t)len != trec_len(r->seq) || r->nwords != ((uint32_t)len - sizeof *r) / 8)
        return false;
    if (r->h.aux != (uint16_t)r->producer || r->value != trec_value(r->producer, r->seq))
        return false;
    for (uint32_t k = 0; k < r->nwords; k++)
        if (r->words[k] != r->value + k)
            return false;
    return true;
}

void *reserve_retry(struct shmlog_producer *p, uint32_t len, double limit_s, uint64_t *retries,
                    uint64_t *episodes)
{
    void *r = shmlog_reserve(p, len);
    if (r)
        return r;
    ++*episodes;
    double deadline = 0;
    for (uint64_t n = 1;; n++) {
        ++*retries;
        sched_yield();
        r = shmlog_reserve(p, len);
        if (r)
            return r;
        if ((n & 1023) == 0) {
            double t = now_s();
            if (deadline == 0)
                deadline = t + limit_s;
            else if (t > deadline)
                return NULL;
        }
    }
}

int drain_lane(struct drain *d, struct shmlog_cursor *c, int batch, int *last)
{
    int k = 0, n = 0;
    uint64_t start = c->pos;
    while (k < batch) {
        const struct shmlog_rec *r;
        n = shmlog_peek(c, &r);
        if (n == 0)
            break;
        if (n == -EINPROGRESS) {
            d->inprogress++;
            break;
        }
        if (n < 0) {
            snprintf(d->error, sizeof d->error, "pos %llu: peek gave %d (%s)",
                     (unsigned long long)c->pos, n, strerror(-n));
            return -1;
        }
        if (r->type == SHMLOG_REC_PAD) {
            d->pads++;
            c->pos += (uint64_t)n;
            continue;
        }
        const struct trec *t = (const struct trec *)r;
        if (!trec_valid(t, n) || t->producer >= d->producers) {
            snprintf(d->error, sizeof d->error, "pos %llu: malformed record (len %d, type %u)",
                     (unsigned long long)c->pos, n, r->type);
            return -1;
        }
        if (t->seq != d->next_seq[t->producer]) {
            snprintf(d->error, sizeof d->error, "producer %u: sequence %llu arrived, expected %llu",
                     t->producer, (unsigned long long)t->seq,
                     (unsigned long long)d->next_seq[t->producer]);
            return -1;
        }
        d->next_seq[t->producer]++;
        d->sum += t->value;
        d->hash ^= mix64(t->value ^ t->seq);
        d->total++;
        c->pos += (uint64_t)n;
        k++;
    }
    if (c->pos != start) {
        shmlog_release(c, c->pos); /* one release per batch */
        d->releases++;
    }
    if (c->pos > d->max_pos)
        d->max_pos = c->pos;
    if (last)
        *last = n;
    return k;
}

bool drain_all(struct drain *d, const struct shmlog_arena *a, uint64_t want, double stuck_s)
{
    uint32_t lanes = a->lane_count;
    struct shmlog_cursor *cur = calloc(lanes, sizeof *cur);
    if (!cur) {
        snprintf(d->error, sizeof d->error, "out of memory");
        return false;
    }
    for (uint32_t i = 0; i < lanes; i++)
        shmlog_cursor_init(&cur[i], a, i, atomic_load(&shmlog_lane_ctl(a, i)->head));
    double last_progress = now_s();
    bool ok = true;
    while (ok && d->total < want) {
        bool progress = false;
        for (uint32_t i = 0; i < lanes; i++) {
            uint64_t before = cur[i].pos;
            if (drain_lane(d, &cur[i], 512, NULL) < 0) {
                ok = false;
                break;
            }
            progress |= cur[i].pos != before;
        }
        if (!ok)
            break;
        if (progress) {
            last_progress = now_s();
            continue;
        }
        sched_yield();
        if (now_s() - last_progress > stuck_s) {
            snprintf(d->error, sizeof d->error,
                     "nothing arrived for %.0f s, at %llu of %llu records", stuck_s,
                     (unsigned long long)d->total, (unsigned long long)want);
            ok = false;
        }
    }
    /* exactly once: nothing more is published anywhere */
    for (uint32_t i = 0; ok && i < lanes; i++) {
        const struct shmlog_rec *r;
        int n = shmlog_peek(&cur[i], &r);
        if (n != 0) {
            snprintf(d->error, sizeof d->error, "lane %u: peek gave %d after the last record", i,
                     n);
            ok = false;
        }
    }
    free(cur);
    return ok;
}

bool drain_complete(struct drain *d, uint64_t records)
{
    uint64_t sum = 0, hash = 0;
    for (uint32_t i = 0; i < d->producers; i++) {
        if (d->next_seq[i] != records) {
            snprintf(d->error, sizeof d->error, "producer %u: %llu records arrived, expected %llu",
                     i, (unsigned long long)d->next_seq[i], (unsigned long long)records);
            return false;
        }
        for (uint64_t s = 0; s < records; s++) {
            uint64_t v = trec_value(i, s);
            sum += v;
            hash ^= mix64(v ^ s);
        }
    }
    if (d->total != (uint64_t)d->producers * records || d->sum != sum || d->hash != hash) {
        snprintf(d->error, sizeof d->error,
                 "%llu records arrived, expected %llu; sum %016llx vs %016llx, hash %016llx vs "
                 "%016llx",
                 (unsigned long long)d->total, (unsigned long long)d->producers * records,
                 (unsigned long long)d->sum, (unsigned long long)sum,
                 (unsigned long long)d->hash, (unsigned long long)hash);
        return false;
    }
    return true;
}
