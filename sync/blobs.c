/* blobs.c — see blobs.h. The store's blob ingest (store_blob_ingest) hashes and moves a
 * finished upload into place, so there is one way blobs get into a store. */
#include "blobs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int blobs_have(struct store *s, const uint8_t sha256[32], uint64_t size, uint64_t *have)
{
    char path[4096];
    struct stat st;
    *have = 0;
    if (store_blob_path(s, sha256, path, sizeof path) == 0 && stat(path, &st) == 0 &&
        (uint64_t)st.st_size == size) {
        *have = size;
        return 0;
    }
    int r = store_blob_upload_path(s, sha256, size == 0, path, sizeof path);
    if (r < 0)
        return r;
    if (size == 0) { /* empty content: no chunk will come, so it is complete now */
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0)
            return -errno;
        close(fd);
    }
    if (stat(path, &st) < 0)
        return 0;
    if ((uint64_t)st.st_size < size) {
        *have = (uint64_t)st.st_size;
        return 0;
    }
    if ((uint64_t)st.st_size > size) {
        unlink(path); /* longer than the content: not an upload of it */
        return 0;
    }
    /* Complete but not stored: the server stopped between the last chunk and the store.
     * Finish it now, or the agent would take "have == size" for a stored blob. */
    uint8_t got[32];
    uint64_t n = 0;
    if ((r = store_blob_ingest(s, path, true, got, &n)) < 0)
        return r;
    if (memcmp(got, sha256, 32) == 0 && n == size)
        *have = size;
    return 0;
}

int blobs_chunk(struct store *s, const struct sync_msg *m, uint64_t *have)
{
    int r = blobs_have(s, m->sha256, m->size, have);
    if (r < 0 || *have == m->size || m->offset != *have)
        return r; /* stored already, or not where the upload stands: *have says where */
    char path[4096];
    if ((r = store_blob_upload_path(s, m->sha256, true, path, sizeof path)) < 0)
        return r;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    ssize_t w = m->data_len ? pwrite(fd, m->data, m->data_len, (off_t)m->offset) : 0;
    if (w != (ssize_t)m->data_len) {
        r = w < 0 ? -errno : -EIO;
        close(fd);
        return r;
    }
    *have = m->offset + m->data_len;
    if (*have < m->size) {
        close(fd);
        return 0;
    }
    if (fsync(fd) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    close(fd);
    uint8_t got[32];
    uint64_t size = 0;
    if ((r = store_blob_ingest(s, path, true, got, &size)) < 0)
        return r;
    if (memcmp(got, m->sha256, 32) != 0 || size != m->size) {
        /* Stored under its own digest (harmless, unnamed); this upload starts over. */
        *have = 0;
        return -EBADMSG;
    }
    return 0;
}
