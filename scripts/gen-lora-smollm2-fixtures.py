#!/usr/bin/env python3
"""PyTorch + PEFT reference for loft's LoRA training on the real SmolLM2-135M
(tests/unit/test_lora_peft_smollm2.c).

transformers loads models/smollm2-135m-instruct-q4_1.gguf itself (it
dequantizes the Q4_1 / Q8_0 tensors with the gguf package and undoes the q/k
row permutation of the converter); PEFT wraps it with LoRA rank 2, alpha 4
(scale 2, the ratio of loft's defaults 8 / 16) on the 7 modules of the
published command (q, k, v, o, gate, up, down), no dropout. The batch is two
short records of the biomedical train set (../shared/data/biomedical_qa),
each cut to LEN tokens, with the loss on the tokens after "A:" as
--assistant-loss-only puts it. Written to tests/golden/lora/smollm2/:

  init.gguf     A (PEFT's kaiming init) and B (random, so dA is not zero),
                both rounded to F16 and stored as F16 (the reference ran with
                the rounded values, so nothing is lost), llama.cpp's adapter
                names and layout; B of attn_q / attn_k with its rows permuted
                like the GGUF base weight;
  grads.gguf    PEFT's gradients of the mean masked cross-entropy of the
                batch at init.gguf, same names and layout, each tensor
                divided by its largest magnitude before the F16 rounding
                (the test compares directions: cosine), F16;
  fixture.json  the batch (tokens, masks), the loss at init.gguf, and the 20
                losses of 20 AdamW steps (lr 1e-3, wd 0.01, betas 0.9/0.999,
                eps 1e-8, clip 1.0, constant lr, the whole batch each step)
                from init.gguf's A with B = 0 (PEFT's start).

The forward runs in float32 on the CPU. Needs torch, transformers, peft,
gguf, numpy. Run from the repo root (about two minutes, most of it loading):
    python3 scripts/gen-lora-smollm2-fixtures.py
"""
import json
import os

import gguf
import numpy as np
import peft
import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
MODEL = "smollm2-135m-instruct-q4_1.gguf"
DATA = os.path.join(ROOT, "..", "shared", "data", "biomedical_qa", "train.jsonl")
OUT = os.path.join(ROOT, "tests", "golden", "lora", "smollm2")
RANK, ALPHA, LEN, N_SEQ = 2, 4.0, 24, 2

HF = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
      "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
      "ffn_down": "mlp.down_proj"}


def permute(w, n_head):
    """HF row order -> GGUF row order (what the converter does to q/k)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def make_batch(tok):
    """The first N_SEQ records whose question is short enough that the answer
    starts inside LEN tokens: (tokens, mask) with mask 1 after "A:"."""
    batch = []
    for line in open(DATA):
        rec = json.loads(line)
        text = rec["text"]
        cut = text.index("\nA:") + 3
        head = tok(text[:cut], add_special_tokens=False)["input_ids"]
        full = tok(text, add_special_tokens=False)["input_ids"]
        if full[:len(head)] != head or len(head) > LEN - 8:
            continue
        ids = full[:LEN]
        batch.append((ids, [0] * len(head) + [1] * (len(ids) - len(head))))
        if len(batch) == N_SEQ:
            break
    return batch


def lora_modules(pm, n_layer):
    base = pm.base_model.model
    out = []
    for il in range(n_layer):
        layer = base.model.layers[il]
        for g, h in HF.items():
            mod = layer
            for part in h.split("."):
                mod = getattr(mod, part)
            out.append(("blk.%d.%s.weight" % (il, g), mod))
    return out


def write_adapter(path, tensors):
    w = gguf.GGUFWriter(path, "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", ALPHA)
    for name, arr in tensors:
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def batch_loss(pm, batch):
    total = sum(sum(m[1:]) for _, m in batch)
    loss = 0.0
    for toks, mask in batch:
        logits = pm(input_ids=torch.tensor([toks])).logits[0].double()
        lp = torch.log_softmax(logits[:-1], dim=-1)
        nll = -lp[torch.arange(len(toks) - 1), torch.tensor(toks[1:])]
        loss = loss + (nll * torch.tensor(mask[1:], dtype=torch.float64)).sum()
    return loss / total


def main():
    torch.manual_seed(0)
    tok = transformers.AutoTokenizer.from_pretrained(MODELS, gguf_file=MODEL)
    model = transformers.AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=MODEL,
                                                              dtype=torch.float32)
    cfg = model.config
    n_layer, n_head, n_kv = cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads
    batch = make_batch(tok)
    pm = peft.get_peft_model(model, peft.LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
        target_modules=[v.split(".")[-1] for v in HF.values()]))
    mods = lora_modules(pm, n_layer)
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for _, m in mods:
            a, b = m.lora_A["default"].weight, m.lora_B["default"].weight
            a.copy_(a.half().float())
            b.copy_((torch.randn(b.shape, generator=gen) * 0.02).half().float())
    A0 = {s: m.lora_A["default"].weight.detach().clone().numpy() for s, m in mods}
    B0 = {s: m.lora_B["default"].weight.detach().clone().numpy() for s, m in mods}

    def gguf_b(stem, b):
        if ".attn_q." in stem:
            return permute(b, n_head)
        if ".attn_k." in stem:
            return permute(b, n_kv)
        return b

    os.makedirs(OUT, exist_ok=True)
    write_adapter(os.path.join(OUT, "init.gguf"),
                  [(s + ".lora_a", A0[s]) for s, _ in mods] +
                  [(s + ".lora_b", gguf_b(s, B0[s])) for s, _ in mods])
    pm.zero_grad()
    loss = batch_loss(pm, batch)
    loss.backward()

    def unit(g):
        g = g.detach().numpy()
        return g / max(float(np.abs(g).max()), 1e-30)

    write_adapter(os.path.join(OUT, "grads.gguf"),
                  [(s + ".lora_a", unit(m.lora_A["default"].weight.grad)) for s, m in mods] +
                  [(s + ".lora_b", gguf_b(s, unit(m.lora_B["default"].weight.grad))) for s, m in mods])
    init_loss = float(loss)

    with torch.no_grad():
        for _, m in mods:
            m.lora_B["default"].weight.zero_()
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    curve = []
    for _ in range(20):
        opt.zero_grad()
        loss = batch_loss(pm, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        curve.append(float(loss))
    with open(os.path.join(OUT, "fixture.json"), "w") as f:
        json.dump({"model": MODEL, "rank": RANK, "alpha": ALPHA, "tokens": [b[0] for b in batch],
                   "masks": [b[1] for b in batch], "loss": init_loss, "curve": curve, "lr": 1e-3,
                   "weight_decay": 0.01, "grad_clip": 1.0}, f, indent=1)
    print("loss %.6f, curve %.4f -> %.4f" % (init_loss, curve[0], curve[-1]))


if __name__ == "__main__":
    main()
