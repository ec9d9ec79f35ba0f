/* _sidetrack.c — the CPython face of libsidetrack.
 *
 * The point of this file is log_metric(): a Python call that costs about what list.append
 * costs. Everything on that path is done without allocating and without a dict lookup: the
 * metric name is found by the address of its str object in a small direct-mapped cache (the
 * names in a training loop are the same few str objects every step), the value is read off a
 * float or int object directly, and the record goes into this thread's lane of the ring by
 * libsidetrack's own fast path. What the cache misses, and every value that is not a plain
 * number, goes to the cold paths below or to a Python hook (numpy scalars, tensors, values of
 * CUDA tensors that must not be read on the training thread).
 *
 * Threads: every call runs with the GIL held, so the caches need no lock; libsidetrack gives
 * each thread its own lane. The one call that drops the GIL (an artifact copy) pins its run so
 * that a concurrent end() cannot free it underneath.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "sidetrack.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* ---- errors ---------------------------------------------------------------------------- */

static PyObject *SidetrackError;   /* base of everything this module raises on its own */
static PyObject *InvalidArgument;  /* a key, value, name or path MLflow's rules refuse */

static PyObject *raise_st(int r, const char *what, PyObject *subject)
{
    if (r == -ENOMEM)
        return PyErr_NoMemory();
    PyObject *cls = (r == ST_EKEY || r == ST_EVALUE || r == ST_ENAME || r == ST_EPATH ||
                     r == ST_EALIAS)
                        ? InvalidArgument
                        : SidetrackError;
    PyObject *msg = subject ? PyUnicode_FromFormat("%s %R: %s", what, subject, st_strerror(r))
                            : PyUnicode_FromFormat("%s: %s", what, st_strerror(r));
    if (!msg)
        return NULL;
    PyObject *exc = PyObject_CallOneArg(cls, msg);
    Py_DECREF(msg);
    if (!exc)
        return NULL;
    PyObject *code = PyLong_FromLong(r);
    if (code) {
        PyObject_SetAttrString(exc, "code", code);
        Py_DECREF(code);
    }
    PyErr_SetObject(cls, exc);
    Py_DECREF(exc);
    return NULL;
}

/* UTF-8 of a str, refusing embedded NULs (the C API takes NUL-terminated strings, and a
 * silently cut name would be another name). NULL with an exception set on failure. */
static const char *utf8_of(PyObject *o, const char *what)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    if (s && (size_t)n != strlen(s)) {
        PyErr_Format(InvalidArgument, "%s %R contains a NUL character", what, o);
        return NULL;
    }
    return s;
}

/* ---- hooks set by the Python package ----------------------------------------------------- */

/* value_hook(run, key, value, step, timestamp) -> float to log now, or None when the hook took
 * the point over (a CUDA value, or one queued behind such values). no_run_hook(key, value,
 * step, timestamp, run_id) handles module-level calls without an active run. */
static PyObject *value_hook;
static PyObject *no_run_hook;
/* Types whose float() is a plain read (numpy scalars, 0-d arrays), learned from the hook. */
#define FAST_TYPES 16
static PyTypeObject *fast_types[FAST_TYPES];

/* ---- Client ---------------------------------------------------------------------------- */

#define KEY_CACHE 1024 /* direct-mapped by the name object's address; a power of two */

typedef struct {
    PyObject *name; /* strong reference, so the address cannot be reused by another str */
    st_key key;
} key_slot;

typedef struct {
    PyObject_HEAD
    st_client *c;
    PyObject *keys;     /* dict: name -> int key (the name as given, before any suffix) */
    PyObject *suffix;   /* str appended to every metric name (a rank), or NULL */
    uint32_t *pending;  /* per key: points queued off the training thread (ordering) */
    uint32_t npending;
    int pinned;         /* calls in flight with the GIL dropped: close() must wait for them */
    key_slot cache[KEY_CACHE];
} ClientObject;

static PyTypeObject ClientType;

static void cache_clear(ClientObject *self)
{
    for (int i = 0; i < KEY_CACHE; i++)
        Py_CLEAR(self->cache[i].name);
}

static inline size_t cache_index(PyObject *name)
{
    uintptr_t p = (uintptr_t)name;
    return (size_t)((p >> 4) ^ (p >> 14)) & (KEY_CACHE - 1);
}

/* The cold half of key lookup: the dict, then interning (once per name per process). */
static int key_lookup_slow(ClientObject *self, PyObject *name, st_key *out)
{
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "metric key must be str, not %.100s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    PyObject *v = PyDict_GetItemWithError(self->keys, name);
    if (v) {
        *out = (st_key)PyLong_AsUnsignedLong(v);
    } else {
        if (PyErr_Occurred())
            return -1;
        PyObject *full = self->suffix ? PyUnicode_Concat(name, self->suffix) : Py_NewRef(name);
        if (!full)
            return -1;
        const char *s = utf8_of(full, "metric key");
        int r = s ? st_key_intern(self->c, s, out) : 0;
        Py_DECREF(full);
        if (!s)
            return -1;
        if (r < 0) {
            raise_st(r, "metric key", name);
            return -1;
        }
        PyObject *k = PyLong_FromUnsignedLong(*out);
        if (!k || PyDict_SetItem(self->keys, name, k) < 0) {
            Py_XDECREF(k);
            return -1;
        }
        Py_DECREF(k);
    }
    if (PyUnicode_CheckExact(name)) {
        key_slot *e = &self->cache[cache_index(name)];
        Py_XSETREF(e->name, Py_NewRef(name));
        e->key = *out;
    }
    return 0;
}

