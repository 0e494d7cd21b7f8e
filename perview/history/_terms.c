/* A block's term summary (perview/history/terms.py), in C, without the GIL.
 *
 * The recorder's writer thread makes a summary for each block it writes. With numpy, a 256 KiB
 * block holds the GIL about 1.6 ms between its calls, and the event loop relaying a flood waits
 * for it: the first 2.2 MB of a flood, sealed before it is told, cost the relay 8% of its speed
 * (bench/history.py --only ingest, in one process: 0.84 with them, 0.93 without). Here the whole
 * summary is made with the GIL released, so the writer takes nothing from the loop but a core
 * the loop does not use.
 *
 * `summarize(data, hash, wide, density, smallest, largest)` gives the bytes terms.summarize
 * gives: the parameters are its constants (passed, so that each is written once, in Python);
 * tests/test_terms_c.py checks the two agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned char u8;

/* The number of bits `v` needs, as Python's int.bit_length (of its absolute value). */
static int bit_length(long long v) {
    unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
    int n = 0;
    while (u) {
        n++;
        u >>= 1;
    }
    return n;
}

static PyObject *summarize(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    unsigned int hash;
    int wide, density, smallest, largest;
    if (!PyArg_ParseTuple(args, "y*Iiiii", &data, &hash, &wide, &density, &smallest, &largest))
        return NULL;
    if (data.len < 3 || wide < 3 || wide > 24 || smallest < 3 || largest < smallest ||
        largest > wide || density < 1) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "summarize: text under 3 bytes, or sizes out of range");
        return NULL;
    }
    const u8 *text = data.buf;
    Py_ssize_t n = data.len - 2; /* trigrams */
    size_t bins = (size_t)1 << wide;
    u8 *seen = calloc(bins, 1);
    u8 *summary = calloc(((size_t)1 << largest) / 8, 1);
    if (seen == NULL || summary == NULL) {
        free(seen);
        free(summary);
        PyBuffer_Release(&data);
        return PyErr_NoMemory();
    }
    int bits;
    /* One release for the whole work: each time the thread takes the GIL back, a busy event
       loop may wait up to the switch interval for it. */
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t code = text[i] | (uint32_t)text[i + 1] << 8 | (uint32_t)text[i + 2] << 16;
        seen[(uint32_t)(code * hash) >> (32 - wide)] = 1; /* wraps mod 2**32, as numpy's */
    }
    size_t distinct = 0;
    for (size_t b = 0; b < bins; b++) distinct += seen[b];
    bits = bit_length((long long)distinct * density - 1);
    if (bits < smallest) bits = smallest;
    if (bits > largest) bits = largest;
    size_t group = bins >> bits; /* the bins that share their top `bits` bits */
    for (size_t j = 0; j < ((size_t)1 << bits); j++) {
        const u8 *first = seen + j * group;
        for (size_t k = 0; k < group; k++) {
            if (first[k]) {
                summary[j >> 3] |= 0x80 >> (j & 7); /* MSB first, as numpy.packbits */
                break;
            }
        }
    }
    Py_END_ALLOW_THREADS;
    PyBuffer_Release(&data);
    PyObject *out = PyBytes_FromStringAndSize((const char *)summary, ((Py_ssize_t)1 << bits) / 8);
    free(seen);
    free(summary);
    return out;
}

static PyMethodDef methods[] = {
    {"summarize", summarize, METH_VARARGS,
     "summarize(data, hash, wide, density, smallest, largest) -> bytes: terms.summarize's "
     "bitset, with `largest` already capped by the block's size"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_terms", "A block's term summary in C (optional).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__terms(void) { return PyModule_Create(&module); }
