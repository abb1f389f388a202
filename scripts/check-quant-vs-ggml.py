#!/usr/bin/env python3
"""Dev-time cross-check of src/quant against ggml's compiled reference code.

Builds src/quant/*.c into a temporary shared library and compares, on
random rows from several distributions (Gaussian at two scales, Laplace,
positive uniform, Student-t heavy tails, sparse, block-varying magnitude,
tiny 1e-6 values, grid-aligned values), loft_quantize_row with ggml's
quantize_row_<type>_ref and loft_dequantize_row with ggml's
dequantize_row_<type> (libggml-base from the llama-cpp-python package).
Prints the number of differing blocks / values per type; exits 1 if any.

Usage: scripts/check-quant-vs-ggml.py [n_superblocks_per_distribution]
"""
import ctypes
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import llama_cpp

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TYPES = {  # ggml name: (id, block size, block bytes)
    "q4_0": (2, 32, 18), "q4_1": (3, 32, 20), "q5_0": (6, 32, 22), "q5_1": (7, 32, 24),
    "q8_0": (8, 32, 34), "q8_1": (9, 32, 36), "q2_K": (10, 256, 84), "q3_K": (11, 256, 110),
    "q4_K": (12, 256, 144), "q5_K": (13, 256, 176), "q6_K": (14, 256, 210),
    "q8_K": (15, 256, 292),
}


def build_loft(tmp):
    so = os.path.join(tmp, "libloftquant.so")
    srcs = sorted(glob.glob(os.path.join(ROOT, "src", "quant", "*.c")))
    subprocess.check_call(["cc", "-std=c11", "-O2", "-ffp-contract=off", "-fPIC", "-shared",
                           "-I" + os.path.join(ROOT, "include"), "-I" + os.path.join(ROOT, "src"),
                           "-o", so] + srcs)
    lib = ctypes.CDLL(so)
    for fn in (lib.loft_quantize_row, lib.loft_dequantize_row):
        fn.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn.restype = ctypes.c_bool
    return lib


def ggml_fn(lib, name):
    fn = getattr(lib, name)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    return fn


def main():
    n = 256 * (int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    ggml = ctypes.CDLL(sorted(glob.glob(os.path.join(libdir, "libggml-base.so*")))[0])
    rng = np.random.default_rng(7)
    dists = {
        "gauss": lambda: rng.standard_normal(n),
        "gauss*0.02": lambda: rng.standard_normal(n) * 0.02,
        "laplace": lambda: rng.laplace(size=n) * 3,
        "uniform+": lambda: rng.uniform(0, 1, n),
        "student-t2": lambda: rng.standard_t(2, size=n),
        "sparse": lambda: rng.standard_normal(n) * (rng.uniform(size=n) < 0.05),
        "varying": lambda: (rng.standard_normal(n).reshape(-1, 32) *
                            10 ** rng.uniform(-3, 3, (n // 32, 1))).reshape(-1),
        "tiny": lambda: rng.standard_normal(n) * 1e-6,
        "grid": lambda: np.round(rng.standard_normal(n) * 4) / 4,
    }
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        loft = build_loft(tmp)
        for tname, (tid, bs, ts) in TYPES.items():
            bad = 0
            for dname, gen in dists.items():
                x = np.ascontiguousarray(gen().astype(np.float32))
                a = np.zeros(n // bs * ts, np.uint8)
                b = np.zeros_like(a)
                ggml_fn(ggml, "quantize_row_%s_ref" % tname)(x.ctypes.data, a.ctypes.data, n)
                assert loft.loft_quantize_row(tid, x.ctypes.data, b.ctypes.data, n)
                nq = int((a.reshape(-1, ts) != b.reshape(-1, ts)).any(axis=1).sum())
                nd = 0
                if hasattr(ggml, "dequantize_row_%s" % tname):
                    ya = np.zeros(n, np.float32)
                    yb = np.zeros(n, np.float32)
                    ggml_fn(ggml, "dequantize_row_%s" % tname)(a.ctypes.data, ya.ctypes.data, n)
                    assert loft.loft_dequantize_row(tid, a.ctypes.data, yb.ctypes.data, n)
                    nd = int((ya.view(np.uint32) != yb.view(np.uint32)).sum())
                if nq or nd:
                    print("  %s %s: %d blocks quantize differently, %d values dequantize "
                          "differently" % (tname, dname, nq, nd))
                bad += nq + nd
            print("%-5s %7d blocks, %d mismatches" % (tname, len(dists) * n // bs, bad))
            total += bad
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
