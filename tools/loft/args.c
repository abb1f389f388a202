#include "args.h"
#include "base/threadpool.h"
#include "bench/memfit.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A context larger than this is refused as absurd (the KV cache limit). */
#define ARGS_MAX_CTX (1 << 24)
/* The largest text file (-f) read: 1 GiB. */
#define ARGS_MAX_TEXT ((uint64_t)1 << 30)

static int bad(const loft_args *a, const char *fmt, const char *flag, const char *value)
{
    fprintf(stderr, "loft %s: ", a->cmd);
    fprintf(stderr, fmt, flag, value);
    fprintf(stderr, " (see 'loft %s --help')\n", a->cmd);
    return 2;
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_f32(const char *s, float *out)
{
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || fabs(v) > 1e30) return false;
    *out = (float)v;
    return true;
}

/* Integer flag in [lo, hi]. */
static int int_flag(const loft_args *a, const char *flag, const char *v, int64_t lo, int64_t hi,
                    int32_t *out)
{
    int64_t x;
    if (!parse_i64(v, &x)) return bad(a, "%s expects an integer, got '%s'", flag, v);
    if (x < lo || x > hi) {
        char range[96];
        snprintf(range, sizeof range, "%s (allowed %lld..%lld)", v, (long long)lo, (long long)hi);
        return bad(a, "%s value out of range: %s", flag, range);
    }
    *out = (int32_t)x;
    return 0;
}

/* Float flag in [lo, hi]. */
static int float_flag(const loft_args *a, const char *flag, const char *v, float lo, float hi,
                      float *out)
{
    float x;
    if (!parse_f32(v, &x)) return bad(a, "%s expects a number, got '%s'", flag, v);
    if (x < lo || x > hi) {
        char range[96];
        snprintf(range, sizeof range, "%s (allowed %g..%g)", v, (double)lo, (double)hi);
        return bad(a, "%s value out of range: %s", flag, range);
    }
    *out = x;
    return 0;
}

static bool is(const char *arg, const char *s1, const char *s2)
{
    return !strcmp(arg, s1) || (s2 && !strcmp(arg, s2));
}

static void ignored(const loft_args *a, const char *flag)
{
    fprintf(stderr, "loft %s: note: %s is ignored on CPU\n", a->cmd, flag);
}

