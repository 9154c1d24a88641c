/* _offsetmap: the log cleaner's key -> latest offset map and its record loops, in C.
 *
 * Theory of operation. A clean reads every record of the dirty section twice: once to put
 * each key's latest offset in the map, once to decide which records survive. In Python
 * that is ~0.5 us a record, all of it holding the GIL, so a clean running beside the event
 * loop takes the interpreter away from produce and fetch for most of its run. Here both
 * loops run over a whole (uncompressed) records section with the GIL released: the cleaner
 * thread holds the interpreter only for its per-batch bookkeeping, and the rest runs on
 * the other core while the event loop serves.
 *
 * The map is Kafka's SkimpyOffsetMap in spirit: 24 bytes an entry, a 16-byte token and an
 * 8-byte offset, in one open-addressing table (linear probing, power-of-two slots, grown
 * at 3/4 full). A key of at most 15 bytes is its own token (zero padded, its length in the
 * last byte), so short keys never collide; a longer key's token is its 16-byte BLAKE2b
 * digest (as hashlib.blake2b(key, digest_size=16); the tests compare the two), whose
 * collisions are as unlikely as Kafka's MD5 ones. Slots are chosen by a seeded mix of the
 * token, so keys chosen by a client cannot pile into one probe run.
 *
 * storage/offset_map.py holds the reference implementation in Python with the same
 * contract (the tests run the cleaner on both); this file is only its accelerator.
 *
 * OffsetMap(seed)
 *   len(m); m.get(key) -> offset | None; m.put(key, offset); m.put_newer(key, offset)
 *   m.merge_newer(other)      every entry of other that is newer than this map's
 *   m.add_records(section, count, base_offset)
 *                             each keyed record's offset (base + delta) put, later wins
 *   m.select(section, count, base_offset, drop_tombstones)
 *       -> (kept, tombstones_removed, tombstones_kept, kept_bytes | None, max_ts_delta)
 *                             the records a clean keeps: keyed, and no later offset of
 *                             their key in the map; tombstones dropped when asked.
 *                             kept_bytes is None when every record is kept.
 * token(key) -> bytes         the 16-byte token (for the tests)
 * Records that do not parse raise kafkito.records.errors.CorruptRecordError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ BLAKE2b-128 */
static const uint64_t blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t blake2b_sigma[10][16] = { /* round r uses row r % 10 */
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#define G(a, b, c, d, x, y)          \
    do {                             \
        a = a + b + (x);             \
        d = rotr64(d ^ a, 32);       \
        c = c + d;                   \
        b = rotr64(b ^ c, 24);       \
        a = a + b + (y);             \
        d = rotr64(d ^ a, 16);       \
        c = c + d;                   \
        b = rotr64(b ^ c, 63);       \
    } while (0)

static void blake2b_compress(uint64_t h[8], const unsigned char block[128], uint64_t t, int last)
{
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++)
        m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = blake2b_iv[i];
    }
    v[12] ^= t; /* the counter's high word stays 0: keys are far below 2^64 bytes */
    if (last)
        v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = blake2b_sigma[r % 10];
        G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
        G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
        G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
        G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
        G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
        G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
        G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
        G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++)
        h[i] ^= v[i] ^ v[i + 8];
}

/* hashlib.blake2b(data, digest_size=16).digest() */
static void blake2b_128(const unsigned char *data, Py_ssize_t n, unsigned char out[16])
{
    uint64_t h[8];
    unsigned char block[128];
    memcpy(h, blake2b_iv, sizeof h);
    h[0] ^= 0x01010000ULL ^ 16; /* digest length 16, no key, fanout 1, depth 1 */
    uint64_t t = 0;
    while (n > 128) {
        t += 128;
        blake2b_compress(h, data, t, 0);
        data += 128;
        n -= 128;
    }
    memset(block, 0, sizeof block);
    memcpy(block, data, (size_t)n);
    t += (uint64_t)n;
    blake2b_compress(h, block, t, 1);
    for (int i = 0; i < 16; i++)
        out[i] = (unsigned char)(h[i / 8] >> (8 * (i % 8)));
}

/* ------------------------------------------------------------------------ tokens */
#define RAW_KEY_MAX 15

typedef struct {
    unsigned char token[16];
    int64_t offset; /* -1: an empty slot */
} entry;

static void make_token(const unsigned char *key, Py_ssize_t n, unsigned char token[16])
{
    if (n <= RAW_KEY_MAX) {
        memset(token, 0, 16);
        memcpy(token, key, (size_t)n);
        token[15] = (unsigned char)n;
    } else {
        blake2b_128(key, n, token);
    }
}

