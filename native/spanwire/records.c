/* meterline_spanwire: the CallRecord fields of the common spans, made in C. */
#include "spanwire.h"

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

PyObject *build(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
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

int intern_names(void) {
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
