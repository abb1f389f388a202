#!/usr/bin/env python3
"""Tiny random models and their Hugging Face transformers logits, for
tests/unit/test_model_hf.c.

Builds seeded random qwen2 and qwen3 models (and, with the same recipe, a
llama and a gemma3 one, to hold loft's other two architectures against
transformers too), converts each with scripts/convert-hf-to-gguf.py to an
F32 GGUF in tests/golden/qwen/<name>.gguf, and writes the logits of a few
token sequences to tests/golden/qwen/<name>.logits.

The default init (std 0.02) gives near-zero logits that any bug would still
match to 1e-3, so every weight is redrawn with a larger scale: matrices
N(0, 1/sqrt(fan_in)), norm weights 1 + N(0, 0.1) (gemma3: N(0, 0.1), its
norm multiplies by 1 + w), biases N(0, 0.1). The qwen3 model has head_dim
32 with 4 heads of a 64-wide model (head_dim != n_embd / n_head); the gemma3
one has a 4-token sliding window and a local/global layer pattern, so the
16-token sequence exercises the window.

Needs torch, transformers, safetensors, gguf, numpy. Run from the repo root:
    python3 scripts/gen-qwen-fixtures.py
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers

VOCAB = 256
SEQS = [
    [1, 17, 42, 99, 200, 5, 7],
    [3, 250, 128, 64, 32, 16, 8, 4, 2, 1, 0, 255],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 10, 20, 30, 40, 50, 60, 70],
]

COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-6, tie_word_embeddings=False)


def configs():
    yield "qwen2", transformers.Qwen2Config(**COMMON, rope_theta=10000.0)
    yield "qwen3", transformers.Qwen3Config(**COMMON, head_dim=32, rope_theta=1000000.0)
    yield "llama", transformers.LlamaConfig(**COMMON, rope_theta=10000.0)
    g = dict(COMMON, num_hidden_layers=3, tie_word_embeddings=True)
    yield "gemma3", transformers.Gemma3TextConfig(
        **g, head_dim=32, query_pre_attn_scalar=32, sliding_window=4,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
        hidden_activation="gelu_pytorch_tanh")


MODEL_CLASSES = {
    "qwen2": transformers.Qwen2ForCausalLM,
    "qwen3": transformers.Qwen3ForCausalLM,
    "llama": transformers.LlamaForCausalLM,
    "gemma3": transformers.Gemma3ForCausalLM,
}


def randomize(model, name, gen):
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                noise = torch.randn(p.shape, generator=gen) * 0.1
                p.copy_(noise if name == "gemma3" else 1.0 + noise)
            elif pname.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[1]))
            else:
                sys.exit("gen-qwen-fixtures: unexpected parameter %s" % pname)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = os.path.join(root, "tests", "golden", "qwen")
    os.makedirs(out_dir, exist_ok=True)
    converter = os.path.join(root, "scripts", "convert-hf-to-gguf.py")
    for i, (name, cfg) in enumerate(configs()):
        torch.manual_seed(1234 + i)
        gen = torch.Generator().manual_seed(1234 + i)
        cfg._attn_implementation = "eager"
        model = MODEL_CLASSES[name](cfg).eval().float()
        randomize(model, name, gen)
        tmp = tempfile.mkdtemp(prefix="loft-hf-")
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            gguf_path = os.path.join(out_dir, name + ".gguf")
            subprocess.run([sys.executable, converter, tmp, gguf_path], check=True)
        finally:
            shutil.rmtree(tmp)
        lines = ["# made by scripts/gen-qwen-fixtures.py with transformers %s, torch %s"
                 % (transformers.__version__, torch.__version__),
                 "model %s.gguf" % name, "n_vocab %d" % VOCAB]
        worst = 0.0
        for seq in SEQS:
            with torch.no_grad():
                logits = model(torch.tensor([seq])).logits[0].double().numpy()
            worst = max(worst, np.abs(logits).max())
            lines.append("seq %d %s" % (len(seq), " ".join(map(str, seq))))
            for row in logits:
                lines.append(" ".join("%.7g" % v for v in row))
        lines.append("end")
        with open(os.path.join(out_dir, name + ".logits"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("%s: %d sequences, max |logit| %.3f, gguf %d bytes"
              % (name, len(SEQS), worst, os.path.getsize(gguf_path)))


if __name__ == "__main__":
    main()