static inline int key_lookup(ClientObject *self, PyObject *name, st_key *out)
{
    key_slot *e = &self->cache[cache_index(name)];
    if (e->name == name) {
        *out = e->key;
        return 0;
    }
    return key_lookup_slow(self, name, out);
}

static inline int key_pending(const ClientObject *self, st_key k)
{
    return k < self->npending && self->pending[k] != 0;
}

static PyObject *Client_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ring_dir", NULL};
    const char *ring_dir = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|z:Client", kwlist, &ring_dir))
        return NULL;
    ClientObject *self = (ClientObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    if (!(self->keys = PyDict_New())) {
        Py_DECREF(self);
        return NULL;
    }
    st_options o = {0};
    o.ring_dir = ring_dir;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = st_open(&self->c, &o);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        Py_DECREF(self);
        return raise_st(r, "cannot attach to the sidetrack ring", NULL);
    }
    return (PyObject *)self;
}

static void Client_dealloc(ClientObject *self)
{
    cache_clear(self);
    Py_CLEAR(self->keys);
    Py_CLEAR(self->suffix);
    PyMem_Free(self->pending);
    if (self->c)
        st_close(self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int client_ok(ClientObject *self)
{
    if (self->c)
        return 1;
    PyErr_SetString(SidetrackError, "the sidetrack client is closed");
    return 0;
}

static PyObject *Client_close(ClientObject *self, PyObject *unused)
{
    if (self->pinned)
        return PyErr_Format(SidetrackError, "cannot close the client: %d call(s) of another "
                            "thread are copying artifacts through it", self->pinned);
    if (self->c) {
        st_close(self->c);
        self->c = NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Client_stats(ClientObject *self, PyObject *unused)
{
    if (!client_ok(self))
        return NULL;
    st_stats s;
    st_stats_get(self->c, &s);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K}", "lanes", (unsigned long long)s.lanes,
                         "dropped_metrics", (unsigned long long)s.dropped_metrics,
                         "spilled_records", (unsigned long long)s.spilled_records,
                         "lost_records", (unsigned long long)s.lost_records, "no_lane",
                         (unsigned long long)s.no_lane);
}

static PyObject *Client_set_key_suffix(ClientObject *self, PyObject *arg)
{
    if (arg != Py_None && !PyUnicode_Check(arg))
        return PyErr_Format(PyExc_TypeError, "suffix must be str or None");
    for (uint32_t i = 0; i < self->npending; i++)
        if (self->pending[i]) /* they count keys of the old mapping: flush() first */
            return PyErr_Format(SidetrackError, "points are queued: flush() before changing "
                                                "the key suffix");
    /* Names map to other keys from now on: forget every mapping made so far. */
    cache_clear(self);
    PyDict_Clear(self->keys);
    Py_XSETREF(self->suffix, arg == Py_None ? NULL : Py_NewRef(arg));
    Py_RETURN_NONE;
}

/* ---- Run ------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    ClientObject *client;
    st_run *run;       /* NULL once ended or released */
    PyObject *id;      /* str, kept after the end */
    int pinned;        /* calls in flight with the GIL dropped */
    int end_status;    /* an end() that waits for them: the status, or -1 for a release */
    PyObject *weakrefs;
} RunObject;

static PyTypeObject RunType;

static RunObject *run_wrap(ClientObject *client, st_run *run)
{
    RunObject *self = PyObject_New(RunObject, &RunType);
    if (!self) {
        st_run_release(run);
        return NULL;
    }
    self->client = (ClientObject *)Py_NewRef(client);
    self->run = run;
    self->pinned = 0;
    self->end_status = 0;
    self->weakrefs = NULL;
    if (!(self->id = PyUnicode_FromString(st_run_id(run)))) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

static void run_finish(RunObject *self, int status)
{
    st_run *run = self->run;
    self->run = NULL;
    if (status > 0)
        st_run_end(run, (st_run_status)status);
    else
        st_run_release(run);
}

static void Run_dealloc(RunObject *self)
{
    if (self->weakrefs)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (self->run)
        st_run_release(self->run); /* the run goes on: the process may log into it later */
    Py_CLEAR(self->id);
    Py_CLEAR(self->client);
    PyObject_Free(self);
}

static inline int run_ok(RunObject *self)
{
    if (__builtin_expect(self->run != NULL && self->end_status == 0 && self->client->c, 1))
        return 1;
    if (!self->client->c)
        PyErr_SetString(SidetrackError, "the sidetrack client is closed");
    else
        raise_st(ST_EENDED, "run", self->id);
    return 0;
}

/* The run handle, read again right before a call into libsidetrack: anything between the
 * first check and here that ran Python code (an __index__, a hook, a finalizer) may have ended
 * the run or closed the client. NULL with an exception set. */
static inline st_run *run_live(RunObject *self)
{
    return run_ok(self) ? self->run : NULL;
}

static PyObject *Client_run_start(ClientObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"experiment", "run_name", "parent", NULL};
    const char *exp = NULL, *name = NULL;
    PyObject *parent = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zzO:run_start", kwlist, &exp, &name, &parent))
        return NULL;
    if (!client_ok(self))
        return NULL;
    st_run *run = NULL;
    int r;
    if (parent != Py_None) {
        if (!PyObject_TypeCheck(parent, &RunType))
            return PyErr_Format(PyExc_TypeError, "parent must be a Run");
        if (!run_ok((RunObject *)parent))
            return NULL;
        if (((RunObject *)parent)->client != self)
            return PyErr_Format(PyExc_ValueError, "parent belongs to another Client");
        r = st_run_start_child(((RunObject *)parent)->run, name, &run);
    } else {
        r = st_run_start(self->c, exp, name, &run);
    }
    if (r < 0)
        return raise_st(r, "cannot start a run", NULL);
    return (PyObject *)run_wrap(self, run);
}

static PyObject *Client_run_attach(ClientObject *self, PyObject *arg)
{
    if (!client_ok(self))
        return NULL;
    const char *id = PyUnicode_Check(arg) ? utf8_of(arg, "run id") : NULL;
    if (!id) {
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_TypeError, "run_id must be str");
        return NULL;
    }
    st_run *run = NULL;
    int r = st_run_attach(self->c, id, &run);
    if (r == -EINVAL)
        return PyErr_Format(InvalidArgument, "run id %R is not 32 hexadecimal digits", arg);
    if (r < 0)
        return raise_st(r, "cannot attach to run", arg);
    return (PyObject *)run_wrap(self, run);
}

