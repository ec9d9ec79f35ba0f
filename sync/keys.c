/* keys.c — CURVE key files and bearer token files (see keys.h). */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int sync_key_valid(const char *z85)
{
    if (!z85 || strlen(z85) != SYNC_KEY_Z85)
        return 0;
    uint8_t raw[32];
    return zmq_z85_decode(raw, z85) != NULL;
}

static int write_file(const char *path, mode_t mode, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int r = w == (ssize_t)n ? 0 : w < 0 ? -errno : -EIO;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    if (r < 0)
        unlink(path);
    return r;
}

int sync_keys_gen(const char *dir, const char *name, char pub[SYNC_KEY_Z85 + 1])
{
    if (!zmq_has("curve"))
        return -ENOTSUP;
    char sec[SYNC_KEY_Z85 + 1];
    if (zmq_curve_keypair(pub, sec) != 0)
        return -errno ? -errno : -EIO;
    char kpath[4096], ppath[4096], text[256];
    if ((size_t)snprintf(kpath, sizeof kpath, "%s/%s.key", dir, name) >= sizeof kpath ||
        (size_t)snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name) >= sizeof ppath)
        return -ENAMETOOLONG;
    if (access(kpath, F_OK) == 0 || access(ppath, F_OK) == 0)
        return -EEXIST;
    snprintf(text, sizeof text,
             "# sidetrack CURVE key pair: keep this file secret (mode 0600)\n"
             "public = %s\nsecret = %s\n",
             pub, sec);
    int r = write_file(kpath, 0600, text);
    memset(text, 0, sizeof text);
    memset(sec, 0, sizeof sec);
    if (r < 0)
        return r;
    snprintf(text, sizeof text, "%s\n", pub);
    if ((r = write_file(ppath, 0644, text)) < 0)
        unlink(kpath);
    return r;
}

/* Reads the first "NAME = VALUE" line (or, name NULL, the first line that is not blank or a
 * comment) of a small secret file into out: VALUE must be want characters that valid()
 * accepts, else -EBADMSG. Closes f; the line read is wiped. */
static int read_value(FILE *f, const char *name, size_t want, int (*valid)(const char *),
                      char *out)
{
    char line[512];
    int r = -EBADMSG;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || !*p)
            continue;
        if (name) {
            size_t n = strlen(name);
            if (strncmp(p, name, n) != 0)
                continue;
            p += n;
            while (*p == ' ' || *p == '\t')
                p++;
            if (*p++ != '=')
                continue;
            while (*p == ' ' || *p == '\t')
                p++;
        }
        size_t len = strcspn(p, " \t\r\n");
        if (len == want) {
            memcpy(out, p, len);
            out[len] = 0;
            r = valid(out) ? 0 : -EBADMSG;
        }
        break;
    }
    memset(line, 0, sizeof line);
    fclose(f);
    return r;
}

/* Finds "NAME = VALUE" (or a bare VALUE line when name is NULL) in a small key file. */
static int read_field(const char *path, const char *name, char out[SYNC_KEY_Z85 + 1],
                      struct stat *st)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    if (st && fstat(fileno(f), st) < 0) {
        int e = -errno;
        fclose(f);
        return e;
    }
    return read_value(f, name, SYNC_KEY_Z85, sync_key_valid, out);
}

int sync_keys_read_pair(const char *path, char pub[SYNC_KEY_Z85 + 1], char sec[SYNC_KEY_Z85 + 1])
{
    struct stat st;
    int r = read_field(path, "secret", sec, &st);
    if (r < 0)
        return r;
    if (st.st_mode & 077) {
        memset(sec, 0, SYNC_KEY_Z85 + 1);
        return -EPERM;
    }
    if ((r = read_field(path, "public", pub, NULL)) < 0)
        return r;
    /* The pair must belong together: derive the public key from the secret one. */
    char derived[SYNC_KEY_Z85 + 1];
    if (zmq_curve_public(derived, sec) != 0 || strcmp(derived, pub) != 0)
        return -EBADMSG;
    return 0;
}

int sync_keys_read_public(const char *path, char pub[SYNC_KEY_Z85 + 1])
{
    int r = read_field(path, "public", pub, NULL);
    return r == -EBADMSG ? read_field(path, NULL, pub, NULL) : r;
}

/* ---- bearer tokens ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int sync_token_valid(const char *token)
{
    if (!token || strlen(token) != SYNC_TOKEN_LEN)
        return 0;
    for (const char *p = token; *p; p++)
        if (!strchr(b64url, *p))
            return 0;
    return 1;
}

int sync_token_gen(const char *dir, const char *name, char out[SYNC_TOKEN_LEN + 1])
{
    uint8_t raw[33] = {0}; /* 32 random bytes; the 33rd (zero) rounds the groups of 3 */
    if (getrandom(raw, 32, 0) != 32)
        return -errno ? -errno : -EIO;
    size_t o = 0;
    for (size_t i = 0; i < 33; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        for (int k = 3; k >= 0 && o < SYNC_TOKEN_LEN; k--)
            out[o++] = b64url[(v >> (6 * k)) & 63];
    }
    out[SYNC_TOKEN_LEN] = 0;
    memset(raw, 0, sizeof raw);
    char path[4096], text[128];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.token", dir, name) >= sizeof path)
        return -ENAMETOOLONG;
    snprintf(text, sizeof text, "%s\n", out);
    int r = write_file(path, 0600, text);
    memset(text, 0, sizeof text);
    return r;
}

int sync_token_read(const char *path, char out[SYNC_TOKEN_LEN + 1])
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    struct stat st;
    if (fstat(fileno(f), &st) < 0) {
        int e = -errno;
        fclose(f);
        return e;
    }
    if (st.st_mode & 077) {
        fclose(f);
        return -EPERM;
    }
    int r = read_value(f, NULL, SYNC_TOKEN_LEN, sync_token_valid, out);
    if (r < 0)
        memset(out, 0, SYNC_TOKEN_LEN + 1);
    return r;
}