static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static inline uint64_t slot_hash(const unsigned char token[16], uint64_t seed)
{
    uint64_t w0, w1;
    memcpy(&w0, token, 8);
    memcpy(&w1, token + 8, 8);
    return fmix64(w0 ^ fmix64(w1 ^ seed));
}

/* ------------------------------------------------------------------------- table */
typedef struct {
    PyObject_HEAD
    entry *slots;
    size_t mask;    /* slots - 1 */
    size_t size;    /* entries in use */
    uint64_t seed;
    int busy;       /* a loop runs without the GIL: no other call may touch the table */
} OffsetMap;

#define INITIAL_SLOTS 1024

static entry *alloc_slots(size_t n)
{
    entry *s = PyMem_RawMalloc(n * sizeof(entry));
    if (s)
        for (size_t i = 0; i < n; i++)
            s[i].offset = -1;
    return s;
}

static entry *find(OffsetMap *m, const unsigned char token[16])
{
    size_t i = (size_t)slot_hash(token, m->seed) & m->mask;
    for (;;) {
        entry *e = &m->slots[i];
        if (e->offset < 0 || memcmp(e->token, token, 16) == 0)
            return e;
        i = (i + 1) & m->mask;
    }
}

/* Doubles the table; 0 on success, -1 when memory ran out (the table is unchanged). */
static int grow(OffsetMap *m)
{
    size_t old_n = m->mask + 1, n = old_n * 2;
    entry *old = m->slots, *fresh = alloc_slots(n);
    if (!fresh)
        return -1;
    m->slots = fresh;
    m->mask = n - 1;
    for (size_t i = 0; i < old_n; i++)
        if (old[i].offset >= 0)
            *find(m, old[i].token) = old[i];
    PyMem_RawFree(old);
    return 0;
}

/* newer_only: keep the entry already there when its offset is not lower. */
static int put(OffsetMap *m, const unsigned char token[16], int64_t offset, int newer_only)
{
    if ((m->size + 1) * 4 > (m->mask + 1) * 3 && grow(m))
        return -1;
    entry *e = find(m, token);
    if (e->offset < 0) {
        memcpy(e->token, token, 16);
        e->offset = offset;
        m->size++;
    } else if (!newer_only || offset > e->offset) {
        e->offset = offset;
    }
    return 0;
}

static int64_t get(OffsetMap *m, const unsigned char token[16])
{
    return find(m, token)->offset;
}

/* ----------------------------------------------------------------------- records */
typedef struct {
    const unsigned char *start, *end; /* the whole record, length varint included */
    const unsigned char *key;         /* NULL: a null key */
    int64_t key_len, ts_delta, offset_delta;
    int tombstone;
} record;

static int read_varint(const unsigned char **pp, const unsigned char *end, int max_bytes, int64_t *out)
{
    const unsigned char *p = *pp;
    uint64_t v = 0;
    for (int shift = 0, i = 0; i < max_bytes; i++, shift += 7) {
        if (p >= end)
            return -1;
        unsigned char b = *p++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            *pp = p;
            return 0;
        }
    }
    return -1;
}

/* The record at *pp (whose fields up to the value's length are read); NULL or a message. */
static const char *next_record(const unsigned char **pp, const unsigned char *end, record *r)
{
    const unsigned char *p = *pp;
    int64_t length, value_len;
    r->start = p;
    if (p >= end)
        return "record truncated";
    if (read_varint(&p, end, 5, &length))
        return "record truncated";
    if (length < 1 || length > end - p)
        return "record length overruns the batch";
    const unsigned char *rend = p + length;
    p++; /* attributes */
    if (read_varint(&p, rend, 10, &r->ts_delta) || read_varint(&p, rend, 5, &r->offset_delta)
        || read_varint(&p, rend, 5, &r->key_len))
        return "record truncated";
    if (r->key_len < 0) {
        r->key = NULL;
    } else {
        if (r->key_len > rend - p)
            return "record truncated";
        r->key = p;
        p += r->key_len;
    }
    if (read_varint(&p, rend, 5, &value_len))
        return "record truncated";
    r->tombstone = value_len == -1;
    r->end = rend;
    *pp = rend;
    return NULL;
}

static PyObject *corrupt_record_error; /* kafkito.records.errors.CorruptRecordError */

static PyObject *fail(const char *message)
{
    PyErr_SetString(corrupt_record_error, message);
    return NULL;
}

static int claim(OffsetMap *m)
{
    if (m->busy) {
        PyErr_SetString(PyExc_RuntimeError, "OffsetMap used by two threads at once");
        return -1;
    }
    m->busy = 1;
    return 0;
}

