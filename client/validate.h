/* validate.h — MLflow's rules for names, keys and values, checked once at the API boundary. */
#ifndef SIDETRACK_VALIDATE_H
#define SIDETRACK_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

/* Number of code points in s if it is valid UTF-8 of at most max_bytes bytes, else -1. */
long st__utf8_len(const char *s, size_t max_bytes);
int st__check_key(const char *key);
int st__check_value(const char *value, size_t max_chars);
int st__check_name(const char *name, size_t max_chars);
int st__check_artifact_path(const char *path);
/* The registry's rules (store/registry_rules.h): ST_ENAME / ST_EALIAS. */
int st__check_model_name(const char *name);
int st__check_model_alias(const char *alias);

#endif
