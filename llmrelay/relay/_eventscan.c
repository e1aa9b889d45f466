/* The usual event of an OpenAI stream relayed to an OpenAI client, in one compiled call.
 *
 * OneLinePassthrough(events, strip_null_usage, secrets, partial)(data) is what EventRelay.feed and
 * OpenAIStreamTap.feed (llmrelay/relay/streaming.py, llmrelay/formats/openai.py) together do with a read that is
 * one whole one-line event carrying no usage, while the relay's splitter holds no part of an event (`partial`, its
 * buffer, is empty): the event (without `,"usage":null` when strip_null_usage), appended to `events`.
 * For any other read it returns None and changes nothing, and the Python path takes the read: several events or
 * part of one, CRLF framing, `[DONE]`, a usage object, a channel secret, a read after part of an event. The Python path is the reference; a test
 * feeds both the same reads (tests/test_eventscan.py).
 *
 * Why: a bytes method called from Python (find, startswith, partition) costs 1,200-2,000 instructions on a
 * 250-byte event, most of it the call; the three searches, the calls between them and the checks cost ~10,000
 * instructions per event in CPython 3.11 (bench/relay_instructions.py), this call a few hundred.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <string.h>

static const char NULL_USAGE[] = ",\"usage\":null";
#define NULL_USAGE_LEN (sizeof(NULL_USAGE) - 1)
static const char USAGE_KEY[] = "\"usage\"";
#define USAGE_KEY_LEN (sizeof(USAGE_KEY) - 1)

typedef struct {
    PyObject_HEAD
    PyObject *events;  /* list: the relayed events, kept by the tap for counting */
    PyObject *secrets; /* tuple of bytes */
    PyObject *partial; /* bytearray: the splitter's unfinished event */
    int strip_null_usage;
    vectorcallfunc vectorcall;
} OneLinePassthrough;

static const char *find_bytes(const char *haystack, Py_ssize_t size, const char *needle, Py_ssize_t length) {
    if (length == 0 || length > size) {
        return NULL;
    }
    return memmem(haystack, (size_t)size, needle, (size_t)length);
}

/* Whether the value after a `"usage"` key at `key` is JSON null: blanks and the colon skipped, as the tap does. */
static int usage_is_null(const char *data, Py_ssize_t size, const char *key) {
    const char *p = key + USAGE_KEY_LEN;
    const char *end = data + size;
    while (p < end && (*p == ' ' || *p == '\t' || *p == ':')) {
        p++;
    }
    return end - p >= 4 && memcmp(p, "null", 4) == 0;
}

static PyObject *without_null_usage(const char *data, Py_ssize_t size) {
    /* `data` with every `,"usage":null` removed (bytes.replace's result). */
    Py_ssize_t count = 0;
    const char *at = data;
    const char *end = data + size;
    while ((at = find_bytes(at, end - at, NULL_USAGE, NULL_USAGE_LEN)) != NULL) {
        count++;
        at += NULL_USAGE_LEN;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, size - count * (Py_ssize_t)NULL_USAGE_LEN);
    if (out == NULL) {
        return NULL;
    }
    char *write = PyBytes_AS_STRING(out);
    const char *from = data;
    while ((at = find_bytes(from, end - from, NULL_USAGE, NULL_USAGE_LEN)) != NULL) {
        memcpy(write, from, (size_t)(at - from));
        write += at - from;
        from = at + NULL_USAGE_LEN;
    }
    memcpy(write, from, (size_t)(end - from));
    return out;
}

static int holds_a_secret(OneLinePassthrough *self, PyObject *event) {
    const char *data = PyBytes_AS_STRING(event);
    Py_ssize_t size = PyBytes_GET_SIZE(event);
    Py_ssize_t count = PyTuple_GET_SIZE(self->secrets);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *secret = PyTuple_GET_ITEM(self->secrets, i);
        if (find_bytes(data, size, PyBytes_AS_STRING(secret), PyBytes_GET_SIZE(secret)) != NULL) {
            return 1;
        }
    }
    return 0;
}

