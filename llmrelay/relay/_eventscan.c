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

/* Whether `event` holds one of `secrets` (a tuple of bytes), which the relay's Python path scrubs. */
static int holds_a_secret(PyObject *secrets, PyObject *event) {
    const char *data = PyBytes_AS_STRING(event);
    Py_ssize_t size = PyBytes_GET_SIZE(event);
    Py_ssize_t count = PyTuple_GET_SIZE(secrets);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *secret = PyTuple_GET_ITEM(secrets, i);
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
    if (holds_a_secret(self->secrets, out)) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    if (PyList_Append(self->events, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static int check_secrets(PyObject *secrets) {
    Py_ssize_t count = PyTuple_GET_SIZE(secrets);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(secrets, i))) {
            PyErr_SetString(PyExc_TypeError, "secrets must be a tuple of bytes");
            return -1;
        }
    }
    return 0;
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
    if (check_secrets(secrets) < 0) {
        return -1;
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

/* ------------------------------------------------------------------ Anthropic's text deltas, to OpenAI chunks
 *
 * AnthropicTextDeltas(texts, secrets, partial)(data) is what EventRelay.feed and a TranslatingTap from Anthropic's
 * stream to an OpenAI client (llmrelay/relay/streaming.py) together do with a read that is one whole text delta in
 * the form Anthropic sends,
 *
 *     event: content_block_delta\ndata: {"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"T"}}\n\n
 *
 * while the relay's splitter holds no part of an event: `prefix + T + suffix`, where (prefix, suffix), the
 * `template` the tap sets, is the client's event around the text of such a delta in the stream's current state
 * (None: the tap has no such event now). T is copied, not decoded: it is taken only when the JSON encoder would
 * write its text back as it came (no escapes but \" \\ \n \r \t \b \f, no control character, valid UTF-8), so
 * the event is the one the Python path writes, byte for byte. T is appended to `texts`, as JSON, for the tap's
 * counting. Anything else -- another event, another form, an empty or differently escaped text, a secret in the
 * event -- gives None, and the Python path takes the read; tests/test_eventscan.py feeds both the same reads.
 *
 * Why: the Python path decodes each event's JSON into dicts, builds the internal chunk and encodes it again,
 * ~45,000 instructions per event against ~12,000 for the passthrough (bench/relay_instructions.py).
 */

static const char DELTA_HEAD[] = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":";
#define DELTA_HEAD_LEN (sizeof(DELTA_HEAD) - 1)
static const char DELTA_TEXT[] = ",\"delta\":{\"type\":\"text_delta\",\"text\":\"";
#define DELTA_TEXT_LEN (sizeof(DELTA_TEXT) - 1)
static const char DELTA_TAIL[] = "\"}}\n\n";
#define DELTA_TAIL_LEN (sizeof(DELTA_TAIL) - 1)
#define MAX_INDEX_DIGITS 9

typedef struct {
    PyObject_HEAD
    PyObject *texts;    /* list: each relayed text, as JSON string content (bytes) */
    PyObject *secrets;  /* tuple of bytes */
    PyObject *partial;  /* bytearray: the splitter's unfinished event */
    PyObject *template; /* (prefix, suffix) bytes, or None */
    vectorcallfunc vectorcall;
} AnthropicTextDeltas;

/* The length of the UTF-8 sequence at `p` (at most `left` bytes) when it is a valid one of 2-4 bytes, else 0:
 * no overlong form, no surrogate, nothing past U+10FFFF (what a strict decoder, orjson's, accepts). */
static Py_ssize_t utf8_sequence(const unsigned char *p, Py_ssize_t left) {
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF) {
        return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) {
            return 0;
        }
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F)) {
            return 0; /* overlong, or a surrogate */
        }
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) {
            return 0;
        }
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F)) {
            return 0; /* overlong, or past U+10FFFF */
        }
        return 4;
    }
    return 0;
}

