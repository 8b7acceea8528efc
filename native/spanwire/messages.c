/* meterline_spanwire: the messages of an ExportTraceServiceRequest walked, and each span's attributes
 * gathered (see module.c). */
#include "spanwire.h"

/* --- attributes ------------------------------------------------------------------------------- */

static Py_ssize_t lookup(Reader *r, const uint8_t *key, Py_ssize_t size) {
    size_t slot = (size_t)fnv1a(key, size) & (r->cap - 1);
    for (;;) {
        int32_t at = r->table[slot];
        if (at < 0) return -1;
        PyObject *name = PyTuple_GET_ITEM(r->names, at);
        if (PyBytes_GET_SIZE(name) == size && memcmp(PyBytes_AS_STRING(name), key, (size_t)size) == 0) return at;
        slot = (slot + 1) & (r->cap - 1);
    }
}

void clear(Attributes *a, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) Py_CLEAR(a->values[i]);
    Py_CLEAR(a->tags);
    memset(a->mask, 0, sizeof a->mask);
    a->count = 0;
}

/* One KeyValue (a map entry: key = 1, value = 2). */
static int read_key_value(Reader *r, const uint8_t *p, const uint8_t *end, Attributes *a) {
    const uint8_t *key = p, *value = NULL;
    Py_ssize_t key_size = 0, value_size = 0;
    int seen = 0;
    uint64_t field;
    int wire_type;
    while (p < end) {
        if (next_field(&p, end, &field, &wire_type)) return UNSUPPORTED;
        if (field == 1 || field == 2) {
            if (wire_type != 2 || seen & (int)field) return UNSUPPORTED;
            seen |= (int)field;
            if (field == 1 ? delimited(&p, end, &key, &key_size) : delimited(&p, end, &value, &value_size))
                return UNSUPPORTED;
        } else if (skip(&p, end, wire_type)) {
            return UNSUPPORTED;
        }
    }
    Py_ssize_t prefix_size = PyBytes_GET_SIZE(r->prefix);
    Py_ssize_t at = lookup(r, key, key_size);
    int tagged = at < 0 && key_size >= prefix_size && memcmp(key, PyBytes_AS_STRING(r->prefix), (size_t)prefix_size) == 0;
    if (at < 0 && !tagged) return DONE;
    PyObject *decoded = value == NULL ? Py_NewRef(Py_None) : decode_value(r, &a->strings, value, value_size, 0);
    if (decoded == NULL) return FAILED;
    if (at >= 0) {
        if (a->values[at] == NULL) {
            a->mask[at >> 3] |= (uint8_t)(1u << (at & 7));
            a->count++;
        }
        Py_XSETREF(a->values[at], decoded);
        return DONE;
    }
    PyObject *name = text(&a->strings, key + prefix_size, key_size - prefix_size, "strict");
    if (name == NULL) {
        Py_DECREF(decoded);
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return FAILED;
        PyErr_Clear(); /* the official parse refuses such a key first: never here */
        return UNSUPPORTED;
    }
    PyObject *pair = untracked(PyTuple_Pack(2, name, decoded));
    Py_DECREF(name);
    Py_DECREF(decoded);
    if (pair == NULL) return FAILED;
    if (a->tags == NULL && (a->tags = untracked(PyList_New(0))) == NULL) {
        Py_DECREF(pair);
        return FAILED;
    }
    int failed = PyList_Append(a->tags, pair);
    Py_DECREF(pair);
    return failed ? FAILED : DONE;
}

/* The attributes gathered so far as their mask, row and tags (new references); the gathering starts
 * afresh. */
static int take(Reader *r, Attributes *a, PyObject **mask_out, PyObject **row_out, PyObject **tags_out) {
    PyObject *row = untracked(PyTuple_New(a->count));
    PyObject *mask = PyBytes_FromStringAndSize((const char *)a->mask, MASK_BYTES);
    if (row == NULL || mask == NULL) {
        Py_XDECREF(row);
        Py_XDECREF(mask);
        return FAILED;
    }
    Py_ssize_t j = 0;
    for (Py_ssize_t i = 0; i < r->n && j < a->count; i++) {
        if (a->values[i] != NULL) {
            PyTuple_SET_ITEM(row, j++, a->values[i]); /* the reference moves into the row */
            a->values[i] = NULL;
        }
    }
    *tags_out = a->tags != NULL ? a->tags : Py_NewRef(Py_None);
    a->tags = NULL;
    memset(a->mask, 0, sizeof a->mask);
    a->count = 0;
    *mask_out = mask;
    *row_out = row;
    return DONE;
}

/* --- messages --------------------------------------------------------------------------------- */

/* Status: code = 3 (an enum: int32 on the wire). */
static int read_status(const uint8_t *p, const uint8_t *end, int32_t *code) {
    uint64_t field, number;
    int wire_type, seen = 0;
    while (p < end) {
        if (next_field(&p, end, &field, &wire_type)) return UNSUPPORTED;
        if (field == 3) {
            if (wire_type != 0 || seen || varint(&p, end, &number)) return UNSUPPORTED;
            seen = 1;
            *code = (int32_t)(uint32_t)number;
        } else if (skip(&p, end, wire_type)) {
            return UNSUPPORTED;
        }
    }
    return DONE;
}

/* Span: trace_id = 1, span_id = 2, start_time_unix_nano = 7, end_time_unix_nano = 8, attributes = 9,
 * status = 15. */
