/* An upstream's chunked reply, read whole chunks at a time without the HTTP parser or a Python frame.
 *
 * ChunkReader(scan, write, pause, parse, fail, clock, synced) is put in place of an UpstreamConnection's
 * data_received while it relays a chunked, uncompressed reply (llmrelay/providers/connections.py), so that the
 * event loop calls it with each read. A read that begins with whole chunks in the usual form -- lowercase hex
 * size, no extension, CRLF, the data, CRLF -- read while the parser stands between chunks, has each chunk's data
 * given to `scan` (the relay's compiled event scan, relay/_eventscan.c). The chunks whose data scan takes (it
 * returns the bytes to relay), up to the first it leaves (None), go to `write` in one call, framed as the
 * client's chunks: as they came where scan left the data as it was (the read itself when it is one such chunk).
 * `write` returning false calls `pause`. The rest of the read goes to `parse`, the
 * connection's own path through the parser, which returns whether the parser then stands between chunks. An
 * exception from scan, write, pause or clock goes to `fail`, as the parser's callbacks' exceptions do.
 *
 * `last` is the clock's time of the last read taken here (the connection's idle watchdog reads it); `synced`,
 * which the connection clears once the reply has ended, says whether whole chunks may be taken here.
 *
 * Why: per event, the Python path is the data callback, the parser's call of on_body, on_body, the relay's feed
 * and the body writer's framing: five Python frames and two copies around a scan of a few hundred instructions.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <structmember.h>

#define MAX_SIZE_DIGITS 8 /* a chunk of up to 4 GiB; a longer size line goes to the parser */

typedef struct {
    PyObject_HEAD
    PyObject *scan;
    PyObject *write;
    PyObject *pause;
    PyObject *parse;
    PyObject *fail;
    PyObject *clock;
    double last;
    int synced;
    vectorcallfunc vectorcall;
} ChunkReader;

/* The length of the whole chunk at the start of `data` when it is in the usual form (its data at `*start`, `*size`
 * bytes), else -1. */
static Py_ssize_t chunk_at(const char *data, Py_ssize_t length, Py_ssize_t *start, Py_ssize_t *size) {
    Py_ssize_t value = 0;
    Py_ssize_t digits = 0;
    while (digits < length && digits <= MAX_SIZE_DIGITS) {
        char c = data[digits];
        if (c >= '0' && c <= '9') {
            value = value * 16 + (c - '0');
        } else if (c >= 'a' && c <= 'f') {
            value = value * 16 + (c - 'a' + 10);
        } else {
            break;
        }
        digits++;
    }
    /* The form `%x` writes: no leading zero, and not the last chunk (size 0), which the parser must see. */
    if (digits == 0 || digits > MAX_SIZE_DIGITS || data[0] == '0' || value == 0) {
        return -1;
    }
    if (length < digits + 2 || data[digits] != '\r' || data[digits + 1] != '\n') {
        return -1;
    }
    Py_ssize_t end = digits + 2 + value + 2;
    if (length < end || data[end - 2] != '\r' || data[end - 1] != '\n') {
        return -1;
    }
    *start = digits + 2;
    *size = value;
    return end;
}

static PyObject *framed(PyObject *out) {
    /* `out` as one chunk: its size in lowercase hex, CRLF, `out`, CRLF. */
    char line[MAX_SIZE_DIGITS * 2 + 3];
    Py_ssize_t size = PyBytes_GET_SIZE(out);
    int digits = snprintf(line, sizeof line, "%zx\r\n", size);
    PyObject *chunk = PyBytes_FromStringAndSize(NULL, digits + size + 2);
    if (chunk == NULL) {
        return NULL;
    }
    char *to = PyBytes_AS_STRING(chunk);
    memcpy(to, line, (size_t)digits);
    memcpy(to + digits, PyBytes_AS_STRING(out), (size_t)size);
    memcpy(to + digits + size, "\r\n", 2);
    return chunk;
}

/* The chunk at `at` in `data` (`end` bytes long, its data at `start`, `size` bytes) as the client gets it, when
 * the scan takes its data; Py_None when it does not; NULL on an error. */
