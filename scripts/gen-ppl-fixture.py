#!/usr/bin/env python3
"""Reference perplexities for tests/golden/ppl/text.txt, from llama.cpp
(through llama-cpp-python), computed the way llama-perplexity computes them:

  * tokenize the whole text with BOS when the model adds it;
  * n_chunk = n_tokens // n_ctx chunks of n_ctx tokens, each evaluated from an
    empty KV cache with its first token replaced by BOS when the model adds BOS;
  * score the logits at positions n_ctx/2 .. n_ctx-2 against the next token;
  * PPL = exp(mean NLL), error = PPL * sqrt((mean(NLL^2) - mean(NLL)^2) / (count-1)).

Each chunk is evaluated one token per micro-batch (n_ubatch = 1), which runs
llama.cpp's matrix-vector kernels (activations quantized to 8 bits per dot
product, as in token generation). With whole-chunk micro-batches llama.cpp
takes its matrix-matrix path instead, and the two paths of llama.cpp itself
differ by up to ~0.6% on this text (gemma3: 23.50 vs 23.64) - more than the
test's 0.5% tolerance. That batched figure is written too, for information.

Writes tests/golden/ppl/reference.txt, one line per model:
  MODEL_FILE N_CTX N_TOKENS N_CHUNKS N_SCORED PPL PPL_ERR PPL_BATCHED
tests/unit/test_perplexity.c reads it and holds loft's figure within 0.5% of PPL.

usage: scripts/gen-ppl-fixture.py [MODELS_DIR] [N_CTX]
"""
import math
import os
import sys

import numpy as np
from llama_cpp import Llama, llama_cpp

MODELS = ["smollm2-135m-instruct-q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]
TEXT = "tests/golden/ppl/text.txt"
OUT = "tests/golden/ppl/reference.txt"


def perplexity(path, text, n_ctx, n_ubatch):
    llm = Llama(path, n_ctx=n_ctx, n_batch=n_ubatch, n_ubatch=n_ubatch, logits_all=True,
                verbose=False, seed=0)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
    bos = llama_cpp.llama_vocab_bos(vocab)
    tokens = llm.tokenize(text, add_bos=True, special=False)
    if len(tokens) < 2 * n_ctx:
        sys.exit(f"{path}: {len(tokens)} tokens, need {2 * n_ctx}")
    n_chunk = len(tokens) // n_ctx
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    for c in range(n_chunk):
        chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
        if add_bos:
            chunk[0] = bos
        llm.reset()
        llm.eval(chunk)
        logits = np.array(llm.scores[:n_ctx], dtype=np.float64)
        for pos in range(first, n_ctx - 1):
            row = logits[pos]
            m = row.max()
            lse = m + math.log(np.exp(row - m).sum())
            v = lse - row[chunk[pos + 1]]
            nll += v
            nll2 += v * v
            count += 1
        print(f"  [{c + 1}]{math.exp(nll / count):.4f}", end="", flush=True)
    print()
    mean = nll / count
    ppl = math.exp(mean)
    var = nll2 / count - mean * mean
    err = ppl * math.sqrt(var / (count - 1)) if var > 0 else 0.0
    return len(tokens), n_chunk, count, ppl, err


def main():
    models_dir = sys.argv[1] if len(sys.argv) > 1 else "models"
    n_ctx = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    with open(TEXT, "rb") as f:
        text = f.read()
    lines = []
    for name in MODELS:
        print(name)
        path = os.path.join(models_dir, name)
        n_tok, n_chunk, n_scored, ppl, err = perplexity(path, text, n_ctx, 1)
        print(f"  {n_tok} tokens, {n_chunk} chunks, PPL = {ppl:.4f} +/- {err:.5f}")
        batched = perplexity(path, text, n_ctx, n_ctx)[3]
        print(f"  batched micro-batches: PPL = {batched:.4f}")
        lines.append(f"{name} {n_ctx} {n_tok} {n_chunk} {n_scored} {ppl:.6f} {err:.6f} "
                     f"{batched:.6f}\n")
    with open(OUT, "w") as f:
        f.writelines(lines)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
