/* train.c — a training loop that logs through libsidetrack: the README's example.
 *
 * It "trains" a toy model (a noisy decaying loss), logging params, a tag, four metrics at
 * every one of --steps steps and a checkpoint file as an artifact, then ends the run and
 * prints its id, so that `sidetrack runs show ID` can read it back from the agent's store.
 *
 *   train [--steps N] [--experiment NAME] [--run-name NAME]
 */
#include <sidetrack.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, int err)
{
    fprintf(stderr, "train: %s: %s\n", what, st_strerror(err));
    return 1;
}

int main(int argc, char **argv)
{
    long steps = 10000;
    const char *experiment = "demo";
    const char *run_name = "toy-sgd";
    const char *extra = NULL; /* --artifact FILE: logged as data/<its name> too */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atol(argv[++i]);
        else if (!strcmp(argv[i], "--experiment") && i + 1 < argc)
            experiment = argv[++i];
        else if (!strcmp(argv[i], "--run-name") && i + 1 < argc)
            run_name = argv[++i];
        else if (!strcmp(argv[i], "--artifact") && i + 1 < argc)
            extra = argv[++i];
        else {
            fprintf(stderr, "usage: train [--steps N] [--experiment NAME] [--run-name NAME] "
                            "[--artifact FILE]\n");
            return 2;
        }
    }

    st_client *client;
    int r = st_open(&client, NULL);
    if (r < 0)
        return fail("cannot attach to the node's ring", r);
    st_run *run;
    if ((r = st_run_start(client, experiment, run_name, &run)) < 0)
        return fail("cannot start the run", r);

    st_log_param(run, "learning_rate", "0.05");
    st_log_param(run, "batch_size", "128");
    st_log_param(run, "optimizer", "sgd");
    st_set_tag(run, "model", "toy-linear");

    /* Interning once turns every later log call into a 40-byte copy. */
    st_key k_loss, k_acc, k_lr, k_gnorm;
    if ((r = st_key_intern(client, "train/loss", &k_loss)) < 0 ||
        (r = st_key_intern(client, "train/accuracy", &k_acc)) < 0 ||
        (r = st_key_intern(client, "lr", &k_lr)) < 0 ||
        (r = st_key_intern(client, "grad_norm", &k_gnorm)) < 0)
        return fail("bad metric name", r);

    unsigned seed = 42;
    for (long step = 0; step < steps; step++) {
        double noise = (double)rand_r(&seed) / RAND_MAX - 0.5;
        double loss = 2.5 * exp(-(double)step / 2500.0) + 0.05 + 0.02 * noise;
        double lr = 0.05 * 0.5 * (1 + cos(M_PI * (double)step / (double)steps));
        st_log_metric(run, k_loss, loss, step);
        st_log_metric(run, k_acc, 1.0 - loss / 2.6, step);
        st_log_metric(run, k_lr, lr, step);
        st_log_metric(run, k_gnorm, 1.0 / (1.0 + (double)step / 1000.0) + 0.01 * noise, step);
    }

    char ckpt[] = "/tmp/sidetrack-model-XXXXXX";
    int fd = mkstemp(ckpt);
    if (fd >= 0) {
        dprintf(fd, "{\"weights\": [0.42, -1.3, 0.07], \"steps\": %ld}\n", steps);
        close(fd);
        if (extra) {
            const char *base = strrchr(extra, '/');
            char dest[512];
            snprintf(dest, sizeof dest, "data/%s", base ? base + 1 : extra);
            if ((r = st_log_artifact(run, extra, dest)) < 0)
                return fail("cannot log the artifact", r);
        }
        if ((r = st_log_artifact(run, ckpt, "model/checkpoint.json")) < 0)
            fprintf(stderr, "train: artifact not logged: %s\n", st_strerror(r));
        unlink(ckpt); /* the spool has its own copy */
    }

    st_stats stats;
    st_stats_get(client, &stats);
    printf("%s\n", st_run_id(run));
    fprintf(stderr, "train: logged %ld steps x 4 metrics; dropped %llu, spilled %llu\n", steps,
            (unsigned long long)stats.dropped_metrics, (unsigned long long)stats.spilled_records);
    st_run_end(run, ST_RUN_FINISHED);
    st_close(client);
    return 0;
}
