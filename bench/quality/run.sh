#!/bin/sh
# bench/quality: the published fine-tuning quality comparison on SmolLM2-135M-
# Instruct and the biomedical QA set (see README.md here):
#   (a) untrained                      (Q8_0 base; and Q4_0, the base of (c))
#   (b) loft LoRA on a Q8_0 base
#   (c) loft LoRA on a Q4_0 base
#   (d) PyTorch + PEFT LoRA (F32, transformers' dequantization of the Q4_1
#       file), converted by scripts/convert-peft-to-gguf.py, run on the Q8_0
#       base of (a) and (b)
# every trainer with the same hyperparameters (below). All four are evaluated
# on the validation split with `loft eval --task qa` (accuracy, cosine,
# Jaccard) and `--task choice`, and (b) is judged against (d) by `loft judge`
# with Gemma 3 270M (a weak judge; every question asked in both orders), and
# again with A and B swapped (judge-swap) as a check of the judge; judge-a
# judges (b) against the untrained (a); judge-smol judges (b) against (d)
# with SmolLM2-135M-Instruct (Q4_1), an instruction-tuned but tiny judge.
#
#   bench/quality/run.sh [STAGE ...]   stages: bases train-b train-c train-d
#                                      eval (= eval-a eval-b eval-c eval-d)
#                                      judge judge-swap judge-a judge-smol
#                                      table  [all]
# Environment: LOFT_BIN [build/loft], QUALITY_OUT [build/quality-bench],
# THREADS [2], DATA [../shared/data/biomedical_qa].
set -e
LOFT=${LOFT_BIN:-build/loft}
OUT=${QUALITY_OUT:-build/quality-bench}
T=${THREADS:-2}
DATA=${DATA:-../shared/data/biomedical_qa}
SRC=models/smollm2-135m-instruct-q4_1.gguf
JUDGE=models/gemma-3-270m-q4_k_m.gguf
HERE=$(dirname "$0")

# The hyperparameters shared by both trainers.
EPOCHS=1
LR=1e-3
SCHED=constant
RANK=8
ALPHA=16
MODULES=attn_q,attn_k,attn_v,attn_o
CTX=128
BATCH=128
SEED=42
# Generation for the qa task: greedy, the "Q: ...\nA:" layout of training.
NGEN=32

STAGES=${*:-bases train-b train-c train-d eval judge judge-swap judge-a judge-smol table}
mkdir -p "$OUT"

loft_train() { # $1 = base type
    rm -rf "$OUT/ck-$1"
    nice -n 10 "$LOFT" finetune -m "$OUT/smollm2-$1.gguf" -f "$DATA/train.jsonl" \
        --val-file "$DATA/validation.jsonl" --assistant-loss-only -c $CTX -b $BATCH \
        --learning-rate $LR --lr-scheduler $SCHED --num-epochs $EPOCHS \
        --lora-rank $RANK --lora-alpha $ALPHA --lora-modules $MODULES --seed $SEED -t "$T" \
        --checkpoint-save-dir "$OUT/ck-$1" --output-adapter "$OUT/adapter-$1.gguf" \
        >"$OUT/train-$1.log" 2>&1
}

evaluate() { # $1 = name, $2 = base type, $3 = adapter or "", $4 = column title
    for task in qa choice; do
        nice -n 10 "$LOFT" eval -m "$OUT/smollm2-$2.gguf" ${3:+--lora "$3"} \
            -f "$DATA/validation.jsonl" --task $task --format qa -n $NGEN -t "$T" \
            --column "$4" --report "$OUT/eval-$1-$task" >"$OUT/eval-$1-$task.log" 2>&1
    done
}

for stage in $STAGES; do
    echo "== $stage ($(date -u +%H:%M:%S))"
    case $stage in
    bases)
        for ty in Q8_0 Q4_0; do
            [ -f "$OUT/smollm2-$ty.gguf" ] ||
                "$LOFT" quantize --allow-requantize "$SRC" "$OUT/smollm2-$ty.gguf" $ty >/dev/null
        done ;;
    train-b) loft_train Q8_0 ;;
    train-c) loft_train Q4_0 ;;
    train-d)
        nice -n 10 python3 bench/finetune-vs-peft/peft_train.py "$SRC" "$DATA/train.jsonl" \
            "$DATA/validation.jsonl" -t "$T" -c $CTX -b $BATCH --epochs $EPOCHS --lr $LR \
            --lr-min 0 --lr-scheduler $SCHED --warmup-ratio 0 --rank $RANK --alpha $ALPHA \
            --modules $MODULES --assistant-loss-only --seed $SEED --save "$OUT/peft-adapter" \
            >"$OUT/peft.json" 2>"$OUT/peft.log"
        python3 scripts/convert-peft-to-gguf.py "$OUT/peft-adapter" "$OUT/smollm2-Q8_0.gguf" \
            "$OUT/adapter-peft.gguf" ;;
    eval) "$0" eval-a eval-b eval-c eval-d ;;
    eval-a)
        evaluate a-Q8_0 Q8_0 "" "Untrained (Q8_0)"
        evaluate a-Q4_0 Q4_0 "" "Untrained (Q4_0)" ;;
    eval-b) evaluate b Q8_0 "$OUT/adapter-Q8_0.gguf" "loft LoRA (Q8_0)" ;;
    eval-c) evaluate c Q4_0 "$OUT/adapter-Q4_0.gguf" "loft LoRA (Q4_0)" ;;
    eval-d) evaluate d Q8_0 "$OUT/adapter-peft.gguf" "PyTorch+PEFT LoRA (on Q8_0)" ;;
    judge)
        nice -n 10 "$LOFT" judge -m "$JUDGE" --a "$OUT/eval-b-qa.answers.jsonl" \
            --b "$OUT/eval-d-qa.answers.jsonl" -f "$DATA/validation.jsonl" -t "$T" \
            --name-a "loft (b)" --name-b "PyTorch (d)" --report "$OUT/judge-b-vs-d" \
            >"$OUT/judge-b-vs-d.log" 2>&1 ;;
    judge-a)
        nice -n 10 "$LOFT" judge -m "$JUDGE" --a "$OUT/eval-b-qa.answers.jsonl" \
            --b "$OUT/eval-a-Q8_0-qa.answers.jsonl" -f "$DATA/validation.jsonl" -t "$T" \
            --name-a "loft (b)" --name-b "untrained (a)" --report "$OUT/judge-b-vs-a" \
            >"$OUT/judge-b-vs-a.log" 2>&1 ;;
    judge-smol)
        nice -n 10 "$LOFT" judge -m "$SRC" --a "$OUT/eval-b-qa.answers.jsonl" \
            --b "$OUT/eval-d-qa.answers.jsonl" -f "$DATA/validation.jsonl" -t "$T" \
            --name-a "loft (b)" --name-b "PyTorch (d)" --report "$OUT/judge-smol-b-vs-d" \
            >"$OUT/judge-smol-b-vs-d.log" 2>&1 ;;
    judge-swap)
        nice -n 10 "$LOFT" judge -m "$JUDGE" --a "$OUT/eval-d-qa.answers.jsonl" \
            --b "$OUT/eval-b-qa.answers.jsonl" -f "$DATA/validation.jsonl" -t "$T" \
            --name-a "PyTorch (d)" --name-b "loft (b)" --report "$OUT/judge-d-vs-b" \
            >"$OUT/judge-d-vs-b.log" 2>&1 ;;
    table) python3 "$HERE/table.py" "$OUT" >"$OUT/table.md" && cat "$OUT/table.md" ;;
    *) echo "run.sh: unknown stage '$stage'" >&2; exit 2 ;;
    esac
done
