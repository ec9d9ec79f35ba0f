/* mlflow_log_more.c — logs more into a run that exists (test_mlflow_push.py): N more points of
 * train/loss and of a new key extra/metric (steps from 1,000,000 on), a new param and a changed
 * tag, through libsidetrack's st_run_attach like a second process of the same job would.
 *
 *   mlflow_log_more RUN_ID N */
#include <sidetrack.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mlflow_log_more RUN_ID N\n");
        return 2;
    }
    long n = atol(argv[2]);
    st_client *c;
    st_run *run;
    st_key loss, extra;
    int r;
    if ((r = st_open(&c, NULL)) < 0 || (r = st_run_attach(c, argv[1], &run)) < 0 ||
        (r = st_key_intern(c, "train/loss", &loss)) < 0 ||
        (r = st_key_intern(c, "extra/metric", &extra)) < 0) {
        fprintf(stderr, "mlflow_log_more: %s\n", st_strerror(r));
        return 1;
    }
    st_log_param(run, "added_later", "yes");
    st_set_tag(run, "model", "toy-linear-v2");
    for (long i = 0; i < n; i++) {
        st_log_metric(run, loss, 0.001 * (double)i, 1000000 + i);
        st_log_metric(run, extra, -(double)i, 1000000 + i);
    }
    st_run_release(run);
    st_close(c);
    return 0;
}