/* Hands a point to the Python hook. Returns 1 with *out set, 0 when the hook queued the
 * point, -1 on error. */
static int call_value_hook(RunObject *self, PyObject *key, PyObject *v, PyObject *step,
                           PyObject *ts, double *out)
{
    if (!value_hook) {
        PyErr_Format(PyExc_TypeError, "metric value must be a number, not %.100s",
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    PyObject *res = PyObject_CallFunctionObjArgs(value_hook, (PyObject *)self, key, v,
                                                 step ? step : Py_None, ts ? ts : Py_None, NULL);
    if (!res)
        return -1;
    if (res == Py_None) {
        Py_DECREF(res);
        return 0;
    }
    *out = PyFloat_AsDouble(res);
    Py_DECREF(res);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 1;
}

/* Reads a metric value. Returns 1 with *out set, 0 when the hook took the point over, -1 on
 * error. */
static int value_get(RunObject *self, PyObject *key, PyObject *v, PyObject *step, PyObject *ts,
                     double *out)
{
    if (PyFloat_Check(v)) { /* float, and numpy.float64 (a float subclass) */
        *out = PyFloat_AS_DOUBLE(v);
        return 1;
    }
    PyTypeObject *t = Py_TYPE(v);
    if (PyLong_Check(v)) {
        *out = PyLong_AsDouble(v);
        return *out == -1.0 && PyErr_Occurred() ? -1 : 1;
    }
    for (int i = 0; i < FAST_TYPES && fast_types[i]; i++)
        if (fast_types[i] == t) {
            PyObject *f = PyNumber_Float(v);
            if (!f)
                return -1;
            *out = PyFloat_AS_DOUBLE(f);
            Py_DECREF(f);
            return 1;
        }
    return call_value_hook(self, key, v, step, ts, out);
}

static inline int int64_get(PyObject *o, int64_t *out, const char *what)
{
    if (!o || o == Py_None) {
        *out = 0;
        return 0;
    }
    if (__builtin_expect(PyLong_CheckExact(o), 1)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (!overflow && !(x == -1 && PyErr_Occurred())) {
            *out = x;
            return 0;
        }
        if (overflow) {
            PyErr_Format(PyExc_OverflowError, "%s does not fit in 64 bits", what);
            return -1;
        }
        return -1;
    }
    if (PyFloat_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    PyObject *i = PyNumber_Index(o); /* numpy integers, torch integer scalars */
    if (!i) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError))
            return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    int r = int64_get(i, out, what);
    Py_DECREF(i);
    return r;
}

/* The shared body of Run.log_metric and the module's log_metric. */
static inline PyObject *run_log_metric(RunObject *self, PyObject *key, PyObject *value,
                                       PyObject *step, PyObject *ts)
{
    if (!run_ok(self))
        return NULL;
    ClientObject *cl = self->client;
    st_key k;
    if (key_lookup(cl, key, &k) < 0)
        return NULL;
    int64_t istep, its = 0;
    if (int64_get(step, &istep, "step") < 0)
        return NULL;
    if (ts && ts != Py_None && int64_get(ts, &its, "timestamp") < 0)
        return NULL;
    double d;
    if (__builtin_expect(PyFloat_CheckExact(value) && !key_pending(cl, k), 1)) {
        d = PyFloat_AS_DOUBLE(value);
    } else {
        /* A key with points queued off the thread: this one queues behind them. */
        int g = key_pending(cl, k) ? call_value_hook(self, key, value, step, ts, &d)
                                   : value_get(self, key, value, step, ts, &d);
        if (g <= 0)
            return g < 0 ? NULL : Py_NewRef(Py_None);
        if (!client_ok(cl) || key_lookup(cl, key, &k) < 0) /* the hook ran Python code */
            return NULL;
    }
    st_run *run = run_live(self);
    if (!run)
        return NULL;
    int r = ts && ts != Py_None ? st_log_metric_at(run, k, d, istep, its)
                                : st_log_metric(run, k, d, istep);
    if (__builtin_expect(r < 0, 0))
        return raise_st(r, "log_metric", key);
    Py_RETURN_NONE;
}

/* Fast argument parsing for (key, value, step=None, timestamp=None, ...): a vectorcall keeps
 * the call free of tuple and dict allocations; names are compared by address first (the
 * compiler interns keyword names). */
enum { A_KEY, A_VALUE, A_STEP, A_TS, A_SYNC, A_RUN_ID, A_N };
static PyObject *kw_names[A_N];

static int parse_metric_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                             PyObject *out[A_N], int max_pos, int allow_run_id, const char *fn)
{
    static const char *names[A_N] = {"key", "value", "step", "timestamp", "synchronous",
                                     "run_id"};
    for (int i = 0; i < A_N; i++)
        out[i] = NULL;
    if (nargs > max_pos || nargs < 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %d positional arguments", fn, max_pos);
        return -1;
    }
    /* Positional order follows MLflow: key, value, step, then (module level) synchronous,
     * timestamp, run_id; Run.log_metric takes key, value, step, timestamp. */
    static const int pos_module[] = {A_KEY, A_VALUE, A_STEP, A_SYNC, A_TS, A_RUN_ID};
    static const int pos_run[] = {A_KEY, A_VALUE, A_STEP, A_TS};
    const int *pos = allow_run_id ? pos_module : pos_run;
    for (Py_ssize_t i = 0; i < nargs; i++)
        out[pos[i]] = args[i];
    if (kwnames) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t j = 0; j < nk; j++) {
            PyObject *kn = PyTuple_GET_ITEM(kwnames, j);
            int slot = -1;
            for (int i = 0; i < A_N && slot < 0; i++)
                if (kn == kw_names[i])
                    slot = i;
            for (int i = 0; i < A_N && slot < 0; i++)
                if (PyUnicode_Check(kn) && PyUnicode_CompareWithASCIIString(kn, names[i]) == 0)
                    slot = i;
            if (slot < 0 || (!allow_run_id && (slot == A_SYNC || slot == A_RUN_ID))) {
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fn,
                             kn);
                return -1;
            }
            if (out[slot]) {
                PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn,
                             names[slot]);
                return -1;
            }
            out[slot] = args[nargs + j];
        }
    }
    if (!out[A_KEY] || !out[A_VALUE]) {
        PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn,
                     out[A_KEY] ? "value" : "key");
        return -1;
    }
    return 0;
}

