/* cmd_models_dataset.c — reads a run input's DatasetInput JSON (cmd_models_dataset.h). */
#include "cmd_models_dataset.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static void copy(char *out, size_t len, json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(out, len, "%s", s ? s : "");
}

bool models_dataset_parse(const char *text, struct models_dataset *d)
{
    memset(d, 0, sizeof *d);
    json_t *doc = json_loads(text, 0, NULL);
    json_t *ds = json_object_get(doc, "dataset"), *tags = json_object_get(doc, "tags");
    copy(d->name, sizeof d->name, json_object_get(ds, "name"));
    copy(d->digest, sizeof d->digest, json_object_get(ds, "digest"));
    copy(d->source_type, sizeof d->source_type, json_object_get(ds, "source_type"));
    copy(d->source, sizeof d->source, json_object_get(ds, "source"));
    size_t i;
    json_t *tag;
    json_array_foreach(tags, i, tag)
    {
        const char *k = json_string_value(json_object_get(tag, "key"));
        if (k && strcmp(k, "mlflow.data.context") == 0)
            copy(d->context, sizeof d->context, json_object_get(tag, "value"));
    }
    json_decref(doc);
    return *d->name != '\0';
}
