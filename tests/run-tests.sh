#!/usr/bin/env bash
# Runs every test binary given on the command line, prints each case's line,
# and ends with "N passed, N failed" summed over all binaries. A binary that
# crashes or prints no RESULT line counts as one failed case. Exits non-zero
# when anything failed. Each binary's wall time follows its name's line
# ("-- test_x: 12s"), so slow tests are easy to spot under sanitizers.
set -u
passed=0
failed=0
for bin in "$@"; do
    name=$(basename "$bin")
    echo "== $name"
    t0=$(date +%s)
    out=$("$bin" 2>&1)
    rc=$?
    secs=$(($(date +%s) - t0))
    printf '%s\n' "$out" | grep -v '^RESULT '
    result=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1)
    if [ -z "$result" ]; then
        echo "FAIL $name: exited with status $rc and no RESULT line"
        failed=$((failed + 1))
        continue
    fi
    read -r _ p f <<<"$result"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL $name: exited with status $rc"
        f=1
    fi
    echo "-- $name: ${secs}s"
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
