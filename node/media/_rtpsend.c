/* The native send step of the RTP fan-out (node/media/native.py explains the why).
 *
 * One call per room packet: for every listener of a batch, write its 12-byte RTP header
 * (marker, payload type, sequence number, timestamp, SSRC) in front of the bytes shared
 * by every listener of the same header layout (CSRC list, header extensions, payload),
 * protect the packet with the listener's own libsrtp session and send it on a duplicate
 * of the listener's ICE socket. The GIL is released while packets are protected and sent.
 *
 * libsrtp is not linked here: the caller hands over the address of srtp_protect() of the
 * libsrtp that created the sessions (pylibsrtp's, which aiortc keys after DTLS), so both
 * always agree on what an srtp_t is. The libsrtp 2 signature is checked by the caller.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef int (*srtp_protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

#define MAX_PACKET 1500
/* libsrtp 2: SRTP_MAX_TRAILER_LEN = SRTP_MAX_TAG_LEN (16) + SRTP_MAX_MKI_LEN (128). */
#define TRAILER_ROOM 256

enum outcome {
    SENT = 0,
    CLOSED,      /* the ICE transport is closing, or this listener was closed */
    FULL,        /* socket buffer full too many times in a row */
    LOST,        /* socket buffer full: this packet is lost, the listener stays */
    SRTP_FAILED,
    SEND_FAILED,
    TOO_LARGE,
    BAD_LAYOUT,
};

typedef struct {
    PyObject_HEAD
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    void *srtp;
    srtp_protect_fn protect;
    PyObject *session;    /* the pylibsrtp Session that owns `srtp`: kept alive */
    PyObject *is_closing; /* the ICE transport's is_closing(), or NULL */
    unsigned int ssrc;
    unsigned int ts_origin;
    unsigned short seq;
    unsigned char payload_type;
    char first;
    int layout;
    unsigned long long packets;
    unsigned long long octets;
    unsigned int last_timestamp;
    int send_errors;
} ListenerObject;

static PyTypeObject ListenerType;

static int
listener_init(ListenerObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "family", "host", "port", "srtp", "protect", "session",
                             "is_closing", "ssrc", "seq", "ts_origin", "payload_type",
                             "scope_id", NULL};
    int fd, family, port;
    const char *host;
    unsigned long long srtp, protect;
    PyObject *session, *is_closing;
    unsigned int ssrc, ts_origin, scope_id = 0;
    unsigned short seq;
    unsigned char payload_type;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iisiKKOOIHIb|I", kwlist, &fd, &family,
                                     &host, &port, &srtp, &protect, &session, &is_closing,
                                     &ssrc, &seq, &ts_origin, &payload_type, &scope_id))
        return -1;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "bad file descriptor");
        return -1;
    }
    if (!srtp || !protect) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        return -1;
    }
    if (port <= 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "bad port");
        return -1;
    }
    memset(&self->addr, 0, sizeof(self->addr));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&self->addr;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
            PyErr_SetString(PyExc_ValueError, "not an IPv4 address");
            return -1;
        }
        self->addrlen = sizeof(*in);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&self->addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        in6->sin6_scope_id = scope_id;
        if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
            PyErr_SetString(PyExc_ValueError, "not an IPv6 address");
            return -1;
        }
        self->addrlen = sizeof(*in6);
    } else {
        PyErr_SetString(PyExc_ValueError, "address family must be AF_INET or AF_INET6");
        return -1;
    }
    if (self->fd >= 0)
        close(self->fd);
    self->fd = fd; /* ours from now on: closed by close() or when the object goes */
    self->srtp = (void *)(uintptr_t)srtp;
    self->protect = (srtp_protect_fn)(uintptr_t)protect;
    Py_INCREF(session);
    Py_XSETREF(self->session, session);
    if (is_closing == Py_None) {
        Py_CLEAR(self->is_closing);
    } else {
        Py_INCREF(is_closing);
        Py_XSETREF(self->is_closing, is_closing);
    }
    self->ssrc = ssrc;
    self->seq = seq;
    self->ts_origin = ts_origin;
    self->payload_type = payload_type & 0x7f;
    self->first = 1;
    self->layout = 0;
    self->packets = 0;
    self->octets = 0;
    self->last_timestamp = 0;
    self->send_errors = 0;
    return 0;
}