static PyObject *Run_log_metric(RunObject *self, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    PyObject *a[A_N];
    if (parse_metric_args(args, nargs, kwnames, a, 4, 0, "log_metric") < 0)
        return NULL;
    return run_log_metric(self, a[A_KEY], a[A_VALUE], a[A_STEP], a[A_TS]);
}

static PyObject *Run_log_metrics(RunObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"metrics", "step", "timestamp", NULL};
    PyObject *metrics, *step = Py_None, *ts = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:log_metrics", kwlist, &metrics, &step, &ts))
        return NULL;
    if (!PyDict_Check(metrics))
        return PyErr_Format(PyExc_TypeError, "metrics must be a dict of key -> value");
    if (!run_ok(self))
        return NULL;
    int64_t istep, its;
    if (int64_get(step, &istep, "step") < 0 || int64_get(ts, &its, "timestamp") < 0)
        return NULL;
    /* Two passes, so that a bad key or value anywhere logs nothing: first every key and
     * plain number is resolved, then plain numbers go out as batches sharing one stamp (one
     * record per <= 1000), then, in dict order, whatever the hook must see. */
    Py_ssize_t total = PyDict_GET_SIZE(metrics);
    st_key *keys = PyMem_Malloc((size_t)(total ? total : 1) * sizeof *keys);
    double *vals = PyMem_Malloc((size_t)(total ? total : 1) * sizeof *vals);
    PyObject *later = NULL, *result = NULL;
    if (!keys || !vals) {
        PyErr_NoMemory();
        goto out;
    }
    size_t n = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    ClientObject *cl = self->client;
    while (PyDict_Next(metrics, &pos, &key, &value)) {
        st_key k;
        if (key_lookup(cl, key, &k) < 0)
            goto out;
        int plain = ts == Py_None && !key_pending(cl, k) &&
                    (PyFloat_Check(value) || PyLong_Check(value));
        if (plain) {
            double d = PyFloat_Check(value) ? PyFloat_AS_DOUBLE(value) : PyLong_AsDouble(value);
            if (d == -1.0 && PyErr_Occurred())
                goto out;
            keys[n] = k;
            vals[n++] = d;
            continue;
        }
        if (!later && !(later = PyList_New(0)))
            goto out;
        PyObject *pair = PyTuple_Pack(2, key, value);
        if (!pair || PyList_Append(later, pair) < 0) {
            Py_XDECREF(pair);
            goto out;
        }
        Py_DECREF(pair);
    }
    for (size_t i = 0; i < n; i += ST_MAX_BATCH) {
        st_run *run = run_live(self);
        if (!run)
            goto out;
        size_t m = n - i < ST_MAX_BATCH ? n - i : ST_MAX_BATCH;
        int r = st_log_metrics(run, m, keys + i, vals + i, istep);
        if (r < 0) {
            raise_st(r, "log_metrics", NULL);
            goto out;
        }
    }
    for (Py_ssize_t i = 0; later && i < PyList_GET_SIZE(later); i++) {
        PyObject *pair = PyList_GET_ITEM(later, i);
        PyObject *r = run_log_metric(self, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1),
                                     step, ts);
        if (!r)
            goto out;
        Py_DECREF(r);
    }
    result = Py_NewRef(Py_None);