/* -------------------------------------------------------------------- the methods */
static int key_arg(PyObject *arg, unsigned char token[16])
{
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE))
        return -1;
    make_token(b.buf, b.len, token);
    PyBuffer_Release(&b);
    return 0;
}

static PyObject *m_get(OffsetMap *m, PyObject *key)
{
    unsigned char token[16];
    if (key_arg(key, token) || claim(m))
        return NULL;
    int64_t offset = get(m, token);
    m->busy = 0;
    if (offset < 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(offset);
}

static PyObject *put_method(OffsetMap *m, PyObject *args, int newer_only)
{
    PyObject *key;
    long long offset;
    unsigned char token[16];
    if (!PyArg_ParseTuple(args, "OL", &key, &offset) || key_arg(key, token))
        return NULL;
    if (offset < 0) {
        PyErr_SetString(PyExc_ValueError, "offsets are not negative");
        return NULL;
    }
    if (claim(m))
        return NULL;
    int failed = put(m, token, offset, newer_only);
    m->busy = 0;
    if (failed)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *m_put(OffsetMap *m, PyObject *args) { return put_method(m, args, 0); }
static PyObject *m_put_newer(OffsetMap *m, PyObject *args) { return put_method(m, args, 1); }

static PyTypeObject OffsetMapType;

static PyObject *m_merge_newer(OffsetMap *m, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &OffsetMapType)) {
        PyErr_SetString(PyExc_TypeError, "merge_newer takes an OffsetMap");
        return NULL;
    }
    OffsetMap *other = (OffsetMap *)arg;
    if (other == m)
        Py_RETURN_NONE;
    if (claim(m))
        return NULL;
    if (claim(other)) {
        m->busy = 0;
        return NULL;
    }
    int failed = 0;
    for (size_t i = 0; i <= other->mask && !failed; i++)
        if (other->slots[i].offset >= 0)
            failed = put(m, other->slots[i].token, other->slots[i].offset, 1);
    m->busy = other->busy = 0;
    if (failed)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *m_add_records(OffsetMap *m, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t count;
    long long base;
    if (!PyArg_ParseTuple(args, "y*nL", &view, &count, &base))
        return NULL;
    if (claim(m)) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const char *error = NULL;
    int no_memory = 0;
    Py_BEGIN_ALLOW_THREADS
    const unsigned char *p = view.buf, *end = p + view.len;
    record r;
    unsigned char token[16];
    for (Py_ssize_t i = 0; i < count && !error && !no_memory; i++) {
        if ((error = next_record(&p, end, &r)))
            break;
        if (r.key) {
            make_token(r.key, r.key_len, token);
            no_memory = put(m, token, base + r.offset_delta, 0);
        }
    }
    if (!error && !no_memory && p != end)
        error = "bytes left over after the last record";
    Py_END_ALLOW_THREADS
    m->busy = 0;
    PyBuffer_Release(&view);
    if (no_memory)
        return PyErr_NoMemory();
    if (error)
        return fail(error);
    Py_RETURN_NONE;
}

static PyObject *m_select(OffsetMap *m, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t count;
    long long base;
    int drop_tombstones;
    if (!PyArg_ParseTuple(args, "y*nLp", &view, &count, &base, &drop_tombstones))
        return NULL;
    /* The kept records' spans: at most one per record, written without the GIL. */
    const unsigned char **spans = PyMem_Malloc((size_t)(count > 0 ? count : 1) * 2 * sizeof *spans);
    if (!spans) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    if (claim(m)) {
        PyMem_Free(spans);
        PyBuffer_Release(&view);
        return NULL;
    }
    const char *error = NULL;
    Py_ssize_t kept = 0, tombstones_removed = 0, tombstones_kept = 0, kept_bytes = 0;
    int64_t max_ts_delta = INT64_MIN;
    Py_BEGIN_ALLOW_THREADS
    const unsigned char *p = view.buf, *end = p + view.len;
    record r;
    unsigned char token[16];
    for (Py_ssize_t i = 0; i < count; i++) {
        if ((error = next_record(&p, end, &r)))
            break;
        if (!r.key)
            continue; /* keyless: Kafka's cleaner counts it invalid and drops it */
        make_token(r.key, r.key_len, token);
        int64_t latest = get(m, token);
        if (latest >= 0 && base + r.offset_delta < latest)
            continue; /* a later record of the key is in the map */
        if (r.tombstone) {
            if (drop_tombstones) {
                tombstones_removed++;
                continue;
            }
            tombstones_kept++;
        }
        spans[2 * kept] = r.start;
        spans[2 * kept + 1] = r.end;
        kept_bytes += r.end - r.start;
        if (r.ts_delta > max_ts_delta)
            max_ts_delta = r.ts_delta;
        kept++;
    }
    if (!error && p != end)
        error = "bytes left over after the last record";
    Py_END_ALLOW_THREADS
    m->busy = 0;
    PyObject *body = NULL;
    if (!error && kept < count) {
        body = PyBytes_FromStringAndSize(NULL, kept_bytes);
        if (body) {
            char *out = PyBytes_AS_STRING(body);
            for (Py_ssize_t i = 0; i < kept; i++) {
                memcpy(out, spans[2 * i], (size_t)(spans[2 * i + 1] - spans[2 * i]));
                out += spans[2 * i + 1] - spans[2 * i];
            }
        }
    }
    PyMem_Free(spans);
    PyBuffer_Release(&view);
    if (error)
        return fail(error);
    if (kept < count && !body)
        return NULL;
    if (!kept)
        max_ts_delta = 0;
    return Py_BuildValue("(nnnNL)", kept, tombstones_removed, tombstones_kept,
                         body ? body : Py_NewRef(Py_None), (long long)max_ts_delta);
}

static Py_ssize_t m_len(OffsetMap *m) { return (Py_ssize_t)m->size; }

static int m_init(OffsetMap *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"seed", NULL};
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|K", kwlist, &seed))
        return -1;
    if (m->slots) {
        PyErr_SetString(PyExc_RuntimeError, "OffsetMap is already initialised");
        return -1;
    }
    if (!(m->slots = alloc_slots(INITIAL_SLOTS))) {
        PyErr_NoMemory();
        return -1;
    }
    m->mask = INITIAL_SLOTS - 1;
    m->size = 0;
    m->seed = seed;
    return 0;
}

