#!/usr/bin/env python3
"""Writes tests/golden/info/<model>.json: what the PyPI `gguf` package reads
from each real model (architecture, hyperparameters, tokenizer, tensor
counts and sizes). tests/unit/test_info.c checks that `loft info --json`
reports the same values.

Usage: scripts/gen-info-fixture.py [MODELS_DIR]   (default: models)
"""
import json
import os
import sys

import numpy as np
from gguf import GGUFReader

MODELS = {
    "smollm2": "smollm2-135m-instruct-q4_1.gguf",
    "gemma3": "gemma-3-270m-q4_k_m.gguf",
}

# (suffix after "<arch>.", the name loft info --json uses)
HPARAMS = [
    ("block_count", "n_layer"),
    ("embedding_length", "n_embd"),
    ("attention.head_count", "n_head"),
    ("attention.head_count_kv", "n_head_kv"),
    ("attention.key_length", "head_dim_k"),
    ("attention.value_length", "head_dim_v"),
    ("feed_forward_length", "n_ff"),
    ("context_length", "n_ctx_train"),
    ("rope.dimension_count", "rope_dims"),
    ("rope.freq_base", "rope_freq_base"),
    ("attention.layer_norm_rms_epsilon", "norm_rms_eps"),
    ("attention.sliding_window", "sliding_window"),
    ("vocab_size", "n_vocab_arch"),
]


def scalar(reader, key):
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents()
    if isinstance(value, (np.floating, float)):
        return float(np.float32(value)) if field.types[0].name == "FLOAT32" else float(value)
    if isinstance(value, (np.integer, int, bool)):
        return int(value)
    return value


def describe(path):
    r = GGUFReader(path)
    arch = scalar(r, "general.architecture")
    hparams = {}
    for suffix, name in HPARAMS:
        v = scalar(r, f"{arch}.{suffix}")
        if v is not None:
            hparams[name] = v
    tokens = r.fields["tokenizer.ggml.tokens"]
    n_params = sum(int(np.prod([int(d) for d in t.shape])) for t in r.tensors)
    return {
        "architecture": arch,
        "name": scalar(r, "general.name"),
        "gguf_version": int(r.fields["GGUF.version"].contents()),
        "file_size": os.path.getsize(path),
        "hparams": hparams,
        "tokenizer": {
            "model": scalar(r, "tokenizer.ggml.model"),
            "pre": scalar(r, "tokenizer.ggml.pre"),
            "vocab_size": len(tokens.data),
            "chat_template": "tokenizer.chat_template" in r.fields,
        },
        "n_tensors": len(r.tensors),
        "n_params": n_params,
        "tensor_bytes": sum(int(t.n_bytes) for t in r.tensors),
        "tensors_sample": [
            {"name": t.name, "type": t.tensor_type.name,
             "shape": [int(d) for d in t.shape], "bytes": int(t.n_bytes)}
            for t in list(r.tensors)[:3] + list(r.tensors)[-2:]
        ],
    }


def main():
    models_dir = sys.argv[1] if len(sys.argv) > 1 else "models"
    out_dir = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "info")
    os.makedirs(out_dir, exist_ok=True)
    for short, file_name in MODELS.items():
        desc = describe(os.path.join(models_dir, file_name))
        desc["file"] = file_name
        with open(os.path.join(out_dir, short + ".json"), "w") as f:
            json.dump(desc, f, indent=1, sort_keys=True)
            f.write("\n")
        print(short, desc["architecture"], desc["n_tensors"], "tensors")


if __name__ == "__main__":
    main()
