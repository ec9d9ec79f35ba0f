/* arena.c — creating, validating and mapping an arena file.
 *
 * Creation is atomic: the creator builds the whole file under a temporary name and link()s it
 * into place, so that no process ever maps a half-initialised header. When two processes race
 * to create, link() lets exactly one win; the loser maps the winner's file.
 */
#include "shmlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t round_pow2(uint64_t v)
{
    uint64_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

static uint64_t data_offset(uint32_t hdr_size, uint32_t lanes, uint32_t ctl_size)
{
    return ((uint64_t)hdr_size + (uint64_t)lanes * ctl_size + 4095) & ~(uint64_t)4095;
}

static bool tsc_is_invariant(void)
{
#if defined(__x86_64__) || defined(__i386__)
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return false;
    char line[4096];
    bool constant = false, nonstop = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        constant = strstr(line, " constant_tsc") != NULL;
        nonstop = strstr(line, " nonstop_tsc") != NULL;
        break;
    }
    fclose(f);
    return constant && nonstop;
#else
    return false;
#endif
}

int shmlog_arena_validate(const struct shmlog_arena_hdr *h, uint64_t file_size)
{
    if (file_size < SHMLOG_HDR_SIZE)
        return memcmp(h->magic, SHMLOG_MAGIC, file_size < 8 ? file_size : 8) ? -EPROTO : -EBADMSG;
    if (memcmp(h->magic, SHMLOG_MAGIC, 8) != 0)
        return -EPROTO;
    if (h->version != SHMLOG_VERSION)
        return -EPROTONOSUPPORT;
    if (h->hdr_size != SHMLOG_HDR_SIZE || h->ctl_size != SHMLOG_CTL_SIZE)
        return -EBADMSG;
    if (h->lane_count == 0 || h->lane_count > SHMLOG_MAX_LANES)
        return -EBADMSG;
    if (h->lane_size < SHMLOG_MIN_LANE_SIZE || h->lane_size > SHMLOG_MAX_LANE_SIZE ||
        (h->lane_size & (h->lane_size - 1)))
        return -EBADMSG;
    if (h->clock != SHMLOG_CLOCK_REALTIME && h->clock != SHMLOG_CLOCK_TSC)
        return -EBADMSG;
    uint64_t want = data_offset(h->hdr_size, h->lane_count, h->ctl_size) +
                    (uint64_t)h->lane_count * h->lane_size;
    if (h->arena_size != want || file_size != want)
        return -EBADMSG;
    return 0;
}

const char *shmlog_strerror(int err)
{
    switch (err) {
    case -EPROTO:
        return "not a sidetrack ring (wrong magic): another program's file is at this path; "
               "move it away or choose another ring directory";
    case -EPROTONOSUPPORT:
        return "sidetrack ring of another layout version: stop the producers and agent of the "
               "other version, then delete the file (or use matching versions)";
    case -EBADMSG:
        return "corrupted sidetrack ring (header inconsistent with itself or the file size): "
               "stop its producers and delete the file";
    case -EBUSY:
        return "every lane of the ring is in use: raise SIDETRACK_LANES when the ring is "
               "created, or end idle producers";
    case -EINVAL:
        return "invalid ring geometry (lanes 1..4096, lane size 64 KiB..1 GiB)";
    default:
        return strerror(-err);
    }
}

