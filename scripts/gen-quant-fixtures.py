#!/usr/bin/env python3
"""Writes tests/golden/quant/*.bin: reference (de)quantization fixtures.

Dequantize fixtures (<TYPE>.bin): random blocks of raw bytes with finite
scales and edge cases (zero scale, negative scale, subnormal and largest
half scales, every quant bit set, every quant bit clear), followed by the
gguf Python package's float32 dequantization of them. Q8_1 and Q8_K are not
dequantized by the gguf package; their expected floats are computed here
with the same numpy float32 operation (q * d) that ggml performs.

Quantize fixtures (quantize-<TYPE>.bin): float32 inputs (Gaussian rows at
several scales, an all-zero block, a block with one outlier, exact ties)
followed by the gguf package's quantization of them (numpy astype for F16),
for the types the package can quantize. For the types it cannot (Q8_1 and
the K-quants) the expected bytes come from ggml's own reference quantizers
(quantize_row_*_ref in libggml-base from the llama-cpp-python package, via
ctypes); without that package those fixtures are left as they are. The
legacy types are quantized by both and the script stops if they disagree.

File layout, little-endian:
    "LQFX"  u32 version=1  u32 kind (0 dequantize, 1 quantize)
    u32 ggml type id  u32 n_values  u32 n_bytes
    kind 0: n_bytes raw blocks, then n_values float32 expected
    kind 1: n_values float32 input, then n_bytes expected blocks

Usage: scripts/gen-quant-fixtures.py [out_dir]   (default tests/golden/quant)
"""
import ctypes
import glob
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

SEED = 20261123

# Byte offsets of the f16 scale fields inside one block of each type.
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q8_1: [0, 2],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
# Blocks per dequantize fixture (kept small: the whole folder stays < 200 KiB).
N_BLOCKS = {T.Q2_K: 7, T.Q3_K: 7, T.Q4_K: 7, T.Q5_K: 7, T.Q6_K: 7, T.Q8_K: 7}
N_LEGACY_BLOCKS = 16
BLOCK_SIZES = {
    T.Q4_0: (32, 18), T.Q4_1: (32, 20), T.Q5_0: (32, 22), T.Q5_1: (32, 24), T.Q8_0: (32, 34),
    T.Q8_1: (32, 36), T.Q2_K: (256, 84), T.Q3_K: (256, 110), T.Q4_K: (256, 144),
    T.Q5_K: (256, 176), T.Q6_K: (256, 210), T.Q8_K: (256, 292),
}


def write_fixture(path, kind, qtype, n_values, payload_a, payload_b):
    with open(path, "wb") as f:
        f.write(b"LQFX")
        f.write(struct.pack("<5I", 1, kind, int(qtype), n_values, len(payload_b if kind else payload_a)))
        f.write(payload_a)
        f.write(payload_b)


def half_bits(values):
    return np.asarray(values, dtype=np.float32).astype(np.float16).view(np.uint16)


def random_blocks(rng, qtype, nb, ts):
    """nb random blocks with controlled scale fields; see module docstring."""
    raw = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    if qtype == T.Q8_K:
        d = (rng.standard_normal(nb) * 1e-3).astype(np.float32)
        d[0] = 0.0
        d[1] = -abs(d[1])
        d[2] = np.float32(1e-40)  # subnormal float32 scale
        raw[3, 4:] = 0x7F  # largest positive quants
        raw[4, 4:] = 0x80  # most negative quants
        raw[:, 0:4] = d.view(np.uint8).reshape(nb, 4)
        return raw
    fields = HALF_FIELDS[qtype]
    for k, off in enumerate(fields):
        vals = rng.standard_normal(nb) * (0.02 if k == 0 else 0.5)
        h = half_bits(vals)
        h[0] = 0x0000  # d = 0
        h[1] = half_bits([-abs(vals[1]) - 0.01])[0]  # negative scale
        h[2] = 0x0001 if k == 0 else h[2]  # smallest subnormal d
        h[3] = 0x7BFF if k == 0 else 0xFBFF  # +-65504
        h[4] = 0x8000  # negative zero
        raw[:, off:off + 2] = h.view(np.uint8).reshape(nb, 2)
    # Every non-scale byte all ones in block 5, all zero in block 6.
    mask = np.ones(ts, dtype=bool)
    for off in fields:
        mask[off:off + 2] = False
    raw[5, mask] = 0xFF
    raw[6, mask] = 0x00
    return raw


