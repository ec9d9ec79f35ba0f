/* owner.c — who owns a lane, and whether they are still alive.
 *
 * A lane's owner word names a pid; pids get reused. The claimant also records its start time
 * (field 22 of /proc/PID/stat, clock ticks since boot), and the pair names one process for
 * the life of the machine. The consumer uses this to decide that a lane's producer died, so
 * that it can drain the lane, skip a record left half-written, and free it.
 */
#include "shmlog.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

uint64_t shmlog_pid_start(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    /* The command name (field 2) may hold spaces and ')': fields 3.. follow the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long v = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                            "%*d %*d %llu", &v) != 1)
        return 0;
    return v;
}

bool shmlog_pid_maps_file(pid_t pid, dev_t dev, ino_t ino)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    char line[4608];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        /* address perms offset dev(major:minor, hex) inode path */
        unsigned maj, min;
        unsigned long long inode;
        if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &inode) == 3)
            found = inode == (unsigned long long)ino && maj == major(dev) && min == minor(dev);
    }
    fclose(f);
    return found;
}

bool shmlog_owner_dead(const struct shmlog_lane_ctl *ctl, uint64_t owner)
{
    pid_t pid = SHMLOG_OWNER_PID(owner);
    if (pid <= 0)
        return true;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    uint64_t claimed = atomic_load_explicit(&ctl->pid_start, memory_order_relaxed);
    if (claimed) { /* 0: the claim is being completed */
        uint64_t now = shmlog_pid_start(pid);
        if (now && now != claimed)
            return true; /* the pid now belongs to another process */
    }
    return false;
}