int args_parse(loft_args *a, const char *cmd, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->n_predict = -1;
    a->n_ctx = 4096;
    a->n_threads = 0;
    a->n_batch = 2048;
    a->n_ubatch = 512;
    a->n_keep = 0;
    a->seed = -1;
    a->escape = true;
    loft_sampler_params_default(&a->sampling);
    a->repeat_last_n = a->sampling.repeat_last_n;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        /* Flags without a value. */
        if (is(arg, "-h", "--help")) {
            a->help = true;
            continue;
        }
        if (is(arg, "-st", "--single-turn")) {
            a->single_turn = true;
            continue;
        }
        if (is(arg, "-cnv", "--conversation")) {
            a->conversation = true;
            continue;
        }
        if (is(arg, "-no-cnv", "--no-conversation")) {
            a->no_conversation = true;
            continue;
        }
        if (is(arg, "--no-display-prompt", NULL)) {
            a->no_display_prompt = true;
            continue;
        }
        if (is(arg, "--context-shift", NULL)) {
            a->context_shift = true;
            continue;
        }
        if (is(arg, "--no-context-shift", NULL)) {
            a->context_shift = false;
            continue;
        }
        if (is(arg, "-e", "--escape")) {
            a->escape = true;
            continue;
        }
        if (is(arg, "--no-escape", NULL)) {
            a->escape = false;
            continue;
        }
        if (is(arg, "--verbose-prompt", NULL)) {
            a->verbose_prompt = true;
            continue;
        }
        if (is(arg, "--no-mmap", "--mlock") || is(arg, "--no-warmup", "--no-kv-offload") ||
            is(arg, "-nkvo", NULL)) {
            ignored(a, arg);
            continue;
        }
        if (is(arg, "-fa", "--flash-attn")) {
            /* Takes on/off/auto in current llama.cpp; older versions had a bare flag. */
            if (i + 1 < argc && (is(argv[i + 1], "on", "off") || is(argv[i + 1], "auto", NULL)))
                i++;
            ignored(a, arg);
            continue;
        }
        /* LoRA adapters: --lora-scaled takes two values. */
        if (is(arg, "--lora-scaled", NULL)) {
            if (i + 2 >= argc) return bad(a, "%s needs a file and a scale%s", arg, "");
            if (a->n_lora >= ARGS_MAX_LORA) return bad(a, "%s: at most 8 adapters%s", arg, "");
            float sc;
            if (float_flag(a, arg, argv[i + 2], -1e3f, 1e3f, &sc)) return 2;
            a->lora[a->n_lora] = argv[i + 1];
            a->lora_scale[a->n_lora++] = sc;
            i += 2;
            continue;
        }
        /* Flags with a value. */
        if (i + 1 >= argc) {
            if (arg[0] != '-') return bad(a, "unexpected argument '%s'%s", arg, "");
            static const char *const valued[] = {"-m",
                                                 "--model",
                                                 "-p",
                                                 "--prompt",
                                                 "-f",
                                                 "--file",
                                                 "-n",
                                                 "--n-predict",
                                                 "-c",
                                                 "--ctx-size",
                                                 "-t",
                                                 "--threads",
                                                 "-s",
                                                 "--seed",
                                                 "--temp",
                                                 "--top-k",
                                                 "--top-p",
                                                 "--min-p",
                                                 "--repeat-penalty",
                                                 "--repeat-last-n",
                                                 "--presence-penalty",
                                                 "--frequency-penalty",
                                                 "--chat-template",
                                                 "-b",
                                                 "--batch-size",
                                                 "-ub",
                                                 "--ubatch-size",
                                                 "--keep",
                                                 "-ngl",
                                                 "--n-gpu-layers",
                                                 "--gpu-layers",
                                                 "-sys",
                                                 "--system-prompt",
                                                 "--chunks",
                                                 "--bench",
                                                 "--mem-limit",
                                                 "--lora",
                                                 "-tb",
                                                 "--threads-batch"};
            for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
                if (!strcmp(arg, valued[k])) return bad(a, "%s needs a value%s", arg, "");
            return bad(a, "unknown option '%s'%s", arg, "");
        }
        const char *v = argv[i + 1];
        int rc = -1;
        if (is(arg, "-m", "--model"))
            a->model = v, rc = 0;
        else if (is(arg, "-p", "--prompt"))
            a->prompt = v, rc = 0;
        else if (is(arg, "-f", "--file"))
            a->file = v, rc = 0;
        else if (is(arg, "--lora", NULL)) {
            if (a->n_lora >= ARGS_MAX_LORA) return bad(a, "%s: at most 8 adapters%s", arg, "");
            a->lora[a->n_lora] = v;
            a->lora_scale[a->n_lora++] = 1.0f;
            rc = 0;
        } else if (is(arg, "-sys", "--system-prompt"))
            a->system_prompt = v, rc = 0;
        else if (is(arg, "--chat-template", NULL))
            a->chat_template = v, rc = 0;
        else if (is(arg, "-n", "--n-predict")) {
            rc = int_flag(a, arg, v, -2, INT32_MAX, &a->n_predict);
            if (!rc && a->n_predict == 0)
                return bad(a,
                           "%s 0 asks for no tokens: give a positive count, or -1 for no "
                           "limit%s",
                           arg, "");
        } else if (is(arg, "-c", "--ctx-size"))
            rc = int_flag(a, arg, v, 1, ARGS_MAX_CTX, &a->n_ctx);
        else if (is(arg, "-t", "--threads") || is(arg, "-tb", "--threads-batch")) {
            rc = int_flag(a, arg, v, -1, THREADPOOL_MAX_THREADS, &a->n_threads);
            if (a->n_threads < 0) a->n_threads = 0; /* -1, as in llama.cpp: one per CPU */
        } else if (is(arg, "-s", "--seed")) {
            int64_t x;
            if (!parse_i64(v, &x) || x < -1 || x > (int64_t)UINT32_MAX)
                return bad(a, "%s expects -1 or an integer 0..4294967295, got '%s'", arg, v);
            a->seed = x;
            rc = 0;
        } else if (is(arg, "--temp", NULL))
            rc = float_flag(a, arg, v, 0.0f, 1e6f, &a->sampling.temp);
        else if (is(arg, "--top-k", NULL))
            rc = int_flag(a, arg, v, 0, INT32_MAX, &a->sampling.top_k);
        else if (is(arg, "--top-p", NULL))
            rc = float_flag(a, arg, v, 0.0f, 1.0f, &a->sampling.top_p);
        else if (is(arg, "--min-p", NULL))
            rc = float_flag(a, arg, v, 0.0f, 1.0f, &a->sampling.min_p);
        else if (is(arg, "--repeat-penalty", NULL)) {
            rc = float_flag(a, arg, v, 0.0f, 1e6f, &a->sampling.repeat_penalty);
            if (!rc && a->sampling.repeat_penalty <= 0.0f)
                return bad(a, "%s must be above 0, got '%s'", arg, v);
        } else if (is(arg, "--repeat-last-n", NULL))
            rc = int_flag(a, arg, v, -1, ARGS_MAX_CTX, &a->repeat_last_n);
        else if (is(arg, "--presence-penalty", NULL))
            rc = float_flag(a, arg, v, -1e6f, 1e6f, &a->sampling.presence_penalty);
        else if (is(arg, "--frequency-penalty", NULL))
            rc = float_flag(a, arg, v, -1e6f, 1e6f, &a->sampling.frequency_penalty);
        else if (is(arg, "-b", "--batch-size"))
            rc = int_flag(a, arg, v, 1, ARGS_MAX_CTX, &a->n_batch);
        else if (is(arg, "-ub", "--ubatch-size"))
            rc = int_flag(a, arg, v, 1, ARGS_MAX_CTX, &a->n_ubatch);
        else if (is(arg, "--keep", NULL))
            rc = int_flag(a, arg, v, -1, ARGS_MAX_CTX, &a->n_keep);
        else if (is(arg, "--mem-limit", NULL)) {
            if (!memfit_parse_size(v, &a->mem_limit) || a->mem_limit == 0)
                return bad(a, "--mem-limit expects a size such as 512M or 8G, got '%s'%s", v, "");
            rc = 0;
        } else if (is(arg, "--bench", NULL))
            rc = int_flag(a, arg, v, 1, 1000, &a->bench_runs);
        else if (is(arg, "--chunks", NULL))
            rc = int_flag(a, arg, v, -1, INT32_MAX, &a->n_chunks);
        else if (is(arg, "-ngl", "--n-gpu-layers") || is(arg, "--gpu-layers", NULL)) {
            int32_t ngl;
            rc = int_flag(a, arg, v, -1, INT32_MAX, &ngl);
            if (!rc) ignored(a, arg);
        } else if (arg[0] != '-')
            return bad(a, "unexpected argument '%s'%s", arg, "");
        else
            return bad(a, "unknown option '%s'%s", arg, "");
        if (rc) return rc;
        i++;
    }
    return 0;
}

