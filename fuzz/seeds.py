# Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/). Run: python3 fuzz/seeds.py
# The protocol (version 2, PROTOCOL.md) is written out by hand here, as in tests/src/wire.rs:
# a third reading of it, independent of the runtime's encoder and decoder.
import os, struct
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7f; v >>= 7
        if v == 0:
            out.append(b); return bytes(out)
        out.append(b | 0x80)


def frame(b): return struct.pack('>I', len(b)) + b
def s(x): return varint(len(x)) + x


PREFACE = bytes([0x89]) + b'RPC\r\n' + bytes([2, 0])


def hello(version=2, max_frame=4 << 20, max_calls=0, window=16, formats=1, services=(), count=None):
    """A HELLO body; services are (name, [(method, kind, hash)]); count overrides the service count."""
    b = bytes([1]) + varint(version) + varint(max_frame) + varint(max_calls) + varint(window) + varint(formats)
    b += varint(len(services) if count is None else count)
    for name, methods in services:
        b += s(name) + varint(len(methods))
        for m, k, h in methods:
            b += s(m) + bytes([k]) + struct.pack('<Q', h)
    return b


def call(i, method, p=b'', service=b'', h=0, kind=0, fmt=0, dl=None, md=None, flags=None):
    """A CALL body. kind: 0 unary, 1 one-way, 2-4 streams; md: [(key, value)] metadata pairs."""
    if flags is None:
        flags = (1 if dl is not None else 0) | (2 if md is not None else 0)
    b = bytes([2]) + varint(i) + bytes([kind, flags, fmt]) + s(service) + s(method) + struct.pack('<Q', h)
    if dl is not None:
        b += varint(dl)
    if md is not None:
        b += metadata(md)
    return b + p


def metadata(pairs): return varint(len(pairs)) + b''.join(s(k) + s(v) for k, v in pairs)
def reply(i, p, md=None): return bytes([3]) + varint(i) + (bytes([2]) + metadata(md) if md is not None else bytes([0])) + p
def err(i, c, m): return bytes([4]) + varint(i) + varint(c) + s(m)
def item(i, p): return bytes([5]) + varint(i) + p
def end(i): return bytes([6]) + varint(i)
def cancel(i): return bytes([7]) + varint(i)
def credit(i, n): return bytes([8]) + varint(i) + varint(n)
def ping(n): return bytes([9]) + varint(n)
def pong(n): return bytes([10]) + varint(n)
def goaway(c, m): return bytes([11]) + varint(c) + s(m)


U64_MAX = 2**64 - 1
# A HELLO as a server sends it (two services, as the router target hosts).
server_services = [(b'Fuzzed', [(b'add', 0, 0x1111), (b'echo', 0, 0x2222), (b'note', 1, 0x3333)]),
                   (b'admin.Stats', [(b'calls', 0, 0x4444)])]
