/* The writes of streamed response bodies to clients, gathered per turn of the event loop: body_writes.py's
 * GatheredBody and TurnWrites, compiled (that file holds the Python reference and says what they do and why).
 *
 * Why compiled: with token-paced streams every relayed event is one write_chunk, and every turn pushes each body
 * written in it. In Python those were three frames per event (write_chunk, TurnWrites.add, push) and the turn's
 * loop: ~10% of the gateway's CPU with 500 streams (perf), around the kernel's write that does the real work.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <structmember.h>

typedef struct {
    PyObject_HEAD
    PyObject *call_soon; /* the event loop's call_soon */
    PyObject *bodies;    /* the bodies written in this turn, in the order of their first write */
} TurnWrites;

typedef struct {
    PyObject_HEAD
    PyObject *protocol;  /* its on_writable is called when a body that held its writer back has been written */
    PyObject *cycle;     /* uvicorn's request cycle: `disconnected` */
    PyObject *flow;      /* the connection's flow control: `write_paused` */
    PyObject *write;     /* the connection's transport.write */
    TurnWrites *turn;
    PyObject *pending;   /* bytes written in this turn, not yet pushed (NULL: none) */
    Py_ssize_t limit;    /* pending bytes past which write_chunk says stop */
    int held;            /* write_chunk said stop because of the pending bytes, not a full write buffer */
} GatheredBody;

static PyTypeObject TurnWritesType;

static PyObject *str_disconnected, *str_write_paused, *str_on_writable, *str_turn_writes, *str_flow, *str_transport,
    *str_write, *str_call_soon;

/* An attribute's truth: 1, 0, or -1 on an error. */
static int attribute_true(PyObject *owner, PyObject *name) {
    PyObject *value = PyObject_GetAttr(owner, name);
    if (value == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(value);
    Py_DECREF(value);
    return truth;
}

/* ------------------------------------------------------------------ TurnWrites */

static int turn_add(TurnWrites *self, PyObject *body) {
    if (PyList_GET_SIZE(self->bodies) == 0) {
        PyObject *handle = PyObject_CallOneArg(self->call_soon, (PyObject *)self);
        if (handle == NULL) {
            return -1;
        }
        Py_DECREF(handle);
    }
    return PyList_Append(self->bodies, body);
}

static int body_push(GatheredBody *self);

/* The callback at the start of the next turn: push every body written in the last. A body's failed write does not
 * keep the others' chunks back: the first error is raised once all are pushed (the event loop logs it). */
static PyObject *turn_call(PyObject *op, PyObject *args, PyObject *kwargs) {
    TurnWrites *self = (TurnWrites *)op;
    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "TurnWrites takes no arguments");
        return NULL;
    }
    PyObject *fresh = PyList_New(0);
    if (fresh == NULL) {
        return NULL;
    }
    PyObject *bodies = self->bodies;
    self->bodies = fresh;
    PyObject *type = NULL, *value = NULL, *traceback = NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(bodies); i++) {
        if (body_push((GatheredBody *)PyList_GET_ITEM(bodies, i)) < 0 && type == NULL) {
            PyErr_Fetch(&type, &value, &traceback);
        }
        PyErr_Clear();
    }
    Py_DECREF(bodies);
    if (type != NULL) {
        PyErr_Restore(type, value, traceback);
        return NULL;
    }
    Py_RETURN_NONE;
}

static int turn_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    TurnWrites *self = (TurnWrites *)op;
    static char *names[] = {"loop", NULL};
    PyObject *loop;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O", names, &loop)) {
        return -1;
    }
    PyObject *call_soon = PyObject_GetAttr(loop, str_call_soon);
    if (call_soon == NULL) {
        return -1;
    }
    PyObject *bodies = PyList_New(0);
    if (bodies == NULL) {
        Py_DECREF(call_soon);
        return -1;
    }
    Py_XSETREF(self->call_soon, call_soon);
    Py_XSETREF(self->bodies, bodies);
    return 0;
}

static int turn_traverse(PyObject *op, visitproc visit, void *arg) {
    TurnWrites *self = (TurnWrites *)op;
    Py_VISIT(self->call_soon);
    Py_VISIT(self->bodies);
    return 0;
}