out:
    Py_XDECREF(later);
    PyMem_Free(keys);
    PyMem_Free(vals);
    return result;
}

/* Logs a point that was read off the training thread: no pending check (it is the point the
 * check waits for), the stamp taken when the user made the call. */
static PyObject *Run_log_deferred(RunObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4)
        return PyErr_Format(PyExc_TypeError, "_log_deferred(key, value, step, timestamp_ms)");
    if (!run_ok(self))
        return NULL;
    st_key k;
    if (key_lookup(self->client, args[0], &k) < 0)
        return NULL;
    double d = PyFloat_AsDouble(args[1]);
    int64_t step, ts;
    if ((d == -1.0 && PyErr_Occurred()) || int64_get(args[2], &step, "step") < 0 ||
        int64_get(args[3], &ts, "timestamp") < 0)
        return NULL;
    st_run *run = run_live(self);
    if (!run)
        return NULL;
    int r = st_log_metric_at(run, k, d, step, ts);
    if (r < 0)
        return raise_st(r, "log_metric", args[0]);
    Py_RETURN_NONE;
}

/* Counts points of a key queued off the thread: while any are, later points of that key queue
 * behind them so that the agent sees each key's steps in the order they were logged. */
static PyObject *Run_pending(RunObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2)
        return PyErr_Format(PyExc_TypeError, "_pending(key, delta)");
    long delta = PyLong_AsLong(args[1]);
    if (delta == -1 && PyErr_Occurred())
        return NULL;
    ClientObject *cl = self->client;
    st_key k;
    if (!client_ok(cl) || key_lookup(cl, args[0], &k) < 0)
        return NULL;
    if (k >= cl->npending) {
        uint32_t n = cl->npending ? cl->npending : 64;
        while (n <= k)
            n *= 2;
        uint32_t *p = PyMem_Realloc(cl->pending, n * sizeof *p);
        if (!p)
            return PyErr_NoMemory();
        memset(p + cl->npending, 0, (n - cl->npending) * sizeof *p);
        cl->pending = p;
        cl->npending = n;
    }
    if (delta < -1 || delta > 1)
        return PyErr_Format(PyExc_ValueError, "_pending: delta is -1, 0 or 1");
    long v = (long)cl->pending[k] + delta;
    cl->pending[k] = v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    return PyLong_FromLong((long)cl->pending[k]);
}

static int str_arg(PyObject *o, const char *what, const char **out)
{
    if (PyUnicode_Check(o))
        return (*out = utf8_of(o, what)) ? 0 : -1;
    PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(o)->tp_name);
    return -1;
}

static PyObject *run_kv(RunObject *self, PyObject *args, int tag)
{
    PyObject *k, *v;
    if (!PyArg_ParseTuple(args, tag ? "OO:set_tag" : "OO:log_param", &k, &v))
        return NULL;
    if (!run_ok(self))
        return NULL;
    const char *ks, *vs;
    if (str_arg(k, "key", &ks) < 0 || str_arg(v, "value", &vs) < 0)
        return NULL;
    st_run *run = run_live(self);
    if (!run)
        return NULL;
    int r = tag ? st_set_tag(run, ks, vs) : st_log_param(run, ks, vs);
    if (r < 0)
        return raise_st(r, tag ? "set_tag" : "log_param", r == ST_EVALUE ? v : k);
    Py_RETURN_NONE;
}

static PyObject *Run_log_param(RunObject *self, PyObject *args) { return run_kv(self, args, 0); }
static PyObject *Run_set_tag(RunObject *self, PyObject *args) { return run_kv(self, args, 1); }