# Every way a HELLO can be malformed (PROTOCOL.md, HELLO), plus good ones.
hellos = {
    'hello_client': hello(),
    'hello_server': hello(max_calls=128, formats=3, services=server_services),
    'hello_min_frame': hello(max_frame=1024),
    'hello_bad_version': hello(version=1),
    'hello_frame_below_min': hello(max_frame=1023),
    'hello_absurd_limits': hello(max_frame=U64_MAX, max_calls=U64_MAX, window=U64_MAX, formats=U64_MAX),
    'hello_window_zero': hello(window=0),
    'hello_no_common_format': hello(formats=4),
    'hello_too_many_services': hello(count=257),
    'hello_too_many_methods': hello(count=1) + s(b'S') + varint(4097),
    'hello_methods_over_services': hello(count=2) + s(b'A') + varint(1) + s(b'm') + bytes(9)
    + s(b'B') + varint(4096),
    'hello_empty_name': hello(services=[(b'', [])]),
    'hello_long_name': hello(services=[(b'x' * 257, [])]),
    'hello_max_name': hello(services=[(b'x' * 256, [(b'y' * 256, 0, 1)])]),
    'hello_bad_utf8_name': hello(services=[(b'\xff', [])]),
    'hello_bad_method_kind': hello(services=[(b'S', [(b'm', 5, 0)])]),
    'hello_truncated_hash': hello(services=[(b'S', [(b'm', 0, 0)])])[:-3],
    'hello_trailing': hello() + b'\x00',
    'hello_overlong_varint': bytes([1, 2]) + bytes([0xff]) * 10 + bytes([1]),
}
bodies = dict(hellos)
bodies.update({
    'call_add': call(1, b'add', bytes([1, 2])),
    'call_named': call(2, b'add', bytes([1, 2]), service=b'Fuzzed', h=0x0123456789abcdef),
    'call_deadline': call(300, b'add', bytes([1, 2]), dl=1500000),
    'call_oneway': call(7, b'note', bytes([5]), kind=1),
    'call_server_stream': call(8, b'ticks', varint(3), kind=2),
    'call_client_stream': call(9, b'sum', b'', kind=3),
    'call_bidi': call(10, b'chat', b'', kind=4),
    'call_bad_kind': call(11, b'add', b'', kind=5),
    'call_unknown_flags': call(12, b'add', b'', flags=4),
    'call_json': call(13, b'add', b'[1,2]', fmt=1),
    'call_unknown_format': call(14, b'add', bytes([1, 2]), fmt=7),
    'call_metadata': call(15, b'echo', s(b'hi'), md=[(b'traceparent', b'00-4bf92f35-01'), (b'k', b'')]),
    'call_metadata_too_many': call(16, b'add', b'', md=[(b'k', b'v')] * 65),
    'call_metadata_too_big': call(17, b'add', b'', md=[(b'k', b'v' * 16384)]),
    'call_metadata_count_huge': call(18, b'add', b'', flags=2) + varint(U64_MAX),
    'call_metadata_bad_utf8': call(19, b'add', b'', md=[(b'\xc3', b'v')]),
    'call_metadata_truncated': call(20, b'add', b'', flags=2) + varint(2) + s(b'k'),
    'call_truncated_hash': call(21, b'add', b'')[:-4],
    'call_echo': call(2, b'echo', s(b'hello world')),
    'call_depth_deep': call(3, b'depth', bytes([1]) * 2000 + bytes([0, 7])),
    'call_map_huge': call(4, b'hash_map', varint(U64_MAX) + bytes([1, 2])),
    'call_units_huge': call(5, b'units', varint(U64_MAX)),
    'call_bad_utf8_method': call(6, b'\xff\xfe', b''),
    'call_zero_deadline': call(8, b'sleep', varint(10), dl=0),
    'call_max_deadline': call(9, b'sleep', varint(10), dl=U64_MAX),
    'reply': reply(1, varint(3)),
    'reply_metadata': reply(1, varint(3), md=[(b'server', b'a')]),
    'reply_bad_flags': bytes([3, 1, 1]),
    'error': err(1, 3, b'the handler panicked'),
    'error_unknown_code': err(1, 99, b'newer'),
    'item': item(4, bytes([1, 2, 3])),
    'end': end(4),
    'end_trailing': end(4) + b'\x00',
    'cancel': cancel(1),
    'credit': credit(4, 8),
    'credit_overflow': credit(4, U64_MAX),
    'ping': ping(42),
    'pong': pong(42),
    'goaway': goaway(6, b'the server is shutting down'),
    'overlong_varint': bytes([7]) + bytes([0xff]) * 11,
    'unknown_kind': bytes([99, 1, 2]),
    'empty': b'',
})
# Payload-shaped seeds for the envelope target's payload decoders.
bodies.update({
    'payload_tree': bytes([1, 1, 2, 2, 0, 7, 1, 0, 3]),
    'payload_scalars': s(b'ab') + s(b'c') + bytes([1, 1, 9]),
    'payload_map': varint(2) + varint(1) + s(b'x') + varint(2) + s(b'y'),
    'payload_nested_some': bytes([1]) * 300 + bytes([0]),
})


def write(target, seeds):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    for k, b in seeds.items():
        with open(os.path.join(d, k), 'wb') as f:
            f.write(b)


write('envelope', bodies)

write('frame_decoder', {
    'two_frames_step1': bytes([0]) + frame(b'abc') + frame(b''),
    'frames_step17': bytes([16]) + frame(b'x' * 100) + frame(b'y' * 300),
    'max_len': bytes([63]) + frame(b'z' * 4096),
    'over_max': bytes([3]) + struct.pack('>I', 4097) + b'q' * 10,
    'forged_u32_max': bytes([5]) + b'\xff\xff\xff\xff',
    'truncated_header': bytes([1]) + b'\x00\x00',
    'truncated_body': bytes([9]) + struct.pack('>I', 100) + b'w' * 50,
})

