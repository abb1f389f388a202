#!/usr/bin/env python3
"""The PyTorch + PEFT trainer of bench/finetune-vs-peft and bench/quality.

It trains a LoRA adapter the way `loft finetune` does, so the two trainers
differ only in their arithmetic:
- base: SmolLM2 dequantized from the same GGUF by transformers (F32, CPU);
- data: each JSONL record as loft's dataset reader builds it (prompt =
  "text" up to and including "\\nA:", completion = the rest + EOS; BOS only
  when the GGUF asks for it; each part tokenized on its own); sequences cut
  to -c tokens; with --assistant-loss-only the loss is on the completion
  tokens only, otherwise on all of them (never on the first token);
- order: loft's epoch order (xoshiro256** seeded with splitmix64 from
  seed ^ (0x9e3779b97f4a7c15 * (epoch + 1)), a Fisher-Yates shuffle), or the
  file order with --no-shuffle;
- steps: as many sequences as fit in -b tokens (at least one), the loss of a
  step the sum of the target NLLs over the step's target count;
- AdamW (weight decay 0.01, betas 0.9/0.999, eps 1e-8), gradient clipping
  1.0, constant / linear / cosine schedule with linear warmup, as loft's
  lr_at; LoRA A drawn by PEFT (kaiming-uniform, the bound loft uses), B = 0.

Prints one line per step (loss, lr, sequences, tokens: compare them with
loft's train_log.jsonl) on stderr and a JSON summary on stdout; --save DIR
writes the adapter (adapter_model.safetensors + adapter_config.json), and
--save-steps N a copy every N steps (DIR/step-N). The defaults are the
published command's (lr 1e-5 -> 1e-8 cosine, warmup 10 %, the 7 modules,
loss on the answer only; --loss-on-all trains on every token);
bench/quality/run.sh passes its own.

    python3 peft_train.py MODEL.gguf TRAIN.jsonl VAL.jsonl [--steps N] [-t THREADS]
        [--epochs E] [--lr F] [--lr-scheduler constant|linear|cosine]
        [--warmup-ratio F] [--modules attn_q,...] [--assistant-loss-only] [--save DIR]
        [--save-steps N]
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import transformers
import peft

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MODULES = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_o": "o_proj",
           "ffn_gate": "gate_proj", "ffn_up": "up_proj", "ffn_down": "down_proj"}


class Rng:
    """loft's src/base/rng.c: splitmix64 seeding, xoshiro256** output."""

    def __init__(self, seed):
        x = seed & MASK64
        self.s = []
        for _ in range(4):
            x = (x + GOLDEN) & MASK64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & MASK64

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def below(self, n):
        limit = MASK64 - MASK64 % n
        while True:
            x = self.next()
            if x < limit:
                return x % n


def epoch_order(n, seed, epoch, shuffle):
    order = list(range(n))
    if not shuffle:
        return order
    r = Rng(seed ^ ((GOLDEN * (epoch + 1)) & MASK64))
    for i in range(n, 1, -1):
        j = r.below(i)
        order[i - 1], order[j] = order[j], order[i - 1]
    return order


def load(path, tok, n_ctx, bos, loss_only):
    out = []
    for line in open(path):
        if not line.strip():
            continue
        r = json.loads(line)
        text = r["text"]
        i = text.find("\nA:")
        qa = i >= 0 and ("label" in r or "question" in r)
        p, c = (text[: i + 3], text[i + 3 :]) if qa else ("", text)
        pi = tok(p, add_special_tokens=False)["input_ids"] if p else []
        ci = tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        head = [bos] if bos is not None else []
        ids = (head + pi + ci)[:n_ctx]
        mask = ([0] * len(head) + [0 if loss_only else 1] * len(pi) + [1] * len(ci))[:n_ctx]
        mask[0] = 0
        if sum(mask):
            out.append((ids, mask))
    return out


def steps_of(data, order, n_batch):
    pos, steps = 0, []
    while pos < len(order):
        k, tok = 0, 0
        while pos + k < len(order):
            n = len(data[order[pos + k]][0])
            if k > 0 and tok + n > n_batch:
                break
            tok += n
            k += 1
        steps.append(order[pos : pos + k])
        pos += k
    return steps


