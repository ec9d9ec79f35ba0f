/* cmd_models_dataset.h — an input dataset of a run, as MLflow's log-inputs keeps it (a
 * DatasetInput's JSON, see server/mlflow_api.c), read with jansson in a file of its own:
 * jansson's json_* names would clash with the CLI's JSON writer (cli.h). */
#ifndef SIDETRACK_CMD_MODELS_DATASET_H
#define SIDETRACK_CMD_MODELS_DATASET_H

#include <stdbool.h>

struct models_dataset {
    char name[512];
    char digest[64];
    char source_type[64];
    char source[1024];
    char context[64]; /* the tag mlflow.data.context: training, evaluation... */
};

/* Fills d from the DatasetInput JSON in text; false when it is not one (no dataset name).
 * Fields the document lacks are "". */
bool models_dataset_parse(const char *text, struct models_dataset *d);

#endif