/* Whether `text` (`size` bytes, the inside of a JSON string) is one the JSON encoder writes back unchanged. */
static int copied_as_is(const unsigned char *text, Py_ssize_t size) {
    Py_ssize_t i = 0;
    while (i < size) {
        unsigned char c = text[i];
        if (c == '\\') {
            if (i + 1 >= size || strchr("\"\\nrtbf", text[i + 1]) == NULL || text[i + 1] == '\0') {
                return 0; /* \/ and \uXXXX are written otherwise */
            }
            i += 2;
        } else if (c == '"' || c < 0x20) {
            return 0;
        } else if (c < 0x80) {
            i++;
        } else {
            Py_ssize_t length = utf8_sequence(text + i, size - i);
            if (length == 0) {
                return 0;
            }
            i += length;
        }
    }
    return 1;
}

/* The text of `data` when it is one whole text delta in Anthropic's form (at `*text`, `*size` bytes), else 0. */
static int text_delta(const char *data, Py_ssize_t length, const char **text, Py_ssize_t *size) {
    if (length < (Py_ssize_t)(DELTA_HEAD_LEN + 1 + DELTA_TEXT_LEN + DELTA_TAIL_LEN) ||
        memcmp(data, DELTA_HEAD, DELTA_HEAD_LEN) != 0 ||
        memcmp(data + length - DELTA_TAIL_LEN, DELTA_TAIL, DELTA_TAIL_LEN) != 0) {
        return 0;
    }
    const char *p = data + DELTA_HEAD_LEN;
    const char *end = data + length - DELTA_TAIL_LEN;
    const char *digits = p;
    while (p < end && p - digits <= MAX_INDEX_DIGITS && *p >= '0' && *p <= '9') {
        p++;
    }
    if (p == digits || p - digits > MAX_INDEX_DIGITS || (*digits == '0' && p - digits > 1)) {
        return 0; /* JSON has no leading zeros */
    }
    if (end - p < (Py_ssize_t)DELTA_TEXT_LEN || memcmp(p, DELTA_TEXT, DELTA_TEXT_LEN) != 0) {
        return 0;
    }
    p += DELTA_TEXT_LEN;
    *text = p;
    *size = end - p;
    return 1;
}

static PyObject *deltas_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    AnthropicTextDeltas *self = (AnthropicTextDeltas *)op;
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "AnthropicTextDeltas takes one bytes argument");
        return NULL;
    }
    PyObject *data = args[0];
    if (self->template == Py_None || PyByteArray_GET_SIZE(self->partial) != 0) {
        Py_RETURN_NONE;
    }
    const char *text;
    Py_ssize_t size;
    if (!text_delta(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), &text, &size) || size == 0 ||
        !copied_as_is((const unsigned char *)text, size)) {
        Py_RETURN_NONE; /* an empty text gives the client nothing: the Python path says so */
    }
    PyObject *prefix = PyTuple_GET_ITEM(self->template, 0);
    PyObject *suffix = PyTuple_GET_ITEM(self->template, 1);
    Py_ssize_t before = PyBytes_GET_SIZE(prefix);
    Py_ssize_t after = PyBytes_GET_SIZE(suffix);
    PyObject *out = PyBytes_FromStringAndSize(NULL, before + size + after);
    if (out == NULL) {
        return NULL;
    }
    char *to = PyBytes_AS_STRING(out);
    memcpy(to, PyBytes_AS_STRING(prefix), (size_t)before);
    memcpy(to + before, text, (size_t)size);
    memcpy(to + before + size, PyBytes_AS_STRING(suffix), (size_t)after);
    if (holds_a_secret(self->secrets, out)) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    PyObject *kept = PyBytes_FromStringAndSize(text, size);
    if (kept == NULL || PyList_Append(self->texts, kept) < 0) {
        Py_XDECREF(kept);
        Py_DECREF(out);
        return NULL;
    }
    Py_DECREF(kept);
    return out;
}

