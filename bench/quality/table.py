#!/usr/bin/env python3
"""Prints the (a)-(d) markdown table of bench/quality from the JSON reports
that run.sh leaves in OUT (eval-<name>-qa.json, eval-<name>-choice.json,
judge-*.json, peft.json, ck-*/train_log.jsonl). Missing reports print as "-".

    python3 bench/quality/table.py OUT
"""
import json
import os
import sys

COLUMNS = [("a-Q8_0", "(a) untrained, Q8_0"), ("a-Q4_0", "(a) untrained, Q4_0"),
           ("b", "(b) loft LoRA, Q8_0 base"), ("c", "(c) loft LoRA, Q4_0 base"),
           ("d", "(d) PyTorch+PEFT LoRA, run on Q8_0")]
LABELS = ["Yes", "No", "Uncertain"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(x, digits=4):
    return "-" if x is None else "%.*f" % (digits, x)


def final_losses(out, name):
    """(last train loss, validation loss) of a loft run's train_log.jsonl."""
    rows = []
    try:
        with open(os.path.join(out, "ck-%s" % name, "train_log.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        pass
    tr = [r for r in rows if r.get("type") == "train"]
    ev = [r for r in rows if r.get("type") == "eval"]
    return (tr[-1]["loss"] if tr else None, ev[-1].get("val_loss") if ev else None,
            tr[-1].get("step") if tr else None)


def main():
    out = sys.argv[1]
    qa = {k: load(os.path.join(out, "eval-%s-qa.json" % k)) for k, _ in COLUMNS}
    ch = {k: load(os.path.join(out, "eval-%s-choice.json" % k)) for k, _ in COLUMNS}

    def tot(d, k, key):
        return d[k]["totals"].get(key) if d[k] else None

    def acc(d, k):
        if not d[k]:
            return "-"
        t = d[k]["totals"]
        return "%.4f (%d/%d)" % (t["accuracy"], t["correct"], t["records"])

    def recalls(d, k):
        if not d[k]:
            return "-"
        pc = {p["label"]: p["recall"] for p in d[k]["totals"]["per_class"]}
        return " / ".join(fmt(pc.get(lab), 2) for lab in LABELS)

    print("| metric | " + " | ".join(t for _, t in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    print("| qa accuracy (label after \"A:\") | " +
          " | ".join(acc(qa, k) for k, _ in COLUMNS) + " |")
    print("| qa recall Yes / No / Uncertain | " +
          " | ".join(recalls(qa, k) for k, _ in COLUMNS) + " |")
    print("| qa cosine similarity (all-MiniLM-L6-v2) | " +
          " | ".join(fmt(tot(qa, k, "cosine_mean")) for k, _ in COLUMNS) + " |")
    print("| qa Jaccard similarity | " +
          " | ".join(fmt(tot(qa, k, "jaccard_mean")) for k, _ in COLUMNS) + " |")
    print("| choice accuracy (log-likelihood) | " +
          " | ".join(acc(ch, k) for k, _ in COLUMNS) + " |")

    peft = load(os.path.join(out, "peft.json"))
    losses = {"b": final_losses(out, "Q8_0"), "c": final_losses(out, "Q4_0")}
    cells = []
    for k, _ in COLUMNS:
        if k in losses and losses[k][1] is not None:
            cells.append(fmt(losses[k][1]))
        elif k == "d" and peft:
            cells.append(fmt(peft["val_loss"]))
        else:
            cells.append("-")
    print("| validation loss after training (completion tokens) | " + " | ".join(cells) + " |")

    print()
    print("| judge (both orders per question) | A / B / ties / A's win rate |")
    print("|---|---|")
    for name in ("judge-b-vs-d", "judge-d-vs-b", "judge-b-vs-a", "judge-smol-b-vs-d"):
        j = load(os.path.join(out, name + ".json"))
        if j:
            c = j["config"]
            who = "SmolLM2-135M-Instruct" if "smollm2" in c["judge_model"] else "Gemma 3 270M"
            print("| %s: A = %s, B = %s | %s |" % (who, c["name_a"], c["name_b"],
                                                    j["totals"]["summary"]))


if __name__ == "__main__":
    main()
