/* log_model.c — a training job for the registry's tests: logs one run through libsidetrack
 * with the params, metric series and tags it is given, and every file of a folder as an
 * artifact under a path (a model directory), then prints the run's id.
 *
 *   log_model --experiment E --run-name N [--param K=V]... [--metric K=V1,V2,...]...
 *             [--tag K=V]... [--dir DIR --path PATH]
 *
 * A metric's values are logged at steps 0, 1, ...: the last one is its final value.
 */
#include <sidetrack.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(const char *what, const char *arg, int err)
{
    fprintf(stderr, "log_model: %s %s: %s\n", what, arg, st_strerror(err));
    return 1;
}

/* Splits "K=V" in place; NULL when there is no '='. */
static char *split(char *kv)
{
    char *eq = strchr(kv, '=');
    if (!eq)
        return NULL;
    *eq = '\0';
    return eq + 1;
}

/* Logs every regular file under dir (recursively) as path/<its path relative to root>. */
static int log_dir(st_run *run, const char *dir, const char *rel, const char *path)
{
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char full[4096], sub[2048], dest[4096];
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        if (stat(full, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = log_dir(run, full, sub, path);
        } else if (S_ISREG(st.st_mode)) {
            snprintf(dest, sizeof dest, "%s/%s", path, sub);
            int r = st_log_artifact(run, full, dest);
            if (r < 0)
                rc = fail("cannot log artifact", dest, r);
        }
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    const char *experiment = "models", *run_name = "job", *dir = NULL, *path = "model";
    st_client *client;
    st_run *run;
    int r = st_open(&client, NULL);
    if (r < 0)
        return fail("cannot attach to", "the ring", r);
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--experiment"))
            experiment = argv[i + 1];
        else if (!strcmp(argv[i], "--run-name"))
            run_name = argv[i + 1];
    if ((r = st_run_start(client, experiment, run_name, &run)) < 0)
        return fail("cannot start run", run_name, r);
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "log_model: %s needs a value\n", argv[i]);
            return 2;
        }
        char *opt = argv[i], *arg = argv[++i], *v;
        if (!strcmp(opt, "--experiment") || !strcmp(opt, "--run-name")) {
            continue;
        } else if (!strcmp(opt, "--dir")) {
            dir = arg;
        } else if (!strcmp(opt, "--path")) {
            path = arg;
        } else if (!strcmp(opt, "--param") && (v = split(arg))) {
            if ((r = st_log_param(run, arg, v)) < 0)
                return fail("cannot log param", arg, r);
        } else if (!strcmp(opt, "--tag") && (v = split(arg))) {
            if ((r = st_set_tag(run, arg, v)) < 0)
                return fail("cannot set tag", arg, r);
        } else if (!strcmp(opt, "--metric") && (v = split(arg))) {
            st_key key;
            if ((r = st_key_intern(client, arg, &key)) < 0)
                return fail("bad metric", arg, r);
            int64_t step = 0;
            for (char *tok = strtok(v, ","); tok; tok = strtok(NULL, ","))
                st_log_metric(run, key, strtod(tok, NULL), step++);
        } else {
            fprintf(stderr, "log_model: bad argument %s %s\n", opt, arg);
            return 2;
        }
    }
    if (dir && log_dir(run, dir, "", path))
        return 1;
    printf("%s\n", st_run_id(run));
    st_run_end(run, ST_RUN_FINISHED);
    st_close(client);
    return 0;
}
