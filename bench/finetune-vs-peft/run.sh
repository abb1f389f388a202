#!/bin/sh
# bench/finetune-vs-peft: loft (Q8_0 and F16 bases, made from the Q4_1 file
# with `loft quantize`) against PyTorch + PEFT (F32) on the biomedical train
# set, same hyperparameters as the published command, STEPS optimizer steps
# each, THREADS threads. Prints one JSON line per engine.
#   bench/finetune-vs-peft/run.sh [STEPS] [THREADS]
set -e
STEPS=${1:-20}
THREADS=${2:-2}
LOFT=${LOFT_BIN:-build/loft}
DATA=../shared/data/biomedical_qa
SRC=models/smollm2-135m-instruct-q4_1.gguf
OUT=${BENCH_OUT:-build/bench-finetune}
mkdir -p "$OUT"
for T in Q8_0 F16; do
    [ -f "$OUT/smollm2-$T.gguf" ] || "$LOFT" quantize --allow-requantize "$SRC" "$OUT/smollm2-$T.gguf" "$T" >/dev/null
    rm -rf "$OUT/ck-$T"
    /usr/bin/time -f '%M' -o "$OUT/rss-$T" "$LOFT" finetune -m "$OUT/smollm2-$T.gguf" \
        -f "$DATA/train.jsonl" --val-file "$DATA/validation.jsonl" --assistant-loss-only \
        -c 128 -b 128 -ub 128 --learning-rate 1e-5 --lr-min 1e-8 --lr-scheduler cosine \
        --warmup-ratio 0.1 --num-epochs 8 --max-steps "$STEPS" --eval-steps "$STEPS" -t "$THREADS" \
        --lora-modules attn_q,attn_k,attn_v,attn_o,ffn_gate,ffn_up,ffn_down \
        --checkpoint-save-dir "$OUT/ck-$T" --output-adapter "$OUT/adapter-$T.gguf" >/dev/null 2>&1
    python3 - "$OUT/ck-$T/train_log.jsonl" "$OUT/rss-$T" "$T" "$STEPS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tr = [r for r in rows if r["type"] == "train"]
ev = [r for r in rows if r["type"] == "eval"]
rss = int(open(sys.argv[2]).read().split()[-1]) / 1024
print(json.dumps({"engine": "loft " + sys.argv[3], "steps": int(sys.argv[4]),
                  "tokens_per_s": tr[-1]["tokens_per_s"], "peak_rss_mib": rss,
                  "train_loss": tr[-1]["loss"], "val_loss": ev[-1]["val_loss"] if ev else None}))
PY
done
/usr/bin/time -f '%M' -o "$OUT/rss-peft" python3 bench/finetune-vs-peft/peft_train.py "$SRC" \
    "$DATA/train.jsonl" "$DATA/validation.jsonl" --steps "$STEPS" -t "$THREADS" 2>/dev/null