static PyObject *
listener_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    ListenerObject *self = (ListenerObject *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->fd = -1;
    return (PyObject *)self;
}

static PyObject *
listener_close(ListenerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->fd >= 0) {
        close(self->fd);
        self->fd = -1;
    }
    Py_CLEAR(self->is_closing);
    Py_CLEAR(self->session);
    self->srtp = NULL;
    Py_RETURN_NONE;
}

static int
listener_traverse(ListenerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->session);
    Py_VISIT(self->is_closing);
    return 0;
}

static int
listener_clear(ListenerObject *self)
{
    Py_CLEAR(self->session);
    Py_CLEAR(self->is_closing);
    return 0;
}

static void
listener_dealloc(ListenerObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->fd >= 0)
        close(self->fd);
    listener_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
listener_get_closed(ListenerObject *self, void *closure)
{
    return PyBool_FromLong(self->fd < 0);
}

static PyMemberDef listener_members[] = {
    {"ssrc", T_UINT, offsetof(ListenerObject, ssrc), READONLY, "SSRC of this listener's stream"},
    {"seq", T_USHORT, offsetof(ListenerObject, seq), 0, "sequence number of the next packet"},
    {"ts_origin", T_UINT, offsetof(ListenerObject, ts_origin), READONLY,
     "random RTP timestamp offset"},
    {"payload_type", T_UBYTE, offsetof(ListenerObject, payload_type), READONLY, "payload type"},
    {"first", T_BOOL, offsetof(ListenerObject, first), 0,
     "the next packet is the first (marker bit set)"},
    {"layout", T_INT, offsetof(ListenerObject, layout), 0,
     "index of this listener's header layout in send_batch's layouts"},
    {"packets", T_ULONGLONG, offsetof(ListenerObject, packets), READONLY, "packets sent"},
    {"octets", T_ULONGLONG, offsetof(ListenerObject, octets), READONLY, "payload octets sent"},
    {"last_timestamp", T_UINT, offsetof(ListenerObject, last_timestamp), READONLY,
     "RTP timestamp of the last packet sent"},
    {"send_errors", T_INT, offsetof(ListenerObject, send_errors), READONLY,
     "consecutive packets the socket refused (buffer full)"},
    {NULL},
};

static PyGetSetDef listener_getset[] = {
    {"closed", (getter)listener_get_closed, NULL, "whether close() was called", NULL},
    {NULL},
};

static PyMethodDef listener_methods[] = {
    {"close", (PyCFunction)listener_close, METH_NOARGS,
     "Close the duplicated socket and let go of the SRTP session."},
    {NULL},
};

static PyTypeObject ListenerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "node.media._rtpsend.Listener",
    .tp_doc = PyDoc_STR("One WebRTC listener's send state on the native path."),
    .tp_basicsize = sizeof(ListenerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = listener_new,
    .tp_init = (initproc)listener_init,
    .tp_dealloc = (destructor)listener_dealloc,
    .tp_traverse = (traverseproc)listener_traverse,
    .tp_clear = (inquiry)listener_clear,
    .tp_members = listener_members,
    .tp_getset = listener_getset,
    .tp_methods = listener_methods,
};

