#!/usr/bin/env python3
"""Converts a PEFT LoRA adapter (a directory with adapter_config.json and
adapter_model.safetensors, as `PeftModel.save_pretrained` writes it) to the
GGUF LoRA adapter format that loft (`--lora`) and llama.cpp read.

The output holds, for every adapted linear module,
  blk.N.<module>.weight.lora_a   F32, ne = [n_in, rank]  (PEFT lora_A: [rank, n_in])
  blk.N.<module>.weight.lora_b   F32, ne = [rank, n_out] (PEFT lora_B: [n_out, rank])
(output.weight.lora_a / _b for the lm_head) and the metadata
general.type = "adapter", adapter.type = "lora", adapter.lora.alpha and
general.architecture (taken from the base model). The delta applied is
(alpha / rank) * B @ A, PEFT's scaling; with use_rslora PEFT scales by
alpha / sqrt(rank), so the stored alpha is alpha * sqrt(rank).

The base GGUF is read for its architecture and head counts: GGUF converters
permute the rows of llama's q and k projections (Hugging Face's rotate-halves
layout to the interleaved pairs of NORM rope), so the rows of those B
matrices are permuted the same way; other architectures keep their rows.
Every tensor's shape is checked against the base model's weight.

Refused, with a message naming the key: DoRA, per-module rank or alpha
patterns, modules_to_save, LoRA on embeddings, bias training, modules loft
has no LoRA for.

Needs numpy, safetensors, gguf. Usage:
    python3 scripts/convert-peft-to-gguf.py ADAPTER_DIR BASE.gguf OUT.gguf
"""
import argparse
import json
import math
import os
import re
import sys

import numpy as np

import gguf

# PEFT module (last path component) -> GGUF tensor stem inside a block.
MODULES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
           "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}
KEY = re.compile(r"^(?:base_model\.model\.)?(?:model\.)?layers\.(\d+)\.(?:self_attn|mlp)\."
                 r"(\w+)\.lora_([AB])(?:\.default)?\.weight$")
HEAD_KEY = re.compile(r"^(?:base_model\.model\.)?lm_head\.lora_([AB])(?:\.default)?\.weight$")


def fail(msg):
    sys.exit("convert-peft-to-gguf: " + msg)


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    v = f.parts[f.data[0]]
    if f.types and f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(v).decode("utf-8")
    return v[0]


