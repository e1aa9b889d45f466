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
    PyObject *usage;    /* GeminiTextDeltas: the last relayed event's usageMetadata (JSON bytes), or None */
    PyObject *model;    /* GeminiTextDeltas: the modelVersion the template holds (JSON string content bytes) */
    vectorcallfunc vectorcall;
} TextDeltas; /* AnthropicTextDeltas and GeminiTextDeltas: the same object, each type with its own call */

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

/* The client's event for a text (the template around it), the text kept in `texts`; None (a new reference) when
 * that event would hold a secret, for the Python path to scrub. */
static PyObject *templated(TextDeltas *self, const char *text, Py_ssize_t size) {
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

/* Whether a call may take its read at all: one bytes argument, a template set, no part of an event pending. */
static int may_take(TextDeltas *self, PyObject *const *args, size_t nargsf, PyObject *kwnames, const char *name) {
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL || !PyBytes_CheckExact(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s takes one bytes argument", name);
        return -1;
    }
    return self->template != Py_None && PyByteArray_GET_SIZE(self->partial) == 0;
}

static PyObject *anthropic_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    TextDeltas *self = (TextDeltas *)op;
    int may = may_take(self, args, nargsf, kwnames, "AnthropicTextDeltas");
    if (may <= 0) {
        return may < 0 ? NULL : Py_NewRef(Py_None);
    }
    const char *text;
    Py_ssize_t size;
    if (!text_delta(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), &text, &size) || size == 0 ||
        !copied_as_is((const unsigned char *)text, size)) {
        Py_RETURN_NONE; /* an empty text gives the client nothing: the Python path says so */
    }
    return templated(self, text, size);
}


/* ------------------------------------------------------------------ Gemini's text responses, to OpenAI chunks
 *
 * GeminiTextDeltas(texts, secrets, partial)(data) is, for a Gemini stream (alt=sse) to an OpenAI client, what
 * AnthropicTextDeltas is for Anthropic's: the client's event for a read that is one whole GenerateContentResponse
 * holding nothing but one piece of text of the first candidate, with the usage so far,
 *
 *     data: {"candidates": [{"content": {"parts": [{"text": "T"}],"role": "model"},"index": 0}],
 *            "usageMetadata": {...},"modelVersion": "M","responseId": "R"}\r\n\r\n      (one line)
 *
 * in any order of the members, with spaces or none between the tokens: `prefix + T + suffix`. The event's
 * usageMetadata is kept as it came (`usage`), for the decoder to read once the stream ends (Gemini's usage is
 * cumulative). Taken only when nothing in the event could make the Python path (GeminiToChatStream.feed) give
 * another chunk or another state: no member but these, each once; one candidate, index 0 or none, one part with
 * only a non-empty text the encoder writes back as it came; no finishReason; the modelVersion, if any, the one the
 * template holds (`model`); the usage and the other strings in a plain subset of JSON the Python path's decoder
 * reads the same (ASCII names and strings without escapes, integers, nesting at most MAX_DEPTH deep). Anything
 * else gives None, and the Python path takes the read (tests/test_text_deltas.py feeds both the same streams).
 *
 * Why: each Gemini event carries its usage, so its Python path decodes and re-encodes every event: ~84,000
 * instructions per event against ~12,000 for the passthrough (bench/relay_instructions.py).
 */

#define MAX_DEPTH 8

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

static void skip_spaces(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) {
        c->p++;
    }
}

static int take(Cursor *c, unsigned char expected) {
    skip_spaces(c);
    if (c->p < c->end && *c->p == expected) {
        c->p++;
        return 1;
    }
    return 0;
}

static int plain_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '/' || c == ':';
}

/* A string of plain bytes (no escape, ASCII), its content at `*start`, `*size` bytes. */
static int plain_string(Cursor *c, const unsigned char **start, Py_ssize_t *size) {
    if (!take(c, '"')) {
        return 0;
    }
    const unsigned char *from = c->p;
    while (c->p < c->end && plain_byte(*c->p)) {
        c->p++;
    }
    if (c->p >= c->end || *c->p != '"') {
        return 0;
    }
    *start = from;
    *size = c->p - from;
    c->p++;
    return 1;
}

static int named(const unsigned char *name, Py_ssize_t size, const char *expected) {
    return (size_t)size == strlen(expected) && memcmp(name, expected, (size_t)size) == 0;
}

/* A member's name and its colon. */
static int member_name(Cursor *c, const unsigned char **name, Py_ssize_t *size) {
    return plain_string(c, name, size) && take(c, ':');
}

