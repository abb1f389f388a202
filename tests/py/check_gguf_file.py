#!/usr/bin/env python3
"""Checks a GGUF file written by loft's writer with the reference reader.

Usage: check_gguf_file.py FILE

tests/unit/test_gguf.c (case gguf_python_reads_writer_output) writes FILE
from a fixed spec; SPEC below is the same spec, kept in sync by hand. The file
is opened with gguf.GGUFReader (the PyPI `gguf` package) and every key, type,
value, tensor shape, type, offset and byte is compared. Exits 0 when all
match, 1 with one line per mismatch otherwise, 2 when `gguf` is missing.
"""
import struct
import sys

try:
    import gguf
    import numpy as np
except ImportError as e:
    print(f"check_gguf_file: cannot import the reference reader: {e}", file=sys.stderr)
    sys.exit(2)

V = gguf.GGUFValueType
ALIGNMENT = 64

# (key, type, value); arrays are (element type, [values]), nested arrays
# hold (element type, [values]) items.
SPEC = [
    ("general.alignment", V.UINT32, ALIGNMENT),
    ("py.u8", V.UINT8, 250),
    ("py.i8", V.INT8, -120),
    ("py.u16", V.UINT16, 65000),
    ("py.i16", V.INT16, -32000),
    ("py.u32", V.UINT32, 4000000000),
    ("py.i32", V.INT32, -2000000000),
    ("py.f32", V.FLOAT32, 0.15625),
    ("py.bool", V.BOOL, True),
    ("py.str", V.STRING, "h\u00e9llo w\u00f6rld"),
    ("py.u64", V.UINT64, (1 << 63) + 5),
    ("py.i64", V.INT64, -(1 << 62)),
    ("py.f64", V.FLOAT64, 3.141592653589793),
    ("py.arr_i32", V.ARRAY, (V.INT32, [-1, 0, 7, 2147483647])),
    ("py.arr_f32", V.ARRAY, (V.FLOAT32, [0.5, -2.25])),
    ("py.arr_bool", V.ARRAY, (V.BOOL, [True, False, True])),
    ("py.arr_str", V.ARRAY, (V.STRING, ["alpha", "", "gamma \u03b4"])),
    ("py.arr_arr_str", V.ARRAY, (V.ARRAY, [(V.STRING, ["a", "b"]), (V.STRING, []),
                                            (V.STRING, ["c"])])),
    ("py.arr_arr_u8", V.ARRAY, (V.ARRAY, [(V.UINT8, [1, 2, 3]), (V.UINT8, [255])])),
    ("py.empty_arr", V.ARRAY, (V.UINT64, [])),
]

# (name, ggml type, ne, nbytes); data byte i of tensor k is (i*31 + k*7 + 3) & 255.
TENSORS = [
    ("t.f32", gguf.GGMLQuantizationType.F32, [5, 3], 5 * 3 * 4),
    ("t.f16", gguf.GGMLQuantizationType.F16, [8, 2], 8 * 2 * 2),
    ("t.q8_0", gguf.GGMLQuantizationType.Q8_0, [64, 3], 2 * 34 * 3),
]

SCALAR_FMT = {V.UINT8: "<B", V.INT8: "<b", V.UINT16: "<H", V.INT16: "<h", V.UINT32: "<I",
              V.INT32: "<i", V.FLOAT32: "<f", V.BOOL: "<?", V.UINT64: "<Q", V.INT64: "<q",
              V.FLOAT64: "<d"}


def encode_array(elem, values):
    """The value bytes of an array, as the GGUF specification lays them out."""
    out = struct.pack("<IQ", int(elem), len(values))
    for v in values:
        if elem == V.STRING:
            b = v.encode()
            out += struct.pack("<Q", len(b)) + b
        elif elem == V.ARRAY:
            out += encode_array(*v)
        else:
            out += struct.pack(SCALAR_FMT[elem], v)
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = sys.argv[1]
    errors = []
    r = gguf.GGUFReader(path)
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    want_keys = [k for k, _, _ in SPEC]
    if keys != want_keys:
        errors.append(f"keys in file order {keys}, expected {want_keys}")
    for key, vtype, value in SPEC:
        f = r.fields.get(key)
        if f is None:
            errors.append(f"{key}: missing")
            continue
        if f.types[0] != vtype:
            errors.append(f"{key}: type {f.types[0].name}, expected {vtype.name}")
            continue
        if vtype == V.ARRAY:
            got = b"".join(p.tobytes() for p in f.parts[3:])
            if got != encode_array(*value):
                errors.append(f"{key}: array bytes differ from the expected encoding")
            elif value[0] != V.ARRAY and f.contents() != list(value[1]):
                errors.append(f"{key}: elements {f.contents()}, expected {value[1]}")
        elif f.contents() != value:
            errors.append(f"{key}: value {f.contents()!r}, expected {value!r}")
    if r.alignment != ALIGNMENT:
        errors.append(f"alignment {r.alignment}, expected {ALIGNMENT}")
    if len(r.tensors) != len(TENSORS):
        errors.append(f"{len(r.tensors)} tensors, expected {len(TENSORS)}")
    raw = np.memmap(path, mode="r", dtype=np.uint8)
    for k, (name, ttype, ne, nbytes) in enumerate(TENSORS):
        if k >= len(r.tensors):
            break
        t = r.tensors[k]
        if t.name != name:
            errors.append(f"tensor {k}: name {t.name!r}, expected {name!r}")
        if t.tensor_type != ttype:
            errors.append(f"{name}: type {t.tensor_type.name}, expected {ttype.name}")
        if t.shape.tolist() != ne:
            errors.append(f"{name}: shape {t.shape.tolist()}, expected {ne}")
        if t.n_bytes != nbytes:
            errors.append(f"{name}: {t.n_bytes} bytes, expected {nbytes}")
        if (t.data_offset - r.data_offset) % ALIGNMENT != 0:
            errors.append(f"{name}: offset {t.data_offset} not aligned to {ALIGNMENT}")
        want = bytes(((i * 31 + k * 7 + 3) & 0xFF) for i in range(nbytes))
        if raw[t.data_offset:t.data_offset + nbytes].tobytes() != want:
            errors.append(f"{name}: data bytes differ")
        if t.data.tobytes() != want:
            errors.append(f"{name}: data bytes through the reader differ")
    for e in errors:
        print(f"check_gguf_file: {path}: {e}", file=sys.stderr)
    if not errors:
        print(f"check_gguf_file: {path}: {len(SPEC)} keys and {len(TENSORS)} tensors match")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
