/* zap.c — ZAP handler (see zap.h). Refusals are logged once per key and address, so that an
 * operator sees an agent that was not let in, and why. */
#include "zap.h"

#include "keys.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

struct zap {
    void *ctx, *sock;
    pthread_t thread;
    char dir[4096];
    struct timespec dir_mtime;
    char (*keys)[SYNC_KEY_Z85 + 1];
    size_t nkeys;
    _Atomic uint64_t refused;
    _Atomic bool stop;
};

static void load_keys(struct zap *z)
{
    struct stat st;
    if (stat(z->dir, &st) < 0) {
        server_log("warning", "allow-list %s: %s (no agent gets in)", z->dir, strerror(errno));
        z->nkeys = 0;
        return;
    }
    if (z->keys && st.st_mtim.tv_sec == z->dir_mtime.tv_sec &&
        st.st_mtim.tv_nsec == z->dir_mtime.tv_nsec)
        return;
    z->dir_mtime = st.st_mtim;
    DIR *d = opendir(z->dir);
    if (!d)
        return;
    size_t n = 0, cap = 0;
    char (*keys)[SYNC_KEY_Z85 + 1] = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", z->dir, e->d_name);
        char pub[SYNC_KEY_Z85 + 1];
        if (sync_keys_read_public(path, pub) < 0) {
            server_log("warning", "%s is not a public key; ignored", path);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            void *nk = realloc(keys, cap * sizeof *keys);
            if (!nk)
                break;
            keys = nk;
        }
        memcpy(keys[n++], pub, sizeof pub);
    }
    closedir(d);
    free(z->keys);
    z->keys = keys;
    z->nkeys = n;
    server_log("info", "allow-list %s: %zu agent key(s)", z->dir, n);
}

static bool allowed(const struct zap *z, const char *pub)
{
    for (size_t i = 0; i < z->nkeys; i++)
        if (!strcmp(z->keys[i], pub))
            return true;
    return false;
}

static int recv_str(void *sock, char *buf, size_t len, int *more)
{
    int n = zmq_recv(sock, buf, len - 1, 0);
    if (n < 0)
        return -1;
    buf[(size_t)n < len - 1 ? (size_t)n : len - 1] = 0;
    int m = 0;
    size_t ms = sizeof m;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &m, &ms);
    *more = m;
    return n;
}

static void *zap_main(void *arg)
{
    struct zap *z = arg;
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it = {.socket = z->sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 200) <= 0)
            continue;
        /* version, request id, domain, address, identity, mechanism, credentials... */
        char f[7][256];
        int more = 1, nf = 0, lens[7] = {0};
        while (more && nf < 7) {
            lens[nf] = recv_str(z->sock, f[nf], sizeof f[nf], &more);
            if (lens[nf] < 0)
                break;
            nf++;
        }
        while (more) { /* extra credential frames */
            char junk[64];
            if (recv_str(z->sock, junk, sizeof junk, &more) < 0)
                break;
        }
        if (nf < 6)
            continue;
        load_keys(z);
        const char *status = "400", *text = "unknown key";
        char pub[SYNC_KEY_Z85 + 1] = "";
        if (strcmp(f[5], "CURVE") != 0 || nf < 7 || lens[6] != 32) {
            text = "CURVE required";
        } else {
            zmq_z85_encode(pub, (const uint8_t *)f[6], 32);
            if (allowed(z, pub))
                status = "200", text = "OK";
        }
        if (*status != '2') {
            atomic_fetch_add(&z->refused, 1);
            server_log("warning",
                       "refused a connection from %s: %s%s%s (add its .pub file to %s to let "
                       "it in)",
                       f[3], text, *pub ? " " : "", pub, z->dir);
        }
        zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(z->sock, f[1], (size_t)lens[1], ZMQ_SNDMORE);
        zmq_send(z->sock, status, 3, ZMQ_SNDMORE);
        zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(z->sock, pub, *status == '2' ? strlen(pub) : 0, ZMQ_SNDMORE);
        zmq_send(z->sock, "", 0, 0);
    }
    return NULL;
}

int zap_start(struct zap **out, void *ctx, const char *allow_dir)
{
    struct zap *z = calloc(1, sizeof *z);
    if (!z)
        return -ENOMEM;
    z->ctx = ctx;
    snprintf(z->dir, sizeof z->dir, "%s", allow_dir);
    load_keys(z);
    z->sock = zmq_socket(ctx, ZMQ_REP);
    int zero = 0;
    zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (!z->sock || zmq_bind(z->sock, "inproc://zeromq.zap.01") != 0) {
        int e = errno;
        if (z->sock)
            zmq_close(z->sock);
        free(z);
        return -e;
    }
    int r = pthread_create(&z->thread, NULL, zap_main, z);
    if (r != 0) {
        zmq_close(z->sock);
        free(z);
        return -r;
    }
    *out = z;
    return 0;
}

void zap_stop(struct zap *z)
{
    if (!z)
        return;
    atomic_store(&z->stop, true);
    pthread_join(z->thread, NULL);
    zmq_close(z->sock);
    free(z->keys);
    free(z);
}

uint64_t zap_refused(const struct zap *z) { return z ? atomic_load(&z->refused) : 0; }
