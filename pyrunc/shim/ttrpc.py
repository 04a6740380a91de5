"""ttrpc, containerd's RPC over a unix socket: frames of a 10-byte header (payload length
u32, stream id u32, type u8, flags u8; big-endian) carrying a protobuf Request (client,
odd stream ids) or Response. Unary calls only: that is all the Task and Events services use.

The server answers each request on a thread of its own (Wait blocks until a process exits,
so calls must not queue behind one another), reused from the requests before it
(`Workers`); replies are written whole under a lock."""
from __future__ import annotations

import _thread
import os
import socket
import struct
import threading
import time

from pyrunc.shim import shim_pb2 as pb

HEADER = struct.Struct(">IIBB")
TYPE_REQUEST = 1
TYPE_RESPONSE = 2
MAX_MESSAGE = 4 << 20

# google.golang.org/grpc/codes, which containerd maps to its errdefs
OK = 0
UNKNOWN = 2
INVALID_ARGUMENT = 3
NOT_FOUND = 5
ALREADY_EXISTS = 6
FAILED_PRECONDITION = 9
UNIMPLEMENTED = 12
UNAVAILABLE = 14


class Error(Exception):
    """An error returned to the client as a ttrpc status."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Workers:
    """Runs each call at once on an idle thread, or on a new one when none is idle; a
    thread idle for `idle` seconds ends (an idle one costs ≈ 20 kB: its stack's touched
    pages, the interpreter's per-thread data). A thread per request costs a clone, a
    fresh stack's page faults, the start handshake and the unmap at exit each time; the
    pods' requests come in bursts."""

    def __init__(self, idle: float = 1.0):
        self.idle = idle
        self.lock = _thread.allocate_lock()
        self.parked: list[_Slot] = []  # idle threads, the newest last
        self.last_call = 0.0  # time.monotonic() of the latest submit

    def submit(self, function, *args) -> None:
        self.last_call = time.monotonic()
        with self.lock:
            slot = self.parked.pop() if self.parked else None  # the newest: its stack is warm
        if slot is None:
            threading.Thread(target=self._work, args=((function, args),), daemon=True).start()
        else:
            slot.call = (function, args)
            slot.wake.release()

    def _work(self, call) -> None:
        while call is not None:
            try:
                call[0](*call[1])
            except BaseException:  # a call reports its own errors; the thread lives on
                pass
            call = None  # parked with no reference to the last request
            call = self._park()

    def _park(self):
        slot = _Slot()
        with self.lock:
            self.parked.append(slot)
        if slot.wake.acquire(timeout=self.idle):
            return slot.call
        with self.lock:
            if slot in self.parked:
                self.parked.remove(slot)
                return None
        slot.wake.acquire()  # a call was handed over meanwhile
        return slot.call


class _Slot:
    """An idle worker: `wake` is released once `call` is set."""
    __slots__ = ("call", "wake")

    def __init__(self):
        self.call = None
        self.wake = _thread.allocate_lock()
        self.wake.acquire()


WORKERS = Workers()  # one for every server of the process


class Deferred:
    """A reply a handler gives later (Wait: when the process exits) instead of keeping a
    thread blocked until then: resolve() it with the response message."""
    __slots__ = ("_lock", "_callbacks", "_message")

    def __init__(self):
        self._lock = _thread.allocate_lock()
        self._callbacks: list = []
        self._message = None

    def resolve(self, message) -> None:
        with self._lock:
            self._message = message
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(message)

    def then(self, callback) -> None:
        """callback(message) once resolved (at once when it is)."""
        with self._lock:
            if self._message is None:
                self._callbacks.append(callback)
                return
        callback(self._message)


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> tuple[int, int, bytes] | None:
    """(stream id, type, payload), or None at end of stream."""
    header = _read_exact(sock, HEADER.size)
    if header is None:
        return None
    length, stream_id, kind, _flags = HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise OSError(f"ttrpc frame of {length} bytes exceeds the {MAX_MESSAGE} limit")
    payload = _read_exact(sock, length) if length else b""
    if payload is None:
        return None
    return stream_id, kind, payload


def frame(stream_id: int, kind: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), stream_id, kind, 0) + payload


class Server:
    """Serves `handlers[(service, method)] = (request type, function)` on a listening
    unix socket; each function takes the decoded request and returns a message."""

    def __init__(self, listener: socket.socket, handlers: dict):
        self.listener = listener
        self.handlers = handlers
        self.closing = False

    def serve_forever(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                if self.closing:
                    return
                raise
            threading.Thread(target=self._serve_connection, args=(conn,), daemon=True).start()

    def _serve_connection(self, conn: socket.socket) -> None:
        write_lock = threading.Lock()
        try:
            while True:
                got = read_frame(conn)
                if got is None:
                    return
                stream_id, kind, payload = got
                if kind != TYPE_REQUEST:
                    continue
                WORKERS.submit(self._answer, conn, write_lock, stream_id, payload)
        except OSError:
            return
        finally:
            # answers still running write to a closed socket and drop the reply
            conn.close()

    def _answer(self, conn, write_lock, stream_id: int, payload: bytes) -> None:
        response = pb.Response()
        try:
            request = pb.Request.FromString(payload)
            if self.closing:
                raise Error(UNAVAILABLE, "ttrpc: the shim is shutting down")
            entry = self.handlers.get((request.service, request.method))
            if entry is None:
                raise Error(UNIMPLEMENTED, f"{request.service}/{request.method}: method not implemented")
            request_type, function = entry
            result = function(request_type.FromString(request.payload))
            if isinstance(result, Deferred):
                result.then(lambda message: self._reply(conn, write_lock, stream_id, message))
                return
            response.payload = result.SerializeToString()
        except Error as error:
            response.status.code = error.code
            response.status.message = error.message
        except Exception as error:  # one bad request must not take the shim down
            response.status.code = UNKNOWN
            response.status.message = f"{type(error).__name__}: {error}"
        self._send(conn, write_lock, stream_id, response)

    def _reply(self, conn, write_lock, stream_id: int, message) -> None:
        self._send(conn, write_lock, stream_id, pb.Response(payload=message.SerializeToString()))

    @staticmethod
    def _send(conn, write_lock, stream_id: int, response) -> None:
        data = frame(stream_id, TYPE_RESPONSE, response.SerializeToString())
        with write_lock:
            try:
                conn.sendall(data)
            except OSError:  # the connection is gone: the reply with it
                pass


class Client:
    """A blocking unary client (one call at a time), for publishing events to containerd."""

    def __init__(self, address: str):
        self.address = address.removeprefix("unix://")
        self.sock: socket.socket | None = None
        self.next_stream = 1

    def call(self, service: str, method: str, message, response_type=pb.Empty, timeout: float = 10):
        if self.sock is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(self.address)
            except OSError:
                self.close()
                raise
        stream_id = self.next_stream
        self.next_stream += 2
        request = pb.Request(service=service, method=method, payload=message.SerializeToString(),
                             timeout_nano=int(timeout * 1e9))
        try:
            self.sock.sendall(frame(stream_id, TYPE_REQUEST, request.SerializeToString()))
            while True:
                got = read_frame(self.sock)
                if got is None:
                    raise OSError("ttrpc: connection closed")
                if got[0] == stream_id and got[1] == TYPE_RESPONSE:
                    break
        except OSError:
            self.close()
            raise
        response = pb.Response.FromString(got[2])
        if response.status.code != OK:
            raise Error(response.status.code, response.status.message)
        return response_type.FromString(response.payload)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def listen(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock
