#!/usr/bin/env python3
"""The PyTorch + PEFT side of bench/finetune-vs-peft: SmolLM2 dequantized
from the same GGUF by transformers (F32, CPU), LoRA on the same modules
with the same rank/alpha, the biomedical records split as loft splits them
(prompt = text up to and including "\\nA:", completion = the rest + EOS,
loss on the completion only), sequences cut to -c tokens, optimizer steps
of as many sequences as fit in -b tokens (at least one), AdamW with the same
hyperparameters, clipping 1.0, cosine schedule with warmup. Prints one JSON
line: tokens/s, peak RSS, final train loss, validation loss.

    python3 peft_train.py MODEL.gguf TRAIN.jsonl VAL.jsonl --steps N -t THREADS
"""
import argparse
import json
import math
import os
import resource
import time

import torch
import transformers
import peft


def load(path, tok, n_ctx):
    out = []
    for line in open(path):
        r = json.loads(line)
        text = r["text"]
        i = text.find("\nA:")
        p, c = (text[: i + 3], text[i + 3 :]) if i >= 0 else ("", text)
        pi = tok(p, add_special_tokens=False)["input_ids"] if p else []
        ci = tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ids = (pi + ci)[:n_ctx]
        mask = ([0] * len(pi) + [1] * len(ci))[:n_ctx]
        mask[0] = 0
        out.append((ids, mask))
    return out


def seq_loss(model, ids, mask):
    x = torch.tensor([ids])
    logits = model(input_ids=x).logits[0, :-1].float()
    lp = torch.log_softmax(logits, -1)
    nll = -lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    m = torch.tensor(mask[1:], dtype=torch.float32)
    return (nll * m).sum(), int(m.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("train")
    ap.add_argument("val")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-c", type=int, default=128)
    ap.add_argument("-b", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--lr-min", type=float, default=1e-8)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    args = ap.parse_args()
    torch.set_num_threads(args.t)
    d, f = os.path.split(os.path.abspath(args.model))
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    cfg = peft.LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                          "up_proj", "down_proj"])
    model = peft.get_peft_model(model, cfg)
    train, val = load(args.train, tok, args.c), load(args.val, tok, args.c)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    warm = int(0.1 * args.steps)
    pos, tokens, last = 0, 0, float("nan")
    t0 = time.time()
    for step in range(args.steps):
        batch, n = [], 0
        while pos < len(train) and (not batch or n + len(train[pos][0]) <= args.b):
            batch.append(train[pos]); n += len(train[pos][0]); pos += 1
        if pos >= len(train):
            pos = 0
        total = sum(sum(m[1:]) for _, m in batch)
        lr = args.lr * (step + 1) / warm if step < warm else args.lr_min + 0.5 * (args.lr - args.lr_min) * (
            1 + math.cos(math.pi * (step - warm) / max(1, args.steps - warm - 1)))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        s = 0.0
        for ids, m in batch:
            l, _ = seq_loss(model, ids, m)
            (l / total).backward()
            s += float(l)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        tokens += n
        last = s / total
    el = time.time() - t0
    with torch.no_grad():
        vs, vn = 0.0, 0
        for ids, m in val:
            l, c = seq_loss(model, ids, m)
            vs += float(l); vn += c
    print(json.dumps({"engine": "pytorch+peft f32", "steps": args.steps, "tokens_per_s": tokens / el,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "train_loss": last, "val_loss": vs / vn}))


if __name__ == "__main__":
    main()