void args_print_usage(FILE *f)
{
    fprintf(f,
            "  -m, --model FILE          GGUF model (required)\n"
            "  --lora FILE               apply a LoRA adapter (llama models; repeatable)\n"
            "  --lora-scaled FILE S      apply a LoRA adapter with scale S\n"
            "  -p, --prompt TEXT         prompt text\n"
            "  -f, --file FILE           prompt (run) or text to score (perplexity) from a file\n"
            "  -n, --n-predict N         tokens to generate (-1: until end of generation; 0 is "
            "refused)\n"
            "  -c, --ctx-size N          context size in tokens (default 4096)\n"
            "  -b, --batch-size N        prompt tokens per forward call (default 2048)\n"
            "  -ub, --ubatch-size N      accepted (loft uses -b)\n"
            "  -t, --threads N           threads\n"
            "  -s, --seed N              sampling seed (-1: from the clock)\n"
            "  --bench N                 (run) N timed runs after a warm-up: Peak/Avg/Low t/s, TTFT\n"
            "  --mem-limit SIZE          refuse a configuration needing more (512M, 8G; default:\n"
            "                            the RAM available)\n"
            "  --temp T                  temperature (0: greedy; default 0.8)\n"
            "  --top-k N                 top-k (0: off; default 40)\n"
            "  --top-p P                 top-p (1: off; default 0.95)\n"
            "  --min-p P                 min-p (0: off; default 0.05)\n"
            "  --repeat-penalty X        repetition penalty (1: off; default 1)\n"
            "  --repeat-last-n N         tokens the penalties look back (-1: context; default "
            "64)\n"
            "  --presence-penalty X      presence penalty (default 0)\n"
            "  --frequency-penalty X     frequency penalty (default 0)\n"
            "  -st, --single-turn        wrap the prompt in the chat template, answer once\n"
            "  -cnv, --conversation      chat template (run: one answer; chat: always on)\n"
            "  -no-cnv                   raw completion, no chat template\n"
            "  -sys, --system-prompt S   system message for the chat template\n"
            "  --chat-template NAME      chatml, gemma, llama3 or zephyr (default: the model's)\n"
            "  --no-display-prompt       do not echo the prompt\n"
            "  --verbose-prompt          list the prompt's tokens on stderr\n"
            "  --keep N                  prompt tokens kept on a context shift (-1: all)\n"
            "  --context-shift           when the context fills, drop half of it and go on\n"
            "  -e, --escape / --no-escape  process \\n, \\t, ... in the prompt (default on)\n"
            "  -ngl N, -fa on|off|auto, --no-mmap   accepted and ignored (CPU only)\n");
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

void args_unescape(char *s)
{
    char *out = s;
    for (const char *in = s; *in; in++) {
        if (*in != '\\' || !in[1]) {
            *out++ = *in;
            continue;
        }
        in++;
        switch (*in) {
        case 'n':
            *out++ = '\n';
            break;
        case 'r':
            *out++ = '\r';
            break;
        case 't':
            *out++ = '\t';
            break;
        case 'a':
            *out++ = '\a';
            break;
        case 'b':
            *out++ = '\b';
            break;
        case 'f':
            *out++ = '\f';
            break;
        case 'v':
            *out++ = '\v';
            break;
        case '\\':
            *out++ = '\\';
            break;
        case '\'':
            *out++ = '\'';
            break;
        case '"':
            *out++ = '"';
            break;
        case '?':
            *out++ = '?';
            break;
        case 'x': {
            int h1 = hex_digit(in[1]), h2 = h1 >= 0 ? hex_digit(in[2]) : -1;
            if (h1 >= 0 && h2 >= 0) {
                *out++ = (char)(h1 * 16 + h2);
                in += 2;
            } else {
                *out++ = '\\';
                *out++ = 'x';
            }
            break;
        }
        default:
            *out++ = '\\';
            *out++ = *in;
            break;
        }
    }
    *out = '\0';
}

char *args_read_file(const char *cmd, const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "loft %s: %s: %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    /* Text is read whole and tokenized in memory (about 5 bytes per byte of
     * text at the peak): a regular file over the limit is refused before
     * any of it is read. Pipes are bounded by the same limit while reading. */
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > ARGS_MAX_TEXT) {
        fprintf(stderr,
                "loft %s: %s: %.2f GiB of text is more than loft reads (at most %.0f GiB; "
                "tokenizing it would need about %.0f GiB)\n",
                cmd, path, (double)sb.st_size / (1u << 30), (double)ARGS_MAX_TEXT / (1u << 30),
                5.0 * (double)sb.st_size / (1u << 30));
        fclose(f);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n < cap - 1) break;
        if (cap > SIZE_MAX / 2 || n > ARGS_MAX_TEXT) {
            free(buf);
            buf = NULL;
            break;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) {
        fprintf(stderr, "loft %s: %s: %s\n", cmd, path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

bool args_valid_utf8(const char *str, size_t len, size_t *bad_at)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else
            goto invalid;
        if (len - i < n) goto invalid;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto invalid;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto invalid;
        i += n;
    }
    return true;
invalid:
    if (bad_at) *bad_at = i;
    return false;
}
