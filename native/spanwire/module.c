/* meterline_spanwire: the attributes of OTLP spans read straight from ExportTraceServiceRequest bytes.
 *
 * ingest/span_wire.py is the only caller; ingest/span_attributes.py + ingest/span_plans.py are the
 * pure-Python path it must equal (ingest/tests/test_span_wire.py holds the two equal). Reader(names,
 * tag_prefix, any_value).read(body) walks the request's wire format and, per ResourceSpans, returns
 *
 *     (resource_mask, resource_row, resource_tags, [span, ...])
 *     span = (trace_id, span_id, start_time_unix_nano, end_time_unix_nano, status_code, mask, row, tags)
 *
 * where mask (16 bytes, bit i = names[i]) says which of the names the attributes carry, row holds
 * their decoded values in the names' order, and tags the (name, value) pairs of the attributes whose
 * key starts with tag_prefix, in wire order (None when there are none). Attributes are a protobuf map
 * in the Python view: a repeated key's last value wins. Values are decoded as
 * span_attributes.any_value decodes them; a value of any other shape is handed to any_value itself.
 * Other keys cost nothing: no Python object is made for them. build(...) (records.c) then makes the
 * CallRecord fields of the common spans from what read() returned, as span_plans._record makes them.
 *
 * Files: module.c the Reader type and the module; messages.c the request's messages and each span's
 * attributes; values.c the attribute values; records.c build(); spanwire.h what they share.
 *
 * Every tuple and list made here is untracked by the cyclic garbage collector: they hold only strings,
 * numbers, bytes and each other (and any_value's results, which are of those kinds too), so no cycle
 * can run through them, and a request's thousands of them would otherwise be traversed by every
 * collection they live through and push the full collections of a web worker's whole heap sooner
 * (measured: a third of the CPU the OTLP door spent beyond /v1/calls).
 *
 * The official messages have parsed the same bytes first (they validate the request), so this walk
 * never meets a malformed body. What it does not handle exactly as protobuf would - a singular field
 * that occurs twice (protobuf merges or overrides), a known field with another wire type (protobuf
 * keeps it as an unknown field), groups - makes read() return None, and the caller takes the
 * pure-Python path for that request. */
#include "spanwire.h"

/* --- the Reader type -------------------------------------------------------------------------- */

static PyObject *Reader_read(Reader *self, PyObject *body) {
    if (!PyBytes_Check(body)) {
        PyErr_SetString(PyExc_TypeError, "read() takes the request as bytes");
        return NULL;
    }
    Attributes *a = PyMem_Calloc(1, sizeof(Attributes)); /* per call: any_value may let another thread in */
    PyObject *out = untracked(PyList_New(0));
    if (a == NULL || out == NULL) {
        PyMem_Free(a);
        Py_XDECREF(out);
        return PyErr_NoMemory();
    }
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(body);
    int rc = read_request(self, p, p + PyBytes_GET_SIZE(body), a, out);
    clear(a, self->n);
    forget_strings(&a->strings);
    PyMem_Free(a);
    if (rc == DONE) return out;
    Py_DECREF(out);
    if (rc == FAILED) return NULL;
    Py_RETURN_NONE;
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"names", "tag_prefix", "any_value", NULL};
    PyObject *names, *prefix, *any_value;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!UO:Reader", keywords, &PyTuple_Type, &names, &prefix, &any_value))
        return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (n > MAX_NAMES) {
        PyErr_Format(PyExc_ValueError, "at most %d names, not %zd", MAX_NAMES, n);
        return -1;
    }
    if (!PyCallable_Check(any_value)) {
        PyErr_SetString(PyExc_TypeError, "any_value must be callable");
        return -1;
    }
    size_t cap = 16;
    while (cap < (size_t)n * 4) cap <<= 1;
    int32_t *table = PyMem_Malloc(cap * sizeof(int32_t));
    PyObject *encoded = PyTuple_New(n);
    PyObject *prefix_bytes = PyUnicode_AsUTF8String(prefix);
    if (table == NULL || encoded == NULL || prefix_bytes == NULL) goto fail;
    memset(table, 0xFF, cap * sizeof(int32_t));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "names must be strings");
            goto fail;
        }
        PyObject *utf8 = PyUnicode_AsUTF8String(name);
        if (utf8 == NULL) goto fail;
        PyTuple_SET_ITEM(encoded, i, utf8);
        const uint8_t *key = (const uint8_t *)PyBytes_AS_STRING(utf8);
        Py_ssize_t size = PyBytes_GET_SIZE(utf8);
        size_t slot = (size_t)fnv1a(key, size) & (cap - 1);
        for (; table[slot] >= 0; slot = (slot + 1) & (cap - 1)) {
            PyObject *other = PyTuple_GET_ITEM(encoded, table[slot]);
            if (PyBytes_GET_SIZE(other) == size && memcmp(PyBytes_AS_STRING(other), key, (size_t)size) == 0) {
                PyErr_Format(PyExc_ValueError, "name %R is given twice", name);
                goto fail;
            }
        }
        table[slot] = (int32_t)i;
    }
    PyMem_Free(self->table);
    self->table = table;
    self->cap = cap;
    self->n = n;
    Py_XSETREF(self->names, encoded);
    Py_XSETREF(self->prefix, prefix_bytes);
    Py_XSETREF(self->fallback, Py_NewRef(any_value));
    return 0;
fail:
    PyMem_Free(table);
    Py_XDECREF(encoded);
    Py_XDECREF(prefix_bytes);
    return -1;
}

static void Reader_dealloc(Reader *self) {
    Py_XDECREF(self->names);
    Py_XDECREF(self->prefix);
    Py_XDECREF(self->fallback);
    PyMem_Free(self->table);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Reader_read_checked(Reader *self, PyObject *body) {
    if (self->table == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Reader was not initialised");
        return NULL;
    }
    return Reader_read(self, body);
}

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)Reader_read_checked, METH_O,
     "read(body: bytes) -> list | None: per ResourceSpans (resource_mask, resource_row, resource_tags, spans);\n"
     "None when the request is encoded in a way left to the pure-Python path."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "meterline_spanwire.Reader",
    .tp_doc = "Reader(names, tag_prefix, any_value): reads span attributes from ExportTraceServiceRequest bytes.",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew, /* fields zeroed: Reader_init fills them */
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
};

static PyMethodDef module_methods[] = {
    {"build", (PyCFunction)(void (*)(void))build, METH_FASTCALL,
     "build(layout, constants, span, resource_row, resource_tags) -> dict | None: one span's CallRecord fields\n"
     "when its values are of the common kinds, else None (span_plans._record maps it)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_methods = module_methods,
    .m_name = "meterline_spanwire",
    .m_doc = "The attributes of OTLP spans read straight from ExportTraceServiceRequest bytes (Meterline).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit_meterline_spanwire(void) {
    if (PyType_Ready(&ReaderType) < 0 || intern_names() < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0 ||
        PyModule_AddIntConstant(m, "MAX_NAMES", MAX_NAMES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
