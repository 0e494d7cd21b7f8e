/* An epoll poll that cannot block, made without letting go of the GIL: perview/loop.py says why.
 *
 *     poll_now(epfd, maxevents) -> [(fd, events), ...]
 *
 * The same list as select.epoll.poll(0, maxevents) returns, from the same epoll instance. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sys/epoll.h>

#define ON_STACK 64

static PyObject *poll_now(PyObject *self, PyObject *args)
{
    (void)self;
    int epfd, maxevents;
    if (!PyArg_ParseTuple(args, "ii:poll_now", &epfd, &maxevents))
        return NULL;
    if (maxevents < 1) {
        PyErr_SetString(PyExc_ValueError, "maxevents must be at least 1");
        return NULL;
    }
    struct epoll_event stack[ON_STACK];
    struct epoll_event *events = stack;
    if (maxevents > ON_STACK) {
        events = PyMem_New(struct epoll_event, (size_t)maxevents);
        if (events == NULL)
            return PyErr_NoMemory();
    }
    /* Timeout 0: it returns at once, so the GIL is kept (no Py_BEGIN_ALLOW_THREADS). */
    int n = epoll_wait(epfd, events, maxevents, 0);
    PyObject *ready = NULL;
    if (n < 0) {
        PyErr_SetFromErrno(PyExc_OSError); /* EINTR: InterruptedError, as select.epoll */
    } else if ((ready = PyList_New(n)) != NULL) {
        for (int i = 0; i < n; i++) {
            PyObject *item = Py_BuildValue("iI", events[i].data.fd, events[i].events);
            if (item == NULL) {
                Py_CLEAR(ready);
                break;
            }
            PyList_SET_ITEM(ready, i, item);
        }
    }
    if (events != stack)
        PyMem_Free(events);
    return ready;
}

static PyMethodDef methods[] = {
    {"poll_now", poll_now, METH_VARARGS,
     "poll_now(epfd, maxevents): the ready (fd, events) of an epoll instance, at once, "
     "keeping the GIL."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_epoll", "An epoll poll that keeps the GIL.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__epoll(void) { return PyModule_Create(&module); }
