/* hold_store DIR — holds the store's write lock (an open write transaction) until its stdin
 * closes, then lets go without changing anything. A stand-in for whatever can block the
 * agent's commits (a stalled disk, a foreign writer), so that the tests can see what the
 * agent reports while its drain loop is stuck. Prints "held" once the lock is taken. */
#include "store.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hold_store DIR\n");
        return 2;
    }
    struct store *s;
    struct store_txn *t;
    int r = store_open(&s, argv[1], 0, 0);
    if (r < 0) {
        fprintf(stderr, "hold_store: %s: %s\n", argv[1], store_strerror(r));
        return 1;
    }
    if ((r = store_begin(s, true, &t)) < 0) {
        fprintf(stderr, "hold_store: %s\n", store_strerror(r));
        store_close(s);
        return 1;
    }
    printf("held\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
    store_abort(t);
    store_close(s);
    return 0;
}