/* After a member: 1 at a comma (another member follows), 0 at the closing brace, -1 otherwise. */
static int next_member(Cursor *c) {
    if (take(c, ',')) {
        return 1;
    }
    return take(c, '}') ? 0 : -1;
}

/* A value in the plain subset: plain strings, integers without a leading zero, true, false, null, and arrays and
 * objects of them (member names plain strings, no name twice is not checked: orjson keeps the last, as
 * Python's json does, and the decoder reads it the same), nested at most MAX_DEPTH deep. */
static int plain_value(Cursor *c, int depth) {
    skip_spaces(c);
    if (c->p >= c->end || depth > MAX_DEPTH) {
        return 0;
    }
    const unsigned char *start;
    Py_ssize_t size;
    unsigned char first = *c->p;
    if (first == '"') {
        return plain_string(c, &start, &size);
    }
    if (first == '-' || (first >= '0' && first <= '9')) {
        c->p += first == '-';
        const unsigned char *digits = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            c->p++;
        }
        Py_ssize_t count = c->p - digits;
        return count > 0 && count <= 18 && !(*digits == '0' && count > 1) &&
               !(c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'));
    }
    static const char *const literals[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t length = strlen(literals[i]);
        if ((size_t)(c->end - c->p) >= length && memcmp(c->p, literals[i], length) == 0) {
            c->p += length;
            return 1;
        }
    }
    if (first == '[') {
        c->p++;
        if (take(c, ']')) {
            return 1;
        }
        do {
            if (!plain_value(c, depth + 1)) {
                return 0;
            }
        } while (take(c, ','));
        return take(c, ']');
    }
    if (first == '{') {
        c->p++;
        if (take(c, '}')) {
            return 1;
        }
        int more;
        do {
            if (!member_name(c, &start, &size) || !plain_value(c, depth + 1)) {
                return 0;
            }
        } while ((more = next_member(c)) == 1);
        return more == 0;
    }
    return 0;
}

/* The text string of a part: its content (not decoded) at `*text`, `*size` bytes. */
static int text_string(Cursor *c, const unsigned char **text, Py_ssize_t *size) {
    if (!take(c, '"')) {
        return 0;
    }
    const unsigned char *from = c->p;
    while (c->p < c->end && *c->p != '"') {
        c->p += *c->p == '\\' ? 2 : 1;
    }
    if (c->p >= c->end) {
        return 0;
    }
    *text = from;
    *size = c->p - from;
    c->p++;
    return 1;
}

/* `{"parts": [{"text": "T"}], "role": "..."}`, in either order, each once; role is not read. */
static int candidate_content(Cursor *c, const unsigned char **text, Py_ssize_t *size) {
    const unsigned char *name, *role;
    Py_ssize_t length, role_size;
    int parts = 0, roles = 0, more;
    if (!take(c, '{')) {
        return 0;
    }
    do {
        if (!member_name(c, &name, &length)) {
            return 0;
        }
        if (named(name, length, "parts") && !parts++) {
            if (!take(c, '[') || !take(c, '{') || !member_name(c, &name, &length) || !named(name, length, "text") ||
                !text_string(c, text, size) || !take(c, '}') || !take(c, ']')) {
                return 0;
            }
        } else if (named(name, length, "role") && !roles++) {
            if (!plain_string(c, &role, &role_size)) {
                return 0;
            }
        } else {
            return 0;
        }
    } while ((more = next_member(c)) == 1);
    return more == 0 && parts;
}

/* `[{"content": {...}, "index": 0}]`: one candidate, its index 0 or left out, nothing else. */
static int only_candidate(Cursor *c, const unsigned char **text, Py_ssize_t *size) {
    const unsigned char *name;
    Py_ssize_t length;
    int content = 0, index = 0, more;
    if (!take(c, '[') || !take(c, '{')) {
        return 0;
    }
    do {
        if (!member_name(c, &name, &length)) {
            return 0;
        }
        if (named(name, length, "content") && !content++) {
            if (!candidate_content(c, text, size)) {
                return 0;
            }
        } else if (named(name, length, "index") && !index++) {
            if (!take(c, '0') || (c->p < c->end && ((*c->p >= '0' && *c->p <= '9') || *c->p == '.' ||
                                                    *c->p == 'e' || *c->p == 'E'))) {
                return 0;
            }
        } else {
            return 0;
        }
    } while ((more = next_member(c)) == 1);
    return more == 0 && content && take(c, ']');
}

typedef struct {
    const unsigned char *text, *usage, *model;
    Py_ssize_t text_size, usage_size, model_size; /* usage and model: 0 where the event has none */
} GeminiText;