static PyObject *deltas_get_template(PyObject *op, void *closure) {
    return Py_NewRef(((AnthropicTextDeltas *)op)->template);
}

static int deltas_set_template(PyObject *op, PyObject *value, void *closure) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "the template cannot be deleted (set None)");
        return -1;
    }
    if (value != Py_None && !(PyTuple_CheckExact(value) && PyTuple_GET_SIZE(value) == 2 &&
                              PyBytes_CheckExact(PyTuple_GET_ITEM(value, 0)) &&
                              PyBytes_CheckExact(PyTuple_GET_ITEM(value, 1)))) {
        PyErr_SetString(PyExc_TypeError, "the template is (prefix, suffix) bytes, or None");
        return -1;
    }
    Py_XSETREF(((AnthropicTextDeltas *)op)->template, Py_NewRef(value));
    return 0;
}

static PyGetSetDef deltas_getset[] = {
    {"template", deltas_get_template, deltas_set_template,
     "the client's event around a text delta's text: (prefix, suffix) bytes, or None", NULL},
    {NULL},
};

static int deltas_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    AnthropicTextDeltas *self = (AnthropicTextDeltas *)op;
    static char *names[] = {"texts", "secrets", "partial", NULL};
    PyObject *texts, *secrets, *partial;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O!O!", names, &PyList_Type, &texts, &PyTuple_Type, &secrets,
                                     &PyByteArray_Type, &partial)) {
        return -1;
    }
    if (check_secrets(secrets) < 0) {
        return -1;
    }
    Py_XSETREF(self->texts, Py_NewRef(texts));
    Py_XSETREF(self->secrets, Py_NewRef(secrets));
    Py_XSETREF(self->partial, Py_NewRef(partial));
    Py_XSETREF(self->template, Py_NewRef(Py_None));
    return 0;
}

static PyObject *deltas_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    AnthropicTextDeltas *self = (AnthropicTextDeltas *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->vectorcall = deltas_call;
        self->template = Py_NewRef(Py_None);
    }
    return (PyObject *)self;
}

static int deltas_traverse(PyObject *op, visitproc visit, void *arg) {
    AnthropicTextDeltas *self = (AnthropicTextDeltas *)op;
    Py_VISIT(self->texts);
    Py_VISIT(self->secrets);
    Py_VISIT(self->partial);
    Py_VISIT(self->template);
    return 0;
}

static int deltas_clear(PyObject *op) {
    AnthropicTextDeltas *self = (AnthropicTextDeltas *)op;
    Py_CLEAR(self->texts);
    Py_CLEAR(self->secrets);
    Py_CLEAR(self->partial);
    Py_CLEAR(self->template);
    return 0;
}

static void deltas_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    deltas_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyTypeObject AnthropicTextDeltasType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "llmrelay.relay._eventscan.AnthropicTextDeltas",
    .tp_doc = PyDoc_STR("AnthropicTextDeltas(texts, secrets, partial): called with a read, the OpenAI client's event "
                        "for it when it is one whole Anthropic text delta and a template is set, else None."),
    .tp_basicsize = sizeof(AnthropicTextDeltas),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = deltas_new,
    .tp_init = deltas_init,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(AnthropicTextDeltas, vectorcall),
    .tp_getset = deltas_getset,
    .tp_traverse = deltas_traverse,
    .tp_clear = deltas_clear,
    .tp_dealloc = deltas_dealloc,
};

static struct PyModuleDef eventscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "llmrelay.relay._eventscan",
    .m_doc = PyDoc_STR("The usual stream events, relayed in one compiled call each (see streaming.py)."),
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__eventscan(void) {
    if (PyType_Ready(&OneLinePassthroughType) < 0 || PyType_Ready(&AnthropicTextDeltasType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&eventscan_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "OneLinePassthrough", (PyObject *)&OneLinePassthroughType) < 0 ||
        PyModule_AddObjectRef(module, "AnthropicTextDeltas", (PyObject *)&AnthropicTextDeltasType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
