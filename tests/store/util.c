/* util.c — see util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const uint8_t SHA256_OF_ABC[32] = {
    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
const uint8_t SHA256_OF_EMPTY[32] = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};

char *scratch_dir(char *buf)
{
    strcpy(buf, "/tmp/ststore.XXXXXX");
    return mkdtemp(buf);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void scratch_rm(const char *dir)
{
    if (dir && strncmp(dir, "/tmp/ststore.", 13) == 0)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void run_id(uint8_t id[16], uint8_t b, uint8_t n)
{
    memset(id, b, 16);
    id[15] = n;
}

int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        p += w;
        len -= (size_t)w;
    }
    return close(fd) < 0 ? -errno : 0;
}

int collect_points(const struct store_point *pts, size_t n, void *arg)
{
    struct point_collect *c = arg;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->pts = realloc(c->pts, c->cap * sizeof *c->pts);
        if (!c->pts)
            abort();
    }
    memcpy(c->pts + c->n, pts, n * sizeof *pts);
    c->n += n;
    c->chunks++;
    if (n > c->max_chunk)
        c->max_chunk = n;
    return 0;
}