/* Whether `data` is one whole response of one text (see above), its parts in `*found`. */
static int gemini_text(const char *data, Py_ssize_t length, GeminiText *found) {
    const unsigned char *bytes = (const unsigned char *)data;
    Py_ssize_t end = length;
    if (length >= 4 && memcmp(data + length - 4, "\r\n\r\n", 4) == 0) {
        end = length - 4;
    } else if (length >= 2 && memcmp(data + length - 2, "\n\n", 2) == 0) {
        end = length - 2;
    } else {
        return 0;
    }
    if (end < 5 || memcmp(data, "data:", 5) != 0 || memchr(data, '\n', (size_t)end) != NULL ||
        memchr(data, '\r', (size_t)end) != NULL) {
        return 0; /* one line: the splitter would see another event, or other lines, in the rest */
    }
    Cursor c = {bytes + 5, bytes + end};
    const unsigned char *name, *ignored;
    Py_ssize_t size, ignored_size;
    int candidates = 0, usage = 0, model = 0, response = 0, more;
    memset(found, 0, sizeof(*found));
    if (!take(&c, '{')) {
        return 0;
    }
    do {
        if (!member_name(&c, &name, &size)) {
            return 0;
        }
        if (named(name, size, "candidates") && !candidates++) {
            if (!only_candidate(&c, &found->text, &found->text_size)) {
                return 0;
            }
        } else if (named(name, size, "usageMetadata") && !usage++) {
            skip_spaces(&c);
            found->usage = c.p;
            if (c.p >= c.end || *c.p != '{' || !plain_value(&c, 1)) {
                return 0;
            }
            found->usage_size = c.p - found->usage;
        } else if (named(name, size, "modelVersion") && !model++) {
            if (!plain_string(&c, &found->model, &found->model_size)) {
                return 0;
            }
        } else if (named(name, size, "responseId") && !response++) {
            if (!plain_string(&c, &ignored, &ignored_size)) {
                return 0;
            }
        } else {
            return 0;
        }
    } while ((more = next_member(&c)) == 1);
    skip_spaces(&c);
    return more == 0 && candidates && c.p == c.end;
}

static PyObject *gemini_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    TextDeltas *self = (TextDeltas *)op;
    int may = may_take(self, args, nargsf, kwnames, "GeminiTextDeltas");
    if (may <= 0) {
        return may < 0 ? NULL : Py_NewRef(Py_None);
    }
    GeminiText found;
    if (!gemini_text(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), &found) || found.text_size == 0 ||
        !copied_as_is(found.text, found.text_size)) {
        Py_RETURN_NONE;
    }
    if (found.model != NULL && !(found.model_size == PyBytes_GET_SIZE(self->model) &&
                                 memcmp(found.model, PyBytes_AS_STRING(self->model), (size_t)found.model_size) == 0)) {
        Py_RETURN_NONE; /* another model: the Python path changes the stream's, and the template */
    }
    PyObject *usage = NULL;
    if (found.usage != NULL) {
        usage = PyBytes_FromStringAndSize((const char *)found.usage, found.usage_size);
        if (usage == NULL) {
            return NULL;
        }
    }
    PyObject *out = templated(self, (const char *)found.text, found.text_size);
    if (out != NULL && out != Py_None && usage != NULL) {
        Py_SETREF(self->usage, usage);
        return out;
    }
    Py_XDECREF(usage);
    return out;
}

/* ------------------------------------------------------------------ what both types share */

static PyObject *deltas_get_template(PyObject *op, void *closure) {
    return Py_NewRef(((TextDeltas *)op)->template);
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
    Py_XSETREF(((TextDeltas *)op)->template, Py_NewRef(value));
    return 0;
}

static PyObject *deltas_get_usage(PyObject *op, void *closure) {
    return Py_NewRef(((TextDeltas *)op)->usage);
}

static int deltas_set_usage(PyObject *op, PyObject *value, void *closure) {
    if (value != Py_None) {
        PyErr_SetString(PyExc_TypeError, "the usage can only be set to None (the Python path read a newer one)");
        return -1;
    }
    Py_XSETREF(((TextDeltas *)op)->usage, Py_NewRef(Py_None));
    return 0;
}

static PyObject *deltas_get_model(PyObject *op, void *closure) {
    return Py_NewRef(((TextDeltas *)op)->model);
}

