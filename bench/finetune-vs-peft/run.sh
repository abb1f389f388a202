#!/bin/sh
# bench/finetune-vs-peft: LoRA fine-tuning of SmolLM2-135M on the biomedical
# train set in loft (Q8_0 and F16 bases, made from the Q4_1 file with
# `loft quantize`) and in PyTorch + PEFT (F32: transformers dequantizes the
# Q4_1 GGUF), with the published command's hyperparameters (-c 128 -b 128,
# lr 1e-5 -> 1e-8 cosine, warmup 10 %, rank 8, alpha 16, the 7 modules,
# seed 42 for the data order), the same threads, STEPS optimizer steps each
# (0: the whole 8 epochs).
#
# Per engine: training tokens/s (tokens run through the model per second of
# training, loading excluded), peak RSS of the training process, the last
# step's train loss, the validation loss after training, and the validation
# accuracy (`loft eval --task qa --format qa`: the label after "A:" exactly
# right, greedy, -n 8) with the trained adapter on the base it was trained
# on (the PEFT adapter, converted by scripts/convert-peft-to-gguf.py, on the
# Q4_1 file whose dequantized weights PyTorch trained). The base model
# without an adapter is scored too.
#
#   bench/finetune-vs-peft/run.sh [STEPS] [THREADS]
# Env: LOFT_BIN (build/loft), BENCH_OUT (build/bench-finetune).
# Writes $BENCH_OUT/results.jsonl (one JSON line per engine) and
# $BENCH_OUT/results.md (the table), and prints the table.
set -e
STEPS=${1:-40}
THREADS=${2:-2}
LOFT=${LOFT_BIN:-build/loft}
DATA=../shared/data/biomedical_qa
SRC=models/smollm2-135m-instruct-q4_1.gguf
OUT=${BENCH_OUT:-build/bench-finetune}
NPRED=8
mkdir -p "$OUT"
: > "$OUT/results.jsonl"
MAXSTEPS=""
[ "$STEPS" -gt 0 ] && MAXSTEPS="--max-steps $STEPS --eval-steps $STEPS"

# accuracy MODEL ADAPTER|- TAG: the qa accuracy of MODEL (+ ADAPTER) on the
# validation set, printed as a number.
accuracy() {
    lora=""
    [ "$2" != "-" ] && lora="--lora $2"
    # shellcheck disable=SC2086
    "$LOFT" eval -m "$1" $lora -f "$DATA/validation.jsonl" --task qa --format qa -n $NPRED \
        --embed-model none -t "$THREADS" --report "$OUT/eval-$3" >/dev/null 2>&1
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["accuracy"])' \
        "$OUT/eval-$3.json"
}

# Runs: the two bases one example per forward/backward (as PEFT runs them),
# and Q8_0 again with --pack (a step's examples in one pass).
for RUN in Q8_0 F16 Q8_0+pack; do
    T=${RUN%+pack}
    PACK=""
    [ "$RUN" != "$T" ] && PACK="--pack"
    [ -f "$OUT/smollm2-$T.gguf" ] || "$LOFT" quantize --allow-requantize "$SRC" "$OUT/smollm2-$T.gguf" "$T" >/dev/null 2>&1
    rm -rf "$OUT/ck-$RUN"
    # shellcheck disable=SC2086
    /usr/bin/time -f '%M' -o "$OUT/rss-$RUN" "$LOFT" finetune -m "$OUT/smollm2-$T.gguf" \
        -f "$DATA/train.jsonl" --val-file "$DATA/validation.jsonl" --assistant-loss-only \
        -c 128 -b 128 -ub 128 $PACK --learning-rate 1e-5 --lr-min 1e-8 --lr-scheduler cosine \
        --warmup-ratio 0.1 --num-epochs 8 $MAXSTEPS -t "$THREADS" --seed 42 \
        --lora-modules attn_q,attn_k,attn_v,attn_o,ffn_gate,ffn_up,ffn_down \
        --checkpoint-save-dir "$OUT/ck-$RUN" --output-adapter "$OUT/adapter-$RUN.gguf" >/dev/null 2>"$OUT/log-$RUN"
    acc=$(accuracy "$OUT/smollm2-$T.gguf" "$OUT/adapter-$RUN.gguf" "loft-$RUN")
    python3 - "$OUT/ck-$RUN/train_log.jsonl" "$OUT/rss-$RUN" "$RUN" "$acc" >>"$OUT/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
tr = [r for r in rows if r["type"] == "train"]
ev = [r for r in rows if r["type"] == "eval"]
rss = int(open(sys.argv[2]).read().split()[-1]) / 1024
print(json.dumps({"engine": "loft", "base": sys.argv[3], "steps": tr[-1]["step"],
                  "tokens_per_s": tr[-1]["tokens_per_s"], "peak_rss_mib": rss,
                  "train_loss": tr[-1]["loss"], "val_loss": ev[-1]["val_loss"] if ev else None,
                  "val_accuracy": float(sys.argv[4])}))
PY
done

PSTEPS=$STEPS
[ "$STEPS" -gt 0 ] || PSTEPS=0
/usr/bin/time -f '%M' -o "$OUT/rss-peft" python3 bench/finetune-vs-peft/peft_train.py "$SRC" \
    "$DATA/train.jsonl" "$DATA/validation.jsonl" --steps "$PSTEPS" --epochs 8 -t "$THREADS" \
    --save "$OUT/peft-adapter" >"$OUT/peft.json" 2>"$OUT/log-peft"
python3 scripts/convert-peft-to-gguf.py "$OUT/peft-adapter" "$SRC" "$OUT/adapter-peft.gguf" >/dev/null
acc=$(accuracy "$SRC" "$OUT/adapter-peft.gguf" "peft")
python3 - "$OUT/peft.json" "$OUT/rss-peft" "$acc" >>"$OUT/results.jsonl" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
r["engine"], r["base"] = "pytorch+peft", "F32 (dequantized Q4_1)"
r["peak_rss_mib"] = int(open(sys.argv[2]).read().split()[-1]) / 1024
r["val_accuracy"] = float(sys.argv[3])
print(json.dumps(r))
PY
base_acc=$(accuracy "$SRC" - "base")
echo "{\"engine\": \"none (base model)\", \"base\": \"Q4_1\", \"val_accuracy\": $base_acc}" >>"$OUT/results.jsonl"

python3 - "$OUT/results.jsonl" "$STEPS" "$THREADS" >"$OUT/results.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def f(v, fmt):
    return "" if v is None else fmt % v
print("| engine | base weights | steps | tokens/s | peak RSS MiB | train loss | val loss | val accuracy |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        r["engine"], r["base"], r.get("steps", ""), f(r.get("tokens_per_s"), "%.1f"),
        f(r.get("peak_rss_mib"), "%.0f"), f(r.get("train_loss"), "%.4f"),
        f(r.get("val_loss"), "%.4f"), f(r.get("val_accuracy"), "%.4f")))
print("\n%s steps each (0 = all 8 epochs), %s threads, -c 128 -b 128" % (sys.argv[2], sys.argv[3]))
PY
cat "$OUT/results.md"