static PyObject *Run_log_artifact(RunObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"local_path", "artifact_path", NULL};
    PyObject *path_obj = NULL;
    const char *apath = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|z:log_artifact", kwlist,
                                     PyUnicode_FSConverter, &path_obj, &apath))
        return NULL;
    if (!run_ok(self)) {
        Py_DECREF(path_obj);
        return NULL;
    }
    /* The copy may take a while: let other threads run, with the run pinned. */
    int r;
    st_run *run = self->run;
    self->pinned++;
    self->client->pinned++;
    Py_BEGIN_ALLOW_THREADS
    r = st_log_artifact(run, PyBytes_AS_STRING(path_obj), apath);
    Py_END_ALLOW_THREADS
    self->client->pinned--;
    if (--self->pinned == 0 && self->end_status)
        run_finish(self, self->end_status);
    if (r < 0) {
        PyObject *p = PyUnicode_DecodeFSDefault(PyBytes_AS_STRING(path_obj));
        Py_DECREF(path_obj);
        if (r == -ENOENT || r == -EISDIR || r == -EACCES || r == -EPERM) {
            errno = -r;
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, p);
            Py_XDECREF(p);
            return NULL;
        }
        raise_st(r, "log_artifact", r == ST_EPATH && apath ? NULL : p);
        Py_XDECREF(p);
        return NULL;
    }
    Py_DECREF(path_obj);
    Py_RETURN_NONE;
}

/* register_model(artifact_path, name, aliases=(), description=None): one record, no I/O. */
static PyObject *Run_register_model(RunObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"artifact_path", "name", "aliases", "description", NULL};
    PyObject *path_o, *name_o, *aliases_o = NULL, *desc_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OO:register_model", kwlist, &path_o, &name_o,
                                     &aliases_o, &desc_o))
        return NULL;
    if (!run_ok(self))
        return NULL;
    const char *path, *name, *desc = NULL;
    if (str_arg(path_o, "artifact_path", &path) < 0 || str_arg(name_o, "name", &name) < 0 ||
        (desc_o != Py_None && str_arg(desc_o, "description", &desc) < 0))
        return NULL;
    PyObject *seq;
    if (!aliases_o || aliases_o == Py_None) {
        seq = PyTuple_New(0);
    } else if (PyUnicode_Check(aliases_o)) { /* a str is a sequence, of one-letter aliases */
        PyErr_SetString(PyExc_TypeError, "aliases must be a sequence of str, not a str");
        return NULL;
    } else {
        seq = PySequence_Fast(aliases_o, "aliases must be a sequence of str");
    }
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > ST_MAX_MODEL_ALIASES) {
        Py_DECREF(seq);
        return raise_st(ST_EALIAS, "register_model", NULL);
    }
    const char *aliases[ST_MAX_MODEL_ALIASES + 1];
    for (Py_ssize_t i = 0; i < n; i++)
        if (str_arg(PySequence_Fast_GET_ITEM(seq, i), "alias", &aliases[i]) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    aliases[n] = NULL;
    st_run *run = run_live(self);
    int r = run ? st_register_model(run, path, name, aliases, desc) : 0;
    Py_DECREF(seq);
    if (!run)
        return NULL;
    if (r < 0)
        return raise_st(r, "register_model",
                        r == ST_EPATH ? path_o : r == ST_ENAME ? name_o : NULL);
    Py_RETURN_NONE;
}

static PyObject *Run_end(RunObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"status", NULL};
    int status = ST_RUN_FINISHED;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|i:end", kwlist, &status))
        return NULL;
    if (status != ST_RUN_FINISHED && status != ST_RUN_FAILED && status != ST_RUN_KILLED)
        return PyErr_Format(InvalidArgument, "status %d does not end a run (3 FINISHED, "
                                             "4 FAILED, 5 KILLED)", status);
    if (!run_ok(self))
        return NULL;
    if (self->pinned)
        self->end_status = status; /* the last pinned call ends it */
    else
        run_finish(self, status);
    Py_RETURN_NONE;
}

static PyObject *Run_release(RunObject *self, PyObject *unused)
{
    if (self->run && !self->end_status) {
        if (self->pinned)
            self->end_status = -1;
        else
            run_finish(self, -1);
    }
    Py_RETURN_NONE;
}

static PyObject *Run_get_id(RunObject *self, void *c) { return Py_NewRef(self->id); }
static PyObject *Run_get_ended(RunObject *self, void *c)
{
    return PyBool_FromLong(!self->run || self->end_status);
}
static PyObject *Run_get_client(RunObject *self, void *c) { return Py_NewRef(self->client); }

static PyObject *Run_repr(RunObject *self)
{
    return PyUnicode_FromFormat("<sidetrack Run %U%s>", self->id,
                                self->run && !self->end_status ? "" : " (ended)");
}

/* ---- module-level fast path ------------------------------------------------------------- */

static RunObject *active_run; /* set by the Python package: the innermost active run */

static PyObject *mod_set_active(PyObject *m, PyObject *arg)
{
    if (arg != Py_None && !PyObject_TypeCheck(arg, &RunType))
        return PyErr_Format(PyExc_TypeError, "expected a Run or None");
    Py_XSETREF(active_run, arg == Py_None ? NULL : (RunObject *)Py_NewRef(arg));
    Py_RETURN_NONE;
}