static PyObject *passthrough_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    OneLinePassthrough *self = (OneLinePassthrough *)op;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "OneLinePassthrough takes one bytes argument");
        return NULL;
    }
    PyObject *data = args[0];
    if (PyByteArray_GET_SIZE(self->partial) != 0) {
        Py_RETURN_NONE;
    }
    const char *bytes = PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    Py_ssize_t last = size - 1;
    /* One whole event of one line: its first line feed is its second-last byte, with no CR before it. */
    if (last <= 1 || bytes[last] != '\n' || bytes[last - 2] == '\r') {
        Py_RETURN_NONE;
    }
    const char *first_lf = memchr(bytes, '\n', (size_t)size);
    if (first_lf != bytes + last - 1) {
        Py_RETURN_NONE;
    }
    if ((size >= 12 && memcmp(bytes, "data: [DONE]", 12) == 0) || (size >= 11 && memcmp(bytes, "data:[DONE]", 11) == 0)) {
        Py_RETURN_NONE;
    }
    PyObject *out;
    int compact_null = find_bytes(bytes, size, NULL_USAGE, NULL_USAGE_LEN) != NULL;
    if (self->strip_null_usage && compact_null) {
        out = without_null_usage(bytes, size);
        if (out == NULL) {
            return NULL;
        }
    } else {
        if (!compact_null) {
            const char *key = find_bytes(bytes, size, USAGE_KEY, USAGE_KEY_LEN);
            if (key != NULL && !usage_is_null(bytes, size, key)) {
                Py_RETURN_NONE; /* a usage object: the tap reads it */
            }
        }
        out = Py_NewRef(data);
    }
    if (holds_a_secret(self, out)) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    if (PyList_Append(self->events, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static int passthrough_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    OneLinePassthrough *self = (OneLinePassthrough *)op;
    static char *names[] = {"events", "strip_null_usage", "secrets", "partial", NULL};
    PyObject *events, *secrets, *partial;
    int strip;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!pO!O!", names, &PyList_Type, &events, &strip, &PyTuple_Type,
                                     &secrets, &PyByteArray_Type, &partial)) {
        return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(secrets);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(secrets, i))) {
            PyErr_SetString(PyExc_TypeError, "secrets must be a tuple of bytes");
            return -1;
        }
    }
    Py_XSETREF(self->events, Py_NewRef(events));
    Py_XSETREF(self->secrets, Py_NewRef(secrets));
    Py_XSETREF(self->partial, Py_NewRef(partial));
    self->strip_null_usage = strip;
    return 0;
}

static PyObject *passthrough_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    OneLinePassthrough *self = (OneLinePassthrough *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->vectorcall = passthrough_call;
    }
    return (PyObject *)self;
}

static int passthrough_traverse(PyObject *op, visitproc visit, void *arg) {
    OneLinePassthrough *self = (OneLinePassthrough *)op;
    Py_VISIT(self->events);
    Py_VISIT(self->secrets);
    Py_VISIT(self->partial);
    return 0;
}

static int passthrough_clear(PyObject *op) {
    OneLinePassthrough *self = (OneLinePassthrough *)op;
    Py_CLEAR(self->events);
    Py_CLEAR(self->secrets);
    Py_CLEAR(self->partial);
    return 0;
}

static void passthrough_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    passthrough_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyTypeObject OneLinePassthroughType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "llmrelay.relay._eventscan.OneLinePassthrough",
    .tp_doc = PyDoc_STR("OneLinePassthrough(events, strip_null_usage, secrets, partial): called with a read, the "
                        "event to write (kept in events) when it is one whole one-line event the OpenAI tap passes "
                        "and partial is empty, else None."),
    .tp_basicsize = sizeof(OneLinePassthrough),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = passthrough_new,
    .tp_init = passthrough_init,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(OneLinePassthrough, vectorcall),
    .tp_traverse = passthrough_traverse,
    .tp_clear = passthrough_clear,
    .tp_dealloc = passthrough_dealloc,
};

static struct PyModuleDef eventscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "llmrelay.relay._eventscan",
    .m_doc = PyDoc_STR("The usual OpenAI stream event, relayed in one compiled call (see streaming.py)."),
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__eventscan(void) {
    if (PyType_Ready(&OneLinePassthroughType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&eventscan_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "OneLinePassthrough", (PyObject *)&OneLinePassthroughType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
