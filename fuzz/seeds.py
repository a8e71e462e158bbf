# Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/). Run: python3 fuzz/seeds.py
# The protocol is written out by hand here, as in tests/src/wire.rs.
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
def req(i, m, p, dl=None, oneway=False):
    flags = (1 if dl is not None else 0) | (2 if oneway else 0)
    return bytes([1]) + varint(i) + bytes([flags]) + (varint(dl) if dl is not None else b'') + s(m) + p
def resp(i, p): return bytes([2]) + varint(i) + p
def err(i, c, m): return bytes([3]) + varint(i) + varint(c) + s(m)
def cancel(i): return bytes([4]) + varint(i)
def ping(n): return bytes([5]) + varint(n)
def pong(n): return bytes([6]) + varint(n)
def goaway(c, m): return bytes([7]) + varint(c) + s(m)
bodies = {
 'request_add': req(1, b'add', bytes([1, 2])),
 'request_deadline': req(300, b'add', bytes([1, 2]), dl=1500000),
 'request_oneway': req(7, b'note', bytes([5]), oneway=True),
 'request_echo': req(2, b'echo', s(b'hello world')),
 'request_depth_deep': req(3, b'depth', bytes([1])*2000 + bytes([0, 7])),
 'request_map_huge': req(4, b'hash_map', varint(2**64-1) + bytes([1, 2])),
 'request_units_huge': req(5, b'units', varint(2**64-1)),
 'request_bad_utf8_method': req(6, b'\xff\xfe', b''),
 'request_zero_deadline': req(8, b'sleep', varint(10), dl=0),
 'request_max_deadline': req(9, b'sleep', varint(10), dl=2**64-1),
 'response': resp(1, varint(3)),
 'error': err(1, 3, b'the handler panicked'),
 'cancel': cancel(1),
 'ping': ping(42),
 'pong': pong(42),
 'goaway': goaway(6, b'the server is shutting down'),
 'overlong_varint': bytes([4]) + bytes([0xff])*11,
 'unknown_kind': bytes([99, 1, 2]),
 'empty': b'',
}
os.makedirs(f'{root}/envelope', exist_ok=True)
for k, b in bodies.items():
    open(f'{root}/envelope/{k}', 'wb').write(b)
# Payload-shaped seeds for the envelope target's payload decoders.
for k, b in {'payload_tree': bytes([1, 1, 2, 2, 0, 7, 1, 0, 3]), 'payload_scalars': s(b'ab') + s(b'c') + bytes([1, 1, 9]),
             'payload_map': varint(2) + varint(1) + s(b'x') + varint(2) + s(b'y'), 'payload_nested_some': bytes([1])*300 + bytes([0])}.items():
    open(f'{root}/envelope/{k}', 'wb').write(b)
os.makedirs(f'{root}/frame_decoder', exist_ok=True)
fd = {
 'two_frames_step1': bytes([0]) + frame(b'abc') + frame(b''),
 'frames_step17': bytes([16]) + frame(b'x'*100) + frame(b'y'*300),
 'max_len': bytes([63]) + frame(b'z'*4096),
 'over_max': bytes([3]) + struct.pack('>I', 4097) + b'q'*10,
 'forged_u32_max': bytes([5]) + b'\xff\xff\xff\xff',
 'truncated_header': bytes([1]) + b'\x00\x00',
 'truncated_body': bytes([9]) + struct.pack('>I', 100) + b'w'*50,
}
for k, b in fd.items():
    open(f'{root}/frame_decoder/{k}', 'wb').write(b)
os.makedirs(f'{root}/server_connection', exist_ok=True)
sc = {
 'calls': frame(req(1, b'add', bytes([1, 2]))) + frame(req(2, b'echo', s(b'hi'))) + frame(ping(1)),
 'cancel_sleep': frame(req(1, b'sleep', varint(1000))) + frame(cancel(1)) + frame(req(2, b'add', bytes([3, 4]))),
 'deadlines': frame(req(1, b'sleep', varint(5000), dl=1000)) + frame(req(2, b'sleep', varint(1), dl=2**64-1)),
 'deep': frame(req(1, b'depth', bytes([1])*3000 + bytes([0, 7]))),
 'bad_bodies': frame(req(1, b'add', bytes([0xff])*11)) + frame(req(2, b'pick', bytes([9]))) + frame(req(3, b'record', bytes([5]) + varint(10) + b'abc')),
 'unknown_method': frame(req(1, b'newer', b'')) + frame(req(2, b'add', bytes([1, 1]))),
 'oneway_then_eof': frame(req(1, b'note', bytes([5]), oneway=True)),
 'oversized_response': frame(req(1, b'blob', varint(5000))),
 'oversized_header': struct.pack('>I', 0xffffffff),
 'truncated': frame(req(1, b'add', bytes([1, 2])))[:7],
 'duplicate_ids': frame(req(5, b'sleep', varint(100))) + frame(req(5, b'add', bytes([1, 1]))),
 'client_sends_response': frame(resp(1, b'')),
 'empty_frame': struct.pack('>I', 0),
 'ping_flood': frame(ping(1)) * 1100,
}
for k, b in sc.items():
    open(f'{root}/server_connection/{k}', 'wb').write(b)
print('ok')
