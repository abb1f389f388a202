/*
 * cmd_judge.c - `loft judge -m JUDGE.gguf --a A.jsonl --b B.jsonl -f TEST.jsonl`:
 * an LLM judge compares two answer sets question by question, twice with the
 * order swapped; a verdict counts only when both orders agree, otherwise it
 * is a tie (prompts/README.md describes the prompt and the rule).
 *
 * A.jsonl and B.jsonl hold one {"answer": ...} per line (`loft eval --task
 * qa` writes them as PREFIX.answers.jsonl), in the order of TEST.jsonl's
 * records; when they carry "question" it must equal the test record's.
 * Prints "A/B/ties / win_rate" (the published format) and writes
 * PREFIX.json and PREFIX.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/atomic_file.h"
#include "base/json.h"
#include "base/sha256.h"
#include "commands.h"
#include "eval/metrics.h"
#include "eval/records.h"
#include "evalgen.h"
#include "session.h"

typedef struct judge_opts {
    const char *a, *b, *prompt_file, *report, *name_a, *name_b;
    eval_fields fields;
    long limit;
} judge_opts;

static void judge_usage(FILE *f)
{
    fprintf(f, "usage: loft judge -m JUDGE.gguf --a A.jsonl --b B.jsonl -f TEST.jsonl [options]\n"
               "  --a FILE, --b FILE   answer sets, one {\"answer\": ...} per test record\n"
               "  --judge-prompt FILE  the prompt template [prompts/judge.txt]\n"
               "  -n N                 tokens of each verdict (default 8)\n"
               "  --name-a S, --name-b S  names in the report [A, B]\n"
               "  --limit N            only the first N records\n"
               "  --report PREFIX      write PREFIX.json and PREFIX.md [loft-judge]\n\n");
    args_print_usage(f);
}

/* Splits argv into judge's own options (into o) and the shared ones (into
 * rest, argv[0] kept). Returns 0 or 2. */
static int judge_split_args(int argc, char **argv, judge_opts *o, char **rest, int *n_rest)
{
    const evalgen_flag flags[] = {
        {"--a", &o->a},
        {"--b", &o->b},
        {"--judge-prompt", &o->prompt_file},
        {"--report", &o->report},
        {"--name-a", &o->name_a},
        {"--name-b", &o->name_b},
        {"--question-field", &o->fields.question},
        {"--answer-field", &o->fields.answer},
    };
    return evalgen_split_args("judge", argc, argv, flags, sizeof flags / sizeof flags[0],
                              &o->limit, rest, n_rest);
}

/* Appends s to the growing buffer; false on allocation failure. */
static bool buf_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (*len + n + 1 > c)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p) return false;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

/* The prompt with its placeholders filled; NULL on allocation failure. */
static char *judge_fill(const char *tmpl, const char *q, const char *ref, const char *a1,
                        const char *a2)
{
    static const char *const keys[] = {"{question}", "{reference}", "{answer_1}", "{answer_2}"};
    const char *vals[] = {q, ref ? ref : "(none)", a1, a2};
    char *out = NULL;
    size_t len = 0, cap = 0;
    const char *p = tmpl;
    while (*p) {
        int hit = -1;
        for (int k = 0; k < 4 && hit < 0; k++)
            if (!strncmp(p, keys[k], strlen(keys[k]))) hit = k;
        bool ok = hit >= 0 ? buf_add(&out, &len, &cap, vals[hit], strlen(vals[hit]))
                           : buf_add(&out, &len, &cap, p, 1);
        if (!ok) {
            free(out);
            return NULL;
        }
        p += hit >= 0 ? strlen(keys[hit]) : 1;
    }
    return out ? out : strdup("");
}

/* One reading: the judge's reply to the prompt with x shown first. */
static int judge_once(session *s, const char *tmpl, const eval_record *r, const char *x,
                      const char *y, int32_t n_predict, int *verdict, char **reply)
{
    char *text = judge_fill(tmpl, r->question, r->answer, x, y);
    if (!text) {
        fprintf(stderr, "loft judge: out of memory\n");
        return 1;
    }
    int32_t *toks = NULL;
    size_t n = 0;
    int32_t n_gen = 0;
    int rc = evalgen_prompt(s, EVALGEN_CHAT, s->args->system_prompt, text, &toks, &n);
    if (!rc) rc = evalgen_greedy(s, toks, n, n_predict, reply, &n_gen);
    free(toks);
    free(text);
    if (!rc) *verdict = eval_judge_parse(*reply, strlen(*reply));
    return rc;
}

