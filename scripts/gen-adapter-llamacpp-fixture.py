#!/usr/bin/env python3
"""llama.cpp's greedy continuations with a loft-trained adapter, for
tests/unit/test_adapter_llamacpp.c.

tests/golden/lora/smollm2-bio-r2.gguf was trained by loft itself:
    loft finetune -m models/smollm2-135m-instruct-q4_1.gguf -f FIRST_8_LINES.jsonl \
      --assistant-loss-only -c 64 -b 128 -t 2 --lora-rank 2 \
      --lora-modules attn_v,ffn_down --num-epochs 3 --learning-rate 5e-3 \
      --output-adapter tests/golden/lora/smollm2-bio-r2.gguf
(FIRST_8_LINES = the first 8 lines of ../shared/data/biomedical_qa/train.jsonl).

This script loads SmolLM2 in llama-cpp-python twice, without and with the
adapter (lora_path), tokenizes five prompts with llama.cpp's tokenizer and
writes, per prompt, the token ids and the N greedy next tokens (argmax of
the logits, fed back one at a time) of both, with the runner-up token and
the top-two logit margin at each step, to
tests/golden/lora/llamacpp-greedy.json.

Needs llama-cpp-python. Run from the repo root:
    python3 scripts/gen-adapter-llamacpp-fixture.py
"""
import json
import os

import numpy as np
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models/smollm2-135m-instruct-q4_1.gguf")
ADAPTER = os.path.join(ROOT, "tests/golden/lora/smollm2-bio-r2.gguf")
OUT = os.path.join(ROOT, "tests/golden/lora/llamacpp-greedy.json")
N_NEW = 6
PROMPTS = [
    "Q: Does propofol anaesthesia affect hepatic integrity?\nA:",
    "Q: Is aspirin associated with a lower risk of colorectal cancer?\nA:",
    "Q: Do statins reduce mortality in patients with sepsis?\nA:",
    "Q: Is obesity a risk factor for asthma in children?\nA:",
    "Q: Does vitamin D supplementation improve bone density?\nA:",
]


def greedy(llm, toks):
    """N_NEW greedy tokens, each with llama.cpp's runner-up and the logit
    margin between them (a near-tie may fall either way in another engine)."""
    llm.reset()
    llm.eval(toks)
    out, second, margin = [], [], []
    for _ in range(N_NEW):
        logits = np.array(llm.scores[llm.n_tokens - 1])
        order = np.argsort(-logits)
        t, u = int(order[0]), int(order[1])
        out.append(t)
        second.append(u)
        margin.append(float(logits[t] - logits[u]))
        llm.eval([t])
    return out, second, margin


def main():
    kw = dict(model_path=MODEL, n_ctx=256, n_threads=2, logits_all=True, verbose=False, seed=0)
    base = llama_cpp.Llama(**kw)
    tuned = llama_cpp.Llama(lora_path=ADAPTER, **kw)
    rows = []
    for p in PROMPTS:
        toks = base.tokenize(p.encode(), add_bos=False, special=False)
        row = {"prompt": p, "tokens": toks}
        for key, llm in (("base", base), ("adapter", tuned)):
            out, second, margin = greedy(llm, toks)
            row[key], row[key + "_second"], row[key + "_margin"] = out, second, margin
        rows.append(row)
    with open(OUT, "w") as f:
        json.dump({"n_new": N_NEW, "rows": rows}, f, indent=1)
    diff = sum(r["base"] != r["adapter"] for r in rows)
    print("wrote %s; the adapter changes %d of %d continuations" % (OUT, diff, len(rows)))


if __name__ == "__main__":
    main()
