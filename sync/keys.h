/* keys.h — CURVE key files of agents and the server (ZeroMQ's Z85 text form, 40 characters).
 *
 * A key pair is two files made by `sidetrack keys gen NAME`: NAME.key (mode 0600, both keys:
 * "public = ..." and "secret = ..." lines) and NAME.pub (the public key alone, one line), the
 * file given to the other side: an agent's .pub goes into the server's allow-list directory,
 * the server's .pub to every agent. */
#ifndef SIDETRACK_SYNC_KEYS_H
#define SIDETRACK_SYNC_KEYS_H

#include <stddef.h>

#define SYNC_KEY_Z85 40

/* Makes a new pair and writes DIR/NAME.key and DIR/NAME.pub (refusing to overwrite them:
 * -EEXIST). 0 or -errno; -ENOTSUP when libzmq has no CURVE. */
int sync_keys_gen(const char *dir, const char *name, char pub[SYNC_KEY_Z85 + 1]);
/* Reads a .key file: both keys. -EBADMSG when it holds no valid pair, -EPERM when others can
 * read it (a secret key readable by others is not secret). */
int sync_keys_read_pair(const char *path, char pub[SYNC_KEY_Z85 + 1],
                        char sec[SYNC_KEY_Z85 + 1]);
/* Reads a public key: a .pub file, or a .key file's public line. */
int sync_keys_read_public(const char *path, char pub[SYNC_KEY_Z85 + 1]);
/* True for 40 characters of ZeroMQ's Z85 alphabet that decode to 32 bytes. */
int sync_key_valid(const char *z85);

/* Bearer tokens for the HTTPS transport and the REST API: a token is 32 random bytes in
 * base64url without padding (43 characters), in a file NAME.token (mode 0600, one line). The
 * server keeps its tokens in a directory (default DATA/tokens.d) and knows a client by NAME;
 * an agent reads its own token file (sidetrackd --server-token FILE). */
#define SYNC_TOKEN_LEN 43

/* Makes a new token and writes DIR/NAME.token, mode 0600 (refusing to overwrite it:
 * -EEXIST). out gets the token. 0 or -errno. */
int sync_token_gen(const char *dir, const char *name, char out[SYNC_TOKEN_LEN + 1]);
/* Reads a token file: its first line that is not empty or a comment. -EBADMSG when that is
 * not a token, -EPERM when others can read the file (a token readable by others is not
 * secret). */
int sync_token_read(const char *path, char out[SYNC_TOKEN_LEN + 1]);
/* True for SYNC_TOKEN_LEN characters of the base64url alphabet. */
int sync_token_valid(const char *token);

#endif
