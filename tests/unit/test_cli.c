/* Runs the built loft program ($LOFT_BIN) on bad input and on short real
 * sessions: each bad input must end with a non-zero status (not a signal)
 * and exactly one stderr line naming the problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "test.h"

#define SMOL "smollm2-135m-instruct-q4_1.gguf"
#define GEMMA "gemma-3-270m-q4_k_m.gguf"

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Runs "loft ARGS" and captures stderr only. */
static int run_stderr(const char *args, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1 >/dev/null </dev/null", test_loft_bin(), args);
    return test_run(cmd, err);
}

/* One bad invocation: status 1..127 (not a signal), one stderr line that
 * contains `needle`. */
static void expect_error(const char *args, const char *needle)
{
    char *err = NULL;
    int rc = run_stderr(args, &err);
    int ok = rc > 0 && rc < 128 && err && count_lines(err) == 1 && strstr(err, needle);
    if (!ok) fprintf(stderr, "    loft %s\n    -> status %d, stderr: %s\n", args, rc, err);
    free(err);
    CHECKF(ok, "loft %s: wanted one error line containing '%s'", args, needle);
}

static void test_bad_flags(void)
{
    char args[1024];
    const char *m = test_model_path(SMOL);
    expect_error("run --bogus", "unknown option '--bogus'");
    expect_error("run -p hello", "no model");
    snprintf(args, sizeof args, "run -m %s -p", m);
    expect_error(args, "-p needs a value");
    snprintf(args, sizeof args, "run -m %s -p hi -n abc", m);
    expect_error(args, "-n expects an integer");
    snprintf(args, sizeof args, "run -m %s -p hi -n 0", m);
    expect_error(args, "-n 0");
    snprintf(args, sizeof args, "run -m %s -p hi -c 0", m);
    expect_error(args, "-c value out of range");
    snprintf(args, sizeof args, "run -m %s -p hi -c 99999999", m);
    expect_error(args, "-c value out of range");
    snprintf(args, sizeof args, "run -m %s -p hi -c -5", m);
    expect_error(args, "-c value out of range");
    snprintf(args, sizeof args, "run -m %s -p hi --temp warm", m);
    expect_error(args, "--temp expects a number");
    snprintf(args, sizeof args, "run -m %s -p hi --top-p 1.5", m);
    expect_error(args, "--top-p value out of range");
    snprintf(args, sizeof args, "run -m %s -p hi -s -7", m);
    expect_error(args, "-s expects");
    snprintf(args, sizeof args, "chat -m %s --chat-template vicuna", m);
    expect_error(args, "chatml, gemma, llama3, zephyr");
    expect_error("perplexity -f tests/golden/ppl/text.txt", "no model");
}

static void test_bad_prompts(void)
{
    char args[4096];
    const char *m = test_model_path(SMOL);
    snprintf(args, sizeof args, "run -m %s -p ''", m);
    expect_error(args, "empty prompt");
    snprintf(args, sizeof args, "run -m %s -p \"$(printf 'ab\\377cd')\"", m);
    expect_error(args, "not valid UTF-8");
    snprintf(args, sizeof args, "run -m %s -p \"$(printf '\\300\\200')\"", m); /* overlong NUL */
    expect_error(args, "not valid UTF-8");
    snprintf(args, sizeof args,
             "run -m %s -c 16 -p 'one two three four five six seven eight nine ten eleven "
             "twelve thirteen fourteen fifteen sixteen seventeen'",
             m);
    expect_error(args, "the context holds 16");
}

/* A configuration that cannot fit is refused before the cache is made. */
static void test_memory_limit(void)
{
    char args[1024];
    const char *m = test_model_path(SMOL);
    snprintf(args, sizeof args, "run -m %s -p hi -n 4 --mem-limit 50M", m);
    expect_error(args, "does not fit in memory: OOM (needs 0.");
    snprintf(args, sizeof args, "run -m %s -p hi -n 4 -c 16000000", m);
    expect_error(args, "does not fit in memory");
    snprintf(args, sizeof args, "run -m %s -p hi -n 4 --mem-limit lots", m);
    expect_error(args, "--mem-limit expects a size");
}

static void test_bad_models(void)
{
    char args[1024];
    expect_error("run -m /nonexistent/model.gguf -p hi", "/nonexistent/model.gguf");
    /* A text file is not a GGUF. */
    expect_error("run -m tests/golden/ppl/text.txt -p hi", "tests/golden/ppl/text.txt");
    /* A well-formed GGUF of an architecture loft does not know. */
    char path[] = "/tmp/loft-test-arch-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    gguf_writer *w = gguf_writer_init(0);
    CHECK(w != NULL);
    loft_status st;
    CHECK(gguf_writer_set_str(w, "general.architecture", "mamba9") == LOFT_OK);
    loft_code rc = gguf_writer_write(w, path, &st);
    gguf_writer_free(w);
    CHECKF(rc == LOFT_OK, "%s", st.msg);
    snprintf(args, sizeof args, "run -m %s -p hi", path);
    expect_error(args, "mamba9");
    snprintf(args, sizeof args, "perplexity -m %s -f tests/golden/ppl/text.txt", path);
    expect_error(args, "mamba9");
    unlink(path);
    /* Too little text for the context. */
    snprintf(args, sizeof args, "perplexity -m %s -f tests/golden/chat/gemma3-1turn.txt -c 128",
             test_model_path(SMOL));
    expect_error(args, "needs at least 256");
}

