#!/usr/bin/env python3
"""A client of the calculator example in Python, standard library only, written from PROTOCOL.md.

    python3 calc_client.py tcp:127.0.0.1:4000        # calls every method, prints the results
    python3 calc_client.py unix:/tmp/calc.sock
    python3 calc_client.py tcp:127.0.0.1:4000 bad-frame      # sends a frame of an unknown kind
    python3 calc_client.py tcp:127.0.0.1:4000 bad-flags      # sends a CALL with an unknown flag bit

Start the server with `cargo run -p rpc-examples --example calculator -- serve tcp:127.0.0.1:4000`.
It speaks the JSON format (CALL.format = 1), so it needs no schema: it computes one signature hash
itself (FNV-1a 64 of the signature text, docs/signatures.md) and sends 0 (skip the check) for the
others. Exit status 0 when every call got the answer it expects, 1 otherwise.
"""

import json
import socket
import struct
import sys

PREFACE = b"\x89RPC\r\n\x02\x00"
VERSION = 2
MAX_FRAME = 4 * 1024 * 1024

# Frame kinds.
HELLO, CALL, REPLY, ERROR, ITEM, END, CANCEL, CREDIT, PING, PONG, GOAWAY = range(1, 12)
# Call kinds.
UNARY, ONEWAY = 0, 1
# Formats.
FORMAT_JSON = 1
FORMAT_BITS = {"postcard": 1, "json": 2}
# Error codes (PROTOCOL.md, "Replies and errors").
ERROR_NAMES = {
    1: "UNKNOWN_METHOD", 2: "BAD_REQUEST", 3: "INTERNAL", 4: "DEADLINE_EXCEEDED", 5: "OVERLOADED",
    6: "SHUTTING_DOWN", 7: "CANCELLED", 8: "FRAME_TOO_LARGE", 9: "PROTOCOL", 10: "IDLE",
    11: "UNKNOWN_SERVICE", 12: "SIGNATURE_MISMATCH", 13: "STREAM_PROTOCOL", 14: "METADATA_TOO_LARGE",
    15: "UNSUPPORTED_FORMAT",
}
KIND_NAMES = {0: "unary", 1: "oneway", 2: "server_stream", 3: "client_stream", 4: "bidi"}


# --- Field encodings ---------------------------------------------------------------------------

def varint(n):
    """Unsigned LEB128."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(s):
    data = s.encode("utf-8")
    return varint(len(data)) + data


def fnv1a64(text):
    """The signature hash: FNV-1a 64 over the signature text's UTF-8 bytes."""
    h = 0xCBF29CE484222325
    for b in text.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Reader:
    """Reads the fields of one frame body."""

    def __init__(self, body):
        self.body, self.pos = body, 0

    def u8(self):
        if self.pos >= len(self.body):
            raise ValueError("frame ends early")
        self.pos += 1
        return self.body[self.pos - 1]

    def varint(self):
        n, shift = 0, 0
        for _ in range(10):
            b = self.u8()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise ValueError("varint longer than 10 bytes")

    def bytes(self, n):
        if self.pos + n > len(self.body):
            raise ValueError("frame ends early")
        self.pos += n
        return self.body[self.pos - n:self.pos]

    def string(self):
        return self.bytes(self.varint()).decode("utf-8")

    def hash(self):
        return struct.unpack("<Q", self.bytes(8))[0]

    def metadata(self):
        return [(self.string(), self.string()) for _ in range(self.varint())]

    def rest(self):
        return self.body[self.pos:]


# --- The connection ----------------------------------------------------------------------------

def connect(addr):
    scheme, _, rest = addr.partition(":")
    if scheme == "tcp":
        host, _, port = rest.rpartition(":")
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    elif scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(rest)
    else:
        raise SystemExit(f"bad address {addr!r}: write tcp:HOST:PORT or unix:PATH")
    return sock


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("the server closed the connection")
        data += chunk
    return bytes(data)


def send_frame(sock, body):
    sock.sendall(struct.pack(">I", len(body)) + body)