static PyObject *
failure_reason(enum outcome outcome, int detail)
{
    switch (outcome) {
    case CLOSED:
        return PyUnicode_FromString("ConnectionError: ICE socket closed");
    case FULL:
        return PyUnicode_FromString("socket buffer full");
    case SRTP_FAILED:
        return PyUnicode_FromFormat("Error: srtp_protect failed (%d)", detail);
    case SEND_FAILED:
        return PyUnicode_FromFormat("OSError: [Errno %d] %s", detail, strerror(detail));
    case TOO_LARGE:
        return PyUnicode_FromString("ValueError: packet too large for SRTP");
    case BAD_LAYOUT:
        return PyUnicode_FromString("ValueError: no such header layout");
    default:
        return PyUnicode_FromString("unknown");
    }
}

typedef struct {
    unsigned char byte0;
    const char *tail;
    Py_ssize_t size;
} Layout;

PyDoc_STRVAR(send_batch_doc,
             "send_batch(listeners, start, stop, layouts, pts, payload_size, max_errors)\n"
             "--\n\n"
             "Send one packet to listeners[start:stop]. layouts[i] is (byte0, tail): the\n"
             "first header byte (version, extension bit, CSRC count) and the bytes after the\n"
             "12-byte fixed header for listeners of layout i. Returns (sent, failures):\n"
             "failures is None or a list of (listener, reason) to drop.");