# server_connection: the frames after the client's preface and HELLO (the target sends those).
# The server hosts one service, `Fuzzed`; an empty service name means it.
sc = {
    'calls': frame(call(1, b'add', bytes([1, 2]))) + frame(call(2, b'echo', s(b'hi'), service=b'Fuzzed')) + frame(ping(1)),
    'cancel_sleep': frame(call(1, b'sleep', varint(1000))) + frame(cancel(1)) + frame(call(2, b'add', bytes([3, 4]))),
    'deadlines': frame(call(1, b'sleep', varint(5000), dl=1000)) + frame(call(2, b'sleep', varint(1), dl=U64_MAX)),
    'zero_deadline': frame(call(1, b'sleep', varint(5), dl=0)),
    'deep': frame(call(1, b'depth', bytes([1]) * 3000 + bytes([0, 7]))),
    'bad_bodies': frame(call(1, b'add', bytes([0xff]) * 11)) + frame(call(2, b'pick', bytes([9])))
    + frame(call(3, b'record', bytes([5]) + varint(10) + b'abc')),
    'unknown_method': frame(call(1, b'newer')) + frame(call(2, b'add', bytes([1, 1]))),
    'unknown_service': frame(call(1, b'add', bytes([1, 1]), service=b'Other')) + frame(call(2, b'add', bytes([1, 1]))),
    'signature_mismatch': frame(call(1, b'add', bytes([1, 1]), h=1)) + frame(call(2, b'add', bytes([1, 1]), kind=2)),
    'oneway_of_unary': frame(call(1, b'add', bytes([1, 1]), kind=1)) + frame(ping(2)),
    'stream_calls': frame(call(1, b'echo', s(b'a'), kind=2)) + frame(call(2, b'echo', s(b'a'), kind=3))
    + frame(call(3, b'echo', s(b'a'), kind=4)),
    'bad_call_kind': frame(call(1, b'add', bytes([1, 1]), kind=9)),
    'unknown_flags': frame(call(1, b'add', bytes([1, 1]), flags=0x80)),
    'json_call': frame(call(1, b'add', b'[1,2]', fmt=1)) + frame(call(2, b'echo', b'[[104,105]]', fmt=1)),
    'unknown_format': frame(call(1, b'add', bytes([1, 2]), fmt=7)),
    'metadata': frame(call(1, b'add', bytes([1, 2]), md=[(b'traceparent', b'00-ab-01'), (b'a', b'b')])),
    'metadata_too_many': frame(call(1, b'add', bytes([1, 2]), md=[(b'k', b'v')] * 65)),
    'metadata_bad_utf8': frame(call(1, b'add', bytes([1, 2]), md=[(b'k', b'\xff')])),
    'oneway_then_eof': frame(call(1, b'note', bytes([5]), kind=1)),
    'oversized_response': frame(call(1, b'blob', varint(5000))),
    'oversized_header': struct.pack('>I', 0xffffffff),
    'truncated': frame(call(1, b'add', bytes([1, 2])))[:7],
    'duplicate_ids': frame(call(5, b'sleep', varint(100))) + frame(call(5, b'add', bytes([1, 1]))),
    'violations': frame(call(5, b'sleep', varint(100))) + frame(call(5, b'add', bytes([1, 1]))) * 9,
    'cancel_flood': frame(cancel(9)) * 1100,
    'client_sends_reply': frame(reply(1, b'')),
    'client_sends_goaway': frame(goaway(6, b'bye')),
    'second_hello': frame(hello()) + frame(call(1, b'add', bytes([1, 2]))),
    'item_unknown_stream': frame(item(77, bytes([1]))) + frame(call(1, b'add', bytes([1, 2]))),
    'end_unknown_stream': frame(end(77)),
    'credit_unknown_stream': frame(credit(77, 4)),
    'stream_frames_on_unary': frame(call(1, b'sleep', varint(100))) + frame(item(1, bytes([1])))
    + frame(end(1)) + frame(credit(1, 1)),
    'credit_overflow': frame(call(1, b'sleep', varint(100))) + frame(credit(1, 2**32 - 1)) + frame(credit(1, U64_MAX)),
    'stream_violations': frame(item(77, b'')) * 3 + frame(end(78)) * 3 + frame(credit(79, 1)) * 3,
    'stream_frame_finished': frame(call(1, b'sleep', varint(5), dl=0)) + frame(item(1, b'')) + frame(end(1)),
    'empty_frame': struct.pack('>I', 0),
    'ping_flood': frame(ping(1)) * 1100,
    'unknown_kind': frame(bytes([42])),
}
write('server_connection', sc)

