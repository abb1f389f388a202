#!/usr/bin/env python3
"""Dev-time check of `loft quantize` against llama.cpp (llama-cpp-python).

For each type (default Q8_0 Q4_0 Q4_K_M) it
  1. quantizes SRC with loft (`loft quantize --allow-requantize`),
  2. quantizes SRC with llama.cpp's own quantizer (llama_model_quantize),
     and compares the two files tensor by tensor (type and bytes) and key by key,
  3. loads loft's file with llama_cpp.Llama (the "llama.cpp loads it" check),
  4. scores a fixed text with llama.cpp on SRC and on loft's file: perplexity
     of each, and the mean KL-divergence KL(SRC || quantized) per token over
     the whole vocabulary, with the share of tokens whose top-1 prediction
     is unchanged.
It prints a markdown table (for bench/RESULTS.md) and exits 1 when any file
differs from llama.cpp's or fails to load.

Not run by `make test`: llama-cpp-python is a development tool only.

Usage: scripts/check-quantized-with-llamacpp.py [--loft build/loft] [--src MODEL]
           [--text FILE] [--ctx 256] [TYPE ...]
"""
import argparse
import ctypes
import os
import subprocess
import sys
import tempfile

import numpy as np

FTYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9,
          "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
          "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "BF16": 32}


def llamacpp_quantize(src, dst, ftype):
    import llama_cpp
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.allow_requantize = True
    p.nthread = os.cpu_count() or 1
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize returned {rc}")


def compare_files(a_path, b_path):
    """Differences between two GGUF files: list of strings (empty when equal)."""
    import gguf
    a, b = gguf.GGUFReader(a_path), gguf.GGUFReader(b_path)
    diffs = []
    ta = {t.name: t for t in a.tensors}
    tb = {t.name: t for t in b.tensors}
    if set(ta) != set(tb):
        diffs.append(f"tensor names differ: {sorted(set(ta) ^ set(tb))[:5]}")
    for name in sorted(set(ta) & set(tb)):
        x, y = ta[name], tb[name]
        if x.tensor_type != y.tensor_type:
            diffs.append(f"{name}: {x.tensor_type.name} vs {y.tensor_type.name}")
        elif x.data.tobytes() != y.data.tobytes():
            diffs.append(f"{name}: bytes differ ({x.tensor_type.name})")
    ka, kb = set(a.fields), set(b.fields)
    if ka != kb:
        diffs.append(f"metadata keys differ: {sorted(ka ^ kb)}")
    return diffs


def logits_of(model_path, tokens, n_ctx):
    """Logits for every position of tokens, evaluated in independent chunks of n_ctx."""
    from llama_cpp import Llama
    llm = Llama(model_path=model_path, n_ctx=n_ctx, n_batch=n_ctx, logits_all=True,
                verbose=False, n_threads=os.cpu_count() or 1)
    out = []
    for start in range(0, len(tokens) - 1, n_ctx):
        chunk = tokens[start:start + n_ctx]
        if len(chunk) < 2:
            break
        llm.reset()
        llm.eval(chunk)
        out.append((chunk, np.array(llm.scores[:len(chunk)], dtype=np.float64)))
    return out


def log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def score(ref_chunks, q_chunks):
    """Perplexity of the reference and the quantized model, mean KL, top-1 agreement."""
    nll_ref = nll_q = kl = same = n = 0.0
    for (toks, lr), (_, lq) in zip(ref_chunks, q_chunks):
        pr, pq = log_softmax(lr[:-1]), log_softmax(lq[:-1])
        nxt = np.array(toks[1:])
        idx = np.arange(len(nxt))
        nll_ref -= pr[idx, nxt].sum()
        nll_q -= pq[idx, nxt].sum()
        kl += (np.exp(pr) * (pr - pq)).sum()
        same += (pr.argmax(axis=-1) == pq.argmax(axis=-1)).sum()
        n += len(nxt)
    return float(np.exp(nll_ref / n)), float(np.exp(nll_q / n)), kl / n, same / n, int(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loft", default="build/loft")
    ap.add_argument("--src", default="models/smollm2-135m-instruct-q4_1.gguf")
    ap.add_argument("--text", default="tests/golden/ppl/text.txt")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("types", nargs="*", default=["Q8_0", "Q4_0", "Q4_K_M"])
    args = ap.parse_args()

    from llama_cpp import Llama
    text = open(args.text, encoding="utf-8").read()
    vocab = Llama(model_path=args.src, vocab_only=True, verbose=False)
    tokens = vocab.tokenize(text.encode("utf-8"), add_bos=True)
    ref = logits_of(args.src, tokens, args.ctx)

    failed = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in args.types:
            ours = os.path.join(tmp, f"loft-{t}.gguf")
            theirs = os.path.join(tmp, f"llamacpp-{t}.gguf")
            subprocess.run([args.loft, "quantize", "-q", "--allow-requantize", args.src, ours, t],
                           check=True)
            llamacpp_quantize(args.src, theirs, FTYPES[t])
            diffs = compare_files(ours, theirs)
            for d in diffs[:10]:
                print(f"  {t}: {d}", file=sys.stderr)
            try:
                Llama(model_path=ours, vocab_only=False, n_ctx=64, verbose=False)
                loads = "yes"
            except Exception as e:  # noqa: BLE001 - any failure to load is the finding
                loads = f"no ({e})"
                failed = True
            ppl_ref, ppl_q, kl, same, n = score(ref, logits_of(ours, tokens, args.ctx))
            size = os.path.getsize(ours) / 2**20
            rows.append((t, size, "identical" if not diffs else f"{len(diffs)} differences",
                         loads, ppl_ref, ppl_q, kl, same, n))
            failed |= bool(diffs)

    print(f"Source: `{args.src}`; text: `{args.text}` ({len(tokens)} tokens, chunks of {args.ctx}, "
          f"every token after the first of its chunk scored); logits from llama.cpp.\n")
    print("| type | size MiB | vs llama-quantize | llama.cpp loads | PPL source | PPL quantized "
          "| mean KL(source‖quant) | same top-1 |")
    print("| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for t, size, cmp, loads, pr, pq, kl, same, n in rows:
        print(f"| {t} | {size:.1f} | {cmp} | {loads} | {pr:.4f} | {pq:.4f} | {kl:.5f} | "
              f"{100 * same:.1f}% |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