def lr_at(kind, step, total, warmup, lr, lr_min):
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if kind == "constant":
        return lr
    span = total - warmup - 1
    frac = min(1.0, max(0.0, (step - warmup) / span if span > 0 else 1.0))
    if kind == "linear":
        return lr + (lr_min - lr) * frac
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * frac))


def seq_loss(model, ids, mask):
    x = torch.tensor([ids])
    logits = model(input_ids=x).logits[0, :-1].float()
    lp = torch.log_softmax(logits, -1)
    nll = -lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    m = torch.tensor(mask[1:], dtype=torch.float32)
    return (nll * m).sum(), int(m.sum())


def gguf_bos(path):
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields.get("tokenizer.ggml.add_bos_token")
    if f is None or not bool(f.parts[-1][0]):
        return None
    return int(r.fields["tokenizer.ggml.bos_token_id"].parts[-1][0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("train")
    ap.add_argument("val")
    ap.add_argument("--steps", type=int, default=0, help="stop after N steps (0: all epochs)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("-t", type=int, default=2)
    ap.add_argument("-c", type=int, default=128)
    ap.add_argument("-b", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--lr-min", type=float, default=1e-8)
    ap.add_argument("--lr-scheduler", default="cosine", choices=["constant", "linear", "cosine"])
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--modules", default=",".join(MODULES))
    ap.add_argument("--assistant-loss-only", action="store_true", default=True)
    ap.add_argument("--loss-on-all", dest="assistant_loss_only", action="store_false")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-shuffle", action="store_true")
    ap.add_argument("--save", help="directory for the PEFT adapter")
    ap.add_argument("--save-steps", type=int, default=0,
                    help="also save the adapter every N steps, into SAVE/step-N")
    args = ap.parse_args()
    t_start = time.time()
    torch.set_num_threads(args.t)
    torch.manual_seed(args.seed)
    d, f = os.path.split(os.path.abspath(args.model))
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    targets = [MODULES[m] for m in args.modules.split(",")]
    cfg = peft.LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=0.0,
                          target_modules=targets)
    model = peft.get_peft_model(model, cfg)
    bos = gguf_bos(args.model)
    train = load(args.train, tok, args.c, bos, args.assistant_loss_only)
    val = load(args.val, tok, args.c, bos, args.assistant_loss_only)
    plan = []
    for e in range(args.epochs):
        plan += [(e, s) for s in steps_of(train, epoch_order(len(train), args.seed, e,
                                                             not args.no_shuffle), args.b)]
    total = len(plan) if args.steps <= 0 else min(args.steps, len(plan))
    warm = int(math.floor(args.warmup_ratio * total))
    print("loaded in %.0f s: %d training sequences, %d steps" % (time.time() - t_start, len(train),
          len(plan)), file=sys.stderr, flush=True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay,
                            betas=(0.9, 0.999), eps=1e-8)
    tokens, last = 0, float("nan")
    t0 = time.time()
    for step in range(total):
        epoch, batch = plan[step]
        n = sum(len(train[i][0]) for i in batch)
        count = sum(sum(train[i][1][1:]) for i in batch)
        lr = lr_at(args.lr_scheduler, step, total, warm, args.lr, args.lr_min)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        s = 0.0
        for i in batch:
            ids, m = train[i]
            l, _ = seq_loss(model, ids, m)
            (l / count).backward()
            s += float(l)
        gn = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        opt.step()
        tokens += n
        last = s / count
        if args.save and args.save_steps > 0 and (step + 1) % args.save_steps == 0:
            model.save_pretrained(os.path.join(args.save, "step-%d" % (step + 1)))
        print(f"epoch {epoch + 1}/{args.epochs} step {step + 1}/{total} loss {last:.4f} lr {lr:g} "
              f"grad-norm {gn:.3f} tok/s {tokens / (time.time() - t0):.1f} "
              f"({len(batch)} seqs, {n} tokens) at {time.time() - t_start:.0f} s",
              file=sys.stderr, flush=True)
    el = time.time() - t0
    if args.save:
        model.save_pretrained(args.save)
    with torch.no_grad():
        vs, vn = 0.0, 0
        for ids, m in val:
            l, c = seq_loss(model, ids, m)
            vs += float(l)
            vn += c
    print(json.dumps({"engine": "pytorch+peft f32", "steps": total, "tokens_per_s": tokens / el,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "train_loss": last, "val_loss": vs / vn}))


if __name__ == "__main__":
    main()
