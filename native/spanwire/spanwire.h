/* meterline_spanwire: what its files share (see module.c for what the module does). */
#ifndef SPANWIRE_H
#define SPANWIRE_H
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

/* values.c */
uint64_t fnv1a(const uint8_t *p, Py_ssize_t size);
PyObject *text(Strings *strings, const uint8_t *p, Py_ssize_t size, const char *errors);
void forget_strings(Strings *strings);
PyObject *untracked(PyObject *container);
PyObject *decode_value(Reader *r, Strings *strings, const uint8_t *p, Py_ssize_t size, int depth);
/* messages.c */
void clear(Attributes *a, Py_ssize_t n);
int read_request(Reader *r, const uint8_t *p, const uint8_t *end, Attributes *a, PyObject *out);
/* records.c */
PyObject *build(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
int intern_names(void);

/* The protobuf wire format: each reader returns -1 when the bytes do not hold what it reads. */

static inline int varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
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

static inline int delimited(const uint8_t **p, const uint8_t *end, const uint8_t **start, Py_ssize_t *size) {
    uint64_t n;
    if (varint(p, end, &n) || n > (uint64_t)(end - *p)) return -1;
    *start = *p;
    *size = (Py_ssize_t)n;
    *p += n;
    return 0;
}

static inline uint64_t fixed64(const uint8_t *p) {
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) value = value << 8 | p[i];
    return value;
}

static inline int skip(const uint8_t **p, const uint8_t *end, int wire_type) {
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
static inline int next_field(const uint8_t **p, const uint8_t *end, uint64_t *field, int *wire_type) {
    uint64_t tag;
    if (varint(p, end, &tag) || tag >> 3 == 0) return -1;
    *field = tag >> 3;
    *wire_type = (int)(tag & 7);
    return 0;
}

#endif