static void m_dealloc(OffsetMap *m)
{
    PyMem_RawFree(m->slots);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static PyObject *m_memory(OffsetMap *m, void *closure)
{
    return PyLong_FromSize_t((m->mask + 1) * sizeof(entry));
}

static PyMethodDef map_methods[] = {
    {"get", (PyCFunction)m_get, METH_O, "get(key) -> the key's offset, or None"},
    {"put", (PyCFunction)m_put, METH_VARARGS, "put(key, offset): the key's offset is now offset"},
    {"put_newer", (PyCFunction)m_put_newer, METH_VARARGS,
     "put_newer(key, offset): as put, unless the map holds a later offset of the key"},
    {"merge_newer", (PyCFunction)m_merge_newer, METH_O,
     "merge_newer(other): put_newer every entry of another OffsetMap"},
    {"add_records", (PyCFunction)m_add_records, METH_VARARGS,
     "add_records(section, count, base_offset): put every keyed record's offset"},
    {"select", (PyCFunction)m_select, METH_VARARGS,
     "select(section, count, base_offset, drop_tombstones) -> "
     "(kept, tombstones_removed, tombstones_kept, kept_bytes | None, max_timestamp_delta)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef map_getset[] = {
    {"memory_bytes", (getter)m_memory, NULL, "bytes the table takes", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods map_as_sequence = {
    .sq_length = (lenfunc)m_len,
};

static PyTypeObject OffsetMapType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kafkito.storage._offsetmap.OffsetMap",
    .tp_basicsize = sizeof(OffsetMap),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The log cleaner's key -> latest offset map.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)m_init,
    .tp_dealloc = (destructor)m_dealloc,
    .tp_methods = map_methods,
    .tp_getset = map_getset,
    .tp_as_sequence = &map_as_sequence,
};

static PyObject *token(PyObject *self, PyObject *key)
{
    unsigned char t[16];
    if (key_arg(key, t))
        return NULL;
    return PyBytes_FromStringAndSize((const char *)t, 16);
}

static PyMethodDef module_methods[] = {
    {"token", token, METH_O, "token(key) -> the 16 bytes the map keeps for a key"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_offsetmap", "The log cleaner's offset map, in C.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__offsetmap(void)
{
    PyObject *errors = PyImport_ImportModule("kafkito.records.errors");
    if (!errors)
        return NULL;
    corrupt_record_error = PyObject_GetAttrString(errors, "CorruptRecordError");
    Py_DECREF(errors);
    if (!corrupt_record_error || PyType_Ready(&OffsetMapType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (!mod)
        return NULL;
    Py_INCREF(&OffsetMapType);
    if (PyModule_AddObject(mod, "OffsetMap", (PyObject *)&OffsetMapType) < 0) {
        Py_DECREF(&OffsetMapType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