def expected_dequant(qtype, raw, bs):
    if qtype in (T.Q8_1, T.Q8_K):
        nb = raw.shape[0]
        if qtype == T.Q8_1:
            d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
            q = raw[:, 4:36].copy().view(np.int8).astype(np.float32)
        else:
            d = raw[:, 0:4].copy().view(np.float32)
            q = raw[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(nb * bs).astype(np.float32)
    return quants.dequantize(raw, qtype).reshape(-1).astype(np.float32, copy=False)


def gen_dequant(out, rng):
    for qtype, (bs, ts) in BLOCK_SIZES.items():
        nb = N_BLOCKS.get(qtype, N_LEGACY_BLOCKS)
        raw = random_blocks(rng, qtype, nb, ts)
        exp = expected_dequant(qtype, raw, bs)
        assert exp.dtype == np.float32 and exp.size == nb * bs
        write_fixture(os.path.join(out, qtype.name + ".bin"), 0, qtype, nb * bs,
                      raw.tobytes(), exp.tobytes())
    # F32: any bit pattern, including NaN payloads, infinities, subnormals.
    f32 = rng.integers(0, 2**32, size=256, dtype=np.uint64).astype(np.uint32)
    f32[:8] = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00001, 0xFF812345, 1, 0x807FFFFF]
    write_fixture(os.path.join(out, "F32.bin"), 0, T.F32, 256, f32.tobytes(),
                  f32.view(np.float32).tobytes())
    # F16: every exponent with a few mantissas, plus every subnormal step
    # pattern and the special values, plus random bits.
    special = [0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x7C01,
               0x7E00, 0xFE00, 0x7FFF, 0x3C00, 0xBC00, 0x3555, 0x8001, 0x83FF]
    h = np.concatenate([np.array(special, dtype=np.uint16),
                        np.arange(0, 1024, 7, dtype=np.uint16),
                        rng.integers(0, 65536, size=600, dtype=np.uint64).astype(np.uint16)])
    exp = quants.dequantize(h.view(np.uint8), T.F16).reshape(-1).astype(np.float32, copy=False)
    write_fixture(os.path.join(out, "F16.bin"), 0, T.F16, h.size, h.tobytes(), exp.tobytes())
    b = np.concatenate([np.array(special, dtype=np.uint16),
                        rng.integers(0, 65536, size=500, dtype=np.uint64).astype(np.uint16)])
    exp = quants.dequantize(b.view(np.uint8), T.BF16).reshape(-1).astype(np.float32, copy=False)
    write_fixture(os.path.join(out, "BF16.bin"), 0, T.BF16, b.size, b.tobytes(), exp.tobytes())


def quant_inputs(rng, n_blocks, bs):
    """Rows of Gaussian values at several scales plus edge-case blocks."""
    x = rng.standard_normal((n_blocks, bs)).astype(np.float32)
    scales = np.float32(10.0) ** rng.uniform(-6, 3, size=(n_blocks, 1)).astype(np.float32)
    x = (x * scales).astype(np.float32)
    x[0] = 0.0  # all-zero block
    x[1] = x[1] * np.float32(1e-3)
    x[1, 7] = np.float32(37.5)  # one outlier
    x[2] = np.abs(x[2])  # all positive (min > 0)
    x[3] = -np.abs(x[3])  # all negative
    x[4] = np.float32(0.25) * np.arange(bs, dtype=np.float32) - np.float32(4)  # exact ties
    x[5] = np.float32(1.0)  # constant block
    x[6, :] = 0.0
    x[6, 3] = np.float32(-1e-30)  # tiny lone value
    x[7] = np.round(x[7] * 8) / 8  # grid-aligned values
    # No negative zeros: when a block's first value of largest magnitude is
    # -0.0 (an all-zero block), ggml's C keeps +0 as the max and stores
    # d = -0 while the gguf package stores d = +0; both decode to zeros.
    return x + np.float32(0.0)


