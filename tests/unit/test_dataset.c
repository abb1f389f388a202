/*
 * JSONL training data (src/train/dataset.c) with SmolLM2's tokenizer and
 * chat template: every record kind, the loss mask at token boundaries,
 * truncation counts, bad lines by number, --strict, and the published
 * biomedical set (../shared/data/biomedical_qa, beside the repository).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"
#include "test.h"
#include "text/chat.h"
#include "text/vocab.h"
#include "train/dataset.h"

static loft_vocab *voc;
static loft_chat_template tmpl;

static bool setup(void)
{
    if (voc) return true;
    loft_status st;
    gguf_file *g = NULL;
    if (gguf_open(&g, test_model_path("smollm2-135m-instruct-q4_1.gguf"), &st) != LOFT_OK) {
        fprintf(stderr, "%s\n", st.msg);
        return false;
    }
    bool ok = vocab_load(&voc, g, &st) == LOFT_OK;
    gguf_str text = {0, NULL};
    gguf_get_str(g, "tokenizer.chat_template", &text);
    ok = ok &&
         loft_chat_template_detect(&tmpl, text.data, (size_t)text.len, "llama", &st) == LOFT_OK;
    gguf_close(g);
    return ok;
}

static bool tokens_equal_text(const int32_t *t, int32_t n, const char *want)
{
    loft_status st;
    char *s = NULL;
    size_t len = 0;
    if (vocab_detokenize(voc, t, (size_t)n, true, &s, &len, &st) != LOFT_OK) return false;
    bool ok = len == strlen(want) && !memcmp(s, want, len);
    if (!ok) fprintf(stderr, "got '%s' want '%s'\n", s, want);
    free(s);
    return ok;
}

/* The trained tokens, detokenized, are exactly the completion (+ EOS). */
static void test_prompt_completion_mask(void)
{
    CHECK(setup());
    const char *line = "{\"prompt\": \"What is 2+2?\", \"completion\": \" Four.\"}";
    dataset_opts o = {.n_ctx = 64, .assistant_loss_only = true};
    train_example ex;
    bool trunc;
    loft_status st;
    CHECKF(dataset_example_from_json(&ex, &trunc, line, strlen(line), voc, &tmpl, &o, &st) ==
               LOFT_OK,
           "%s", st.msg);
    CHECK(!trunc && ex.n > 3 && ex.mask[0] == 0);
    int32_t first = -1;
    for (int32_t i = 0; i < ex.n; i++)
        if (ex.mask[i]) {
            if (first < 0) first = i;
        } else {
            CHECKF(first < 0, "mask has a hole at %d", i);
        }
    CHECK(first > 0);
    CHECK(tokens_equal_text(ex.tokens + first, ex.n - first, " Four.<|im_end|>"));
    CHECK(tokens_equal_text(ex.tokens, first, "What is 2+2?"));
    CHECK(ex.tokens[ex.n - 1] == vocab_eos(voc));
    train_example_free(&ex);
    /* without --assistant-loss-only every token after the first is trained */
    o.assistant_loss_only = false;
    CHECK(dataset_example_from_json(&ex, &trunc, line, strlen(line), voc, &tmpl, &o, &st) ==
          LOFT_OK);
    CHECK(ex.n_loss == ex.n - 1);
    train_example_free(&ex);
}

static void test_messages_mask(void)
{
    CHECK(setup());
    const char *line = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                       "{\"role\": \"user\", \"content\": \"Hi\"}, "
                       "{\"role\": \"assistant\", \"content\": \"Hello!\"}, "
                       "{\"role\": \"user\", \"content\": \"Bye\"}, "
                       "{\"role\": \"assistant\", \"content\": \"Goodbye.\"}]}";
    dataset_opts o = {.n_ctx = 256, .assistant_loss_only = true};
    train_example ex;
    bool trunc;
    loft_status st;
    CHECKF(dataset_example_from_json(&ex, &trunc, line, strlen(line), voc, &tmpl, &o, &st) ==
               LOFT_OK,
           "%s", st.msg);
    /* collect the trained spans */
    char spans[512] = "";
    for (int32_t i = 0; i < ex.n;) {
        if (!ex.mask[i]) {
            i++;
            continue;
        }
        int32_t j = i;
        while (j < ex.n && ex.mask[j])
            j++;
        char *s = NULL;
        size_t len;
        CHECK(vocab_detokenize(voc, ex.tokens + i, (size_t)(j - i), true, &s, &len, &st) ==
              LOFT_OK);
        strncat(spans, s, sizeof spans - strlen(spans) - 2);
        strcat(spans, "|");
        free(s);
        i = j;
    }
    CHECKF(!strcmp(spans, "Hello!<|im_end|>\n|Goodbye.<|im_end|>\n|"), "spans '%s'", spans);
    /* the whole sequence is the template's rendering */
    loft_chat_msg msgs[5] = {{"system", "Be brief."},
                             {"user", "Hi"},
                             {"assistant", "Hello!"},
                             {"user", "Bye"},
                             {"assistant", "Goodbye."}};
    char *full = NULL;
    CHECK(loft_chat_render(&tmpl, msgs, 5, false, &full, &st) == LOFT_OK);
    CHECK(tokens_equal_text(ex.tokens, ex.n, full));
    free(full);
    train_example_free(&ex);
}