static void write_str_or_null(FILE *f, const char *s)
{
    if (s)
        json_write_str(f, s, strlen(s));
    else
        fputs("null", f);
}

int cmd_judge(int argc, char **argv)
{
    judge_opts o;
    memset(&o, 0, sizeof o);
    eval_fields_default(&o.fields);
    o.prompt_file = "prompts/judge.txt";
    o.report = "loft-judge";
    o.name_a = "A";
    o.name_b = "B";
    char **rest = malloc(((size_t)argc + 1) * sizeof *rest);
    if (!rest) return 1;
    int n_rest = 0;
    int rc = judge_split_args(argc, argv, &o, rest, &n_rest);
    loft_args a;
    if (!rc) rc = args_parse(&a, "judge", n_rest, rest);
    free(rest);
    if (rc) return rc;
    if (a.help) {
        judge_usage(stdout);
        return 0;
    }
    if (!a.model || !a.file || !o.a || !o.b) {
        fprintf(stderr, "loft judge: need -m JUDGE, --a A.jsonl, --b B.jsonl and -f TEST.jsonl\n");
        return 2;
    }
    bool n_given = false;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-n") || !strcmp(argv[i], "--n-predict")) n_given = true;
    int32_t n_predict = n_given ? a.n_predict : 8;

    size_t tlen = 0;
    char *tmpl = args_read_file("judge", o.prompt_file, &tlen);
    if (!tmpl) return 2;
    loft_status st;
    eval_records test = {0}, ra = {0}, rb = {0};
    eval_fields af;
    eval_fields_default(&af);
    af.answer = o.fields.answer;
    session s;
    memset(&s, 0, sizeof s);
    char model_sha[65] = "";
    int *verdicts = NULL;
    char **replies = NULL;
    size_t n = 0;
    if (eval_records_load(&test, a.file, &o.fields, EVAL_NEED_QUESTION, &st) ||
        eval_records_load(&ra, o.a, &af, EVAL_NEED_ANSWER, &st) ||
        eval_records_load(&rb, o.b, &af, EVAL_NEED_ANSWER, &st)) {
        fprintf(stderr, "loft judge: %s\n", st.msg);
        rc = 2;
        goto done;
    }
    if (ra.n != test.n || rb.n != test.n) {
        fprintf(stderr, "loft judge: %s has %zu records, %s %zu and %s %zu; they must match\n",
                a.file, test.n, o.a, ra.n, o.b, rb.n);
        rc = 2;
        goto done;
    }
    for (size_t i = 0; i < test.n; i++) {
        const eval_record *x[2] = {&ra.r[i], &rb.r[i]};
        for (int k = 0; k < 2; k++)
            if (x[k]->question && strcmp(x[k]->question, test.r[i].question)) {
                fprintf(stderr, "loft judge: %s:%zu: the question differs from %s:%zu\n",
                        k ? o.b : o.a, x[k]->line, a.file, test.r[i].line);
                rc = 2;
                goto done;
            }
    }
    if (sha256_file_hex(a.model, model_sha, &st)) {
        fprintf(stderr, "loft judge: %s\n", st.msg);
        rc = 1;
        goto done;
    }
    n = o.limit > 0 && (size_t)o.limit < test.n ? (size_t)o.limit : test.n;
    verdicts = calloc(n * 3, sizeof *verdicts);
    replies = calloc(n * 2, sizeof *replies);
    if (!verdicts || !replies) {
        fprintf(stderr, "loft judge: out of memory\n");
        rc = 1;
        goto done;
    }
    if ((rc = session_open(&s, &a, true))) goto done;
    int64_t wins_a = 0, wins_b = 0, ties = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int *v = verdicts + 3 * i;
        rc = judge_once(&s, tmpl, &test.r[i], ra.r[i].answer, rb.r[i].answer, n_predict, &v[0],
                        &replies[2 * i]);
        if (!rc)
            rc = judge_once(&s, tmpl, &test.r[i], rb.r[i].answer, ra.r[i].answer, n_predict, &v[1],
                            &replies[2 * i + 1]);
        if (rc) break;
        v[2] = (int)eval_judge_combine(v[0], v[1]);
        if (v[2] == EVAL_A)
            wins_a++;
        else if (v[2] == EVAL_B)
            wins_b++;
        else
            ties++;
        fprintf(stderr, "loft judge: [%zu/%zu] A first: %d, B first: %d -> %s\n", i + 1, n, v[0],
                v[1],
                v[2] == EVAL_A   ? o.name_a
                : v[2] == EVAL_B ? o.name_b
                                 : "tie");
    }
    if (rc) goto done;
    double win_rate = n ? (double)wins_a / (double)n : 0.0;
    printf("%lld/%lld/%lld / %.2f\n", (long long)wins_a, (long long)wins_b, (long long)ties,
           win_rate);

    /* Temporary, fsync, rename (atomic_file): a failed write keeps the
     * previous report and says why. */
    char final[4096];
    atomic_file out;
    snprintf(final, sizeof final, "%s.json", o.report);
    if (atomic_file_open(&out, final, &st) != LOFT_OK) {
        fprintf(stderr, "loft judge: %s\n", st.msg);
        rc = 1;
        goto done;
    }
    FILE *f = out.f;
    fprintf(f,
            "{\n  \"tool\": \"loft judge\",\n  \"version\": \"%s\",\n  \"config\": {\n"
            "    \"judge_model\": ",
            LOFT_VERSION);
    write_str_or_null(f, a.model);
    fprintf(f, ",\n    \"judge_model_sha256\": \"%s\",\n    \"test_file\": ", model_sha);
    write_str_or_null(f, a.file);
    fprintf(f, ",\n    \"a\": ");
    write_str_or_null(f, o.a);
    fprintf(f, ",\n    \"b\": ");
    write_str_or_null(f, o.b);
    fprintf(f, ",\n    \"name_a\": ");
    write_str_or_null(f, o.name_a);
    fprintf(f, ",\n    \"name_b\": ");
    write_str_or_null(f, o.name_b);
    fprintf(f, ",\n    \"prompt_file\": ");
    write_str_or_null(f, o.prompt_file);
    fprintf(f, ",\n    \"prompt\": ");
    json_write_str(f, tmpl, tlen);
    fprintf(f,
            ",\n    \"n_predict\": %d,\n    \"sampling\": \"greedy\",\n    \"rule\": "
            "\"a verdict counts when both orders agree, else tie\"\n  },\n",
            n_predict);
    fprintf(f, "  \"totals\": {\"a_wins\": %lld, \"b_wins\": %lld, \"ties\": %lld, \"win_rate\": ",
            (long long)wins_a, (long long)wins_b, (long long)ties);
    json_write_num(f, win_rate);
    fprintf(f, ", \"summary\": \"%lld/%lld/%lld / %.2f\"},\n  \"records\": [", (long long)wins_a,
            (long long)wins_b, (long long)ties, win_rate);
    for (size_t i = 0; i < n; i++) {
        const int *v = verdicts + 3 * i;
        fprintf(f,
                "%s\n    {\"line\": %zu, \"a_first\": %d, \"b_first\": %d, \"verdict\": \"%s\", "
                "\"reply_a_first\": ",
                i ? "," : "", test.r[i].line, v[0], v[1],
                v[2] == EVAL_A   ? "A"
                : v[2] == EVAL_B ? "B"
                                 : "tie");
        write_str_or_null(f, replies[2 * i]);
        fprintf(f, ", \"reply_b_first\": ");
        write_str_or_null(f, replies[2 * i + 1]);
        fputc('}', f);
    }
    fprintf(f, "\n  ]\n}\n");
    if (atomic_file_commit(&out, &st) != LOFT_OK) {
        fprintf(stderr, "loft judge: %s\n", st.msg);
        rc = 1;
        goto done;
    }
    snprintf(final, sizeof final, "%s.md", o.report);
    if (atomic_file_open(&out, final, &st) != LOFT_OK) {
        fprintf(stderr, "loft judge: %s\n", st.msg);
        rc = 1;
        goto done;
    }
    f = out.f;
    fprintf(f,
            "| Judge | %s wins | %s wins | Ties | %s win rate |\n|---|---|---|---|---|\n"
            "| %s | %lld | %lld | %lld | %.2f |\n\n%s/%s/ties / win rate: %lld/%lld/%lld / %.2f\n",
            o.name_a, o.name_b, o.name_a, a.model, (long long)wins_a, (long long)wins_b,
            (long long)ties, win_rate, o.name_a, o.name_b, (long long)wins_a, (long long)wins_b,
            (long long)ties, win_rate);
    if (atomic_file_commit(&out, &st) != LOFT_OK) {
        fprintf(stderr, "loft judge: %s\n", st.msg);
        rc = 1;
    }
done:
    session_close(&s);
    for (size_t i = 0; replies && i < 2 * n; i++)
        free(replies[i]);
    free(replies);
    free(verdicts);
    eval_records_free(&test);
    eval_records_free(&ra);
    eval_records_free(&rb);
    free(tmpl);
    return rc;
}
