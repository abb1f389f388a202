#!/usr/bin/env python3
"""PyTorch + PEFT reference for loft's LoRA training (tests/unit/test_lora_peft.c).

Loads the tiny random F32 llama of tests/golden/qwen/llama.gguf into a
transformers LlamaForCausalLM (undoing the q/k row permutation that GGUF
converters apply for NORM rope), wraps it with PEFT LoRA (rank 4, alpha 8,
every linear module and the lm_head, no dropout) and writes:

  tests/golden/lora/init.gguf     A and B random (B != 0, so dA is not zero),
                                  in llama.cpp's adapter layout;
  tests/golden/lora/grads.gguf    PEFT's gradients of the mean masked
                                  cross-entropy of the batch below w.r.t. A
                                  and B, same names and layout;
  tests/golden/lora/init_b0.gguf  the same A with B = 0 (PEFT's start);
  tests/golden/lora/fixture.json  the batch (tokens, loss masks), the loss
                                  at init.gguf, and the 20 losses of 20
                                  AdamW steps (lr 1e-3, wd 0.01, betas 0.9 /
                                  0.999, eps 1e-8, clip 1.0, constant lr,
                                  the whole batch every step) from init_b0.

A B matrix of attn_q / attn_k is stored with its rows permuted like the
base weight (as llama.cpp's convert_lora_to_gguf does), so loft applies it
to its permuted q/k rows.

Needs torch, transformers, peft, gguf, numpy. Run from the repo root:
    python3 scripts/gen-lora-fixtures.py
"""
import json
import os

import numpy as np
import torch
import transformers
import gguf
import peft

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "tests/golden/qwen/llama.gguf")
OUT = os.path.join(ROOT, "tests/golden/lora")
RANK, ALPHA = 4, 8.0

BATCH = [
    ([1, 17, 42, 99, 200, 5, 7, 250, 128, 64, 32, 16], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]),
    ([3, 250, 128, 64, 32, 16, 8, 4, 2], [0, 1, 1, 1, 1, 1, 1, 1, 1]),
    ([9, 8, 7, 6, 5, 4, 3, 2, 1, 10, 20, 30, 40, 50], [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]),
]

HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
      "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
      "ffn_down": "mlp.down_proj"}


def permute(w, n_head):
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def field(r, k):
    f = r.fields[k]
    return f.parts[f.data[0]][0]


def load_model():
    r = gguf.GGUFReader(SRC)
    n_layer = int(field(r, "llama.block_count"))
    n_head = int(field(r, "llama.attention.head_count"))
    n_kv = int(field(r, "llama.attention.head_count_kv"))
    cfg = transformers.LlamaConfig(
        vocab_size=int(field(r, "llama.vocab_size")), hidden_size=int(field(r, "llama.embedding_length")),
        intermediate_size=int(field(r, "llama.feed_forward_length")), num_hidden_layers=n_layer,
        num_attention_heads=n_head, num_key_value_heads=n_kv,
        max_position_embeddings=int(field(r, "llama.context_length")),
        rms_norm_eps=float(field(r, "llama.attention.layer_norm_rms_epsilon")),
        rope_theta=float(field(r, "llama.rope.freq_base")), tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(cfg).float()
    t = {x.name: np.array(x.data, dtype=np.float32).reshape([int(d) for d in reversed(x.shape)])
         for x in r.tensors}
    sd = {"model.embed_tokens.weight": t["token_embd.weight"], "lm_head.weight": t["output.weight"],
          "model.norm.weight": t["output_norm.weight"]}
    for il in range(n_layer):
        p, b = "model.layers.%d." % il, "blk.%d." % il
        sd[p + "input_layernorm.weight"] = t[b + "attn_norm.weight"]
        sd[p + "post_attention_layernorm.weight"] = t[b + "ffn_norm.weight"]
        for g, h in HF.items():
            w = t[b + g + ".weight"]
            if g == "attn_q":
                w = unpermute(w, n_head)
            elif g == "attn_k":
                w = unpermute(w, n_kv)
            sd[p + h + ".weight"] = w
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()})
    return model, n_layer, n_head, n_kv


