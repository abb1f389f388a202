#!/usr/bin/env bash
# The inference path under valgrind memcheck: loft info, a few greedy tokens
# of loft run on both real models, a run with a LoRA adapter applied, and a
# short perplexity pass. Each case passes when valgrind reports no error and
# no leak (definite, indirect or possible: --errors-for-leak-kinds) and the
# program itself exits 0. Ends with "N passed, N failed" like
# tests/run-tests.sh, and exits non-zero when anything failed.
#
# valgrind 3.19 cannot decode AVX-512 instructions, so the AVX2 kernels are
# forced with LOFT_ISA=avx2 (the dispatch table falls back to them).
# Two threads: the thread pool's start, runs and shutdown are under test too.
set -u
cd "$(dirname "$0")/.."
bin=${LOFT_BIN:-build/loft}
models=${LOFT_MODELS:-models}
small=$models/smollm2-135m-instruct-q4_1.gguf
gemma=$models/gemma-3-270m-q4_k_m.gguf
export LOFT_ISA=${LOFT_ISA:-avx2}

if ! command -v valgrind >/dev/null; then
    echo "FAIL valgrind: valgrind is not installed"
    echo "0 passed, 1 failed"
    exit 1
fi

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
printf 'The quick brown fox jumps over the lazy dog. %.0s' $(seq 1 12) >"$logdir/ppl.txt"

passed=0
failed=0
# check NAME ARGS...: runs loft ARGS under memcheck.
check() {
    local name=$1
    shift
    local t0=$(date +%s)
    valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
        --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
        --track-origins=yes --quiet --log-file="$logdir/$name.vg" \
        "$bin" "$@" >"$logdir/$name.out" 2>&1
    local rc=$?
    local secs=$(($(date +%s) - t0))
    if [ "$rc" -eq 0 ] && [ ! -s "$logdir/$name.vg" ]; then
        echo "ok   valgrind $name (${secs}s)"
        passed=$((passed + 1))
    else
        echo "FAIL valgrind $name: exit status $rc (${secs}s)"
        tail -n 20 "$logdir/$name.out"
        head -n 80 "$logdir/$name.vg"
        failed=$((failed + 1))
    fi
}

echo "== valgrind (LOFT_ISA=$LOFT_ISA)"
check info info "$small" --no-tensors
check info-gemma info "$gemma"
check run-smollm2 run -m "$small" -st -sys "Be brief." -p "Hi" -n 3 --temp 0 -s 1 -t 2 -c 128
check run-gemma run -m "$gemma" -p "The capital of France is" -n 2 --temp 0 -s 1 -t 2 -c 64
check run-lora run -m "$small" --lora tests/golden/lora/smollm2-bio-r2.gguf \
    -p "Aspirin is" -n 2 --temp 0.7 -s 7 -t 2 -c 64
check perplexity perplexity -m "$small" -f "$logdir/ppl.txt" -c 16 -b 16 --chunks 1 -t 2

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
