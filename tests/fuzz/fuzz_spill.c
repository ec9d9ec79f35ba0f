/* fuzz_spill.c — libFuzzer target: shmlog/spill.c, a hostile or damaged spill file read with
 * shmlog_spill_open / shmlog_spill_next until it ends or errs; each record it returns goes
 * through decode_record as the agent does.
 *
 * Input: one byte of mode, then the file. Mode bit 0 clear: read to the end of the file
 * (upto = UINT64_MAX); set: read up to an offset, as for a SPILL_MARK, here the file size less
 * mode >> 2, so that both paths run. Mode bit 1 set: the harness first writes the right
 * checksum into each [len][crc] frame it can follow, so that mutations reach past the CRC. */
#include "decode.h"
#include "shmlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;
static char path[64];
static int fd = -1;

static void cleanup(void)
{
    if (path[0])
        unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    if (fd < 0) {
        /* tmpfs when there is one: truncating a disk file each run costs milliseconds */
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(path, sizeof path, "%s/sidetrack-fuzz-spill.%d", dir, (int)getpid());
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            abort();
        atexit(cleanup);
    }
    uint8_t *file = malloc(size ? size : 1);
    if (!file)
        abort();
    memcpy(file, data, size);
    if (mode & 2) {
        size_t off = 0;
        struct shmlog_spill_hdr sh;
        while (off + sizeof sh <= size) {
            memcpy(&sh, file + off, sizeof sh);
            if (sh.len > size - off - sizeof sh)
                break;
            sh.crc = shmlog_crc32c(0, file + off + sizeof sh, sh.len);
            memcpy(file + off, &sh, sizeof sh);
            off += sizeof sh + sh.len;
        }
    }
    if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, file, size, 0) != (ssize_t)size))
        abort();
    free(file);
    uint64_t upto = UINT64_MAX;
    if (mode & 1) {
        uint64_t less = mode >> 2;
        upto = size > less ? size - less : 0;
    }
    struct shmlog_spill_reader r;
    if (shmlog_spill_open(&r, path, 0) < 0)
        abort();
    struct decoder dec;
    decode_init(&dec);
    for (;;) {
        const struct shmlog_rec *rec;
        int n = shmlog_spill_next(&r, upto, &rec);
        if (n <= 0)
            break;
        if (r.pos > size || (size_t)n > size)
            __builtin_trap(); /* a record that the file does not hold */
        struct decoded d;
        memset(&d, 0, sizeof d);
        if (decode_record(&dec, rec, (uint32_t)n, &d) == 0 && d.value)
            sink += strlen(d.value);
        decode_reset(&dec);
    }
    decode_free(&dec);
    shmlog_spill_close(&r);
    return 0;
}