static int deltas_set_model(PyObject *op, PyObject *value, void *closure) {
    if (value == NULL || !PyBytes_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "the model is bytes (a JSON string's content)");
        return -1;
    }
    Py_XSETREF(((TextDeltas *)op)->model, Py_NewRef(value));
    return 0;
}

#define TEMPLATE_GETSET                                                                                          \
    {"template", deltas_get_template, deltas_set_template,                                                      \
     "the client's event around a text's text: (prefix, suffix) bytes, or None", NULL}

static PyGetSetDef anthropic_getset[] = {
    TEMPLATE_GETSET,
    {NULL},
};

static PyGetSetDef gemini_getset[] = {
    TEMPLATE_GETSET,
    {"usage", deltas_get_usage, deltas_set_usage,
     "the usageMetadata of the last response relayed here (JSON bytes), or None; set None when a later one was read "
     "elsewhere",
     NULL},
    {"model", deltas_get_model, deltas_set_model, "the modelVersion the template holds, as a JSON string's content",
     NULL},
    {NULL},
};

static int deltas_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    TextDeltas *self = (TextDeltas *)op;
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
    Py_XSETREF(self->usage, Py_NewRef(Py_None));
    return 0;
}

static PyTypeObject GeminiTextDeltasType;

static PyObject *deltas_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    TextDeltas *self = (TextDeltas *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->vectorcall = type == &GeminiTextDeltasType ? gemini_call : anthropic_call;
        self->template = Py_NewRef(Py_None);
        self->usage = Py_NewRef(Py_None);
        self->model = PyBytes_FromStringAndSize(NULL, 0);
        if (self->model == NULL) {
            Py_DECREF(self);
            return NULL;
        }
    }
    return (PyObject *)self;
}

static int deltas_traverse(PyObject *op, visitproc visit, void *arg) {
    TextDeltas *self = (TextDeltas *)op;
    Py_VISIT(self->texts);
    Py_VISIT(self->secrets);
    Py_VISIT(self->partial);
    Py_VISIT(self->template);
    return 0;
}

static int deltas_clear(PyObject *op) {
    TextDeltas *self = (TextDeltas *)op;
    Py_CLEAR(self->texts);
    Py_CLEAR(self->secrets);
    Py_CLEAR(self->partial);
    Py_CLEAR(self->template);
    Py_CLEAR(self->usage);
    Py_CLEAR(self->model);
    return 0;
}

static void deltas_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    deltas_clear(op);
    Py_TYPE(op)->tp_free(op);
}

#define TEXT_DELTAS_TYPE(NAME, DOC, GETSET)                                                                      \
    {                                                                                                            \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "llmrelay.relay._eventscan." NAME,                              \
        .tp_doc = PyDoc_STR(DOC), .tp_basicsize = sizeof(TextDeltas),                                            \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL, .tp_new = deltas_new,  \
        .tp_init = deltas_init, .tp_call = PyVectorcall_Call,                                                    \
        .tp_vectorcall_offset = offsetof(TextDeltas, vectorcall), .tp_getset = GETSET,                           \
        .tp_traverse = deltas_traverse, .tp_clear = deltas_clear, .tp_dealloc = deltas_dealloc,                  \
    }

static PyTypeObject AnthropicTextDeltasType = TEXT_DELTAS_TYPE(
    "AnthropicTextDeltas",
    "AnthropicTextDeltas(texts, secrets, partial): called with a read, the OpenAI client's event for it when it is "
    "one whole Anthropic text delta and a template is set, else None.",
    anthropic_getset);

static PyTypeObject GeminiTextDeltasType = TEXT_DELTAS_TYPE(
    "GeminiTextDeltas",
    "GeminiTextDeltas(texts, secrets, partial): called with a read, the OpenAI client's event for it when it is one "
    "whole Gemini response of one text and a template is set (its usage kept in `usage`), else None.",
    gemini_getset);

static struct PyModuleDef eventscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "llmrelay.relay._eventscan",
    .m_doc = PyDoc_STR("The usual stream events, relayed in one compiled call each (see streaming.py)."),
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__eventscan(void) {
    if (PyType_Ready(&OneLinePassthroughType) < 0 || PyType_Ready(&AnthropicTextDeltasType) < 0 ||
        PyType_Ready(&GeminiTextDeltasType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&eventscan_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "OneLinePassthrough", (PyObject *)&OneLinePassthroughType) < 0 ||
        PyModule_AddObjectRef(module, "AnthropicTextDeltas", (PyObject *)&AnthropicTextDeltasType) < 0 ||
        PyModule_AddObjectRef(module, "GeminiTextDeltas", (PyObject *)&GeminiTextDeltasType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