def lora_modules(pm, n_layer):
    """(gguf stem, peft Linear) for every adapted matrix."""
    base = pm.base_model.model
    out = [("output.weight", base.lm_head)]
    for il in range(n_layer):
        layer = base.model.layers[il]
        for g, h in HF.items():
            mod = layer
            for part in h.split("."):
                mod = getattr(mod, part)
            out.append(("blk.%d.%s.weight" % (il, g), mod))
    return out


def head_count_for(stem, n_head, n_kv):
    if ".attn_q." in stem:
        return n_head
    if ".attn_k." in stem:
        return n_kv
    return None


def write_adapter(path, tensors):
    w = gguf.GGUFWriter(path, "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", ALPHA)
    for name, arr in tensors:
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def batch_loss(pm):
    total = sum(sum(m[1:]) for _, m in BATCH)
    loss = 0.0
    for toks, mask in BATCH:
        ids = torch.tensor([toks])
        logits = pm(input_ids=ids).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        tgt = torch.tensor(toks[1:])
        nll = -lp[torch.arange(len(toks) - 1), tgt]
        loss = loss + (nll * torch.tensor(mask[1:], dtype=torch.float64)).sum()
    return loss / total


def main():
    torch.manual_seed(0)
    model, n_layer, n_head, n_kv = load_model()
    cfg = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
                          target_modules=list(v.split(".")[-1] for v in HF.values()) + ["lm_head"])
    pm = peft.get_peft_model(model, cfg)
    mods = lora_modules(pm, n_layer)
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for stem, m in mods:
            m.lora_B["default"].weight.copy_(torch.randn(m.lora_B["default"].weight.shape, generator=gen) * 0.05)
    A0 = {s: m.lora_A["default"].weight.detach().clone() for s, m in mods}
    B0 = {s: m.lora_B["default"].weight.detach().clone() for s, m in mods}

    def to_gguf_b(stem, b):
        nh = head_count_for(stem, n_head, n_kv)
        return permute(b, nh) if nh else b

    os.makedirs(OUT, exist_ok=True)
    write_adapter(os.path.join(OUT, "init.gguf"),
                  [(s + ".lora_a", A0[s].numpy()) for s, _ in mods] +
                  [(s + ".lora_b", to_gguf_b(s, B0[s].numpy())) for s, _ in mods])
    pm.zero_grad()
    loss = batch_loss(pm)
    loss.backward()
    write_adapter(os.path.join(OUT, "grads.gguf"),
                  [(s + ".lora_a", m.lora_A["default"].weight.grad.numpy()) for s, m in mods] +
                  [(s + ".lora_b", to_gguf_b(s, m.lora_B["default"].weight.grad.numpy())) for s, m in mods])
    init_loss = float(loss)

    # 20 steps from B = 0, the whole batch per step.
    with torch.no_grad():
        for s, m in mods:
            m.lora_B["default"].weight.zero_()
    write_adapter(os.path.join(OUT, "init_b0.gguf"),
                  [(s + ".lora_a", A0[s].numpy()) for s, _ in mods] +
                  [(s + ".lora_b", np.zeros_like(B0[s].numpy())) for s, _ in mods])
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    curve = []
    for _ in range(20):
        opt.zero_grad()
        loss = batch_loss(pm)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        curve.append(float(loss))
    with open(os.path.join(OUT, "fixture.json"), "w") as f:
        json.dump({"rank": RANK, "alpha": ALPHA, "tokens": [b[0] for b in BATCH],
                   "masks": [b[1] for b in BATCH], "loss": init_loss, "curve": curve,
                   "lr": 1e-3, "weight_decay": 0.01, "grad_clip": 1.0}, f, indent=1)
    print("loss %.6f, curve %.4f -> %.4f" % (init_loss, curve[0], curve[-1]))


if __name__ == "__main__":
    main()
