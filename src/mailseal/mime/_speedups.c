/*
 * mailseal.mime._speedups: the byte loops of the large-message paths, compiled.
 *
 * Each function has a pure-Python twin in mailseal.mime.canon that gives the same answer
 * for every input (tests compare the two); the package works without this module. The
 * functions take any contiguous bytes-like object, keep no state between calls, and
 * release the GIL while they work on a large buffer so that hashing or writing in another
 * thread can run at the same time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* RFC 5322 §2.1.1: 998 octets per line; a segment counted here includes the CR of CRLF. */
#define MAX_SEGMENT 999
/* below this many bytes, releasing and taking back the GIL costs more than it saves */
#define GIL_RELEASE_MIN 65536

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 1 when every byte is in 0x01..0x7f (ASCII without NUL), else 0. */
static int
ascii_without_nul(const unsigned char *p, Py_ssize_t n)
{
    const uint64_t high = 0x8080808080808080ULL;
    const uint64_t ones = 0x0101010101010101ULL;
    Py_ssize_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, 8);
        memcpy(&c, p + i + 16, 8);
        memcpy(&d, p + i + 24, 8);
        /* (w - ones) & ~w & high is non-zero exactly when some byte of w is zero */
        if (((a | b | c | d) & high) ||
            (((a - ones) & ~a) | ((b - ones) & ~b) | ((c - ones) & ~c) | ((d - ones) & ~d)) &
                high) {
            return 0;
        }
    }
    for (; i < n; i++) {
        if (p[i] == 0 || p[i] >= 0x80) {
            return 0;
        }
    }
    return 1;
}

/*
 * The optimistic signing pass's check of one piece of a body (see canon.scan_piece):
 * returns the length of the line left open at the end, or -1 when the piece needs the
 * careful pass (a byte outside ASCII, a NUL, a line starting "From ", a line longer than
 * RFC 5322 allows once its line end is CRLF). *bare is set when an LF has no CR before it.
 */
static Py_ssize_t
scan(const unsigned char *p, Py_ssize_t n, Py_ssize_t open, int *bare)
{
    const unsigned char *end = p + n;
    const unsigned char *lf;
    const unsigned char *line;
    int any_bare = 0;

    *bare = 0;
    if (!ascii_without_nul(p, n)) {
        return -1;
    }
    lf = memchr(p, '\n', (size_t)n);
    if (lf == NULL) {
        return (open > MAX_SEGMENT - n) ? -1 : open + n;
    }
    line = p; /* start of the current line; the first continues the open one */
    for (;;) {
        int is_bare = (lf == p) || (lf[-1] != '\r');
        Py_ssize_t segment = (Py_ssize_t)(lf - line) + is_bare;
        if (line == p) {
            if (open > MAX_SEGMENT - segment) {
                return -1;
            }
        }
        else if (segment > MAX_SEGMENT) {
            return -1;
        }
        any_bare |= is_bare;
        if (end - lf > 5 && memcmp(lf + 1, "From ", 5) == 0) {
            return -1;
        }
        line = lf + 1;
        if (line >= end) {
            break;
        }
        lf = memchr(line, '\n', (size_t)(end - line));
        if (lf == NULL) {
            break;
        }
    }
    if (end - line > MAX_SEGMENT) {
        return -1;
    }
    *bare = any_bare;
    return (Py_ssize_t)(end - line);
}

PyDoc_STRVAR(scan_piece_doc,
             "scan_piece(data, open, /) -> (bare, open)\n\n"
             "Check a piece of a body for the optimistic signing pass; see\n"
             "mailseal.mime.canon.scan_piece, which gives the same answers.");

