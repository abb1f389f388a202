#!/usr/bin/env python3
"""Writes tests/golden/dequant-<model>.tsv: one line per tensor of a GGUF
model with its name, type, element count and a hash of its dequantization
by the gguf Python package (gguf.quants.dequantize, float32).

The hash (tests/unit/test_quant.c computes the same):
    fnv(bytes) = 64-bit FNV-1a: h = 0xcbf29ce484222325;
                 for each byte b: h = (h ^ b) * 0x100000001b3 mod 2^64
    row_hash   = fnv(little-endian float32 bytes of one row of ne[0] values)
    hash       = fnv(concatenation of every row_hash as 8 little-endian bytes)
Rows are hashed separately so numpy can hash all rows of a tensor at once
(byte-serial FNV over a 600 MB tensor in Python would take hours).

Usage: scripts/gen-dequant-hashes.py model.gguf [...]
       (default: both test models in models/; output in tests/golden/)
"""
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf import quants

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_MODELS = ["smollm2-135m-instruct-q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]
CHUNK_ROWS = 8192


def fnv_rows(byte_rows):
    """FNV-1a of each row of a (rows, n) uint8 array, as uint64[rows]."""
    cols = np.ascontiguousarray(byte_rows.T)
    h = np.full(byte_rows.shape[0], FNV_OFFSET, dtype=np.uint64)
    for col in cols:
        h ^= col.astype(np.uint64)
        h *= FNV_PRIME
    return h


def tensor_hash(t):
    ne0 = int(t.shape[0])
    n = int(t.n_elements)
    raw = np.asarray(t.data).view(np.uint8).reshape(n // ne0, -1)
    row_hashes = []
    for start in range(0, raw.shape[0], CHUNK_ROWS):
        block = raw[start:start + CHUNK_ROWS]
        vals = quants.dequantize(block, t.tensor_type)
        vals = np.ascontiguousarray(vals, dtype=np.float32).reshape(block.shape[0], ne0)
        row_hashes.append(fnv_rows(vals.astype("<f4").view(np.uint8)))
    rows = np.concatenate(row_hashes).astype("<u8").view(np.uint8).reshape(1, -1)
    return int(fnv_rows(rows)[0])


def main():
    paths = sys.argv[1:] or [os.path.join(ROOT, "models", m) for m in DEFAULT_MODELS]
    for path in paths:
        reader = GGUFReader(path)
        name = os.path.splitext(os.path.basename(path))[0]
        out = os.path.join(ROOT, "tests", "golden", "dequant-" + name + ".tsv")
        with open(out, "w") as f:
            f.write("# name\ttype\tn_elements\tfnv1a64 of rows (scripts/gen-dequant-hashes.py)\n")
            for t in reader.tensors:
                f.write("%s\t%s\t%d\t%016x\n" % (t.name, t.tensor_type.name, int(t.n_elements),
                                                 tensor_hash(t)))
        print("wrote", out, len(reader.tensors), "tensors")


if __name__ == "__main__":
    main()
