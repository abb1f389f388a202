/*
 * test.h - a tiny test harness. A test binary lists its cases in a table and
 * calls test_main; each case runs, failed CHECKs are printed with file and
 * line, and the binary ends with "RESULT <passed> <failed>" and exits
 * non-zero if any case failed. tests/run-tests.sh sums the RESULT lines.
 */
#ifndef LOFT_TEST_H
#define LOFT_TEST_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

/* Records a failed check in the running case (used by the macros). */
void test_record_failure(const char *file, int line, const char *what);

/* Runs the cases whose name contains argv[1] (all without an argument). */
int test_main(int argc, char **argv, const test_case *cases, int n_cases);

/* Path of a model under $LOFT_MODELS (default "models"), in a static buffer. */
const char *test_model_path(const char *file_name);

/* Path under the source tree's tests/ directory, in a static buffer. */
const char *test_data_path(const char *rel);

/* Path of the built loft program: $LOFT_BIN, default "build/loft". */
const char *test_loft_bin(void);

/* The whole file at path in a malloc'd buffer with a NUL after its last
 * byte (so text can be read as a string); *len (when len is not NULL)
 * receives the size. NULL when the file cannot be read. */
void *test_read_file(const char *path, size_t *len);

/* Runs cmd through /bin/sh and stores its stdout in *out (malloc'd, NUL-
 * terminated; the caller frees). Returns the exit status, 128+N when the
 * command died of signal N, or -1 when it could not be run. Redirect
 * stderr in cmd ("2>&1" or "2>FILE") to capture it. */
int test_run(const char *cmd, char **out);

/* ---- training fixtures (tests of train_run) ------------------------------ */

struct train_dataset;
struct train_report;

/* Fills d (zeroed first; free with train_dataset_free) with 7 examples of
 * tokens below 256 drawn from an LCG seeded with seed, example i being
 * 6 + 2 * (i % period) tokens long, with the loss on every token from the
 * third on. */
void test_make_train_data(struct train_dataset *d, uint32_t seed, int period);

/* Options for a short train_run on the tiny test model: -c 16 -b 24, 2
 * threads, rank 2, alpha 4, every block module, lora seed 9, data seed 11,
 * lr 5e-3 cosine to 1e-5 after 2 warmup steps, 2 epochs, AdamW (0.9,
 * 0.999, 1e-8, weight decay 0.01), clip 1, shuffled. Callers change what
 * their case needs. */
struct train_opts test_small_train_opts(void);

/* A train_run report callback (ud: a test_stopper) that raises flag when
 * the optimizer step `at` has been reported; pass &flag as the stop flag. */
typedef struct test_stopper {
    volatile sig_atomic_t flag;
    int64_t at;
} test_stopper;
void test_stop_at(void *ud, const struct train_report *r);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            test_record_failure(__FILE__, __LINE__, #cond);                                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Like CHECK, with a printf-style explanation. */
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            char test_msg_[2048];                                                                   \
            snprintf(test_msg_, sizeof test_msg_, __VA_ARGS__);                                    \
            test_record_failure(__FILE__, __LINE__, test_msg_);                                    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define TEST_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#endif
