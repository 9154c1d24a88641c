/* Encoding and decoding the records of a v2 batch, in C: the client's hot loops.
 *
 * encode_records(records, base_timestamp) -> bytes
 *     records: a list of (key, value, headers, timestamp_ms); key/value bytes-like or None,
 *     headers None or a list of (str, bytes-like or None). Offset deltas count 0, 1, 2, ...
 *
 * decode_records(section, count, base_offset, base_timestamp, log_append_time, min_offset,
 *                cls, topic, partition, timestamp_type, leader_epoch) -> list
 *     Each record at or past min_offset becomes cls(topic, partition, offset, timestamp,
 *     key, value, headers, timestamp_type, leader_epoch), cls being a tuple subclass (the
 *     client's ConsumerRecord named tuple), built without calling its Python __new__.
 *     log_append_time >= 0 replaces every record's timestamp (LogAppendTime batches).
 *     A malformed section raises ValueError; records/batch.py has the Python reference
 *     (encode_record, iter_records) and the tests compare both.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- encoding */

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
} outbuf;

static int reserve(outbuf *o, Py_ssize_t extra)
{
    if (o->len + extra <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + extra)
        cap *= 2;
    char *b = PyMem_Realloc(o->buf, cap);
    if (!b) {
        PyErr_NoMemory();
        return -1;
    }
    o->buf = b;
    o->cap = cap;
    return 0;
}

static inline int varint_size(int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    int n = 1;
    while (u >= 0x80) {
        u >>= 7;
        n++;
    }
    return n;
}

static inline void put_varint(outbuf *o, int64_t v)
{
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (u >= 0x80) {
        o->buf[o->len++] = (char)((u & 0x7F) | 0x80);
        u >>= 7;
    }
    o->buf[o->len++] = (char)u;
}

/* A nullable bytes field: its view (len -1 for None). */
static int field_view(PyObject *obj, Py_buffer *view, Py_ssize_t *len)
{
    if (obj == Py_None) {
        *len = -1;
        view->buf = NULL;
        view->obj = NULL;
        return 0;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    *len = view->len;
    return 0;
}

static PyObject *encode_records(PyObject *self, PyObject *args)
{
    PyObject *records;
    long long base_ts;
    if (!PyArg_ParseTuple(args, "OL", &records, &base_ts))
        return NULL;
    PyObject *seq = PySequence_Fast(records, "records must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    outbuf o = {NULL, 0, 0};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rec = items[i];
        if (!PyTuple_Check(rec) || PyTuple_GET_SIZE(rec) != 4) {
            PyErr_SetString(PyExc_TypeError, "a record is (key, value, headers, timestamp_ms)");
            goto fail;
        }
        long long ts = PyLong_AsLongLong(PyTuple_GET_ITEM(rec, 3));
        if (ts == -1 && PyErr_Occurred())
            goto fail;
        Py_buffer kv = {0}, vv = {0};
        Py_ssize_t klen, vlen;
        if (field_view(PyTuple_GET_ITEM(rec, 0), &kv, &klen) < 0)
            goto fail;
        if (field_view(PyTuple_GET_ITEM(rec, 1), &vv, &vlen) < 0) {
            if (kv.obj) PyBuffer_Release(&kv);
            goto fail;
        }
        PyObject *headers = PyTuple_GET_ITEM(rec, 2);
        Py_ssize_t nh = 0;
        if (headers != Py_None) {
            if (!PyList_Check(headers)) {
                PyErr_SetString(PyExc_TypeError, "headers must be a list of (str, bytes) or None");
                goto fail_views;
            }
            nh = PyList_GET_SIZE(headers);
        }
        int64_t body = 1 + varint_size(ts - base_ts) + varint_size(i)
            + varint_size(klen) + (klen > 0 ? klen : 0) + varint_size(vlen) + (vlen > 0 ? vlen : 0)
            + varint_size(nh);
        /* headers: measured in the same walk that writes them (below), so size them first */
        for (Py_ssize_t h = 0; h < nh; h++) {
            PyObject *pair = PyList_GET_ITEM(headers, h);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
                PyErr_SetString(PyExc_TypeError, "a header is (str, bytes or None)");
                goto fail_views;
            }
            Py_ssize_t hk;
            if (!PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &hk))
                goto fail_views;
            PyObject *hv = PyTuple_GET_ITEM(pair, 1);
            Py_ssize_t hvl = -1;
            if (hv != Py_None) {
                Py_buffer b;
                if (PyObject_GetBuffer(hv, &b, PyBUF_SIMPLE) < 0)
                    goto fail_views;
                hvl = b.len;
                PyBuffer_Release(&b);
            }
            body += varint_size(hk) + hk + varint_size(hvl) + (hvl > 0 ? hvl : 0);
        }
        if (reserve(&o, body + 10) < 0)
            goto fail_views;
        put_varint(&o, body);
        o.buf[o.len++] = 0; /* attributes */
        put_varint(&o, ts - base_ts);
        put_varint(&o, i);
        put_varint(&o, klen);
        if (klen > 0) {
            memcpy(o.buf + o.len, kv.buf, klen);
            o.len += klen;
        }
        put_varint(&o, vlen);
        if (vlen > 0) {
            memcpy(o.buf + o.len, vv.buf, vlen);
            o.len += vlen;
        }
        put_varint(&o, nh);
        for (Py_ssize_t h = 0; h < nh; h++) {
            PyObject *pair = PyList_GET_ITEM(headers, h);
            Py_ssize_t hk;
            const char *hks = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &hk);
            put_varint(&o, hk);
            memcpy(o.buf + o.len, hks, hk);
            o.len += hk;
            PyObject *hv = PyTuple_GET_ITEM(pair, 1);
            if (hv == Py_None) {
                put_varint(&o, -1);
            } else {
                Py_buffer b;
                if (PyObject_GetBuffer(hv, &b, PyBUF_SIMPLE) < 0)
                    goto fail_views;
                put_varint(&o, b.len);
                memcpy(o.buf + o.len, b.buf, b.len);
                o.len += b.len;
                PyBuffer_Release(&b);
            }
        }
        if (kv.obj) PyBuffer_Release(&kv);
        if (vv.obj) PyBuffer_Release(&vv);
        continue;
    fail_views:
        if (kv.obj) PyBuffer_Release(&kv);
        if (vv.obj) PyBuffer_Release(&vv);
        goto fail;
    }
    Py_DECREF(seq);
    PyObject *out = PyBytes_FromStringAndSize(o.buf ? o.buf : "", o.len);
    PyMem_Free(o.buf);
    return out;