# server_handshake: the bytes after the client's preface, HELLO included.
good = frame(hello())
first_calls = frame(call(1, b'add', bytes([1, 2]))) + frame(ping(3))
write('server_handshake', {
    'hello_then_calls': good + first_calls,
    **{k: frame(b) + first_calls for k, b in hellos.items() if k != 'hello_client'},
    'call_before_hello': first_calls,
    'two_hellos': good + good + first_calls,
    'hello_oversized_frame': struct.pack('>I', 5000) + hello() + bytes(4990),
    'hello_truncated': good[:9],
    'goaway_for_hello': frame(goaway(6, b'no')),
    'empty': b'',
})

# server_router: after the client's preface and HELLO, to a server hosting `Fuzzed` and
# `admin.Stats` (a frame maximum of 32 KiB, so metadata can pass its 16 KiB bound).
write('server_router', {
    'calls': frame(call(1, b'add', bytes([1, 2]), service=b'Fuzzed'))
    + frame(call(2, b'calls', b'', service=b'admin.Stats')) + frame(call(3, b'reset', varint(4), service=b'admin.Stats')),
    'empty_service': frame(call(1, b'add', bytes([1, 2]))),
    'unknown_service': frame(call(1, b'add', bytes([1, 2]), service=b'Nope'))
    + frame(call(2, b'add', bytes([1, 2]), service=b'admin')),
    'bad_utf8_service': frame(call(1, b'add', bytes([1, 2]), service=b'\xff\xfe')),
    'wrong_service': frame(call(1, b'calls', b'', service=b'Fuzzed')) + frame(call(2, b'add', bytes([1, 2]), service=b'admin.Stats')),
    'signature_mismatch': frame(call(1, b'calls', b'', service=b'admin.Stats', h=7))
    + frame(call(2, b'reset', varint(1), service=b'admin.Stats', kind=0)) + frame(call(3, b'calls', b'', service=b'admin.Stats', kind=4)),
    'metadata_too_big': frame(call(1, b'calls', b'', service=b'admin.Stats', md=[(b'k', b'v' * 16384)]))
    + frame(call(2, b'calls', b'', service=b'admin.Stats', md=[(b'k' * 8192, b'v' * 8192)])),
    'metadata_at_bound': frame(call(1, b'calls', b'', service=b'admin.Stats', md=[(b'k' * 8192, b'v' * 8192)][:1])),
    'stream_frames': frame(call(1, b'add', bytes([1, 2]), service=b'Fuzzed', kind=2)) + frame(item(1, b''))
    + frame(credit(1, U64_MAX)) + frame(end(2)),
})

# client_connection: what a server sends after its preface, HELLO first, to a client with calls
# 1 (add), 2 (echo) and 3 (sleep) in flight and a one-way note sent.
shello = frame(hello(max_calls=128, services=server_services))
write('client_connection', {
    'replies': shello + frame(reply(1, varint(3))) + frame(reply(2, s(b'hi'))) + frame(reply(3, varint(5))),
    'errors': shello + frame(err(1, 1, b'add')) + frame(err(2, 12, b'Fuzzed.echo: mismatch'))
    + frame(err(3, 99, b'newer code')),
    'reply_metadata': shello + frame(reply(1, varint(3), md=[(b'k', b'v')])),
    'reply_unknown_id': shello + frame(reply(77, varint(3))) + frame(reply(1, varint(3))),
    'reply_twice': shello + frame(reply(1, varint(3))) + frame(reply(1, varint(4))),
    'reply_bad_payload': shello + frame(reply(1, bytes([0xff]) * 11)) + frame(reply(2, varint(100) + b'x')),
    'reply_bad_flags': shello + frame(bytes([3, 1, 5])),
    'goaway_shutting_down': shello + frame(reply(1, varint(3))) + frame(goaway(6, b'the server is shutting down')),
    'goaway_protocol': shello + frame(goaway(9, b'bad')),
    'ping': shello + frame(ping(5)) + frame(pong(1)),
    'stream_frames': shello + frame(item(1, bytes([1]))) + frame(end(2)) + frame(credit(3, U64_MAX)) + frame(item(99, b'')),
    'server_sends_call': shello + frame(call(1, b'add', bytes([1, 2]))),
    'server_sends_cancel': shello + frame(cancel(1)),
    'second_hello': shello + shello,
    'no_hello': frame(reply(1, varint(3))),
    'hello_bad': frame(hello(version=3)),
    'hello_no_common_format': frame(hello(formats=8)),
    'hello_small_frame': frame(hello(max_frame=1024)) + frame(reply(2, s(b'x' * 2000))),
    'oversized_frame': shello + struct.pack('>I', 0xffffffff),
    'truncated': shello + frame(reply(1, varint(3)))[:5],
    'unknown_kind': shello + frame(bytes([42])),
    'empty': b'',
})
print('ok')