def gen_quant(out, rng):
    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1):
        bs, ts = BLOCK_SIZES[qtype]
        x = quant_inputs(rng, 32, bs)
        q = quants.quantize(x, qtype)
        assert q.shape == (32, ts)
        write_fixture(os.path.join(out, "quantize-" + qtype.name + ".bin"), 1, qtype, x.size,
                      x.tobytes(), q.tobytes())
    # F16 and BF16: random bit patterns (all classes, NaN included), values
    # halfway between neighbours, around the overflow and subnormal edges.
    bits = rng.integers(0, 2**32, size=512, dtype=np.uint64).astype(np.uint32)
    near = np.float32(2.0) ** rng.integers(-30, 17, size=512).astype(np.float32)
    near = (near * rng.uniform(1, 2, size=512).astype(np.float32)).astype(np.float32)
    ties_h = (np.arange(1, 400, dtype=np.uint32) * 157 % 0x7C00).astype(np.uint16)
    ties = ((ties_h.view(np.float16).astype(np.float32).view(np.uint32)) + np.uint32(1 << 12))
    edges = np.array([65504, 65519.99, 65520, 65536, 1e9, 6.1e-5, 6.0e-5, 2.98e-8, 2.9802322e-8,
                      2.9802326e-8, 5.96e-8, 1e-45, 0.0, -0.0], dtype=np.float32).view(np.uint32)
    xs = np.concatenate([bits, near.view(np.uint32), ties.astype(np.uint32), edges])
    xs = xs.astype(np.uint32)
    x = xs.view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        h = x.astype(np.float16)
    write_fixture(os.path.join(out, "quantize-F16.bin"), 1, T.F16, x.size, x.tobytes(),
                  h.tobytes())
    bf = quants.quantize(x, T.BF16)
    write_fixture(os.path.join(out, "quantize-BF16.bin"), 1, T.BF16, x.size, x.tobytes(),
                  bf.tobytes())


def ggml_library():
    """libggml-base from the llama-cpp-python package, or None."""
    try:
        import llama_cpp
    except ImportError:
        return None
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    found = sorted(glob.glob(os.path.join(libdir, "libggml-base.so*")))
    return ctypes.CDLL(found[0]) if found else None


def ggml_quantize(lib, qtype, x):
    bs, ts = BLOCK_SIZES[qtype]
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    out = np.zeros(x.size // bs * ts, dtype=np.uint8)
    fn = getattr(lib, "quantize_row_%s_ref" % qtype.name.lower().replace("_k", "_K"))
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    fn(x.ctypes.data, out.ctypes.data, x.size)
    return out


def gen_ggml_quant(out, rng):
    lib = ggml_library()
    if lib is None:
        print("llama_cpp not importable: Q8_1 / K-quant quantize fixtures left unchanged")
        return
    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1):
        bs, _ = BLOCK_SIZES[qtype]
        x = quant_inputs(rng, 32, bs)
        a = quants.quantize(x, qtype).reshape(-1)
        b = ggml_quantize(lib, qtype, x)
        assert np.array_equal(a, b), "gguf package and ggml disagree on " + qtype.name
    for qtype in (T.Q8_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K):
        bs, _ = BLOCK_SIZES[qtype]
        x = quant_inputs(rng, 10 if bs == 256 else 32, bs)
        q = ggml_quantize(lib, qtype, x)
        write_fixture(os.path.join(out, "quantize-" + qtype.name + ".bin"), 1, qtype, x.size,
                      x.tobytes(), q.tobytes())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "quant")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    gen_dequant(out, rng)
    gen_quant(out, rng)
    gen_ggml_quant(out, np.random.default_rng(SEED + 1))


if __name__ == "__main__":
    main()
