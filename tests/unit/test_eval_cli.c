/* `loft eval` and `loft judge` end to end on SmolLM2 with short generations:
 * the reports are well-formed JSON whose totals agree with their records,
 * the answers file feeds the judge, the judge prints the published
 * "A/B/ties / rate" line, and bad inputs (a record without its fields,
 * answer sets of the wrong length, an embedding model that is not an
 * encoder, an adapter) stop with a message naming the file and line. The
 * test sets are written here (hand-made questions). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "model/model.h"
#include "test.h"
#include "train/adapter.h"
#include "train/trainer.h"

static char dir[256];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

static const char *TEST_SET =
    "{\"question\": \"Is water wet?\", \"text\": \"Q: Is water wet?\\nA: Yes. Rationale: water "
    "wets surfaces.\", \"label\": \"Yes\"}\n"
    "\n"
    "{\"question\": \"Can pigs fly?\", \"answer\": \"No. Pigs have no wings.\", \"label\": "
    "\"No\"}\n";

static json_doc *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    json_doc *doc = NULL;
    loft_status st;
    if (buf && json_parse(&doc, buf, n, path, &st) != LOFT_OK) {
        fprintf(stderr, "  %s\n", st.msg);
        doc = NULL;
    }
    free(buf);
    return doc;
}

static int run(const char *args, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", test_loft_bin(), args);
    return test_run(cmd, out);
}

/* True when rc is 0; otherwise prints the output (which it then frees and
 * clears, so a failed CHECK leaks nothing). */
static int run_ok(int rc, char **out)
{
    if (rc == 0) return 1;
    fprintf(stderr, "  rc %d: %s\n", rc, *out ? *out : "");
    free(*out);
    *out = NULL;
    return 0;
}