static PyObject *mod_log_metric(PyObject *m, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames)
{
    PyObject *a[A_N];
    if (parse_metric_args(args, nargs, kwnames, a, 6, 1, "log_metric") < 0)
        return NULL;
    RunObject *run = active_run;
    if (__builtin_expect(!run || (a[A_RUN_ID] && a[A_RUN_ID] != Py_None), 0)) {
        if (!no_run_hook)
            return PyErr_Format(SidetrackError, "no active run: call start_run() first");
        return PyObject_CallFunctionObjArgs(no_run_hook, a[A_KEY], a[A_VALUE],
                                            a[A_STEP] ? a[A_STEP] : Py_None,
                                            a[A_TS] ? a[A_TS] : Py_None,
                                            a[A_RUN_ID] ? a[A_RUN_ID] : Py_None, NULL);
    }
    Py_INCREF(run); /* a hook may change the active run under us */
    PyObject *r = run_log_metric(run, a[A_KEY], a[A_VALUE], a[A_STEP], a[A_TS]);
    Py_DECREF(run);
    return r;
}

static PyObject *mod_set_hooks(PyObject *m, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"value_hook", "no_run_hook", NULL};
    PyObject *vh = Py_None, *nh = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:_set_hooks", kwlist, &vh, &nh))
        return NULL;
    Py_XSETREF(value_hook, vh == Py_None ? NULL : Py_NewRef(vh));
    Py_XSETREF(no_run_hook, nh == Py_None ? NULL : Py_NewRef(nh));
    Py_RETURN_NONE;
}

static PyObject *mod_fast_type(PyObject *m, PyObject *arg)
{
    if (!PyType_Check(arg))
        return PyErr_Format(PyExc_TypeError, "expected a type");
    for (int i = 0; i < FAST_TYPES; i++) {
        if (fast_types[i] == (PyTypeObject *)arg)
            Py_RETURN_TRUE;
        if (!fast_types[i]) {
            fast_types[i] = (PyTypeObject *)Py_NewRef(arg);
            Py_RETURN_TRUE;
        }
    }
    Py_RETURN_FALSE;
}

static PyObject *mod_strerror(PyObject *m, PyObject *arg)
{
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(st_strerror((int)code));
}

/* ---- type and module tables -------------------------------------------------------------- */

PyDoc_STRVAR(log_metric_doc,
"log_metric($module, /, key, value, step=None, synchronous=None, timestamp=None, run_id=None)\n"
"--\n\n"
"Log one point of a metric on the active run (MLflow's signature).\n\n"
"key:       the metric's name (MLflow's rules: letters, digits, '_', '-', '.', ' ', '/').\n"
"value:     int, float, numpy scalar or 0-d array, or a one-element torch tensor. A CUDA\n"
"           tensor is never synced on this thread: its value is read once the kernel that\n"
"           made it is done, off this thread, and later points of the same key wait for it.\n"
"step:      int, default 0.\n"
"timestamp: ms since the epoch, default now.\n"
"synchronous: accepted for MLflow compatibility; the call never waits for I/O anyway.\n"
"run_id:    log into that run instead of the active one.\n\n"
"The call writes into shared memory and returns (tens of nanoseconds); the node's agent\n"
"stores the point. With no active run, one is started, as MLflow does.");