static PyObject *relayed_chunk(ChunkReader *self, PyObject *data, Py_ssize_t at, Py_ssize_t end, Py_ssize_t start,
                               Py_ssize_t size) {
    const char *bytes = PyBytes_AS_STRING(data);
    PyObject *payload = PyBytes_FromStringAndSize(bytes + at + start, size);
    if (payload == NULL) {
        return NULL;
    }
    PyObject *out = PyObject_Vectorcall(self->scan, &payload, 1, NULL);
    PyObject *chunk;
    if (out == NULL || out == Py_None) {
        chunk = out;
    } else if (!PyBytes_Check(out)) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_TypeError, "the scan must give bytes or None");
        chunk = NULL;
    } else if (out != payload) {
        chunk = framed(out);
        Py_DECREF(out);
    } else {
        Py_DECREF(out);
        /* As it came: the read itself when it is this one chunk. */
        chunk = at == 0 && end == PyBytes_GET_SIZE(data) ? Py_NewRef(data) : PyBytes_FromStringAndSize(bytes + at, end);
    }
    Py_DECREF(payload);
    return chunk;
}

static PyObject *joined(PyObject *pieces) {
    Py_ssize_t count = PyList_GET_SIZE(pieces);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        total += PyBytes_GET_SIZE(PyList_GET_ITEM(pieces, i));
    }
    PyObject *all = PyBytes_FromStringAndSize(NULL, total);
    if (all == NULL) {
        return NULL;
    }
    char *to = PyBytes_AS_STRING(all);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *piece = PyList_GET_ITEM(pieces, i);
        memcpy(to, PyBytes_AS_STRING(piece), (size_t)PyBytes_GET_SIZE(piece));
        to += PyBytes_GET_SIZE(piece);
    }
    return all;
}

/* Writes what the client gets of the chunks relayed here (one write, pausing when the writer says so). */
static int write_out(ChunkReader *self, PyObject *out) {
    PyObject *now = PyObject_CallNoArgs(self->clock);
    if (now == NULL) {
        return -1;
    }
    self->last = PyFloat_AsDouble(now);
    Py_DECREF(now);
    if (self->last == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    PyObject *taken = PyObject_Vectorcall(self->write, &out, 1, NULL);
    if (taken == NULL) {
        return -1;
    }
    int more = PyObject_IsTrue(taken);
    Py_DECREF(taken);
    if (more < 0) {
        return -1;
    }
    if (!more) {
        PyObject *paused = PyObject_CallNoArgs(self->pause);
        if (paused == NULL) {
            return -1;
        }
        Py_DECREF(paused);
    }
    return 0;
}

/* Relays the whole chunks at the start of `data` that the scan takes, in one write; `*consumed` is their length.
 * Under load an upstream's events queue up in its socket, and one read holds several of a stream's chunks. */
static int relay_chunks(ChunkReader *self, PyObject *data, Py_ssize_t *consumed) {
    const char *bytes = PyBytes_AS_STRING(data);
    Py_ssize_t length = PyBytes_GET_SIZE(data);
    Py_ssize_t at = 0;
    PyObject *pieces = PyList_New(0); /* the chunks relayed, as the client gets them */
    if (pieces == NULL) {
        return -1;
    }
    while (at < length) {
        Py_ssize_t start, size;
        Py_ssize_t end = chunk_at(bytes + at, length - at, &start, &size);
        if (end < 0) {
            break;
        }
        PyObject *chunk = relayed_chunk(self, data, at, end, start, size);
        if (chunk == NULL) {
            goto error;
        }
        if (chunk == Py_None) {
            Py_DECREF(chunk);
            break;
        }
        int appended = PyList_Append(pieces, chunk);
        Py_DECREF(chunk);
        if (appended < 0) {
            goto error;
        }
        at += end;
    }
    *consumed = at;
    Py_ssize_t count = PyList_GET_SIZE(pieces);
    if (count > 0) {
        PyObject *out = count == 1 ? Py_NewRef(PyList_GET_ITEM(pieces, 0)) : joined(pieces);
        if (out == NULL) {
            goto error;
        }
        int written = write_out(self, out);
        Py_DECREF(out);
        if (written < 0) {
            goto error;
        }
    }
    Py_DECREF(pieces);
    return 0;
error:
    Py_DECREF(pieces);
    return -1;
}

static PyObject *reader_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    ChunkReader *self = (ChunkReader *)op;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "ChunkReader takes one bytes argument");
        return NULL;
    }
    PyObject *data = args[0];
    PyObject *rest = data;
    if (self->synced) {
        Py_ssize_t consumed = 0;
        if (relay_chunks(self, data, &consumed) < 0) {
            /* What the parser's callbacks would have raised: the connection fails with it. */
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            PyErr_NormalizeException(&type, &value, &traceback);
            if (traceback != NULL) {
                PyException_SetTraceback(value, traceback);
            }
            PyObject *failed = PyObject_CallOneArg(self->fail, value);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
            if (failed == NULL) {
                return NULL;
            }
            Py_DECREF(failed);
            Py_RETURN_NONE;
        }
        if (consumed > 0 && consumed == PyBytes_GET_SIZE(data)) {
            Py_RETURN_NONE;
        }
        if (consumed > 0) {
            /* The parser stood between chunks before the ones relayed here, and so it does after them. */
            rest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + consumed, PyBytes_GET_SIZE(data) - consumed);
            if (rest == NULL) {
                return NULL;
            }
        }
    }
    PyObject *boundary = PyObject_Vectorcall(self->parse, &rest, 1, NULL);
    if (rest != data) {
        Py_DECREF(rest);
    }
    if (boundary == NULL) {
        return NULL;
    }
    int synced = PyObject_IsTrue(boundary);
    Py_DECREF(boundary);
    if (synced < 0) {
        return NULL;
    }
    self->synced = synced;
    Py_RETURN_NONE;
}