/* Runs a command and returns stdout; *status receives the exit status. */
static char *run_stdout(const char *args, int *status)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", test_loft_bin(), args);
    char *out = NULL;
    *status = test_run(cmd, &out);
    return out;
}

static void test_run_greedy_and_seeded(void)
{
    char args[1024];
    int s1, s2;
    snprintf(args, sizeof args,
             "run -m %s -st -p 'Tell me a joke about cats' -n 12 --temp 0 -s 42 </dev/null",
             test_model_path(SMOL));
    char *a = run_stdout(args, &s1);
    CHECKF(s1 == 0 && a && strlen(a) > 5, "status %d, output '%s'", s1, a ? a : "");
    free(a);
    /* Same seed at temperature 1: the same text twice. */
    snprintf(args, sizeof args, "run -m %s -p 'Once upon a time' -n 10 --temp 1 -s 7 </dev/null",
             test_model_path(SMOL));
    a = run_stdout(args, &s1);
    char *b = run_stdout(args, &s2);
    int same = s1 == 0 && s2 == 0 && a && b && !strcmp(a, b);
    if (!same) fprintf(stderr, "    '%s'\n    '%s'\n", a, b);
    free(a);
    free(b);
    CHECK(same);
}

static void test_context_shift(void)
{
    /* 40 tokens into a 32-token context only work by shifting. */
    char args[1024];
    snprintf(args, sizeof args,
             "run -m %s -p 'The list of numbers:' -c 32 -n 40 --temp 0 --context-shift "
             "--keep 2 2>&1 </dev/null",
             test_model_path(SMOL));
    int status;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", test_loft_bin(), args);
    char *out = NULL;
    status = test_run(cmd, &out);
    int ok = status == 0 && out && strstr(out, "context shifts:") && strstr(out, "/     40 tokens");
    if (!ok) fprintf(stderr, "    status %d\n%s\n", status, out);
    free(out);
    CHECK(ok);
    /* Without --context-shift it stops when the context is full. */
    snprintf(cmd, sizeof cmd,
             "%s run -m %s -p 'The list of numbers:' -c 16 -n 40 --temp 0 2>&1 </dev/null",
             test_loft_bin(), test_model_path(SMOL));
    status = test_run(cmd, &out);
    ok = status == 0 && out && strstr(out, "context full");
    if (!ok) fprintf(stderr, "    status %d\n%s\n", status, out);
    free(out);
    CHECK(ok);
}

static void test_chat_session(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "printf 'Hi!\\n/reset\\nWhat is the capital of France?\\n/exit\\nnever read\\n' | "
             "%s chat -m %s -n 16 --temp 0 2>/dev/null",
             test_loft_bin(), test_model_path(SMOL));
    char *out = NULL;
    int status = test_run(cmd, &out);
    int ok = status == 0 && out && strstr(out, "(conversation reset)") &&
             strstr(out, "> What is the capital of France?") && !strstr(out, "never read");
    /* Three prompts were shown before /exit. */
    int prompts = 0;
    for (const char *p = out; p && (p = strstr(p, "\n> ")) != NULL; p++)
        prompts++;
    ok = ok && prompts == 4;
    if (!ok) fprintf(stderr, "    status %d, %d prompts\n%s\n", status, prompts, out);
    free(out);
    CHECK(ok);
    /* End of input ends the program cleanly; gemma has no template in its
     * file and falls back to its architecture's. */
    snprintf(cmd, sizeof cmd, "printf 'Hello\\n' | %s chat -m %s -n 4 --temp 0 2>&1",
             test_loft_bin(), test_model_path(GEMMA));
    status = test_run(cmd, &out);
    ok = status == 0 && out && strstr(out, "chat template gemma");
    if (!ok) fprintf(stderr, "    status %d\n%s\n", status, out);
    free(out);
    CHECK(ok);
}

static void test_perplexity_command(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s perplexity -m %s -f tests/golden/ppl/text.txt -c 128 --chunks 2 2>/dev/null",
             test_loft_bin(), test_model_path(SMOL));
    char *out = NULL;
    int status = test_run(cmd, &out);
    int ok = status == 0 && out && strstr(out, "[1]") && strstr(out, ",[2]") &&
             strstr(out, "Final estimate: PPL = ") && strstr(out, " +/- ");
    if (!ok) fprintf(stderr, "    status %d\n%s\n", status, out);
    free(out);
    CHECK(ok);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"cli_bad_flags", test_bad_flags},
        {"cli_bad_prompts", test_bad_prompts},
        {"cli_memory_limit", test_memory_limit},
        {"cli_bad_models", test_bad_models},
        {"cli_run_greedy_and_seeded", test_run_greedy_and_seeded},
        {"cli_context_shift", test_context_shift},
        {"cli_chat_session", test_chat_session},
        {"cli_perplexity_command", test_perplexity_command},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