static int arena_map(struct shmlog_arena *a, int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EPROTO;
    if ((uint64_t)st.st_size < sizeof(struct shmlog_arena_hdr)) {
        char magic[8] = {0};
        ssize_t n = pread(fd, magic, sizeof magic, 0);
        return (n >= 0 && (size_t)n == sizeof magic && !memcmp(magic, SHMLOG_MAGIC, 8)) ? -EBADMSG
                                                                                         : -EPROTO;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return -errno;
    int r = shmlog_arena_validate(m, (uint64_t)st.st_size);
    if (r < 0) {
        munmap(m, (size_t)st.st_size);
        return r;
    }
    a->hdr = m;
    a->base = m;
    const struct shmlog_arena_hdr *h = m;
    a->lane_count = h->lane_count;
    a->lane_size = h->lane_size;
    a->clock = h->clock;
    a->spill_quota = h->spill_quota;
    a->size = (size_t)st.st_size;
    a->fd = fd;
    a->file_uid = st.st_uid;
    snprintf(a->path, sizeof a->path, "%s", path);
    return 0;
}

static int arena_create(const char *path, const struct shmlog_geometry *geo)
{
    struct shmlog_geometry g = geo ? *geo : (struct shmlog_geometry){0};
    if (!g.lane_count)
        g.lane_count = SHMLOG_DEFAULT_LANES;
    if (!g.lane_size)
        g.lane_size = SHMLOG_DEFAULT_LANE_SIZE;
    g.lane_size = round_pow2(g.lane_size);
    if (!g.spill_quota)
        g.spill_quota = SHMLOG_DEFAULT_SPILL_QUOTA;
    if (!g.clock)
        g.clock = tsc_is_invariant() ? SHMLOG_CLOCK_TSC : SHMLOG_CLOCK_REALTIME;
    if (g.lane_count > SHMLOG_MAX_LANES || g.lane_size < SHMLOG_MIN_LANE_SIZE ||
        g.lane_size > SHMLOG_MAX_LANE_SIZE ||
        (g.clock != SHMLOG_CLOCK_TSC && g.clock != SHMLOG_CLOCK_REALTIME))
        return -EINVAL;

    uint64_t size = data_offset(SHMLOG_HDR_SIZE, g.lane_count, SHMLOG_CTL_SIZE) +
                    (uint64_t)g.lane_count * g.lane_size;
    char tmp[4200];
    uint32_t salt;
    if (getrandom(&salt, sizeof salt, 0) != sizeof salt)
        salt = (uint32_t)getpid();
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%08x", path, (int)getpid(), salt);
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int r = 0;
    if (ftruncate(fd, (off_t)size) < 0) {
        r = -errno;
        goto out;
    }
    struct shmlog_arena_hdr h = {0};
    memcpy(h.magic, SHMLOG_MAGIC, 8);
    h.version = SHMLOG_VERSION;
    h.hdr_size = SHMLOG_HDR_SIZE;
    h.ctl_size = SHMLOG_CTL_SIZE;
    h.lane_count = g.lane_count;
    h.lane_size = g.lane_size;
    h.arena_size = size;
    h.creator_uid = (uint32_t)getuid();
    h.clock = g.clock;
    h.spill_quota = g.spill_quota;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h.created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (getrandom(h.arena_id, sizeof h.arena_id, 0) != sizeof h.arena_id) {
        r = -EIO;
        goto out;
    }
    if (pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) {
        r = errno ? -errno : -EIO;
        goto out;
    }
    if (link(tmp, path) < 0 && errno != EEXIST)
        r = -errno;
out:
    unlink(tmp);
    close(fd);
    return r;
}

int shmlog_arena_open(struct shmlog_arena *a, const char *path, unsigned flags,
                      const struct shmlog_geometry *geo)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            if (errno != ENOENT || !(flags & SHMLOG_CREATE))
                return -errno;
            int r = arena_create(path, geo);
            if (r < 0)
                return r;
            continue;
        }
        int r = arena_map(a, fd, path);
        if (r < 0)
            close(fd);
        return r;
    }
    return -ENOENT;
}

void shmlog_arena_close(struct shmlog_arena *a)
{
    if (a->base)
        munmap(a->base, a->size);
    if (a->fd >= 0)
        close(a->fd);
    a->base = NULL;
    a->hdr = NULL;
    a->fd = -1;
}

int shmlog_mkdir(const char *dir, mode_t mode)
{
    if (mkdir(dir, mode) == 0) {
        chmod(dir, mode); /* umask must not narrow a directory every user writes into */
        return 0;
    }
    return errno == EEXIST ? 0 : -errno;
}

int shmlog_spill_path(const struct shmlog_arena *a, uint32_t lane, uint32_t gen, char *buf,
                      size_t len)
{
    int n = snprintf(buf, len, "%s.%u.%u.spill", a->path, lane, gen);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}