static PyObject *
scan_piece(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t open, result;
    int bare = 0;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "scan_piece() takes exactly 2 arguments");
        return NULL;
    }
    open = PyLong_AsSsize_t(args[1]);
    if (open == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (open < 0) {
        PyErr_SetString(PyExc_ValueError, "scan_piece(): open must not be negative");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len >= GIL_RELEASE_MIN) {
        Py_BEGIN_ALLOW_THREADS
        result = scan((const unsigned char *)view.buf, view.len, open, &bare);
        Py_END_ALLOW_THREADS
    }
    else {
        result = scan((const unsigned char *)view.buf, view.len, open, &bare);
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(On)", bare ? Py_True : Py_False, result);
}

PyDoc_STRVAR(has_bare_lf_doc,
             "has_bare_lf(data, /) -> bool\n\n"
             "Whether a line feed in data has no carriage return before it.");

static int
find_bare_lf(const unsigned char *p, Py_ssize_t n)
{
    const unsigned char *end = p + n;
    const unsigned char *lf = n ? memchr(p, '\n', (size_t)n) : NULL;
    while (lf != NULL) {
        if (lf == p || lf[-1] != '\r') {
            return 1;
        }
        if (lf + 1 >= end) {
            return 0;
        }
        lf = memchr(lf + 1, '\n', (size_t)(end - lf - 1));
    }
    return 0;
}

static PyObject *
has_bare_lf(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    int found;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len >= GIL_RELEASE_MIN) {
        Py_BEGIN_ALLOW_THREADS
        found = find_bare_lf((const unsigned char *)view.buf, view.len);
        Py_END_ALLOW_THREADS
    }
    else {
        found = find_bare_lf((const unsigned char *)view.buf, view.len);
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(found);
}

static void
encode_group(const unsigned char *in, Py_ssize_t n, char *out)
{
    /* n is 1, 2 or 3 */
    unsigned int v = (unsigned int)in[0] << 16;
    if (n > 1) {
        v |= (unsigned int)in[1] << 8;
    }
    if (n > 2) {
        v |= in[2];
    }
    out[0] = B64[(v >> 18) & 63];
    out[1] = B64[(v >> 12) & 63];
    out[2] = n > 1 ? B64[(v >> 6) & 63] : '=';
    out[3] = n > 2 ? B64[v & 63] : '=';
}

/* two base64 characters for each 12-bit value, filled in when the module is first loaded */
static uint16_t B64_PAIRS[4096];
static int b64_pairs_ready = 0;

static void
fill_b64_pairs(void)
{
    for (int v = 0; v < 4096; v++) {
        unsigned char pair[2] = {(unsigned char)B64[v >> 6], (unsigned char)B64[v & 63]};
        memcpy(&B64_PAIRS[v], pair, 2);
    }
    b64_pairs_ready = 1;
}

static void
encode_lines(const unsigned char *in, Py_ssize_t n, char *out)
{
    while (n >= 57) {
        for (int g = 0; g < 19; g++) {
            uint32_t v = ((uint32_t)in[0] << 16) | ((uint32_t)in[1] << 8) | in[2];
            memcpy(out, &B64_PAIRS[v >> 12], 2);
            memcpy(out + 2, &B64_PAIRS[v & 0xfff], 2);
            in += 3;
            out += 4;
        }
        out[0] = '\r';
        out[1] = '\n';
        out += 2;
        n -= 57;
    }
    if (n > 0) {
        while (n > 0) {
            Py_ssize_t k = n < 3 ? n : 3;
            encode_group(in, k, out);
            in += k;
            out += 4;
            n -= k;
        }
        out[0] = '\r';
        out[1] = '\n';
    }
}

PyDoc_STRVAR(b64_lines_doc,
             "b64_lines(data, /) -> bytes\n\n"
             "Base64 in 76-character lines, each ending in CRLF (RFC 2045 §6.8);\n"
             "empty input gives one empty line.");

static PyObject *
b64_lines(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    Py_ssize_t n, full, rest, size;
    PyObject *result;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    n = view.len;
    if (n == 0) {
        PyBuffer_Release(&view);
        return PyBytes_FromStringAndSize("\r\n", 2);
    }
    full = n / 57;
    rest = n % 57;
    if (full > (PY_SSIZE_T_MAX - 80) / 78) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    size = full * 78 + (rest ? ((rest + 2) / 3) * 4 + 2 : 0);
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    if (n >= GIL_RELEASE_MIN) {
        Py_BEGIN_ALLOW_THREADS
        encode_lines((const unsigned char *)view.buf, n, PyBytes_AS_STRING(result));
        Py_END_ALLOW_THREADS
    }
    else {
        encode_lines((const unsigned char *)view.buf, n, PyBytes_AS_STRING(result));
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_piece", (PyCFunction)(void (*)(void))scan_piece, METH_FASTCALL, scan_piece_doc},
    {"has_bare_lf", has_bare_lf, METH_O, has_bare_lf_doc},
    {"b64_lines", b64_lines, METH_O, b64_lines_doc},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    /* the table is the same for every load; loads happen under the one GIL */
    if (!b64_pairs_ready) {
        fill_b64_pairs();
    }
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mailseal.mime._speedups",
    .m_doc = "Compiled byte loops for mailseal's large-message paths (optional).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&module_def);
}