static int read_span(Reader *r, const uint8_t *p, const uint8_t *end, Attributes *a, PyObject *spans) {
    const uint8_t *trace = p, *span_id = p, *start;
    Py_ssize_t trace_size = 0, span_id_size = 0, size;
    uint64_t begin = 0, finish = 0, field;
    int32_t code = 0;
    uint32_t seen = 0;
    int wire_type, rc;
    while (p < end) {
        if (next_field(&p, end, &field, &wire_type)) return UNSUPPORTED;
        switch (field) {
        case 1: case 2: case 9: case 15:
            if (wire_type != 2 || (field != 9 && seen & (1u << field)) || delimited(&p, end, &start, &size))
                return UNSUPPORTED;
            seen |= 1u << field;
            if (field == 1) {
                trace = start;
                trace_size = size;
            } else if (field == 2) {
                span_id = start;
                span_id_size = size;
            } else if (field == 9) {
                if ((rc = read_key_value(r, start, start + size, a)) != DONE) return rc;
            } else if ((rc = read_status(start, start + size, &code)) != DONE) {
                return rc;
            }
            break;
        case 7: case 8:
            if (wire_type != 1 || seen & (1u << field) || end - p < 8) return UNSUPPORTED;
            seen |= 1u << field;
            *(field == 7 ? &begin : &finish) = fixed64(p);
            p += 8;
            break;
        default:
            if (skip(&p, end, wire_type)) return UNSUPPORTED;
        }
    }
    PyObject *mask, *row, *tags;
    if (take(r, a, &mask, &row, &tags) != DONE) return FAILED;
    PyObject *span = untracked(Py_BuildValue(
        "(y#y#KKiNNN)", (const char *)trace, trace_size, (const char *)span_id, span_id_size,
        (unsigned long long)begin, (unsigned long long)finish, (int)code, mask, row, tags));
    if (span == NULL) return FAILED;
    rc = PyList_Append(spans, span);
    Py_DECREF(span);
    return rc ? FAILED : DONE;
}

/* The KeyValues of a message's repeated field ``number`` (Resource.attributes = 1). */
static int read_attributes(Reader *r, const uint8_t *p, const uint8_t *end, uint64_t number, Attributes *a) {
    const uint8_t *start;
    Py_ssize_t size;
    uint64_t field;
    int wire_type, rc;
    while (p < end) {
        if (next_field(&p, end, &field, &wire_type)) return UNSUPPORTED;
        if (field == number) {
            if (wire_type != 2 || delimited(&p, end, &start, &size)) return UNSUPPORTED;
            if ((rc = read_key_value(r, start, start + size, a)) != DONE) return rc;
        } else if (skip(&p, end, wire_type)) {
            return UNSUPPORTED;
        }
    }
    return DONE;
}

/* ScopeSpans: spans = 2. */
static int read_scope_spans(Reader *r, const uint8_t *p, const uint8_t *end, Attributes *a, PyObject *spans) {
    const uint8_t *start;
    Py_ssize_t size;
    uint64_t field;
    int wire_type, rc;
    while (p < end) {
        if (next_field(&p, end, &field, &wire_type)) return UNSUPPORTED;
        if (field == 2) {
            if (wire_type != 2 || delimited(&p, end, &start, &size)) return UNSUPPORTED;
            if ((rc = read_span(r, start, start + size, a, spans)) != DONE) return rc;
        } else if (skip(&p, end, wire_type)) {
            return UNSUPPORTED;
        }
    }
    return DONE;
}

/* ResourceSpans: resource = 1, scope_spans = 2. */
static int read_resource_spans(Reader *r, const uint8_t *p, const uint8_t *end, Attributes *a, PyObject *out) {
    const uint8_t *start;
    Py_ssize_t size;
    uint64_t field;
    int wire_type, rc = DONE, resource = 0;
    PyObject *mask = NULL, *row = NULL, *tags = NULL, *spans = untracked(PyList_New(0));
    if (spans == NULL) return FAILED;
    while (rc == DONE && p < end) {
        if (next_field(&p, end, &field, &wire_type)) {
            rc = UNSUPPORTED;
        } else if (field == 1 || field == 2) {
            if (wire_type != 2 || (field == 1 && resource) || delimited(&p, end, &start, &size)) {
                rc = UNSUPPORTED;
            } else if (field == 1) {
                resource = 1;
                rc = read_attributes(r, start, start + size, 1, a);
                if (rc == DONE) rc = take(r, a, &mask, &row, &tags);
            } else {
                rc = read_scope_spans(r, start, start + size, a, spans);
            }
        } else if (skip(&p, end, wire_type)) {
            rc = UNSUPPORTED;
        }
    }
    if (rc == DONE && !resource) rc = take(r, a, &mask, &row, &tags); /* no resource: no attributes */
    if (rc == DONE) {
        PyObject *item = untracked(Py_BuildValue("(OOOO)", mask, row, tags, spans));
        if (item == NULL || PyList_Append(out, item)) rc = FAILED;
        Py_XDECREF(item);
    }
    Py_XDECREF(mask);
    Py_XDECREF(row);
    Py_XDECREF(tags);
    Py_DECREF(spans);
    return rc;
}

/* ExportTraceServiceRequest: resource_spans = 1. */
int read_request(Reader *r, const uint8_t *p, const uint8_t *end, Attributes *a, PyObject *out) {
    const uint8_t *start;
    Py_ssize_t size;
    uint64_t field;
    int wire_type, rc;
    while (p < end) {
        if (next_field(&p, end, &field, &wire_type)) return UNSUPPORTED;
        if (field == 1) {
            if (wire_type != 2 || delimited(&p, end, &start, &size)) return UNSUPPORTED;
            if ((rc = read_resource_spans(r, start, start + size, a, out)) != DONE) return rc;
        } else if (skip(&p, end, wire_type)) {
            return UNSUPPORTED;
        }
    }
    return DONE;
}