fail:
    Py_DECREF(seq);
    PyMem_Free(o.buf);
    return NULL;
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    const unsigned char *p, *end;
} cursor;

static int get_varint(cursor *c, int64_t *out)
{
    uint64_t v = 0;
    int shift = 0;
    while (c->p < c->end && shift < 64) {
        unsigned char b = *c->p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ (~(v & 1) + 1));
            return 0;
        }
        shift += 7;
    }
    return -1;
}

static PyObject *get_bytes(cursor *c, int *bad)
{
    int64_t n;
    if (get_varint(c, &n) < 0 || n > c->end - c->p) {
        *bad = 1;
        return NULL;
    }
    if (n < 0) /* as Kafka's DefaultRecord: any negative length is null */
        Py_RETURN_NONE;
    PyObject *b = PyBytes_FromStringAndSize((const char *)c->p, (Py_ssize_t)n);
    c->p += n;
    return b;
}

static PyObject *decode_records(PyObject *self, PyObject *args)
{
    Py_buffer section;
    Py_ssize_t count;
    long long base_offset, base_ts, lat, min_offset;
    PyTypeObject *cls;
    PyObject *topic, *partition, *ts_type, *epoch;
    if (!PyArg_ParseTuple(args, "y*nLLLLOOOOO", &section, &count, &base_offset, &base_ts, &lat, &min_offset,
                          &cls, &topic, &partition, &ts_type, &epoch))
        return NULL;
    if (!PyType_Check(cls) || !PyType_IsSubtype(cls, &PyTuple_Type)) {
        PyBuffer_Release(&section);
        PyErr_SetString(PyExc_TypeError, "cls must be a tuple subclass");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out) {
        PyBuffer_Release(&section);
        return NULL;
    }
    cursor all = {(const unsigned char *)section.buf, (const unsigned char *)section.buf + section.len};
    const char *why = NULL;
    /* Records of a batch often share a timestamp: reuse the int object instead of making one each. */
    PyObject *last_ts_obj = NULL;
    long long last_ts = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t len, tsd, od, nh;
        if (get_varint(&all, &len) < 0 || len < 0 || len > all.end - all.p) {
            why = "record length overruns the batch";
            goto bad;
        }
        cursor c = {all.p, all.p + len};
        all.p += len;
        if (c.p >= c.end) {
            why = "empty record";
            goto bad;
        }
        c.p++; /* attributes */
        if (get_varint(&c, &tsd) < 0 || get_varint(&c, &od) < 0) {
            why = "record truncated inside a varint";
            goto bad;
        }
        long long offset = base_offset + od;
        int badf = 0;
        PyObject *key = get_bytes(&c, &badf);
        if (badf) { why = "record key overruns the record"; goto bad; }
        if (!key) goto err;
        PyObject *value = get_bytes(&c, &badf);
        if (badf || !value) {
            Py_XDECREF(key);
            if (badf) { why = "record value overruns the record"; goto bad; }
            goto err;
        }
        if (get_varint(&c, &nh) < 0 || nh < 0 || nh > c.end - c.p) {
            Py_DECREF(key); Py_DECREF(value);
            why = "bad header count";
            goto bad;
        }
        PyObject *headers = PyList_New((Py_ssize_t)nh);
        if (!headers) { Py_DECREF(key); Py_DECREF(value); goto err; }
        for (Py_ssize_t h = 0; h < nh; h++) {
            int64_t hk;
            if (get_varint(&c, &hk) < 0 || hk < 0 || hk > c.end - c.p) {
                Py_DECREF(key); Py_DECREF(value); Py_DECREF(headers);
                why = "bad header key";
                goto bad;
            }
            PyObject *name = PyUnicode_DecodeUTF8((const char *)c.p, (Py_ssize_t)hk, "replace");
            c.p += hk;
            PyObject *hv = name ? get_bytes(&c, &badf) : NULL;
            if (!name || badf || !hv) {
                Py_XDECREF(name); Py_XDECREF(hv);
                Py_DECREF(key); Py_DECREF(value); Py_DECREF(headers);
                if (badf) { why = "header value overruns the record"; goto bad; }
                goto err;
            }
            PyObject *pair = PyTuple_Pack(2, name, hv);
            Py_DECREF(name);
            Py_DECREF(hv);
            if (!pair) { Py_DECREF(key); Py_DECREF(value); Py_DECREF(headers); goto err; }
            PyList_SET_ITEM(headers, h, pair);
        }
        if (c.p != c.end) {
            Py_DECREF(key); Py_DECREF(value); Py_DECREF(headers);
            why = "record length disagrees with its fields";
            goto bad;
        }
        if (offset < min_offset) { /* before the fetch offset: checked like the others, not returned */
            Py_DECREF(key); Py_DECREF(value); Py_DECREF(headers);
            continue;
        }
        PyObject *po = PyLong_FromLongLong(offset);
        long long ts = lat >= 0 ? lat : base_ts + tsd;
        if (last_ts_obj == NULL || ts != last_ts) {
            Py_XDECREF(last_ts_obj);
            last_ts_obj = PyLong_FromLongLong(ts);
            last_ts = ts;
        }
        PyObject *pt = last_ts_obj;
        Py_XINCREF(pt);
        PyObject *rec = cls->tp_alloc(cls, 9);
        if (!po || !pt || !rec) {
            Py_XDECREF(po); Py_XDECREF(pt); Py_XDECREF(rec);
            Py_DECREF(key); Py_DECREF(value); Py_DECREF(headers);
            goto err;
        }
        Py_INCREF(topic); Py_INCREF(partition); Py_INCREF(ts_type); Py_INCREF(epoch);
        PyTuple_SET_ITEM(rec, 0, topic);
        PyTuple_SET_ITEM(rec, 1, partition);
        PyTuple_SET_ITEM(rec, 2, po);
        PyTuple_SET_ITEM(rec, 3, pt);
        PyTuple_SET_ITEM(rec, 4, key);
        PyTuple_SET_ITEM(rec, 5, value);
        PyTuple_SET_ITEM(rec, 6, headers);
        PyTuple_SET_ITEM(rec, 7, ts_type);
        PyTuple_SET_ITEM(rec, 8, epoch);
        int rc = PyList_Append(out, rec);
        Py_DECREF(rec);
        if (rc < 0)
            goto err;
    }
    if (all.p != all.end) {
        why = "bytes left over after the last record";
        goto bad;
    }
    Py_XDECREF(last_ts_obj);
    PyBuffer_Release(&section);
    return out;
bad:
    PyErr_SetString(PyExc_ValueError, why);
err:
    Py_XDECREF(last_ts_obj);
    PyBuffer_Release(&section);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"encode_records", encode_records, METH_VARARGS,
     "encode_records(records, base_timestamp) -> bytes: the records section of a batch."},
    {"decode_records", decode_records, METH_VARARGS,
     "decode_records(section, count, base_offset, base_ts, log_append_time, min_offset, cls, topic, "
     "partition, timestamp_type, leader_epoch) -> list of cls."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_reccodec", "Encoding and decoding batch records, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__reccodec(void)
{
    return PyModule_Create(&module);
}
