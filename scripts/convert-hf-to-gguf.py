#!/usr/bin/env python3
"""Converts a Hugging Face causal LM checkpoint (config.json + *.safetensors)
to a GGUF file that loft reads, using the PyPI `gguf` package's GGUFWriter.

Architectures: LlamaForCausalLM (-> llama), Qwen2ForCausalLM (-> qwen2),
Qwen3ForCausalLM (-> qwen3), Gemma3ForCausalLM (-> gemma3, text only).

Tensor names and conventions follow llama.cpp's converter, so files made
here and files made there read the same:
  * llama: the q and k projection rows are permuted from Hugging Face's
    "rotate halves" layout to the interleaved pairs that NORM rope rotates;
  * qwen2/qwen3/gemma3: no permutation (NEOX rope rotates halves);
  * gemma3: RMSNorm weights are stored shifted by +1 (Gemma multiplies by
    1 + w), and the per-layer sliding/full pattern is written as a bool
    array in gemma3.attention.sliding_window_pattern.
No tokenizer is written (loft's tests feed token ids); weights are stored
as F32 (default) or F16 (--outtype f16; 1-D tensors stay F32).

    python3 scripts/convert-hf-to-gguf.py MODEL_DIR OUT.gguf [--outtype f32|f16]
"""
import argparse
import json
import os
import sys

import numpy as np

import gguf

ARCHES = {
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Gemma3ForCausalLM": "gemma3",
}

# Hugging Face suffix within model.layers.N -> GGUF name within blk.N
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.bias": "attn_output.bias",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
# post_attention_layernorm is the pre-FFN norm in llama/qwen, but a real
# post-attention norm in gemma3 (which has its own pre/post FFN norms).
LAYER_NAMES_LLAMA = {"post_attention_layernorm.weight": "ffn_norm.weight"}
LAYER_NAMES_GEMMA3 = {
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}


def load_tensors(model_dir):
    from safetensors.numpy import load_file

    out = {}
    for name in sorted(os.listdir(model_dir)):
        if name.endswith(".safetensors"):
            out.update(load_file(os.path.join(model_dir, name)))
    if not out:
        sys.exit("convert: no .safetensors files in %s" % model_dir)
    return out


def permute_for_norm_rope(w, n_head):
    """Rows of each head from (half0, half1) order to interleaved pairs."""
    rows = w.shape[0]
    return (w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:])
             .swapaxes(1, 2)
             .reshape(w.shape))


def rope_theta(cfg, kind=None):
    params = cfg.get("rope_parameters") or {}
    if kind and kind in params:
        params = params[kind]
    if "rope_theta" in params:
        return float(params["rope_theta"])
    return float(cfg.get("rope_theta", 10000.0))


def convert(model_dir, out_path, outtype):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    hf_arch = (cfg.get("architectures") or ["?"])[0]
    if hf_arch not in ARCHES:
        sys.exit("convert: architecture %s not handled (known: %s)" % (hf_arch, ", ".join(ARCHES)))
    arch = ARCHES[hf_arch]
    tensors = load_tensors(model_dir)

    n_layer = cfg["num_hidden_layers"]
    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_head_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or n_embd // n_head

    w = gguf.GGUFWriter(out_path, arch)
    w.add_name(os.path.basename(os.path.normpath(model_dir)))
    w.add_block_count(n_layer)
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if outtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    if arch == "gemma3":
        w.add_rope_freq_base(rope_theta(cfg, "full_attention"))
        w.add_rope_freq_base_swa(rope_theta(cfg, "sliding_attention"))
        if cfg.get("final_logit_softcapping"):
            w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
        if cfg.get("attn_logit_softcapping"):
            sys.exit("convert: gemma3 with attn_logit_softcapping is not expected")
        if cfg.get("query_pre_attn_scalar", head_dim) != head_dim:
            sys.exit("convert: query_pre_attn_scalar != head_dim is not handled")
        layer_types = cfg.get("layer_types")
        if cfg.get("sliding_window") and layer_types:
            w.add_sliding_window(cfg["sliding_window"])
            w.add_array("gemma3.attention.sliding_window_pattern",
                        [t == "sliding_attention" for t in layer_types])
    else:
        w.add_rope_freq_base(rope_theta(cfg))

    names = dict(LAYER_NAMES)
    names.update(LAYER_NAMES_GEMMA3 if arch == "gemma3" else LAYER_NAMES_LLAMA)
    for hf_name in sorted(tensors):
        data = tensors[hf_name].astype(np.float32)
        if hf_name == "model.embed_tokens.weight":
            name = "token_embd.weight"
        elif hf_name == "model.norm.weight":
            name = "output_norm.weight"
        elif hf_name == "lm_head.weight":
            if cfg.get("tie_word_embeddings"):
                continue
            name = "output.weight"
        elif hf_name.startswith("model.layers."):
            rest = hf_name[len("model.layers."):]
            il, suffix = rest.split(".", 1)
            if suffix not in names:
                sys.exit("convert: unexpected tensor %s" % hf_name)
            name = "blk.%s.%s" % (il, names[suffix])
            if arch == "llama" and suffix == "self_attn.q_proj.weight":
                data = permute_for_norm_rope(data, n_head)
            if arch == "llama" and suffix == "self_attn.k_proj.weight":
                data = permute_for_norm_rope(data, n_head_kv)
        elif "rotary_emb" in hf_name:
            continue
        else:
            sys.exit("convert: unexpected tensor %s" % hf_name)
        if arch == "gemma3" and name.endswith("norm.weight"):
            data = data + 1.0
        if outtype == "f16" and data.ndim > 1:
            data = data.astype(np.float16)
        w.add_tensor(name, np.ascontiguousarray(data))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--outtype", choices=["f32", "f16"], default="f32")
    a = ap.parse_args()
    convert(a.model_dir, a.out, a.outtype)


if __name__ == "__main__":
    main()
