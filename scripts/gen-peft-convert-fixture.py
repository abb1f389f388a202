#!/usr/bin/env python3
"""A tiny PEFT LoRA adapter, its GGUF conversion and PEFT's logits, for
tests/unit/test_peft_convert.c (scripts/convert-peft-to-gguf.py end to end).

The base is the tiny random F32 llama of tests/golden/qwen/llama.gguf, loaded
into transformers as scripts/gen-lora-fixtures.py does (q/k rows un-permuted).
PEFT wraps it with LoRA rank 4, alpha 6 (scale 1.5, so a converter that
dropped alpha / rank would be caught) on q, k, v, o, gate, up, down and the
lm_head. PEFT starts B at zero, which would make the adapter a no-op, so A
and B are redrawn (seeded): A ~ N(0, 1/sqrt(n_in)), B ~ N(0, 0.5/sqrt(rank)),
a delta comparable to the base weights. Written to tests/golden/peft/:

  adapter/adapter_config.json, adapter/adapter_model.safetensors
                 the adapter as PeftModel.save_pretrained writes it;
  adapter.gguf   that directory converted by scripts/convert-peft-to-gguf.py;
  llama-lora.logits
                 PEFT's logits (F32) of three token sequences, in the format
                 of tests/golden/qwen/*.logits.

Needs torch, transformers, peft, safetensors, gguf, numpy. From the repo root:
    python3 scripts/gen-peft-convert-fixture.py
"""
import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import transformers
import peft

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "golden", "peft")
BASE = os.path.join(ROOT, "tests", "golden", "qwen", "llama.gguf")
RANK, ALPHA = 4, 6.0
SEQS = [
    [1, 17, 42, 99, 200, 5, 7],
    [3, 250, 128, 64, 32, 16, 8, 4, 2, 1, 0, 255],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 10, 20, 30, 40, 50, 60, 70],
]


def base_loader():
    spec = importlib.util.spec_from_file_location(
        "gen_lora_fixtures", os.path.join(ROOT, "scripts", "gen-lora-fixtures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.load_model


def main():
    torch.manual_seed(7)
    gen = torch.Generator().manual_seed(7)
    model, _, _, _ = base_loader()()
    model.eval()
    cfg = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                          "up_proj", "down_proj", "lm_head"])
    pm = peft.get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if ".lora_A." in name:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[1]))
            elif ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5 / np.sqrt(p.shape[1]))
    pm.eval()
    adir = os.path.join(OUT, "adapter")
    shutil.rmtree(adir, ignore_errors=True)
    os.makedirs(adir)
    pm.save_pretrained(adir)
    # README.md is PEFT's model-card boilerplate, not part of the adapter.
    card = os.path.join(adir, "README.md")
    if os.path.exists(card):
        os.remove(card)
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert-peft-to-gguf.py"),
                    adir, BASE, os.path.join(OUT, "adapter.gguf")], check=True)
    lines = ["# made by scripts/gen-peft-convert-fixture.py with transformers %s, peft %s, torch %s"
             % (transformers.__version__, peft.__version__, torch.__version__),
             "model llama.gguf", "n_vocab %d" % model.config.vocab_size]
    moved = 0.0
    for seq in SEQS:
        with torch.no_grad():
            x = torch.tensor([seq])
            lg = pm(x).logits[0].double().numpy()
            with pm.disable_adapter():
                plain = pm(x).logits[0].double().numpy()
        moved = max(moved, np.abs(lg - plain).max())
        lines.append("seq %d %s" % (len(seq), " ".join(map(str, seq))))
        for row in lg:
            lines.append(" ".join("%.7g" % v for v in row))
    lines.append("end")
    with open(os.path.join(OUT, "llama-lora.logits"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("adapter moves the logits by up to %.3f" % moved)


if __name__ == "__main__":
    main()