static int turn_clear(PyObject *op) {
    TurnWrites *self = (TurnWrites *)op;
    Py_CLEAR(self->call_soon);
    Py_CLEAR(self->bodies);
    return 0;
}

static void turn_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    turn_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyTypeObject TurnWritesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "llmrelay._bodywrites.TurnWrites",
    .tp_doc = PyDoc_STR("TurnWrites(loop): the bodies written during this turn of the event loop, pushed by one "
                        "callback (the object itself) at the start of the next."),
    .tp_basicsize = sizeof(TurnWrites),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = turn_init,
    .tp_call = turn_call,
    .tp_traverse = turn_traverse,
    .tp_clear = turn_clear,
    .tp_dealloc = turn_dealloc,
};

/* ------------------------------------------------------------------ GatheredBody */

/* Whether the writer may go on: 1 (the connection's write buffer is not full), 0, or -1 on an error. */
static int may_go_on(GatheredBody *self) {
    int paused = attribute_true(self->flow, str_write_paused);
    return paused < 0 ? -1 : !paused;
}

static PyObject *body_write_chunk(PyObject *op, PyObject *chunk) {
    GatheredBody *self = (GatheredBody *)op;
    if (!PyBytes_Check(chunk)) {
        PyErr_SetString(PyExc_TypeError, "write_chunk takes bytes");
        return NULL;
    }
    if (self->turn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "GatheredBody.__init__ was not called");
        return NULL;
    }
    int gone = attribute_true(self->cycle, str_disconnected);
    if (gone < 0) {
        return NULL;
    }
    if (gone) {
        Py_RETURN_TRUE;
    }
    if (self->pending == NULL) {
        if (turn_add(self->turn, op) < 0) {
            return NULL;
        }
        self->pending = Py_NewRef(chunk);
    } else {
        PyObject *pending = self->pending;
        self->pending = NULL;
        PyBytes_Concat(&pending, chunk); /* in place when nothing else holds the pending bytes */
        if (pending == NULL) {
            return NULL;
        }
        self->pending = pending;
        if (PyBytes_GET_SIZE(pending) >= self->limit) {
            self->held = 1;
            Py_RETURN_FALSE;
        }
    }
    int go_on = may_go_on(self);
    if (go_on < 0) {
        return NULL;
    }
    return PyBool_FromLong(go_on);
}

static int body_push(GatheredBody *self) {
    PyObject *pending = self->pending;
    if (pending == NULL) {
        return 0;
    }
    self->pending = NULL;
    int gone = attribute_true(self->cycle, str_disconnected);
    if (gone != 0) {
        Py_DECREF(pending);
        return gone < 0 ? -1 : 0; /* a client that left gets nothing */
    }
    PyObject *written = PyObject_CallOneArg(self->write, pending);
    Py_DECREF(pending);
    if (written == NULL) {
        return -1;
    }
    Py_DECREF(written);
    if (!self->held) {
        return 0;
    }
    self->held = 0;
    int go_on = may_go_on(self);
    if (go_on <= 0) {
        return go_on; /* else the protocol's resume_writing says so once the buffer drains */
    }
    PyObject *on_writable = PyObject_GetAttr(self->protocol, str_on_writable);
    if (on_writable == NULL) {
        return -1;
    }
    if (on_writable != Py_None) {
        PyObject *called = PyObject_CallNoArgs(on_writable);
        Py_DECREF(on_writable);
        if (called == NULL) {
            return -1;
        }
        Py_DECREF(called);
        return 0;
    }
    Py_DECREF(on_writable);
    return 0;
}

