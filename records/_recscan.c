/* _recscan: the record walk of produce validation, in C.
 *
 * Theory of operation. Kafka's LogValidator reads every record of every produce batch; in
 * Python that walk costs ~0.5 us a record, more than the whole rest of the append path at
 * 1 KB records. This module does the same walk over an (uncompressed) records section
 * without creating any object per record: it follows each record's length varint, checks
 * the fields inside it add up to that length, that the offset deltas count 0, 1, 2, ...
 * and that exactly ``count`` records fill the section, and it returns what the validator
 * needs to decide the rest in Python: the smallest and largest timestamp delta and the
 * number of records without a key.
 *
 * records/recordscan.py holds the reference implementation in Python with the same
 * contract (the tests compare both on random and mutated batches); this file is only its
 * accelerator, and the broker works without it (slower) when it is not built.
 *
 * scan(section, count) -> (min_timestamp_delta, max_timestamp_delta, keyless_records)
 * scan(section, count, 1) -> the same plus a tuple of the FNV-1a 64 hashes of the records'
 *   keys (null keys skipped, a repeat of the previous record's key skipped): the per-key
 *   index (storage/key_index.py) gets its keys from the walk validation already pays for.
 * raises ValueError(message, record_index) when the records do not parse.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} cursor;

/* A zigzag varint of at most max_bytes bytes; returns 0 on success. */
static int read_varint(cursor *c, int max_bytes, int64_t *out)
{
    uint64_t v = 0;
    int shift = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (c->p >= c->end)
            return -1;
        unsigned char b = *c->p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
        shift += 7;
    }
    return -1;
}

static int read_int32(cursor *c, int64_t *out)
{
    if (read_varint(c, 5, out))
        return -1;
    return (*out < INT32_MIN || *out > INT32_MAX) ? -1 : 0;
}

/* A length-prefixed field (-1 is null when nullable); sets *is_null. */
static int skip_bytes(cursor *c, int nullable, int *is_null)
{
    int64_t n;
    if (read_int32(c, &n))
        return -1;
    *is_null = 0;
    if (n < 0) {
        if (nullable && n == -1) {
            *is_null = 1;
            return 0;
        }
        return -1;
    }
    if (n > c->end - c->p)
        return -1;
    c->p += n;
    return 0;
}

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

static uint64_t fnv1a64(const unsigned char *p, Py_ssize_t n)
{
    uint64_t h = FNV64_OFFSET;
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    return h;
}

static PyObject *fail(const char *message, Py_ssize_t index)
{
    PyObject *args = Py_BuildValue("(sn)", message, index);
    if (args) {
        PyErr_SetObject(PyExc_ValueError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static PyObject *scan(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t count;
    int want_keys = 0;
    if (!PyArg_ParseTuple(args, "y*n|p", &view, &count, &want_keys))
        return NULL;
    PyObject *keys = NULL;
    uint64_t last_hash = 0;
    int have_last = 0;
    if (want_keys && !(keys = PyList_New(0))) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *p = view.buf;
    const unsigned char *end = p + view.len;
    int64_t ts_min = INT64_MAX, ts_max = INT64_MIN;
    Py_ssize_t keyless = 0;
    const char *error = NULL;
    Py_ssize_t i = 0;

    for (; i < count; i++) {
        cursor c = {p, end};
        int64_t length, ts_delta, offset_delta, n_headers;
        int is_null;
        if (p >= end) { error = "Incorrect declared batch size, premature EOF reached"; break; }
        if (read_int32(&c, &length) || length < 0) { error = "Found invalid record structure"; break; }
        if (length > end - c.p) { error = "Invalid record size: the record overruns the batch"; break; }
        const unsigned char *record_end = c.p + length;
        c.end = record_end;
        if (c.p >= c.end) { error = "Found invalid record structure"; break; }
        c.p++; /* record attributes: unused by format v2 */
        if (read_varint(&c, 10, &ts_delta) || read_int32(&c, &offset_delta)) {
            error = "Found invalid record structure"; break;
        }
        if (offset_delta != i) { error = "Record offset delta does not match its position in the batch"; break; }
        const unsigned char *key_at = c.p;
        if (skip_bytes(&c, 1, &is_null)) { error = "Found invalid record structure"; break; }
        keyless += is_null;
        if (keys && !is_null) {
            /* key_at holds the length varint; the key bytes are the tail up to c.p */
            cursor k = {key_at, c.p};
            int64_t key_len;
            read_int32(&k, &key_len);
            uint64_t h = fnv1a64(k.p, (Py_ssize_t)key_len);
            if (!have_last || h != last_hash) {
                PyObject *o = PyLong_FromUnsignedLongLong(h);
                if (!o || PyList_Append(keys, o)) {
                    Py_XDECREF(o);
                    Py_DECREF(keys);
                    PyBuffer_Release(&view);
                    return NULL;
                }
                Py_DECREF(o);
                last_hash = h;
                have_last = 1;
            }
        }
        if (skip_bytes(&c, 1, &is_null)) { error = "Found invalid record structure"; break; }
        if (read_int32(&c, &n_headers) || n_headers < 0 || n_headers > c.end - c.p) {
            error = "Found invalid number of record headers"; break;
        }
        for (int64_t h = 0; h < n_headers && !error; h++) {
            if (skip_bytes(&c, 0, &is_null) || skip_bytes(&c, 1, &is_null))
                error = "Found invalid record structure";
        }
        if (error)
            break;
        if (c.p != record_end) { error = "Invalid record size: the fields disagree with the record length"; break; }
        if (ts_delta < ts_min) ts_min = ts_delta;
        if (ts_delta > ts_max) ts_max = ts_delta;
        p = record_end;
    }
    if (!error && p != end)
        error = "Incorrect declared batch size, records still remaining in file";

    PyBuffer_Release(&view);
    if (error) {
        Py_XDECREF(keys);
        return fail(error, i);
    }
    if (count == 0)
        ts_min = ts_max = 0;
    if (keys)
        return Py_BuildValue("(LLnN)", (long long)ts_min, (long long)ts_max, keyless, keys);
    return Py_BuildValue("(LLn)", (long long)ts_min, (long long)ts_max, keyless);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(section, count[, keys]) -> (min_timestamp_delta, max_timestamp_delta, keyless_records[, key_hashes])"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_recscan", "The record walk of produce validation, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__recscan(void)
{
    return PyModule_Create(&module);
}
