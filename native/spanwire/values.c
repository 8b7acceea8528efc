/* meterline_spanwire: attribute values, decoded from their serialized AnyValue (as
 * ingest.span_attributes.any_value decodes them). */
#include "spanwire.h"

/* --- values ----------------------------------------------------------------------------------- */

uint64_t fnv1a(const uint8_t *p, Py_ssize_t size) {
    uint64_t hash = 14695981039346656037ULL;
    for (Py_ssize_t i = 0; i < size; i++) hash = (hash ^ p[i]) * 1099511628211ULL;
    return hash;
}

/* The str of UTF-8 ``p[:size]`` (a new reference); the same object for the same short ASCII bytes. */
PyObject *text(Strings *strings, const uint8_t *p, Py_ssize_t size, const char *errors) {
    if (size > MAX_SHARED) return PyUnicode_DecodeUTF8((const char *)p, size, errors);
    uint64_t hash = 14695981039346656037ULL;
    uint8_t high = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        high |= p[i];
        hash = (hash ^ p[i]) * 1099511628211ULL;
    }
    if (high & 0x80) return PyUnicode_DecodeUTF8((const char *)p, size, errors);
    size_t slot = (size_t)hash & (STRINGS - 1);
    for (; strings->string[slot] != NULL; slot = (slot + 1) & (STRINGS - 1)) {
        if (strings->size[slot] == size && memcmp(strings->text[slot], p, (size_t)size) == 0)
            return Py_NewRef(strings->string[slot]);
    }
    PyObject *string = PyUnicode_DecodeUTF8((const char *)p, size, errors);
    if (string != NULL && strings->count < STRINGS / 2) {
        strings->text[slot] = p;
        strings->size[slot] = size;
        strings->string[slot] = Py_NewRef(string);
        strings->count++;
    }
    return string;
}

void forget_strings(Strings *strings) {
    for (size_t i = 0; i < STRINGS; i++) Py_CLEAR(strings->string[i]);
    strings->count = 0;
}

PyObject *untracked(PyObject *container) {
    if (container != NULL) PyObject_GC_UnTrack(container);
    return container;
}

static PyObject *fallback(Reader *r, const uint8_t *p, Py_ssize_t size) {
    PyObject *raw = PyBytes_FromStringAndSize((const char *)p, size);
    if (raw == NULL) return NULL;
    PyObject *value = PyObject_CallOneArg(r->fallback, raw);
    Py_DECREF(raw);
    return value;
}

PyObject *decode_value(Reader *r, Strings *strings, const uint8_t *p, Py_ssize_t size, int depth);

/* An ArrayValue's values; NULL with no exception set when it is not one of AnyValues only. */
static PyObject *decode_array(Reader *r, Strings *strings, const uint8_t *p, Py_ssize_t size, int depth) {
    const uint8_t *q = p, *end = p + size, *item_start;
    Py_ssize_t item_size;
    PyObject *list = untracked(PyList_New(0));
    if (list == NULL) return NULL;
    while (q < end) {
        if (*q++ != 0x0A || delimited(&q, end, &item_start, &item_size)) {
            Py_DECREF(list);
            return NULL;
        }
        PyObject *item = decode_value(r, strings, item_start, item_size, depth);
        if (item == NULL || PyList_Append(list, item)) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    return list;
}

/* A serialized AnyValue's value, as span_attributes.any_value gives it: one field of the common kinds
 * decoded here, anything else by any_value itself. */
PyObject *decode_value(Reader *r, Strings *strings, const uint8_t *p, Py_ssize_t size, int depth) {
    const uint8_t *q = p + 1, *end = p + size, *start;
    Py_ssize_t length;
    uint64_t number;
    if (size == 0) Py_RETURN_NONE; /* an empty AnyValue */
    switch (p[0]) {
    case 0x0A: /* string_value */
        if (delimited(&q, end, &start, &length) == 0 && q == end)
            return text(strings, start, length, "replace");
        break;
    case 0x10: /* bool_value */
        if (varint(&q, end, &number) == 0 && q == end) return PyBool_FromLong(number != 0);
        break;
    case 0x18: /* int_value */
        if (varint(&q, end, &number) == 0 && q == end) return PyLong_FromLongLong((long long)(int64_t)number);
        break;
    case 0x21: /* double_value */
        if (size == 9) {
            uint64_t bits = fixed64(p + 1);
            double value;
            memcpy(&value, &bits, sizeof value);
            return PyFloat_FromDouble(value);
        }
        break;
    case 0x2A: /* array_value */
        if (depth < MAX_DEPTH && delimited(&q, end, &start, &length) == 0 && q == end) {
            PyObject *list = decode_array(r, strings, start, length, depth + 1);
            if (list != NULL || PyErr_Occurred()) return list;
        }
        break;
    }
    return fallback(r, p, size);
}