static PyObject *body_push_method(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    if (body_push((GatheredBody *)op) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static int body_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    GatheredBody *self = (GatheredBody *)op;
    static char *names[] = {"protocol", "cycle", "limit", NULL};
    PyObject *protocol, *cycle;
    Py_ssize_t limit;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOn", names, &protocol, &cycle, &limit)) {
        return -1;
    }
    PyObject *turn = PyObject_GetAttr(protocol, str_turn_writes);
    if (turn == NULL) {
        return -1;
    }
    if (!PyObject_TypeCheck(turn, &TurnWritesType)) {
        Py_DECREF(turn);
        PyErr_SetString(PyExc_TypeError, "the protocol's turn_writes must be a compiled TurnWrites");
        return -1;
    }
    PyObject *flow = PyObject_GetAttr(cycle, str_flow);
    PyObject *transport = flow == NULL ? NULL : PyObject_GetAttr(cycle, str_transport);
    PyObject *write = transport == NULL ? NULL : PyObject_GetAttr(transport, str_write);
    Py_XDECREF(transport);
    if (write == NULL) {
        Py_XDECREF(flow);
        Py_DECREF(turn);
        return -1;
    }
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    Py_XSETREF(self->cycle, Py_NewRef(cycle));
    Py_XSETREF(self->flow, flow);
    Py_XSETREF(self->write, write);
    Py_XSETREF(self->turn, (TurnWrites *)turn);
    Py_CLEAR(self->pending);
    self->limit = limit;
    self->held = 0;
    return 0;
}

static int body_traverse(PyObject *op, visitproc visit, void *arg) {
    GatheredBody *self = (GatheredBody *)op;
    Py_VISIT(self->protocol);
    Py_VISIT(self->cycle);
    Py_VISIT(self->flow);
    Py_VISIT(self->write);
    Py_VISIT(self->turn);
    return 0;
}

static int body_clear(PyObject *op) {
    GatheredBody *self = (GatheredBody *)op;
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->cycle);
    Py_CLEAR(self->flow);
    Py_CLEAR(self->write);
    Py_CLEAR(self->turn);
    Py_CLEAR(self->pending);
    return 0;
}

/* A Python subclass's instance (DirectBody) comes here from CPython's subtype_dealloc, which visits and releases
 * the subclass itself. */
static void body_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    body_clear(op);
    Py_TYPE(op)->tp_free(op);
}

static PyMethodDef body_methods[] = {
    {"write_chunk", body_write_chunk, METH_O,
     PyDoc_STR("write_chunk(chunk): gather framed body bytes for this turn's push; False: the caller should stop "
               "(pause its source) until the protocol's on_writable is called.")},
    {"push", body_push_method, METH_NOARGS, PyDoc_STR("push(): write what is pending now.")},
    {NULL},
};

static PyMemberDef body_members[] = {
    {"protocol", T_OBJECT_EX, offsetof(GatheredBody, protocol), READONLY, "the connection's protocol"},
    {"cycle", T_OBJECT_EX, offsetof(GatheredBody, cycle), READONLY, "the request's cycle"},
    {NULL},
};

static PyTypeObject GatheredBodyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "llmrelay._bodywrites.GatheredBody",
    .tp_doc = PyDoc_STR("GatheredBody(protocol, cycle, limit): a response body's chunks, gathered per turn of the "
                        "event loop and written to the cycle's connection in one write."),
    .tp_basicsize = sizeof(GatheredBody),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = body_init,
    .tp_methods = body_methods,
    .tp_members = body_members,
    .tp_traverse = body_traverse,
    .tp_clear = body_clear,
    .tp_dealloc = body_dealloc,
};

static struct PyModuleDef bodywrites_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "llmrelay._bodywrites",
    .m_doc = PyDoc_STR("Streamed response bodies' writes, gathered per turn of the event loop (see body_writes.py)."),
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__bodywrites(void) {
    struct {
        PyObject **name;
        const char *text;
    } strings[] = {
        {&str_disconnected, "disconnected"}, {&str_write_paused, "write_paused"}, {&str_on_writable, "on_writable"},
        {&str_turn_writes, "turn_writes"},   {&str_flow, "flow"},                 {&str_transport, "transport"},
        {&str_write, "write"},               {&str_call_soon, "call_soon"},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        if (*strings[i].name == NULL && (*strings[i].name = PyUnicode_InternFromString(strings[i].text)) == NULL) {
            return NULL;
        }
    }
    if (PyType_Ready(&TurnWritesType) < 0 || PyType_Ready(&GatheredBodyType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&bodywrites_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "TurnWrites", (PyObject *)&TurnWritesType) < 0 ||
        PyModule_AddObjectRef(module, "GatheredBody", (PyObject *)&GatheredBodyType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