def read_frame(sock):
    (length,) = struct.unpack(">I", recv_exact(sock, 4))
    if length > MAX_FRAME:
        raise ValueError(f"the server sent a frame of {length} bytes, over our maximum of {MAX_FRAME}")
    return recv_exact(sock, length)


def hello_body():
    """Our HELLO: version 2, our frame maximum, 0 calls served, a window of 16, JSON, no services."""
    return (bytes([HELLO]) + varint(VERSION) + varint(MAX_FRAME) + varint(0) + varint(16)
            + varint(FORMAT_BITS["json"]) + varint(0))


def parse_hello(body):
    r = Reader(body)
    if r.u8() != HELLO:
        raise ValueError("the server's first frame is not a HELLO")
    hello = {"version": r.varint(), "max_frame": r.varint(), "max_calls": r.varint(),
             "stream_window": r.varint(), "formats": r.varint(), "services": {}}
    for _ in range(r.varint()):
        name = r.string()
        methods = {}
        for _ in range(r.varint()):
            method = r.string()
            methods[method] = (KIND_NAMES.get(r.u8(), "?"), r.hash())
        hello["services"][name] = methods
    if r.rest():
        raise ValueError("bytes left over after the HELLO")
    return hello


def call_body(call_id, service, method, args, kind=UNARY, signature=0, timeout_us=None, flags_extra=0):
    flags = (0x01 if timeout_us is not None else 0) | flags_extra
    body = bytes([CALL]) + varint(call_id) + bytes([kind, flags, FORMAT_JSON])
    body += string(service) + string(method) + struct.pack("<Q", signature)
    if timeout_us is not None:
        body += varint(timeout_us)
    return body + json.dumps(args).encode("utf-8")


def parse_frame(body):
    """A frame from the server, as a tuple: ("reply", id, value), ("error", id, code, message),
    ("goaway", code, message), ("ping", nonce) or ("other", kind)."""
    r = Reader(body)
    kind = r.u8()
    if kind == REPLY:
        call_id, flags = r.varint(), r.u8()
        if flags & 0x02:
            r.metadata()
        return ("reply", call_id, json.loads(r.rest()))
    if kind == ERROR:
        return ("error", r.varint(), r.varint(), r.string())
    if kind == GOAWAY:
        return ("goaway", r.varint(), r.string())
    if kind == PING:
        return ("ping", r.varint())
    return ("other", kind)


class Connection:
    def __init__(self, addr):
        self.sock = connect(addr)
        # Both sides send their preface and HELLO without waiting for the other's.
        self.sock.sendall(PREFACE + struct.pack(">I", len(hello_body())) + hello_body())
        preface = recv_exact(self.sock, 8)
        if preface[:6] != PREFACE[:6]:
            raise ValueError("the server does not speak this protocol")
        if preface[6] != VERSION:
            raise ValueError(f"the server speaks protocol version {preface[6]}, this client {VERSION}")
        first = read_frame(self.sock)
        if first[0] == GOAWAY:  # a server at its connection limit refuses in place of its HELLO
            _, code, message = parse_frame(first)
            raise ConnectionError(f"refused: GOAWAY {ERROR_NAMES.get(code, code)}: {message}")
        self.hello = parse_hello(first)
        self.next_id = 1

    def send(self, body):
        send_frame(self.sock, body)

    def new_id(self):
        self.next_id += 1
        return self.next_id - 1

    def answers(self, ids):
        """Reads frames until every id in `ids` has its REPLY or ERROR; answers come in any order."""
        got = {}
        while len(got) < len(ids):
            frame = parse_frame(read_frame(self.sock))
            if frame[0] in ("reply", "error"):
                got[frame[1]] = frame
            elif frame[0] == "ping":
                self.send(bytes([PONG]) + varint(frame[1]))
            elif frame[0] == "goaway":
                raise ConnectionError(f"GOAWAY {ERROR_NAMES.get(frame[1], frame[1])}: {frame[2]}")
        return got

    def goaway_after(self, body):
        """Sends a raw frame body and returns the server's GOAWAY (code name, message)."""
        self.send(body)
        while True:
            try:
                frame = parse_frame(read_frame(self.sock))
            except EOFError:
                return None
            if frame[0] == "goaway":
                return (ERROR_NAMES.get(frame[1], str(frame[1])), frame[2])


