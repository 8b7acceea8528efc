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
 * Other keys cost nothing: no Python object is made for them.
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
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_NAMES 128
#define MASK_BYTES (MAX_NAMES / 8)
#define MAX_DEPTH 100

enum { DONE = 0, UNSUPPORTED = 1, FAILED = -1 };

typedef struct {
    PyObject_HEAD
    PyObject *names;    /* tuple of bytes: each name in UTF-8 */
    PyObject *prefix;   /* bytes */
    PyObject *fallback; /* any_value(raw: bytes) -> value */
    Py_ssize_t n;
    size_t cap;         /* hash table slots, a power of two */
    int32_t *table;     /* name index, or -1 */
} Reader;

/* The short ASCII strings of one request, each made once: the spans of a request repeat most of them
 * (provider, model, feature, tier, tag names). Keys point into the request's bytes. */
#define STRINGS 2048 /* slots, a power of two; at most half of them are filled */
#define MAX_SHARED 64 /* longest string shared */
typedef struct {
    const uint8_t *text[STRINGS];
    Py_ssize_t size[STRINGS];
    PyObject *string[STRINGS];
    Py_ssize_t count;
} Strings;

typedef struct {
    PyObject *values[MAX_NAMES];
    uint8_t mask[MASK_BYTES];
    Py_ssize_t count;
    PyObject *tags; /* list of (name, value), or NULL */
    Strings strings;
} Attributes;

/* --- wire format ------------------------------------------------------------------------------ */

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    const uint8_t *q = *p;
    uint64_t value = 0;
    for (int i = 0; i < 10; i++) {
        if (q >= end) return -1;
        uint8_t byte = *q++;
        if (i == 9 && byte > 1) return -1; /* more than 64 bits */
        value |= (uint64_t)(byte & 0x7F) << (7 * i);
        if (byte < 0x80) {
            *p = q;
            *out = value;
            return 0;
        }
    }
    return -1;
}

static int delimited(const uint8_t **p, const uint8_t *end, const uint8_t **start, Py_ssize_t *size) {
    uint64_t n;
    if (varint(p, end, &n) || n > (uint64_t)(end - *p)) return -1;
    *start = *p;
    *size = (Py_ssize_t)n;
    *p += n;
    return 0;
}

static uint64_t fixed64(const uint8_t *p) {
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) value = value << 8 | p[i];
    return value;
}

static int skip(const uint8_t **p, const uint8_t *end, int wire_type) {
    uint64_t ignored;
    const uint8_t *start;
    Py_ssize_t size;
    switch (wire_type) {
    case 0: return varint(p, end, &ignored);
    case 1: if (end - *p < 8) return -1; *p += 8; return 0;
    case 2: return delimited(p, end, &start, &size);
    case 5: if (end - *p < 4) return -1; *p += 4; return 0;
    default: return -1; /* groups: left to the official messages */
    }
}

/* The next field's number and wire type; -1 for a field number 0 or an unreadable tag. */
static int next_field(const uint8_t **p, const uint8_t *end, uint64_t *field, int *wire_type) {
    uint64_t tag;
    if (varint(p, end, &tag) || tag >> 3 == 0) return -1;
    *field = tag >> 3;
    *wire_type = (int)(tag & 7);
    return 0;
}

/* --- values ----------------------------------------------------------------------------------- */

static uint64_t fnv1a(const uint8_t *p, Py_ssize_t size) {
    uint64_t hash = 14695981039346656037ULL;
    for (Py_ssize_t i = 0; i < size; i++) hash = (hash ^ p[i]) * 1099511628211ULL;
    return hash;
}

/* The str of UTF-8 ``p[:size]`` (a new reference); the same object for the same short ASCII bytes. */
static PyObject *text(Strings *strings, const uint8_t *p, Py_ssize_t size, const char *errors) {
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

static void forget_strings(Strings *strings) {
    for (size_t i = 0; i < STRINGS; i++) Py_CLEAR(strings->string[i]);
    strings->count = 0;
}

static PyObject *untracked(PyObject *container) {
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

static PyObject *decode_value(Reader *r, Strings *strings, const uint8_t *p, Py_ssize_t size, int depth);

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
static PyObject *decode_value(Reader *r, Strings *strings, const uint8_t *p, Py_ssize_t size, int depth) {
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

static void clear(Attributes *a, Py_ssize_t n) {
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
static int read_request(Reader *r, const uint8_t *p, const uint8_t *end, Attributes *a, PyObject *out) {
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

/* --- records ---------------------------------------------------------------------------------- */

/* build(layout, constants, span, resource_row, resource_tags): the CallRecord fields of one span read
 * by Reader.read, as span_plans._record makes them, for the spans whose values are of the common kinds;
 * None for every other span (failed or skipped ones, a count that is a float, a name too long, a
 * provider-reported cost, ...), which span_plans._record maps instead.
 *
 * layout = span_plans.Plan.layout: (fetch, chains, members, member_at, ttft_named, usage), with the
 * row as Plan lays it out (the span's values, the resource's, None, then each chain's first value
 * that is not None). constants = (provider aliases, tier aliases, finish reason aliases, aggregate
 * operations, aggregate kinds). */

enum {
    F_ERROR_TYPE, F_INPUTS, F_OUTPUTS, F_OPERATION, F_KIND, F_PROVIDER, F_MODEL, F_CACHE_READ, F_CACHE_WRITE,
    F_REASONING, F_RESPONSE_MODEL, F_MAX_TOKENS, F_TTFT, F_STREAMED, F_FINISH, F_TIER, F_USER_ID, F_SESSION_ID,
    F_ENVIRONMENT, F_FEATURE, F_SERVICE, F_COST, N_FETCHED
};

#define MAX_TEXT 200

static PyObject *S_EVENT_ID, *S_TIMESTAMP, *S_PROVIDER, *S_MODEL, *S_TRACE_ID, *S_LATENCY_MS, *S_INPUT_TOKENS,
    *S_OUTPUT_TOKENS, *S_CACHE_READ_TOKENS, *S_CACHE_WRITE_TOKENS, *S_REASONING_TOKENS, *S_RESPONSE_MODEL,
    *S_MAX_TOKENS, *S_TTFT_MS, *S_STREAMED, *S_FINISH_REASON, *S_SERVICE_TIER, *S_USER_ID, *S_SESSION_ID,
    *S_ENVIRONMENT, *S_FEATURE, *S_TAGS, *S_DEFAULT, *S_UNKNOWN_SERVICE, *S_LOWER;

typedef struct {
    PyObject *row, *resource_row, *chains;
    Py_ssize_t n_span, none;
} Row;

/* A borrowed reference to the value at ``i`` of the plan's row. */
static PyObject *row_value(Row *row, Py_ssize_t i) {
    if (i < row->n_span) return PyTuple_GET_ITEM(row->row, i);
    if (i < row->none) return PyTuple_GET_ITEM(row->resource_row, i - row->n_span);
    if (i == row->none) return Py_None;
    PyObject *chain = PyTuple_GET_ITEM(row->chains, i - row->none - 1);
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(chain); j++) {
        PyObject *value = row_value(row, PyLong_AsSsize_t(PyTuple_GET_ITEM(chain, j)));
        if (value != Py_None) return value;
    }
    return Py_None;
}

static int set(PyObject *record, PyObject *name, PyObject *value) {
    if (value == NULL) return -1;
    int failed = PyDict_SetItem(record, name, value);
    Py_DECREF(value);
    return failed;
}

/* A short exact str (kept as it is), as _text would keep it. */
static int short_text(PyObject *value) {
    return PyUnicode_CheckExact(value) && PyUnicode_GET_LENGTH(value) <= MAX_TEXT;
}

static PyObject *hex(const char *p, Py_ssize_t size, const char *q, Py_ssize_t q_size) {
    static const char digits[] = "0123456789abcdef";
    PyObject *text = PyUnicode_New(2 * (size + q_size), 127);
    if (text == NULL) return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < size + q_size; i++) {
        unsigned char byte = (unsigned char)(i < size ? p[i] : q[i - size]);
        out[2 * i] = (Py_UCS1)digits[byte >> 4];
        out[2 * i + 1] = (Py_UCS1)digits[byte & 15];
    }
    return text;
}

/* text.lower(): an ASCII string in C (itself when it has no capital), any other through str.lower. */
static PyObject *lowered(PyObject *text) {
    if (!PyUnicode_IS_ASCII(text)) return PyObject_CallMethodNoArgs(text, S_LOWER);
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text), i = 0;
    while (i < size && !(p[i] >= 'A' && p[i] <= 'Z')) i++;
    if (i == size) return Py_NewRef(text);
    PyObject *lower = PyUnicode_New(size, 127);
    if (lower == NULL) return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(lower);
    for (i = 0; i < size; i++) out[i] = p[i] >= 'A' && p[i] <= 'Z' ? (Py_UCS1)(p[i] + 32) : p[i];
    return lower;
}

/* aliases[key] (a new reference), else ``otherwise`` (borrowed; NULL: none) as a new reference. */
static PyObject *alias(PyObject *aliases, PyObject *key, PyObject *otherwise, int *missing) {
    PyObject *value = PyDict_GetItemWithError(aliases, key);
    *missing = value == NULL && !PyErr_Occurred();
    if (value != NULL) return Py_NewRef(value);
    if (*missing && otherwise != NULL) return Py_NewRef(otherwise);
    return NULL;
}

static int is_zero_bytes(const char *p, Py_ssize_t size) {
    for (Py_ssize_t i = 0; i < size; i++)
        if (p[i]) return 0;
    return 1;
}

#define COMMON(cond) do { if (!(cond)) goto uncommon; } while (0)
#define CHECK(expr) do { if ((expr) < 0) goto failed; } while (0)

static PyObject *build(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "build(layout, constants, span, resource_row, resource_tags)");
        return NULL;
    }
    PyObject *layout = args[0], *constants = args[1], *span = args[2], *resource_tags = args[4];
    PyObject *fetch = PyTuple_GET_ITEM(layout, 0), *members = PyTuple_GET_ITEM(layout, 2);
    PyObject *member_at = PyTuple_GET_ITEM(layout, 3);
    int ttft_named = PyObject_IsTrue(PyTuple_GET_ITEM(layout, 4)), usage = PyObject_IsTrue(PyTuple_GET_ITEM(layout, 5));
    PyObject *provider_aliases = PyTuple_GET_ITEM(constants, 0), *tier_aliases = PyTuple_GET_ITEM(constants, 1);
    PyObject *finish_aliases = PyTuple_GET_ITEM(constants, 2), *operations = PyTuple_GET_ITEM(constants, 3);
    PyObject *kinds = PyTuple_GET_ITEM(constants, 4);
    PyObject *trace = PyTuple_GET_ITEM(span, 0), *span_id = PyTuple_GET_ITEM(span, 1), *tags = PyTuple_GET_ITEM(span, 7);
    Row row = {PyTuple_GET_ITEM(span, 6), args[3], PyTuple_GET_ITEM(layout, 1), 0, 0};
    row.n_span = PyTuple_GET_SIZE(row.row);
    row.none = row.n_span + PyTuple_GET_SIZE(row.resource_row);
    PyObject *v[N_FETCHED], *latency = NULL, *tag_values = NULL;
    const int count_fields[] = {F_INPUTS, F_OUTPUTS, F_CACHE_READ, F_CACHE_WRITE, F_REASONING};
    PyObject *const counts[] = {S_INPUT_TOKENS, S_OUTPUT_TOKENS, S_CACHE_READ_TOKENS, S_CACHE_WRITE_TOKENS,
                                S_REASONING_TOKENS};
    for (int i = 0; i < N_FETCHED; i++) v[i] = row_value(&row, PyLong_AsSsize_t(PyTuple_GET_ITEM(fetch, i)));
    if (PyErr_Occurred()) return NULL;

    /* the spans span_plans._record skips, marks failed or names a cost for */
    COMMON(v[F_ERROR_TYPE] == Py_None && PyLong_AsLong(PyTuple_GET_ITEM(span, 4)) != 2 && v[F_COST] == Py_None);
    for (int i = F_OPERATION; i <= F_KIND; i++) {
        if (PyUnicode_CheckExact(v[i])) {
            int aggregate = PySet_Contains(i == F_OPERATION ? operations : kinds, v[i]);
            if (aggregate < 0) return NULL;
            COMMON(!aggregate);
        }
    }
    COMMON(v[F_INPUTS] != Py_None || v[F_OUTPUTS] != Py_None || usage);
    const char *trace_bytes = PyBytes_AS_STRING(trace), *span_bytes = PyBytes_AS_STRING(span_id);
    COMMON(PyBytes_GET_SIZE(trace) == 16 && PyBytes_GET_SIZE(span_id) == 8 && !is_zero_bytes(trace_bytes, 16) &&
           !is_zero_bytes(span_bytes, 8));
    unsigned long long start = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(span, 2));
    unsigned long long end = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(span, 3));
    if (PyErr_Occurred()) return NULL;
    COMMON(PyUnicode_CheckExact(v[F_PROVIDER]) && v[F_MODEL] != Py_None && start != 0);
    for (int i = 0; i < 5; i++) COMMON(v[count_fields[i]] == Py_None || PyLong_CheckExact(v[count_fields[i]]));
    COMMON(v[F_MAX_TOKENS] == Py_None || PyLong_CheckExact(v[F_MAX_TOKENS]));
    COMMON(v[F_TTFT] == Py_None || PyFloat_CheckExact(v[F_TTFT]));
    COMMON(v[F_STREAMED] == Py_None || PyBool_Check(v[F_STREAMED]));
    COMMON(v[F_TIER] == Py_None || PyUnicode_CheckExact(v[F_TIER]));
    PyObject *finish = v[F_FINISH];
    if (PyList_CheckExact(finish)) finish = PyList_GET_SIZE(finish) ? PyList_GET_ITEM(finish, 0) : Py_None;
    COMMON(finish == Py_None || PyUnicode_CheckExact(finish));
    for (int i = F_USER_ID; i <= F_FEATURE; i++) COMMON(v[i] == Py_None || short_text(v[i]));
    int unknown_service = 0;
    if (v[F_FEATURE] == Py_None && v[F_SERVICE] != Py_None) {
        COMMON(short_text(v[F_SERVICE]));
        unknown_service = PyUnicode_Tailmatch(v[F_SERVICE], S_UNKNOWN_SERVICE, 0, PY_SSIZE_T_MAX, -1);
        if (unknown_service < 0) return NULL;
    }
    if (tags != Py_None) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tags); i++)
            COMMON(PyUnicode_CheckExact(PyTuple_GET_ITEM(PyList_GET_ITEM(tags, i), 1)));
    }

    /* Untracked, as the reader's tuples are: it holds strings, numbers, the tags dict and decoded lists. */
    PyObject *record = untracked(_PyDict_NewPresized(32)), *value; /* (a record has up to ~30 fields) */
    int missing;
    if (record == NULL) return NULL;
    CHECK(set(record, S_EVENT_ID, hex(trace_bytes, 16, span_bytes, 8)));
    CHECK(set(record, S_TIMESTAMP, PyLong_FromUnsignedLongLong(start / 1000000)));
    PyObject *provider = lowered(v[F_PROVIDER]);
    if (provider == NULL) goto failed;
    value = alias(provider_aliases, provider, provider, &missing);
    Py_DECREF(provider);
    CHECK(set(record, S_PROVIDER, value));
    CHECK(PyDict_SetItem(record, S_MODEL, v[F_MODEL]));
    CHECK(set(record, S_TRACE_ID, hex(trace_bytes, 16, NULL, 0)));
    if (end >= start) {
        latency = PyFloat_FromDouble((double)(end - start) / 1e6);
        if (latency == NULL || PyDict_SetItem(record, S_LATENCY_MS, latency) < 0) goto failed;
    }
    for (int i = 0; i < 5; i++)
        if (v[count_fields[i]] != Py_None) CHECK(PyDict_SetItem(record, counts[i], v[count_fields[i]]));
    if (v[F_RESPONSE_MODEL] != Py_None) CHECK(PyDict_SetItem(record, S_RESPONSE_MODEL, v[F_RESPONSE_MODEL]));
    if (v[F_MAX_TOKENS] != Py_None) {
        int zero = PyObject_Not(v[F_MAX_TOKENS]); /* an exact int: falsy only when 0 */
        CHECK(zero);
        if (!zero) CHECK(PyDict_SetItem(record, S_MAX_TOKENS, v[F_MAX_TOKENS]));
    }
    int has_ttft = v[F_TTFT] != Py_None;
    if (has_ttft) {
        double ttft = PyFloat_AS_DOUBLE(v[F_TTFT]) * 1000; /* min(ttft * 1000, latency): the first unless latency is less */
        if (latency != NULL && PyFloat_AS_DOUBLE(latency) < ttft) CHECK(PyDict_SetItem(record, S_TTFT_MS, latency));
        else CHECK(set(record, S_TTFT_MS, PyFloat_FromDouble(ttft)));
    }
    if (v[F_STREAMED] != Py_None) CHECK(PyDict_SetItem(record, S_STREAMED, v[F_STREAMED]));
    else if (has_ttft && ttft_named) CHECK(PyDict_SetItem(record, S_STREAMED, Py_True));
    if (finish != Py_None) {
        PyObject *reason = lowered(finish);
        if (reason == NULL) goto failed;
        value = alias(finish_aliases, reason, NULL, &missing);
        Py_DECREF(reason);
        if (value == NULL && !missing) goto failed;
        if (value != NULL) CHECK(set(record, S_FINISH_REASON, value));
    }
    if (v[F_TIER] != Py_None) {
        PyObject *tier = lowered(v[F_TIER]);
        if (tier == NULL) goto failed;
        value = alias(tier_aliases, tier, S_DEFAULT, &missing);
        Py_DECREF(tier);
        CHECK(set(record, S_SERVICE_TIER, value));
    }
    PyObject *const attribution[] = {S_USER_ID, S_SESSION_ID, S_ENVIRONMENT, S_FEATURE};
    for (int i = F_USER_ID; i <= F_FEATURE; i++)
        if (v[i] != Py_None) CHECK(PyDict_SetItem(record, attribution[i - F_USER_ID], v[i]));
    if (v[F_FEATURE] == Py_None && v[F_SERVICE] != Py_None && !unknown_service)
        CHECK(PyDict_SetItem(record, S_FEATURE, v[F_SERVICE]));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(members); i++) {
        value = row_value(&row, PyLong_AsSsize_t(PyTuple_GET_ITEM(member_at, i)));
        CHECK(PyDict_SetItem(record, PyTuple_GET_ITEM(members, i), value));
    }
    if (tags != Py_None && PyList_GET_SIZE(tags)) {
        tag_values = untracked(PyDict_Copy(resource_tags)); /* the resource's first; the span's value wins */
        if (tag_values == NULL) goto failed;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tags); i++) {
            PyObject *pair = PyList_GET_ITEM(tags, i);
            CHECK(PyDict_SetItem(tag_values, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)));
        }
        CHECK(PyDict_SetItem(record, S_TAGS, tag_values));
        Py_CLEAR(tag_values);
    } else if (PyDict_GET_SIZE(resource_tags)) {
        CHECK(PyDict_SetItem(record, S_TAGS, resource_tags));
    }
    Py_XDECREF(latency);
    return record;