static PyObject *
send_batch(PyObject *module, PyObject *args)
{
    PyObject *list, *layouts;
    Py_ssize_t start, stop, payload_size;
    unsigned long long pts;
    int max_errors;
    if (!PyArg_ParseTuple(args, "O!nnO!Kni", &PyList_Type, &list, &start, &stop,
                          &PyTuple_Type, &layouts, &pts, &payload_size, &max_errors))
        return NULL;
    Py_ssize_t size = PyList_GET_SIZE(list);
    if (start < 0)
        start = 0;
    if (stop > size)
        stop = size;
    Py_ssize_t count = stop > start ? stop - start : 0;

    Py_ssize_t nlayouts = PyTuple_GET_SIZE(layouts);
    Layout *layout = PyMem_Calloc(nlayouts ? nlayouts : 1, sizeof(Layout));
    ListenerObject **items = PyMem_Calloc(count ? count : 1, sizeof(ListenerObject *));
    unsigned char *outcome = PyMem_Calloc(count ? count : 1, 1);
    int *detail = PyMem_Calloc(count ? count : 1, sizeof(int));
    PyObject *result = NULL;
    Py_ssize_t taken = 0;
    if (!layout || !items || !outcome || !detail) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nlayouts; i++) {
        PyObject *entry = PyTuple_GET_ITEM(layouts, i);
        PyObject *tail;
        int byte0;
        if (!PyTuple_Check(entry) || !PyArg_ParseTuple(entry, "iS", &byte0, &tail)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "a layout is (byte0, tail)");
            goto done;
        }
        layout[i].byte0 = (unsigned char)byte0;
        layout[i].tail = PyBytes_AS_STRING(tail);
        layout[i].size = PyBytes_GET_SIZE(tail);
    }

    /* With the GIL: take the listeners and ask each transport whether it is closing. */
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(list, start + i);
        if (!PyObject_TypeCheck(item, &ListenerType)) {
            PyErr_SetString(PyExc_TypeError, "listeners must be Listener objects");
            goto done;
        }
        ListenerObject *listener = (ListenerObject *)item;
        Py_INCREF(listener);
        items[taken++] = listener;
        if (listener->fd < 0 || listener->srtp == NULL) {
            outcome[i] = CLOSED;
            continue;
        }
        if (listener->layout < 0 || listener->layout >= nlayouts) {
            outcome[i] = BAD_LAYOUT;
            continue;
        }
        if (listener->is_closing != NULL) {
            PyObject *closing = PyObject_CallNoArgs(listener->is_closing);
            if (closing == NULL)
                goto done;
            int truth = PyObject_IsTrue(closing);
            Py_DECREF(closing);
            if (truth < 0)
                goto done;
            if (truth)
                outcome[i] = CLOSED;
        }
    }

    Py_ssize_t sent = 0;
    Py_BEGIN_ALLOW_THREADS
    unsigned char packet[MAX_PACKET + TRAILER_ROOM];
    uint32_t pts32 = (uint32_t)pts;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (outcome[i] != SENT)
            continue;
        ListenerObject *listener = items[i];
        const Layout *shape = &layout[listener->layout];
        Py_ssize_t length = 12 + shape->size;
        if (length > MAX_PACKET) {
            outcome[i] = TOO_LARGE;
            continue;
        }
        uint32_t timestamp = listener->ts_origin + pts32;
        /* RFC 3551 section 4.1: the marker bit flags the first packet of a talkspurt. */
        packet[0] = shape->byte0;
        packet[1] = listener->payload_type | (listener->first ? 0x80 : 0);
        listener->first = 0;
        packet[2] = (unsigned char)(listener->seq >> 8);
        packet[3] = (unsigned char)listener->seq;
        packet[4] = (unsigned char)(timestamp >> 24);
        packet[5] = (unsigned char)(timestamp >> 16);
        packet[6] = (unsigned char)(timestamp >> 8);
        packet[7] = (unsigned char)timestamp;
        packet[8] = (unsigned char)(listener->ssrc >> 24);
        packet[9] = (unsigned char)(listener->ssrc >> 16);
        packet[10] = (unsigned char)(listener->ssrc >> 8);
        packet[11] = (unsigned char)listener->ssrc;
        memcpy(packet + 12, shape->tail, (size_t)shape->size);
        int protected_length = (int)length;
        int code = listener->protect(listener->srtp, packet, &protected_length);
        if (code) {
            outcome[i] = SRTP_FAILED;
            detail[i] = code;
            continue;
        }
        ssize_t done = sendto(listener->fd, packet, (size_t)protected_length, 0,
                              (struct sockaddr *)&listener->addr, listener->addrlen);
        if (done < 0) {
            int error = errno;
            if (error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS) {
                /* The packet is lost for this listener but its sequence number is used:
                 * the receiver sees a gap, as with loss on the network. */
                listener->send_errors++;
                outcome[i] = listener->send_errors > max_errors ? FULL : LOST;
            } else {
                outcome[i] = SEND_FAILED;
                detail[i] = error;
                continue;
            }
        } else {
            listener->send_errors = 0;
            sent++;
        }
        listener->seq++;
        listener->packets++;
        listener->octets += (unsigned long long)payload_size;
        listener->last_timestamp = timestamp;
    }
    Py_END_ALLOW_THREADS

    PyObject *failures = Py_None;
    Py_INCREF(failures);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (outcome[i] == SENT || outcome[i] == LOST)
            continue;
        if (failures == Py_None) {
            Py_DECREF(failures);
            failures = PyList_New(0);
            if (failures == NULL)
                goto done;
        }
        PyObject *reason = failure_reason(outcome[i], detail[i]);
        PyObject *pair = reason ? PyTuple_Pack(2, (PyObject *)items[i], reason) : NULL;
        Py_XDECREF(reason);
        if (pair == NULL || PyList_Append(failures, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(failures);
            goto done;
        }
        Py_DECREF(pair);
    }
    result = Py_BuildValue("(nN)", sent, failures);

done:
    for (Py_ssize_t i = 0; i < taken; i++)
        Py_DECREF(items[i]);
    PyMem_Free(layout);
    PyMem_Free(items);
    PyMem_Free(outcome);
    PyMem_Free(detail);
    return result;
}

static PyMethodDef module_methods[] = {
    {"send_batch", send_batch, METH_VARARGS, send_batch_doc},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "node.media._rtpsend",
    .m_doc = "The native send step of the RTP fan-out (see node/media/native.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__rtpsend(void)
{
    if (PyType_Ready(&ListenerType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    Py_INCREF(&ListenerType);
    if (PyModule_AddObject(module, "Listener", (PyObject *)&ListenerType) < 0) {
        Py_DECREF(&ListenerType);
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "MAX_PACKET", MAX_PACKET) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