def show(frame):
    if frame[0] == "reply":
        return json.dumps(frame[2])
    return f"ERROR {ERROR_NAMES.get(frame[2], frame[2])}: {frame[3]}"


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    addr, mode = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "calls")
    conn = Connection(addr)
    services = conn.hello["services"]
    print("services:", ", ".join(f"{s} ({len(m)} methods)" for s, m in services.items()))

    if mode == "bad-frame":
        # Kind 99 is no frame kind: the server answers GOAWAY PROTOCOL and closes.
        goaway = conn.goaway_after(bytes([99, 1, 2, 3]))
        print(f"GOAWAY {goaway[0]}: {goaway[1]}" if goaway else "closed without a GOAWAY")
        return 0 if goaway and goaway[0] == "PROTOCOL" else 1
    if mode == "bad-flags":
        # An unknown flag bit fails only its call, with ERROR PROTOCOL; the connection carries on.
        bad = conn.new_id()
        conn.send(call_body(bad, "Calculator", "add", [1, 2], flags_extra=0x80))
        good = conn.new_id()
        conn.send(call_body(good, "Calculator", "add", [2, 2]))
        got = conn.answers([bad, good])
        print("bad flags:", show(got[bad]))
        print("then add(2, 2) =", show(got[good]))
        return 0 if got[bad][0] == "error" and got[bad][2] == 9 and got[good][2] == 4 else 1

    add_hash = fnv1a64("unary (i64,i64)->i64")
    advertised = services["Calculator"]["add"][1]
    print(f"add's signature hash: computed {add_hash:#018x}, advertised {advertised:#018x}")

    calls = [
        # (label, service, method, args, signature, expected)
        ("add(1, 2)", "Calculator", "add", [1, 2], add_hash, 3),
        ("div(84, 2)", "Calculator", "div", [84, 2], 0, {"Ok": 42}),
        ("div(1, 0)", "Calculator", "div", [1, 0], 0, {"Err": "DivisionByZero"}),
        ("sum([1..10])", "Calculator", "sum", [list(range(1, 11))], 0, 55),
        ("sleep(1) within 5 s", "Calculator", "sleep", [1], 0, 1),
        ("mul(2, 3)", "Calculator", "mul", [2, 3], 0, "UNKNOWN_METHOD"),
        ("add(1, \"two\")", "Calculator", "add", [1, "two"], 0, "BAD_REQUEST"),
        ("add with a wrong hash", "Calculator", "add", [1, 2], add_hash ^ 1, "SIGNATURE_MISMATCH"),
        ("Abacus.add(1, 2)", "Abacus", "add", [1, 2], 0, "UNKNOWN_SERVICE"),
        ("describe add", "rpc.Introspection", "describe", ["Calculator", "add"], 0, None),
    ]
    # Every call is sent before any answer is read: they are multiplexed on the one connection.
    ids = []
    for label, service, method, args, signature, _ in calls:
        timeout = 5_000_000 if method == "sleep" else None
        ids.append(conn.new_id())
        conn.send(call_body(ids[-1], service, method, args, signature=signature, timeout_us=timeout))
    # A one-way call gets no answer at all.
    conn.send(call_body(conn.new_id(), "Calculator", "log", ["hello from Python"], kind=ONEWAY))
    got = conn.answers(ids)

    ok = True
    for call_id, (label, _, _, _, _, expected) in zip(ids, calls):
        frame = got[call_id]
        print(f"{label} = {show(frame)}")
        if label == "describe add":
            args = frame[2]["Ok"][0]["args"] if frame[0] == "reply" else None
            ok &= args == [{"name": "a", "ty": {"rust": "i64", "wire": "i64"}},
                           {"name": "b", "ty": {"rust": "i64", "wire": "i64"}}]
        elif isinstance(expected, str):
            ok &= frame[0] == "error" and ERROR_NAMES.get(frame[2]) == expected
        else:
            ok &= frame[0] == "reply" and frame[2] == expected
    ok &= add_hash == advertised
    conn.sock.close()
    print("all answers as expected" if ok else "SOME ANSWERS WERE WRONG")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