static void test_qa_report(void)
{
    CHECK(write_file(tmp_path("test.jsonl"), TEST_SET));
    char args[2048], *out = NULL, smol[512];
    /* test_model_path returns a static buffer: copy one before the next call. */
    snprintf(smol, sizeof smol, "%s", test_model_path("smollm2-135m-instruct-q4_1.gguf"));
    snprintf(args, sizeof args,
             "eval -m %s -f %s --task qa -n 6 -t 2 --embed-model %s --report %s --column Untrained",
             smol, tmp_path("test.jsonl"), test_model_path("all-minilm-l6-v2.gguf"),
             tmp_path("qa"));
    int rc = run(args, &out);
    CHECK(run_ok(rc, &out));
    int has_table = out && strstr(out, "| Accuracy |") && strstr(out, "| Untrained |");
    free(out);
    CHECK(has_table);
    json_doc *doc = load_json(tmp_path("qa.json"));
    CHECK(doc);
    const json_value *root = json_doc_root(doc);
    const json_value *tot = json_get(root, "totals"), *recs = json_get(root, "records");
    const json_value *cfg = json_get(root, "config");
    int ok = tot && recs && cfg && recs->kind == JSON_ARRAY && recs->n == 2;
    int correct = 0;
    double cos_sum = 0;
    for (size_t i = 0; ok && i < recs->n; i++) {
        const json_value *r = &recs->items[i];
        const json_value *c = json_get(r, "correct"), *cs = json_get(r, "cosine");
        const json_value *jc = json_get(r, "jaccard");
        ok = c && cs && jc && cs->kind == JSON_NUMBER && fabs(cs->number) <= 1.0 + 1e-6 &&
             jc->number >= 0 && jc->number <= 1 && json_get_str(r, "prediction");
        if (ok) {
            correct += c->boolean;
            cos_sum += cs->number;
        }
    }
    /* The reference of record 1 comes from "text" after "\nA:". */
    const char *ref0 = ok ? json_get_str(&recs->items[0], "reference") : NULL;
    int ref_ok = ref0 && !strcmp(ref0, "Yes. Rationale: water wets surfaces.");
    const json_value *acc = tot ? json_get(tot, "accuracy") : NULL;
    const json_value *cm = tot ? json_get(tot, "cosine_mean") : NULL;
    int totals_ok = ok && acc && cm && fabs(acc->number - correct / 2.0) < 1e-12 &&
                    fabs(cm->number - cos_sum / 2) < 1e-9;
    const char *sha = cfg ? json_get_str(cfg, "model_sha256") : NULL;
    int sha_ok = sha && strlen(sha) == 64;
    json_doc_free(doc);
    CHECK(ok);
    CHECK(ref_ok);
    CHECK(totals_ok);
    CHECK(sha_ok);
    /* One answer per record for the judge. */
    FILE *f = fopen(tmp_path("qa.answers.jsonl"), "r");
    CHECK(f);
    int lines = 0, c;
    while ((c = fgetc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    CHECK(lines == 2);
    f = fopen(tmp_path("qa.md"), "r");
    CHECK(f);
    fclose(f);
}

static void test_choice(void)
{
    CHECK(write_file(tmp_path("choice.jsonl"),
                     "{\"question\": \"What colour is the sky on a clear day?\", \"choices\": "
                     "[\"Green\", \"Blue\"], \"answer\": 1}\n"
                     "{\"question\": \"Is fire cold?\", \"label\": \"No\"}\n"));
    char args[2048], *out = NULL;
    snprintf(args, sizeof args, "eval -m %s -f %s --task choice -t 2 --report %s",
             test_model_path("smollm2-135m-instruct-q4_1.gguf"), tmp_path("choice.jsonl"),
             tmp_path("choice"));
    int rc = run(args, &out);
    free(out);
    CHECK(rc == 0);
    json_doc *doc = load_json(tmp_path("choice.json"));
    CHECK(doc);
    const json_value *recs = json_get(json_doc_root(doc), "records");
    int ok = recs && recs->n == 2;
    const char *p0 = ok ? json_get_str(&recs->items[0], "prediction") : NULL;
    const char *p1 = ok ? json_get_str(&recs->items[1], "prediction") : NULL;
    const json_value *ll = ok ? json_get(&recs->items[0], "loglik") : NULL;
    ok = ok && p0 && p1 && (!strcmp(p0, "Green") || !strcmp(p0, "Blue")) &&
         (!strcmp(p1, "Yes") || !strcmp(p1, "No") || !strcmp(p1, "Uncertain")) && ll &&
         ll->number < 0;
    json_doc_free(doc);
    CHECK(ok);
}

static void test_judge_format(void)
{
    CHECK(write_file(tmp_path("one.jsonl"), "{\"question\": \"Is water wet?\", \"answer\": "
                                            "\"Yes.\"}\n"));
    CHECK(write_file(tmp_path("a.jsonl"), "{\"answer\": \"Yes, water is wet.\"}\n"));
    CHECK(write_file(tmp_path("b.jsonl"), "{\"answer\": \"Bananas.\"}\n"));
    char args[2048], *out = NULL;
    snprintf(args, sizeof args, "judge -m %s --a %s --b %s -f %s -n 2 -t 2 --report %s",
             test_model_path("smollm2-135m-instruct-q4_1.gguf"), tmp_path("a.jsonl"),
             tmp_path("b.jsonl"), tmp_path("one.jsonl"), tmp_path("judge"));
    int rc = run(args, &out);
    CHECK(run_ok(rc, &out));
    /* The last line of stdout+stderr is the summary. */
    const char *last = out, *p = out;
    while ((p = strchr(p, '\n')) && p[1])
        last = ++p;
    int a = -1, b = -1, t = -1;
    double rate = -1;
    int got = sscanf(last, "%d/%d/%d / %lf", &a, &b, &t, &rate);
    free(out);
    CHECKF(got == 4 && a >= 0 && b >= 0 && t >= 0 && a + b + t == 1 && fabs(rate - a) < 1e-9,
           "summary '%d/%d/%d / %f'", a, b, t, rate);
    json_doc *doc = load_json(tmp_path("judge.json"));
    CHECK(doc);
    const json_value *recs = json_get(json_doc_root(doc), "records");
    const char *v = recs && recs->n == 1 ? json_get_str(&recs->items[0], "verdict") : NULL;
    const json_value *f1 = v ? json_get(&recs->items[0], "a_first") : NULL;
    const json_value *f2 = v ? json_get(&recs->items[0], "b_first") : NULL;
    /* The verdict follows the order-swap rule from the two readings. */
    int rule = f1 && f2 &&
               !strcmp(v, f1->number == 1 && f2->number == 2   ? "A"
                          : f1->number == 2 && f2->number == 1 ? "B"
                                                               : "tie");
    json_doc_free(doc);
    CHECK(rule);
}

/* Reads the "loglik" of each record of a choice report into ll (n). */
static int read_logliks(const char *path, double *ll, size_t n)
{
    json_doc *doc = load_json(path);
    const json_value *recs = doc ? json_get(json_doc_root(doc), "records") : NULL;
    int ok = recs && recs->n == n;
    for (size_t i = 0; ok && i < n; i++) {
        const json_value *v = json_get(&recs->items[i], "loglik");
        ok = v && v->kind == JSON_NUMBER;
        if (ok) ll[i] = v->number;
    }
    json_doc_free(doc);
    return ok;
}

/* An adapter whose B is zero changes nothing: the choice scores through
 * the adapter path (the trainer's forward) equal those through the cache. */
static void test_choice_zero_adapter(void)
{
    char model[512], args[2048], *out = NULL;
    snprintf(model, sizeof model, "%s", test_model_path("smollm2-135m-instruct-q4_1.gguf"));
    loft_status st;
    loft_model *m = NULL;
    CHECKF(model_load(&m, model, &st) == LOFT_OK, "%s", st.msg);
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    lora_set ls;
    loft_code c =
        lora_set_init(&ls, &dims, (1u << LORA_ATTN_Q) | (1u << LORA_FFN_DOWN), 4, 8.0f, &st);
    if (c == LOFT_OK) {
        lora_set_init_peft(&ls, 7); /* A random, B zero */
        c = adapter_save(&ls, "llama", tmp_path("zero.gguf"), &st);
        if (c == LOFT_OK) c = adapter_save(&ls, "gemma3", tmp_path("other-arch.gguf"), &st);
        lora_set_free(&ls);
    }
    model_free(m);
    CHECKF(c == LOFT_OK, "%s", st.msg);
    CHECK(write_file(tmp_path("c3.jsonl"), TEST_SET));
    snprintf(args, sizeof args, "eval -m %s -f %s --task choice -t 2 -c 256 --report %s", model,
             tmp_path("c3.jsonl"), tmp_path("base"));
    int rc = run(args, &out);
    free(out);
    CHECK(rc == 0);
    snprintf(args, sizeof args, "eval -m %s -f %s --task choice -t 2 -c 256 --lora %s --report %s",
             model, tmp_path("c3.jsonl"), tmp_path("zero.gguf"), tmp_path("lora"));
    rc = run(args, &out);
    CHECK(run_ok(rc, &out));
    free(out);
    /* An adapter trained for another architecture is refused by name. */
    snprintf(args, sizeof args, "eval -m %s -f %s --task choice -t 2 -c 256 --lora %s --report %s",
             model, tmp_path("c3.jsonl"), tmp_path("other-arch.gguf"), tmp_path("other"));
    rc = run(args, &out);
    int refused = rc == 2 && out && strstr(out, "other-arch.gguf");
    if (!refused) fprintf(stderr, "  rc %d: %s\n", rc, out ? out : "");
    free(out);
    CHECK(refused);
    double a[2], b[2];
    CHECK(read_logliks(tmp_path("base.json"), a, 2) && read_logliks(tmp_path("lora.json"), b, 2));
    for (int i = 0; i < 2; i++)
        CHECKF(fabs(a[i] - b[i]) < 1e-3 * (1 + fabs(a[i])), "record %d: %.6f vs %.6f", i + 1, a[i],
               b[i]);
}

static void test_bad_inputs(void)
{
    char model[512], args[2048], *out = NULL;
    snprintf(model, sizeof model, "%s", test_model_path("smollm2-135m-instruct-q4_1.gguf"));
    /* Line 2 lacks the question. */
    CHECK(write_file(tmp_path("bad.jsonl"), "{\"question\": \"Q?\", \"answer\": \"Yes\", "
                                            "\"label\": \"Yes\"}\n{\"answer\": \"No\", \"label\": "
                                            "\"No\"}\n"));
    snprintf(args, sizeof args, "eval -m %s -f %s --task qa", model, tmp_path("bad.jsonl"));
    int rc = run(args, &out);
    int named = out && strstr(out, "bad.jsonl:2") && strstr(out, "\"question\"");
    free(out);
    CHECK(rc == 2 && named);
    /* Not JSON. */
    CHECK(write_file(tmp_path("bad2.jsonl"),
                     "{\"question\": \"Q?\", \"label\": \"Yes\"}\nnot json\n"));
    snprintf(args, sizeof args, "eval -m %s -f %s --task choice", model, tmp_path("bad2.jsonl"));
    rc = run(args, &out);
    named = out && strstr(out, "bad2.jsonl:2");
    free(out);
    CHECK(rc == 2 && named);
    /* An embedding model that is not an encoder. */
    CHECK(write_file(tmp_path("ok.jsonl"), TEST_SET));
    snprintf(args, sizeof args, "eval -m %s -f %s --task qa --embed-model %s", model,
             tmp_path("ok.jsonl"), model);
    rc = run(args, &out);
    named = out && strstr(out, "not an encoder");
    free(out);
    CHECK(rc != 0 && named);
    /* Answer sets that do not match the test set. */
    CHECK(write_file(tmp_path("a2.jsonl"), "{\"answer\": \"x\"}\n{\"answer\": \"y\"}\n"));
    CHECK(write_file(tmp_path("b1.jsonl"), "{\"answer\": \"x\"}\n"));
    snprintf(args, sizeof args, "judge -m %s --a %s --b %s -f %s", model, tmp_path("a2.jsonl"),
             tmp_path("b1.jsonl"), tmp_path("ok.jsonl"));
    rc = run(args, &out);
    named = out && strstr(out, "b1.jsonl");
    free(out);
    CHECK(rc == 2 && named);
    /* An answer line without "answer". */
    CHECK(write_file(tmp_path("b2.jsonl"), "{\"answer\": \"x\"}\n{\"reply\": \"y\"}\n"));
    snprintf(args, sizeof args, "judge -m %s --a %s --b %s -f %s", model, tmp_path("a2.jsonl"),
             tmp_path("b2.jsonl"), tmp_path("ok.jsonl"));
    rc = run(args, &out);
    named = out && strstr(out, "b2.jsonl:2");
    free(out);
    CHECK(rc == 2 && named);
    /* Unknown task. */
    snprintf(args, sizeof args, "eval -m %s -f %s --task nonsense", model, tmp_path("ok.jsonl"));
    rc = run(args, &out);
    named = out && strstr(out, "nonsense");
    free(out);
    CHECK(rc == 2 && named);
}

int main(int argc, char **argv)
{
    snprintf(dir, sizeof dir, "/tmp/loft-test-eval-%ld", (long)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    if (system(cmd) != 0) return 1;
    static const test_case cases[] = {
        {"bad_inputs", test_bad_inputs},
        {"qa_report", test_qa_report},
        {"choice", test_choice},
        {"choice_zero_adapter", test_choice_zero_adapter},
        {"judge_format", test_judge_format},
    };
    int rc = test_main(argc, argv, cases, TEST_COUNT(cases));
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return rc;
}