static void test_biomedical_record(void)
{
    CHECK(setup());
    const char *line = "{\"text\": \"Q: Is water wet?\\nA: Yes. Rationale: it is.\", "
                       "\"label\": \"Yes\", \"question\": \"Is water wet?\"}";
    dataset_opts o = {.n_ctx = 64, .assistant_loss_only = true};
    train_example ex;
    bool trunc;
    loft_status st;
    CHECK(dataset_example_from_json(&ex, &trunc, line, strlen(line), voc, &tmpl, &o, &st) ==
          LOFT_OK);
    int32_t first = 0;
    while (first < ex.n && !ex.mask[first])
        first++;
    CHECK(tokens_equal_text(ex.tokens, first, "Q: Is water wet?\nA:"));
    CHECK(tokens_equal_text(ex.tokens + first, ex.n - first, " Yes. Rationale: it is.<|im_end|>"));
    train_example_free(&ex);
    /* a plain text record is trained whole */
    const char *plain = "{\"text\": \"just some text\"}";
    CHECK(dataset_example_from_json(&ex, &trunc, plain, strlen(plain), voc, &tmpl, &o, &st) ==
          LOFT_OK);
    CHECK(ex.n_loss == ex.n - 1);
    train_example_free(&ex);
}

static const char *write_tmp(const char *content)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/loft-dataset-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fputs(content, f);
    fclose(f);
    return path;
}

static void test_bad_lines_truncation_strict(void)
{
    CHECK(setup());
    const char *path = write_tmp("{\"prompt\": \"a\", \"completion\": \" b\"}\n"
                                 "not json\n"
                                 "\n"
                                 "{\"other\": 1}\n"
                                 "{\"text\": \""
                                 "one two three four five six seven eight nine ten eleven twelve"
                                 "\"}\n"
                                 "[1, 2]\n");
    CHECK(path);
    dataset_opts o = {.n_ctx = 6, .assistant_loss_only = true};
    train_dataset d;
    loft_status st;
    CHECKF(dataset_load(&d, path, voc, &tmpl, &o, &st) == LOFT_OK, "%s", st.msg);
    CHECK(d.n == 2 && d.n_lines == 5);
    CHECK(d.n_bad == 3);
    CHECK(d.bad[0].line == 2 && d.bad[1].line == 4 && d.bad[2].line == 6);
    CHECK(strstr(d.bad[1].why, "no usable field"));
    CHECK(d.n_truncated == 1 && d.ex[1].n == 6);
    dataset_free(&d);
    o.strict = true;
    CHECK(dataset_load(&d, path, voc, &tmpl, &o, &st) == LOFT_ERR_FORMAT);
    CHECKF(strstr(st.msg, ":2:") != NULL, "message '%s' lacks the line number", st.msg);
    CHECK(d.n == 0);
    unlink(path);
}

/* The published set loads whole with the published command's settings. */
static void test_biomedical_set(void)
{
    CHECK(setup());
    const char *files[2] = {"../shared/data/biomedical_qa/train.jsonl",
                            "../shared/data/biomedical_qa/validation.jsonl"};
    for (int i = 0; i < 2; i++) {
        dataset_opts o = {.n_ctx = 128, .assistant_loss_only = true};
        train_dataset d;
        loft_status st;
        CHECKF(dataset_load(&d, files[i], voc, &tmpl, &o, &st) == LOFT_OK, "%s", st.msg);
        CHECKF(d.n_bad == 0 && d.n == d.n_lines && d.n > 20, "%s: %zu of %zu lines, %zu bad",
               files[i], d.n, d.n_lines, d.n_bad);
        for (size_t k = 0; k < d.n; k++) {
            CHECK(d.ex[k].n_loss > 0 && d.ex[k].n_loss < d.ex[k].n - 1);
            CHECK(d.ex[k].n <= 128);
        }
        printf("  %s: %zu examples, %lld tokens, %lld trained, %zu truncated\n", files[i], d.n,
               (long long)d.n_tokens, (long long)d.n_loss_tokens, d.n_truncated);
        dataset_free(&d);
    }
}

static void teardown(void)
{
    vocab_free(voc);
    voc = NULL;
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"prompt_completion_mask", test_prompt_completion_mask},
        {"messages_mask", test_messages_mask},
        {"biomedical_record", test_biomedical_record},
        {"bad_lines_truncation_strict", test_bad_lines_truncation_strict},
        {"biomedical_set", test_biomedical_set},
        {"teardown", teardown},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