static int reader_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    ChunkReader *self = (ChunkReader *)op;
    static char *names[] = {"scan", "write", "pause", "parse", "fail", "clock", "synced", NULL};
    PyObject *scan, *write, *pause, *parse, *fail, *clock;
    int synced;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOp", names, &scan, &write, &pause, &parse, &fail, &clock,
                                     &synced)) {
        return -1;
    }
    PyObject *callables[] = {scan, write, pause, parse, fail, clock};
    for (size_t i = 0; i < sizeof callables / sizeof callables[0]; i++) {
        if (!PyCallable_Check(callables[i])) {
            PyErr_Format(PyExc_TypeError, "ChunkReader's %s must be callable", names[i]);
            return -1;
        }
    }
    Py_XSETREF(self->scan, Py_NewRef(scan));
    Py_XSETREF(self->write, Py_NewRef(write));
    Py_XSETREF(self->pause, Py_NewRef(pause));
    Py_XSETREF(self->parse, Py_NewRef(parse));
    Py_XSETREF(self->fail, Py_NewRef(fail));
    Py_XSETREF(self->clock, Py_NewRef(clock));
    self->synced = synced;
    return 0;
}

static PyObject *reader_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    ChunkReader *self = (ChunkReader *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->vectorcall = reader_call;
    }
    return (PyObject *)self;
}

static int reader_traverse(PyObject *op, visitproc visit, void *arg) {
    ChunkReader *self = (ChunkReader *)op;
    Py_VISIT(self->scan);
    Py_VISIT(self->write);
    Py_VISIT(self->pause);
    Py_VISIT(self->parse);
    Py_VISIT(self->fail);
    Py_VISIT(self->clock);
    return 0;
}

static int reader_clear(PyObject *op) {
    ChunkReader *self = (ChunkReader *)op;
    Py_CLEAR(self->scan);
    Py_CLEAR(self->write);
    Py_CLEAR(self->pause);
    Py_CLEAR(self->parse);
    Py_CLEAR(self->fail);
    Py_CLEAR(self->clock);
    return 0;
}

static void reader_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    reader_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyMemberDef reader_members[] = {
    {"last", T_DOUBLE, offsetof(ChunkReader, last), READONLY, "the clock's time of the last read relayed here"},
    {"synced", T_BOOL, offsetof(ChunkReader, synced), 0, "whether the parser stands between chunks"},
    {NULL},
};

static PyTypeObject ChunkReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "llmrelay.providers._chunkreader.ChunkReader",
    .tp_doc = PyDoc_STR("ChunkReader(scan, write, pause, parse, fail, clock, synced): an upstream connection's data "
                        "callback for a chunked reply; whole chunks the scan takes are written, the rest parsed."),
    .tp_basicsize = sizeof(ChunkReader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = reader_new,
    .tp_init = reader_init,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(ChunkReader, vectorcall),
    .tp_members = reader_members,
    .tp_traverse = reader_traverse,
    .tp_clear = reader_clear,
    .tp_dealloc = reader_dealloc,
};

static struct PyModuleDef chunkreader_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "llmrelay.providers._chunkreader",
    .m_doc = PyDoc_STR("An upstream's chunked reply read a whole chunk at a time (see connections.py)."),
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__chunkreader(void) {
    if (PyType_Ready(&ChunkReaderType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&chunkreader_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "ChunkReader", (PyObject *)&ChunkReaderType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
