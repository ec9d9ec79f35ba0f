/* register_train RING MODEL_DIR ARTIFACT_PATH NAME [ALIAS...] — a training process as the
 * registry's tests need one: starts a run, logs every regular file of MODEL_DIR (one level)
 * under ARTIFACT_PATH, registers ARTIFACT_PATH as model NAME with the aliases through
 * st_register_model(), ends the run and prints its id. */
#include "sidetrack.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(const char *what, int r)
{
    fprintf(stderr, "register_train: %s: %s\n", what, st_strerror(r));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: register_train RING MODEL_DIR ARTIFACT_PATH NAME [ALIAS...]\n");
        return 2;
    }
    st_options o = {.ring_dir = argv[1]};
    st_client *c;
    st_run *run;
    int r = st_open(&c, &o);
    if (r < 0)
        return fail("st_open", r);
    if ((r = st_run_start(c, "registry-test", "train", &run)) < 0)
        return fail("st_run_start", r);
    DIR *d = opendir(argv[2]);
    if (!d)
        return fail(argv[2], -2);
    struct dirent *e;
    while ((e = readdir(d))) {
        char local[4096], dest[2048];
        snprintf(local, sizeof local, "%s/%s", argv[2], e->d_name);
        struct stat st;
        if (stat(local, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        snprintf(dest, sizeof dest, "%s/%s", argv[3], e->d_name);
        if ((r = st_log_artifact(run, local, dest)) < 0)
            return fail(local, r);
    }
    closedir(d);
    const char **aliases = (const char **)(argv + 5); /* argv is NULL-terminated */
    if ((r = st_register_model(run, argv[3], argv[4], aliases, "trained by register_train")) < 0)
        return fail("st_register_model", r);
    printf("%s\n", st_run_id(run));
    st_run_end(run, ST_RUN_FINISHED);
    st_close(c);
    return 0;
}