static PyMethodDef Run_methods[] = {
    {"log_metric", (PyCFunction)(void (*)(void))Run_log_metric, METH_FASTCALL | METH_KEYWORDS,
     "log_metric($self, /, key, value, step=None, timestamp=None)\n--\n\n"
     "Log one point of a metric on this run (see sidetrack.log_metric)."},
    {"log_metrics", (PyCFunction)(void (*)(void))Run_log_metrics, METH_VARARGS | METH_KEYWORDS,
     "log_metrics($self, /, metrics, step=None, timestamp=None)\n--\n\n"
     "Log several metrics that share a step: one record per 1000 plain numbers."},
    {"log_param", (PyCFunction)Run_log_param, METH_VARARGS,
     "log_param($self, key, value, /)\n--\n\nLog a param (str value; write-once)."},
    {"set_tag", (PyCFunction)Run_set_tag, METH_VARARGS,
     "set_tag($self, key, value, /)\n--\n\nSet a tag (str value; last write wins)."},
    {"log_artifact", (PyCFunction)(void (*)(void))Run_log_artifact, METH_VARARGS | METH_KEYWORDS,
     "log_artifact($self, /, local_path, artifact_path=None)\n--\n\n"
     "Copy a file into the agent's spool as an artifact of this run (file I/O)."},
    {"register_model", (PyCFunction)(void (*)(void))Run_register_model,
     METH_VARARGS | METH_KEYWORDS,
     "register_model($self, /, artifact_path, name, aliases=(), description=None)\n--\n\n"
     "Register this run's artifacts at artifact_path as a new version of model name (one\n"
     "record; the agent makes the version when it drains it)."},
    {"end", (PyCFunction)(void (*)(void))Run_end, METH_VARARGS | METH_KEYWORDS,
     "end($self, /, status=3)\n--\n\nEnd the run: 3 FINISHED, 4 FAILED, 5 KILLED."},
    {"release", (PyCFunction)Run_release, METH_NOARGS,
     "release($self, /)\n--\n\nLet go of the run without ending it."},
    {"_log_deferred", (PyCFunction)(void (*)(void))Run_log_deferred, METH_FASTCALL, NULL},
    {"_pending", (PyCFunction)(void (*)(void))Run_pending, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Run_getset[] = {
    {"id", (getter)Run_get_id, NULL, "The run id: 32 lowercase hex digits.", NULL},
    {"ended", (getter)Run_get_ended, NULL, "True once end() or release() was called.", NULL},
    {"client", (getter)Run_get_client, NULL, "The Client the run was made by.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RunType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sidetrack._sidetrack.Run",
    .tp_basicsize = sizeof(RunObject),
    .tp_dealloc = (destructor)Run_dealloc,
    .tp_repr = (reprfunc)Run_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A run handle of this process (made by Client.run_start or Client.run_attach).",
    .tp_methods = Run_methods,
    .tp_getset = Run_getset,
    .tp_weaklistoffset = offsetof(RunObject, weakrefs),
};

static PyMethodDef Client_methods[] = {
    {"run_start", (PyCFunction)(void (*)(void))Client_run_start, METH_VARARGS | METH_KEYWORDS,
     "run_start($self, /, experiment=None, run_name=None, parent=None)\n--\n\nStart a run."},
    {"run_attach", (PyCFunction)Client_run_attach, METH_O,
     "run_attach($self, run_id, /)\n--\n\nLog into a run another process started."},
    {"stats", (PyCFunction)Client_stats, METH_NOARGS,
     "stats($self, /)\n--\n\nThis process's delivery counters (drops, spills, losses)."},
    {"close", (PyCFunction)Client_close, METH_NOARGS,
     "close($self, /)\n--\n\nLet go of this process's lanes of the ring."},
    {"set_key_suffix", (PyCFunction)Client_set_key_suffix, METH_O,
     "set_key_suffix($self, suffix, /)\n--\n\nAppend suffix to every metric name from now on."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ClientType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sidetrack._sidetrack.Client",
    .tp_basicsize = sizeof(ClientObject),
    .tp_dealloc = (destructor)Client_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Client(ring_dir=None)\n--\n\nThis process's attachment to the node's ring.",
    .tp_methods = Client_methods,
    .tp_new = Client_new,
};

static PyMethodDef module_methods[] = {
    {"log_metric", (PyCFunction)(void (*)(void))mod_log_metric, METH_FASTCALL | METH_KEYWORDS,
     log_metric_doc},
    {"_set_active", mod_set_active, METH_O, NULL},
    {"_set_hooks", (PyCFunction)(void (*)(void))mod_set_hooks, METH_VARARGS | METH_KEYWORDS, NULL},
    {"_fast_type", mod_fast_type, METH_O, NULL},
    {"strerror", mod_strerror, METH_O,
     "strerror(code, /)\n--\n\nThe sentence for an error code of libsidetrack."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_sidetrack",
    "libsidetrack for Python: the ring client behind the sidetrack package.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sidetrack(void); /* the interpreter's entry point, by name */
PyMODINIT_FUNC PyInit__sidetrack(void)
{
    static const char *names[A_N] = {"key", "value", "step", "timestamp", "synchronous",
                                     "run_id"};
    for (int i = 0; i < A_N; i++)
        if (!kw_names[i] && !(kw_names[i] = PyUnicode_InternFromString(names[i])))
            return NULL;
    if (PyType_Ready(&ClientType) < 0 || PyType_Ready(&RunType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    SidetrackError = PyErr_NewExceptionWithDoc(
        "sidetrack.SidetrackError", "An error of sidetrack; .code holds libsidetrack's code.",
        NULL, NULL);
    PyObject *bases = SidetrackError ? PyTuple_Pack(2, SidetrackError, PyExc_ValueError) : NULL;
    InvalidArgument = bases ? PyErr_NewExceptionWithDoc(
                                  "sidetrack.InvalidArgument",
                                  "A key, value, name or path that MLflow's rules refuse.",
                                  bases, NULL)
                            : NULL;
    Py_XDECREF(bases);
    if (!InvalidArgument || PyModule_AddObjectRef(m, "SidetrackError", SidetrackError) < 0 ||
        PyModule_AddObjectRef(m, "InvalidArgument", InvalidArgument) < 0 ||
        PyModule_AddObjectRef(m, "Client", (PyObject *)&ClientType) < 0 ||
        PyModule_AddObjectRef(m, "Run", (PyObject *)&RunType) < 0 ||
        PyModule_AddIntConstant(m, "RUNNING", ST_RUN_RUNNING) < 0 ||
        PyModule_AddIntConstant(m, "FINISHED", ST_RUN_FINISHED) < 0 ||
        PyModule_AddIntConstant(m, "FAILED", ST_RUN_FAILED) < 0 ||
        PyModule_AddIntConstant(m, "KILLED", ST_RUN_KILLED) < 0 ||
        PyModule_AddStringConstant(m, "__version__", "0.1.0") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
