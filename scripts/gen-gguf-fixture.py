#!/usr/bin/env python3
"""Writes tests/golden/gguf-models.tsv: what the reference reader (the PyPI
`gguf` package) sees in the two real models, for tests/unit/test_gguf.c.

Usage (repository root): python3 scripts/gen-gguf-fixture.py [models-dir]

One line per fact, tab-separated:
  file     NAME
  count    version|n_kv|n_tensors|alignment|data_offset  N
  kv       KEY  TYPE  VALUE                    (scalars; strings as hex)
  kvarr    KEY  ELEM_TYPE  COUNT  FIRST  LAST  (arrays; strings as hex,
                                                 FIRST/LAST '-' when empty
                                                 or nested)
  tensor   NAME  TYPE_ID  NE0,NE1,..  OFFSET  NBYTES  HEAD16  TAIL16
Key and tensor lines appear in file order. Floats are Python's repr of the
double the file's value converts to exactly.
"""
import os
import sys

import gguf
import numpy as np

MODELS = ["smollm2-135m-instruct-q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]
V = gguf.GGUFValueType
TYPE_NAMES = {V.UINT8: "uint8", V.INT8: "int8", V.UINT16: "uint16", V.INT16: "int16",
              V.UINT32: "uint32", V.INT32: "int32", V.FLOAT32: "float32", V.BOOL: "bool",
              V.STRING: "string", V.ARRAY: "array", V.UINT64: "uint64", V.INT64: "int64",
              V.FLOAT64: "float64"}


def scalar_text(vtype, part):
    if vtype == V.STRING:
        return bytes(part).hex()
    x = part[0]
    if vtype in (V.FLOAT32, V.FLOAT64):
        return repr(float(x))
    if vtype == V.BOOL:
        return "1" if bool(x) else "0"
    return str(int(x))


def describe(path, name):
    r = gguf.GGUFReader(path)
    raw = np.memmap(path, mode="r", dtype=np.uint8)
    n_kv = int(r.fields["GGUF.kv_count"].parts[-1][0])
    yield f"file\t{name}"
    yield f"count\tversion\t{int(r.fields['GGUF.version'].parts[-1][0])}"
    yield f"count\tn_kv\t{n_kv}"
    yield f"count\tn_tensors\t{len(r.tensors)}"
    yield f"count\talignment\t{r.alignment}"
    yield f"count\tdata_offset\t{r.data_offset}"
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        t = f.types[0]
        if t != V.ARRAY:
            yield f"kv\t{key}\t{TYPE_NAMES[t]}\t{scalar_text(t, f.parts[f.data[0]])}"
            continue
        elem = f.types[1]
        n = len(f.data)
        if n == 0 or elem == V.ARRAY:
            first = last = "-"
        else:
            first = scalar_text(elem, f.parts[f.data[0]])
            last = scalar_text(elem, f.parts[f.data[-1]])
        yield f"kvarr\t{key}\t{TYPE_NAMES[elem]}\t{n}\t{first}\t{last}"
    for t in r.tensors:
        off = int(t.data_offset)
        nb = int(t.n_bytes)
        head = raw[off:off + min(16, nb)].tobytes().hex()
        tail = raw[off + nb - min(16, nb):off + nb].tobytes().hex()
        ne = ",".join(str(int(x)) for x in t.shape)
        yield (f"tensor\t{t.name}\t{int(t.tensor_type)}\t{ne}\t{off - r.data_offset}\t{nb}"
               f"\t{head}\t{tail}")


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    models = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "models")
    out = os.path.join(root, "tests", "golden", "gguf-models.tsv")
    lines = ["# written by scripts/gen-gguf-fixture.py from the gguf package's reader"]
    for name in MODELS:
        lines.extend(describe(os.path.join(models, name), name))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out} ({len(lines)} lines)", file=sys.stderr)


if __name__ == "__main__":
    main()