def permute(w, n_head):
    """Rows of each head from (half0, half1) order to interleaved pairs."""
    rows = w.shape[0]
    if rows % (2 * n_head):
        fail("cannot permute %d rows for %d heads" % (rows, n_head))
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_config(adapter_dir):
    path = os.path.join(adapter_dir, "adapter_config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: %s" % (path, e))
    if cfg.get("peft_type", "LORA") != "LORA":
        fail("%s: peft_type is %r, not LORA" % (path, cfg.get("peft_type")))
    for key in ("use_dora",):
        if cfg.get(key):
            fail("%s: %s is set; loft applies plain LoRA only" % (path, key))
    for key in ("rank_pattern", "alpha_pattern"):
        if cfg.get(key):
            fail("%s: %s is not empty; loft has one rank and alpha per adapter" % (path, key))
    if cfg.get("modules_to_save"):
        fail("%s: modules_to_save %r: fully trained modules are not a LoRA adapter"
             % (path, cfg["modules_to_save"]))
    if cfg.get("bias", "none") != "none":
        fail("%s: bias is %r; loft's adapters carry no biases" % (path, cfg["bias"]))
    for key in ("r", "lora_alpha"):
        if not isinstance(cfg.get(key), (int, float)) or cfg[key] <= 0:
            fail("%s: %s is missing or not positive" % (path, key))
    return path, cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("adapter_dir")
    ap.add_argument("base", help="the base model's GGUF (architecture, head counts, shapes)")
    ap.add_argument("out")
    args = ap.parse_args()

    cfg_path, cfg = read_config(args.adapter_dir)
    rank = int(cfg["r"])
    alpha = float(cfg["lora_alpha"])
    if cfg.get("use_rslora"):
        alpha *= math.sqrt(rank)

    st_path = os.path.join(args.adapter_dir, "adapter_model.safetensors")
    try:
        from safetensors.numpy import load_file
        tensors = load_file(st_path)
    except Exception as e:  # safetensors raises several kinds
        fail("%s: %s" % (st_path, e))

    base = gguf.GGUFReader(args.base)
    arch = field(base, "general.architecture")
    if arch is None:
        fail("%s: general.architecture is missing" % args.base)
    n_layer = int(field(base, arch + ".block_count"))
    n_head = int(field(base, arch + ".attention.head_count"))
    n_head_kv = field(base, arch + ".attention.head_count_kv")
    n_head_kv = n_head if n_head_kv is None else int(n_head_kv)
    shapes = {t.name: tuple(int(x) for x in reversed(t.shape.tolist())) for t in base.tensors}
    if "output.weight" not in shapes and "token_embd.weight" in shapes:
        shapes["output.weight"] = shapes["token_embd.weight"]

    pairs = {}
    for key, data in tensors.items():
        if key.endswith(".base_layer.weight"):
            # PEFT saves a copy of the frozen base weight of some targets
            # (the lm_head); the base GGUF already has it.
            print("convert-peft-to-gguf: %s: a copy of the base weight, not stored" % key,
                  file=sys.stderr)
            continue
        m = KEY.match(key)
        if m:
            layer, mod, ab = int(m.group(1)), m.group(2), m.group(3)
            if mod not in MODULES:
                fail("%s: tensor %s: loft has no LoRA for module %r" % (st_path, key, mod))
            if layer >= n_layer:
                fail("%s: tensor %s: layer %d, the base has %d" % (st_path, key, layer, n_layer))
            stem = "blk.%d.%s.weight" % (layer, MODULES[mod])
        else:
            h = HEAD_KEY.match(key)
            if not h:
                fail("%s: tensor %s is not a LoRA A/B matrix of a module loft adapts"
                     % (st_path, key))
            ab, stem, mod = h.group(1), "output.weight", "lm_head"
        if data.ndim != 2:
            fail("%s: tensor %s has %d dimensions, not 2" % (st_path, key, data.ndim))
        pairs.setdefault(stem, {})[ab] = (key, data.astype(np.float32), mod)

    if not pairs:
        fail("%s: no LoRA tensor" % st_path)
    w = gguf.GGUFWriter(args.out, arch)
    w.add_string("general.type", "adapter")
    w.add_string("general.name", "PEFT LoRA adapter (%s)" % os.path.basename(
        os.path.normpath(args.adapter_dir)))
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", alpha)
    for stem in sorted(pairs):
        p = pairs[stem]
        if "A" not in p or "B" not in p:
            fail("%s: %s has lora_%s but no lora_%s" % (st_path, stem, "A" if "A" in p else "B",
                                                          "B" if "A" in p else "A"))
        (ka, a, mod), (kb, b, _) = p["A"], p["B"]
        if stem not in shapes:
            fail("%s: the base has no tensor %s for %s" % (args.base, stem, ka))
        n_out, n_in = shapes[stem]
        if a.shape != (rank, n_in):
            fail("%s: tensor %s has shape %s; expected [%d, %d] (rank, n_in of %s)"
                 % (st_path, ka, list(a.shape), rank, n_in, stem))
        if b.shape != (n_out, rank):
            fail("%s: tensor %s has shape %s; expected [%d, %d] (n_out of %s, rank)"
                 % (st_path, kb, list(b.shape), n_out, rank, stem))
        if arch == "llama" and mod == "q_proj":
            b = permute(b, n_head)
        elif arch == "llama" and mod == "k_proj":
            b = permute(b, n_head_kv)
        w.add_tensor(stem + ".lora_a", np.ascontiguousarray(a))
        w.add_tensor(stem + ".lora_b", np.ascontiguousarray(b))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("%s -> %s: %s, %d modules, rank %d, alpha %g (from %s)"
          % (args.adapter_dir, args.out, arch, len(pairs), rank, alpha, cfg_path))


if __name__ == "__main__":
    main()
