/* artifact.c — st_log_artifact(): the file goes into the agent's spool, never into the ring.
 *
 * We copy (a reflink where the file system offers one, so a checkpoint costs no extra space
 * there) rather than hard-link: torch.save() and most writers truncate and rewrite a file in
 * place, which would change a hard-linked spool entry before the agent has hashed it. The
 * copy is written under a temporary name and renamed, so the agent never sees a partial file;
 * only then does the record naming it enter the ring.
 */
#include "client_internal.h"
#include "encode.h"
#include "validate.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_fd(int in, int out, uint64_t size)
{
    if (ioctl(out, FICLONE, in) == 0)
        return 0;
    uint64_t done = 0;
    while (done < size) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, size - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (uint64_t)n;
    }
    if (done == size)
        return 0;
    /* copy_file_range refuses some pairs of file systems: fall back to read/write. */
    if (lseek(in, (off_t)done, SEEK_SET) < 0 || lseek(out, (off_t)done, SEEK_SET) < 0)
        return -errno;
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        for (ssize_t w = 0; w < n;) {
            ssize_t k = write(out, buf + w, (size_t)(n - w));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return -errno;
            w += k;
        }
    }
}

static void spool_dir_of(struct st_client *c, char *dir, size_t len)
{
    const char *adv = c->arena.hdr->spool_dir;
    if (adv[0] && memchr(adv, 0, sizeof c->arena.hdr->spool_dir) && access(adv, W_OK | X_OK) == 0)
        snprintf(dir, len, "%s", adv);
    else
        snprintf(dir, len, "%s/spool", c->ring_dir);
}

int st__artifact_spool(struct st_client *c, const char *local_path, char *name, size_t name_len,
                       uint64_t *size)
{
    int in = open(local_path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    struct stat st;
    int r = 0;
    if (fstat(in, &st) < 0) {
        r = -errno;
        goto out_in;
    }
    if (S_ISDIR(st.st_mode)) {
        r = -EISDIR;
        goto out_in;
    }
    if (!S_ISREG(st.st_mode)) {
        r = -EINVAL;
        goto out_in;
    }
    char dir[4200];
    spool_dir_of(c, dir, sizeof dir);
    if ((r = shmlog_mkdir(dir, 01777)) < 0)
        goto out_in;
    uint8_t rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) {
        r = -EIO;
        goto out_in;
    }
    char base[32];
    for (int i = 0; i < 12; i++)
        snprintf(base + 2 * i, 3, "%02x", rnd[i]);
    char tmp[4300], final[4300];
    snprintf(tmp, sizeof tmp, "%s/.%s.part", dir, base);
    snprintf(final, sizeof final, "%s/%s", dir, base);
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        r = -errno;
        goto out_in;
    }
    r = copy_fd(in, out, (uint64_t)st.st_size);
    if (r == 0 && fstat(out, &st) < 0)
        r = -errno;
    close(out);
    if (r == 0 && rename(tmp, final) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    else {
        snprintf(name, name_len, "%s", final);
        *size = (uint64_t)st.st_size;
    }
out_in:
    close(in);
    return r;
}

int st_log_artifact(st_run *run, const char *local_path, const char *artifact_path)
{
    if (!run || !local_path)
        return -EINVAL;
    if (!artifact_path) {
        const char *slash = strrchr(local_path, '/');
        artifact_path = slash ? slash + 1 : local_path;
    }
    int r = st__check_artifact_path(artifact_path);
    if (r < 0)
        return r;
    char spooled[4300];
    uint64_t size = 0;
    if ((r = st__artifact_spool(run->client, local_path, spooled, sizeof spooled, &size)) < 0)
        return r;
    struct st_enc e;
    if ((r = st__enc_artifact(&e, run->slot, artifact_path, spooled, size)) < 0) {
        unlink(spooled);
        return r;
    }
    return st__log_record(run, WIRE_ARTIFACT, &e);
}
