#!/usr/bin/env python3
"""Writes the malformed GGUF files in tests/corrupt/ and EXPECTED.tsv.

Each file is a small valid GGUF (built byte by byte here, so every field can
be bent) with one fault. EXPECTED.tsv pairs each file with a substring that
loft's error message must contain; tests/unit/test_gguf.c opens every file
and checks that it is refused with that message.

It also writes the libFuzzer seed corpus tests/fuzz/seed-gguf/ (valid files,
checked with the `gguf` package's reader when it is installed).

Run from the repository root: python3 tests/corrupt/make-corrupt.py
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_DIR = os.path.join(HERE, "..", "fuzz", "seed-gguf")

# Metadata value types (GGUF specification).
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
              F32: "<f", BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
# Tensor types (ggml ids) and their (block size, block bytes).
T_F32, T_F16, T_Q8_0, T_F64 = 0, 1, 8, 28


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def gstr(b):
    if isinstance(b, str):
        b = b.encode()
    return u64(len(b)) + b


def scalar(t, v):
    return struct.pack(SCALAR_FMT[t], v)


def arr_body(elem, values):
    """Array payload (element type, count, elements); nested for ARR."""
    out = u32(elem) + u64(len(values))
    for v in values:
        if elem == STR:
            out += gstr(v)
        elif elem == ARR:
            out += arr_body(*v)
        else:
            out += scalar(elem, v)
    return out


def kv(key, t, value):
    if t == STR:
        payload = gstr(value)
    elif t == ARR:
        payload = arr_body(*value)
    else:
        payload = scalar(t, value)
    return gstr(key) + u32(t) + payload


def tinfo(name, ne, ttype, offset):
    out = gstr(name) + u32(len(ne))
    for n in ne:
        out += u64(n & 0xFFFFFFFFFFFFFFFF)
    return out + u32(ttype) + u64(offset)


def pad(buf, align):
    return buf + b"\0" * ((-len(buf)) % align)


def build(kvs, tinfos, data=b"", version=3, magic=b"GGUF", n_kv=None,
          n_tensors=None, align=32):
    head = magic + u32(version)
    head += u64(len(tinfos) if n_tensors is None else n_tensors)
    head += u64(len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tinfos)
    return pad(body, align) + data


def pattern(n, seed):
    return bytes(((i * 31 + seed * 7 + 3) & 0xFF) for i in range(n))


# ---- the valid base file ------------------------------------------------------

# A long first string keeps the byte bound on n_kv / n_tensors satisfied when
# a file is cut inside a later field.
BASE_KVS = [
    kv("general.description", STR, "d" * 300),
    kv("test.u32", U32, 7),
    kv("test.flag", BOOL, 1),
    kv("test.bytes", ARR, (U8, [1, 2, 3])),
    kv("test.names", ARR, (STR, ["a", "bc"])),
]
A_BYTES = 8 * 4          # F32 [8]
B_BYTES = 2 * 34         # Q8_0 [32, 2]
BASE_TENSORS = [
    tinfo("a", [8], T_F32, 0),
    tinfo("b", [32, 2], T_Q8_0, 32),
]
BASE_DATA = pad(pattern(A_BYTES, 1), 32) + pad(pattern(B_BYTES, 2), 32)


def base(**kw):
    args = dict(kvs=BASE_KVS, tinfos=BASE_TENSORS, data=BASE_DATA)
    args.update(kw)
    return build(**args)


def header_end(kvs=BASE_KVS, tinfos=BASE_TENSORS):
    return 24 + sum(map(len, kvs)) + sum(map(len, tinfos))


def with_kv(i, blob):
    kvs = list(BASE_KVS)
    kvs[i] = blob
    return kvs


def with_tensor(i, blob):
    ts = list(BASE_TENSORS)
    ts[i] = blob
    return ts


def nested(depth):
    v = (U8, [1])
    for _ in range(depth):
        v = (ARR, [v])
    return v


def cases():
    full = base()
    kv_start = 24
    after_desc = kv_start + len(BASE_KVS[0])
    u32_value_at = after_desc + len(gstr("test.u32")) + 4
    ti_start = kv_start + sum(map(len, BASE_KVS))
    b_info_at = ti_start + len(BASE_TENSORS[0])
    end = header_end()
    assert end % 32 != 0, "cut-before-data needs an unaligned header end"
    big = 1 << 62
    yield "empty.gguf", b"", "file is empty"
    yield "trunc-partial-magic.gguf", b"GG", "magic needs 4 bytes"
    yield "trunc-magic-only.gguf", b"GGUF", "version needs 4 bytes"
    yield "trunc-no-version.gguf", b"GGUF\x03\x00", "version needs 4 bytes"
    yield "trunc-no-counts.gguf", full[:8], "n_tensors needs 8 bytes"
    yield "trunc-mid-counts.gguf", full[:20], "n_kv needs 8 bytes"
    yield "trunc-mid-kv.gguf", full[:u32_value_at + 2], "('test.u32'): uint32 needs 4 bytes"
    yield ("trunc-mid-key.gguf", full[:after_desc + 4],
           "kv 1: key needs 8 bytes")
    yield ("trunc-mid-tensor-info.gguf", full[:b_info_at + len(gstr("b")) + 4 + 3],
           "tensor 1 ('b'): dimension needs 8 bytes")
    yield "trunc-before-data.gguf", full[:end], "data section: starts at offset"
    yield ("trunc-mid-data.gguf", full[:len(full) - 40],
           "tensor 1 ('b'): data [offset 32, 68 bytes] extends past the end of the file")
    yield "bad-magic.gguf", b"GGML" + full[4:], "bad magic"
    yield "zero-magic.gguf", b"\0" * 64, "bad magic"
    yield "version-1.gguf", base(version=1), "version 1 is not supported"
    yield "version-4.gguf", base(version=4), "version 4 is not supported"
    yield "version-0.gguf", base(version=0), "version 0 is not supported"
    yield "big-endian.gguf", base(version=0x03000000), "big-endian"
    yield "huge-n-kv.gguf", base(n_kv=1 << 63), "key-value pairs cannot fit"
    yield "n-kv-past-end.gguf", base(n_kv=len(full) // 14), "key-value pairs cannot fit"
    yield "huge-n-tensors.gguf", base(n_tensors=(1 << 64) - 1), "tensor infos cannot fit"
    yield ("huge-key-length.gguf",
           base(kvs=with_kv(0, u64((1 << 64) - 1) + BASE_KVS[0][8:])),
           "kv 0: key: string length 18446744073709551615 exceeds")
    yield ("string-past-end.gguf",
           base(kvs=with_kv(0, gstr("general.description") + u32(STR) + u64(len(full)) + b"d" * 300)),
           "('general.description'): string: string length")
    yield ("huge-array-count.gguf",
           base(kvs=with_kv(3, gstr("test.bytes") + u32(ARR) + u32(U8) + u64(big) + b"\1\2\3")),
           "array of 4611686018427387904 uint8 elements")
    yield ("array-past-end.gguf",
           base(kvs=with_kv(3, gstr("test.bytes") + u32(ARR) + u32(U32) + u64(len(full) // 4)
                            + b"\1\2\3\4")),
           "uint32 elements needs at least 4 bytes each")
    yield ("huge-string-array.gguf",
           base(kvs=with_kv(4, gstr("test.names") + u32(ARR) + u32(STR) + u64(big))),
           "string elements needs at least 8 bytes each")
    yield ("huge-nested-array.gguf",
           base(kvs=with_kv(4, gstr("test.names") + u32(ARR) + u32(ARR) + u64(big))),
           "array elements needs at least 12 bytes each")
    yield ("array-string-past-end.gguf",
           base(kvs=with_kv(4, gstr("test.names") + u32(ARR) + arr_body(STR, ["a"])[:4 + 8]
                            + u64(1 << 40) + b"a")),
           "array string: string length 1099511627776 exceeds")
    yield ("bad-value-type.gguf", base(kvs=with_kv(1, gstr("test.u32") + u32(13) + u32(7))),
           "('test.u32'): value type 13 is not a GGUF value type")
    yield ("bad-array-elem-type.gguf",
           base(kvs=with_kv(3, gstr("test.bytes") + u32(ARR) + u32(99) + u64(1) + b"\1")),
           "array element type 99 is not a GGUF value type")
    yield ("nested-depth-bomb.gguf", base(kvs=with_kv(3, kv("test.bytes", ARR, nested(200)))),
           "nested more than 16 levels")
    yield ("bad-bool.gguf", base(kvs=with_kv(2, gstr("test.flag") + u32(BOOL) + b"\2")),
           "('test.flag'): bool value is 2, expected 0 or 1")
    yield ("bad-bool-array.gguf", base(kvs=with_kv(3, kv("test.bytes", ARR, (BOOL, [1, 0, 5])))),
           "bool array element 2 is 5")
    yield "empty-key.gguf", base(kvs=with_kv(1, kv("", U32, 7))), "kv 1: key is empty"
    yield ("duplicate-key.gguf", base(kvs=with_kv(4, kv("test.u32", U32, 8))),
           "duplicate key 'test.u32' (also kv 1)")
    yield ("n-dims-0.gguf", base(tinfos=with_tensor(1, gstr("b") + u32(0) + u32(T_Q8_0) + u64(32))),
           "tensor 1 ('b'): n_dims is 0, expected 1 to 4")
    yield ("n-dims-5.gguf", base(tinfos=with_tensor(1, tinfo("b", [32, 2, 1, 1, 1], T_Q8_0, 32))),
           "n_dims is 5, expected 1 to 4")
    yield ("negative-ne.gguf", base(tinfos=with_tensor(1, tinfo("b", [32, -2], T_Q8_0, 32))),
           "ne[1] is negative (-2)")
    yield ("ne-overflow.gguf",
           base(tinfos=with_tensor(1, tinfo("b", [32, 1 << 40, 1 << 40], T_Q8_0, 32))),
           "has too many elements")
    yield ("data-size-overflow.gguf",
           base(tinfos=with_tensor(1, tinfo("b", [1 << 31, 1 << 31], T_F32, 32))),
           "overflows")
    yield ("unknown-type.gguf", base(tinfos=with_tensor(1, tinfo("b", [32, 2], 99, 32))),
           "tensor 'b' has unknown type id 99")
    yield ("removed-type-4.gguf", base(tinfos=with_tensor(1, tinfo("b", [32, 2], 4, 32))),
           "tensor 'b' has unknown type id 4")
    yield ("row-not-block-multiple.gguf",
           base(tinfos=with_tensor(1, tinfo("b", [33, 2], T_Q8_0, 32))),
           "ne[0] = 33 is not a multiple of Q8_0's block size 32")
    yield ("offset-past-end.gguf", base(tinfos=with_tensor(1, tinfo("b", [32, 2], T_Q8_0, 1 << 40))),
           "data [offset 1099511627776, 68 bytes] extends past the end of the file")
    yield ("offset-wraps.gguf",
           base(tinfos=with_tensor(1, tinfo("b", [32, 2], T_Q8_0, (1 << 64) - 32))),
           "extends past the end of the file")
    yield ("size-past-end.gguf", base(tinfos=with_tensor(1, tinfo("b", [32, 4], T_Q8_0, 32))),
           "data [offset 32, 136 bytes] extends past the end of the file")
    yield ("misaligned-offset.gguf", base(tinfos=with_tensor(1, tinfo("b", [32, 2], T_Q8_0, 36))),
           "data offset 36 is not a multiple of the alignment 32")
    yield ("overlapping-tensors.gguf", base(tinfos=with_tensor(1, tinfo("b", [32, 2], T_Q8_0, 0))),
           "overlaps tensor")
    yield ("alignment-0.gguf", base(kvs=BASE_KVS + [kv("general.alignment", U32, 0)]),
           "general.alignment: is 0, expected a non-zero power of two")
    yield ("alignment-48.gguf", base(kvs=BASE_KVS + [kv("general.alignment", U32, 48)]),
           "general.alignment: is 48, expected a non-zero power of two")
    yield ("alignment-wrong-type.gguf", base(kvs=BASE_KVS + [kv("general.alignment", U64, 32)]),
           "general.alignment: has type uint64, expected uint32")
    yield ("empty-tensor-name.gguf", base(tinfos=with_tensor(1, tinfo("", [32, 2], T_Q8_0, 32))),
           "tensor 1: name is empty")
    yield ("duplicate-tensor.gguf", base(tinfos=with_tensor(1, tinfo("a", [32, 2], T_Q8_0, 32))),
           "tensor 1 ('a'): duplicate tensor name (also tensor 0)")


# ---- seeds: valid files ---------------------------------------------------------

def seeds():
    yield "base.gguf", base()
    every = [
        kv("t.u8", U8, 200), kv("t.i8", I8, -100), kv("t.u16", U16, 60000),
        kv("t.i16", I16, -30000), kv("t.u32", U32, 4000000000), kv("t.i32", I32, -2000000000),
        kv("t.f32", F32, 1.5), kv("t.bool", BOOL, 0), kv("t.str", STR, "h\u00e9llo"),
        kv("t.u64", U64, 1 << 60), kv("t.i64", I64, -(1 << 60)), kv("t.f64", F64, -2.25),
        kv("t.arr_f32", ARR, (F32, [0.5, -1.0])),
        kv("t.arr_arr_str", ARR, (ARR, [(STR, ["x", "yz"]), (STR, [])])),
        kv("t.arr_arr_u8", ARR, (ARR, [(U8, [1, 2]), (U8, [3])])),
        kv("general.alignment", U32, 64),
    ]
    ts = [tinfo("w", [4, 2], T_F16, 0), tinfo("v", [2], T_F64, 64)]
    data = pad(pattern(16, 3), 64) + pad(pattern(16, 4), 64)
    yield "every-type.gguf", build(every, ts, data, align=64)
    yield "no-tensors-v2.gguf", build([kv("general.name", STR, "tiny")], [], version=2)
    yield "empty-v3.gguf", build([], [])


def check_with_reference(path):
    try:
        import gguf  # noqa: F401 (optional: only to vouch for the seeds)
    except ImportError:
        return
    r = gguf.GGUFReader(path)
    assert len(r.tensors) >= 0


def main():
    rows = []
    for name, blob, expect in cases():
        assert len(blob) < 4096, name
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(blob)
        assert "\t" not in expect and "\n" not in expect
        rows.append(f"{name}\t{expect}\n")
    with open(os.path.join(HERE, "EXPECTED.tsv"), "w") as f:
        f.write("# file\tsubstring of loft's error message (written by make-corrupt.py)\n")
        f.writelines(rows)
    os.makedirs(SEED_DIR, exist_ok=True)
    for name, blob in seeds():
        path = os.path.join(SEED_DIR, name)
        with open(path, "wb") as f:
            f.write(blob)
        check_with_reference(path)
    print(f"wrote {len(rows)} corrupt files and the seed corpus", file=sys.stderr)


if __name__ == "__main__":
    main()
