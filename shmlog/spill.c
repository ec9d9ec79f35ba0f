/* spill.c — the consumer's reader of spill files. Producers append whole records with one
 * writev(); a record is [u32 len][u32 crc32c][len bytes of ring record]. */
#include "shmlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int shmlog_spill_open(struct shmlog_spill_reader *r, const char *path, uint64_t pos)
{
    memset(r, 0, sizeof *r);
    r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (r->fd < 0)
        return -errno;
    r->pos = pos;
    return 0;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENODATA;
        done += (size_t)n;
    }
    return 0;
}

int shmlog_spill_next(struct shmlog_spill_reader *r, uint64_t upto, const struct shmlog_rec **rec)
{
    struct shmlog_spill_hdr sh;
    if (r->pos + sizeof sh > upto)
        return 0;
    int e = read_at(r->fd, &sh, sizeof sh, r->pos);
    if (e == -ENODATA)
        return 0;
    if (e < 0)
        return e;
    if (sh.len < sizeof(struct shmlog_rec) || (sh.len & (SHMLOG_ALIGN - 1)) ||
        sh.len > SHMLOG_MAX_LANE_SIZE / 4)
        return -EBADMSG;
    if (r->pos + sizeof sh + sh.len > upto)
        return upto == UINT64_MAX ? 0 : -EBADMSG;
    if (sh.len > r->cap) {
        uint8_t *nb = realloc(r->buf, sh.len);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = sh.len;
    }
    e = read_at(r->fd, r->buf, sh.len, r->pos + sizeof sh);
    if (e == -ENODATA)
        return 0;
    if (e < 0)
        return e;
    if (shmlog_crc32c(0, r->buf, sh.len) != sh.crc)
        return -EBADMSG;
    const struct shmlog_rec *h = (const struct shmlog_rec *)r->buf;
    int32_t len;
    memcpy(&len, r->buf, sizeof len);
    if (len != (int32_t)sh.len)
        return -EBADMSG;
    r->pos += sizeof sh + sh.len;
    *rec = h;
    return (int)sh.len;
}

void shmlog_spill_close(struct shmlog_spill_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    r->fd = -1;
    r->buf = NULL;
}