failed:
    Py_XDECREF(latency);
    Py_XDECREF(tag_values);
    Py_DECREF(record);
    return NULL;
uncommon:
    Py_RETURN_NONE;
}

static int intern_names(void) {
    struct { PyObject **slot; const char *text; } names[] = {
        {&S_EVENT_ID, "event_id"}, {&S_TIMESTAMP, "timestamp"}, {&S_PROVIDER, "provider"}, {&S_MODEL, "model"},
        {&S_TRACE_ID, "trace_id"}, {&S_LATENCY_MS, "latency_ms"}, {&S_INPUT_TOKENS, "input_tokens"},
        {&S_OUTPUT_TOKENS, "output_tokens"}, {&S_CACHE_READ_TOKENS, "cache_read_tokens"},
        {&S_CACHE_WRITE_TOKENS, "cache_write_tokens"}, {&S_REASONING_TOKENS, "reasoning_tokens"},
        {&S_RESPONSE_MODEL, "response_model"}, {&S_MAX_TOKENS, "max_tokens"}, {&S_TTFT_MS, "ttft_ms"},
        {&S_STREAMED, "streamed"}, {&S_FINISH_REASON, "finish_reason"}, {&S_SERVICE_TIER, "service_tier"},
        {&S_USER_ID, "user_id"}, {&S_SESSION_ID, "session_id"}, {&S_ENVIRONMENT, "environment"},
        {&S_FEATURE, "feature"}, {&S_TAGS, "tags"}, {&S_DEFAULT, "default"}, {&S_UNKNOWN_SERVICE, "unknown_service"},
        {&S_LOWER, "lower"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL) return -1;
    return 0;
}

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
