/* Checks the built-in chat templates: recognition of the real models'
 * templates, rendering against fixtures made with jinja2 from the models'
 * own templates (scripts/gen-chat-fixtures.py), and hand-written
 * expectations for llama3 and zephyr from their published formats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "test.h"
#include "text/chat.h"

/* The conversations of scripts/gen-chat-fixtures.py. */
static const loft_chat_msg conv_1turn[] = {
    {"user", "Tell me a joke about cats"},
};
static const loft_chat_msg conv_3turn[] = {
    {"user", "Hi there!"},
    {"assistant", "Hello! How can I help you today?"},
    {"user", "What is 2 + 2?"},
};
static const loft_chat_msg conv_system[] = {
    {"system", "You are a pirate."},
    {"user", "  Where is the treasure?  \n"},
    {"assistant", "Arr, buried deep."},
    {"user", "Dig it up."},
};

typedef struct conv {
    const char *name;
    const loft_chat_msg *msgs;
    size_t n;
} conv;

static const conv convs[] = {
    {"1turn", conv_1turn, 1},
    {"3turn", conv_3turn, 3},
    {"system", conv_system, 4},
};

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Detects the template of a real model from its GGUF metadata. */
static int detect_from_model(const char *file, loft_chat_template *t, loft_status *st)
{
    gguf_file *g = NULL;
    if (gguf_open(&g, test_model_path(file), st) != LOFT_OK) return 0;
    gguf_str tmpl = {0, NULL}, arch = {0, NULL};
    gguf_get_str(g, "tokenizer.chat_template", &tmpl);
    gguf_get_str(g, "general.architecture", &arch);
    char arch_buf[64];
    snprintf(arch_buf, sizeof arch_buf, "%.*s", (int)(arch.len < 63 ? arch.len : 63),
             arch.data ? arch.data : "");
    loft_code rc = loft_chat_template_detect(t, tmpl.data, (size_t)tmpl.len, arch_buf, st);
    gguf_close(g);
    return rc == LOFT_OK;
}

static void check_fixtures(const char *model_file, const char *prefix, loft_chat_kind kind)
{
    loft_status st;
    loft_chat_template t;
    CHECKF(detect_from_model(model_file, &t, &st), "%s: %s", model_file, st.msg);
    CHECKF(t.kind == kind, "%s: detected %s", model_file, loft_chat_kind_name(t.kind));
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/chat/%s-%s.txt", prefix, convs[i].name);
        char *want = read_text(test_data_path(rel));
        CHECKF(want != NULL, "cannot read %s", rel);
        char *got = NULL;
        loft_code rc = loft_chat_render(&t, convs[i].msgs, convs[i].n, true, &got, &st);
        int same = rc == LOFT_OK && !strcmp(got, want);
        if (!same) fprintf(stderr, "    want <<%s>>\n    got  <<%s>>\n", want, got ? got : st.msg);
        free(got);
        free(want);
        CHECKF(same, "%s differs", rel);
    }
}

static void test_smollm2_fixtures(void)
{
    check_fixtures("smollm2-135m-instruct-q4_1.gguf", "smollm2", LOFT_CHAT_CHATML);
}

static void test_gemma3_fixtures(void)
{
    check_fixtures("gemma-3-270m-q4_k_m.gguf", "gemma3", LOFT_CHAT_GEMMA);
}

static void test_smollm2_default_system(void)
{
    loft_status st;
    loft_chat_template t;
    CHECKF(detect_from_model("smollm2-135m-instruct-q4_1.gguf", &t, &st), "%s", st.msg);
    CHECK(!strcmp(t.default_system,
                  "You are a helpful AI assistant named SmolLM, trained by Hugging Face"));
}

/* Renders with a named template and compares with the expected text. */
static int render_is(const char *name, const loft_chat_msg *m, size_t n, int gen, const char *want)
{
    loft_status st;
    loft_chat_template t;
    if (loft_chat_template_by_name(&t, name, &st) != LOFT_OK) return 0;
    char *got = NULL;
    if (loft_chat_render(&t, m, n, gen != 0, &got, &st) != LOFT_OK) return 0;
    int same = !strcmp(got, want);
    if (!same) fprintf(stderr, "    want <<%s>>\n    got  <<%s>>\n", want, got);
    free(got);
    return same;
}

static void test_llama3(void)
{
    CHECK(render_is("llama3", conv_1turn, 1, 1,
                    "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke about "
                    "cats<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"));
    CHECK(render_is("llama3", conv_system, 4, 1,
                    "<|start_header_id|>system<|end_header_id|>\n\nYou are a pirate.<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nWhere is the treasure?<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\nArr, buried deep.<|eot_id|>"
                    "<|start_header_id|>user<|end_header_id|>\n\nDig it up.<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n"));
    CHECK(render_is("llama3", conv_3turn, 3, 0,
                    "<|start_header_id|>user<|end_header_id|>\n\nHi there!<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help you "
                    "today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2 + "
                    "2?<|eot_id|>"));
}

static void test_zephyr(void)
{
    CHECK(render_is("zephyr", conv_1turn, 1, 1,
                    "<|user|>\nTell me a joke about cats</s>\n<|assistant|>\n"));
    CHECK(render_is("zephyr", conv_3turn, 3, 1,
                    "<|user|>\nHi there!</s>\n<|assistant|>\nHello! How can I help you "
                    "today?</s>\n<|user|>\nWhat is 2 + 2?</s>\n<|assistant|>\n"));
    CHECK(render_is("tinyllama", conv_system, 2, 0,
                    "<|system|>\nYou are a pirate.</s>\n<|user|>\n  Where is the treasure?  "
                    "\n</s>\n"));
}

static void test_chatml_without_default(void)
{
    /* By name, chatml has no default system prompt. */
    CHECK(render_is(
        "chatml", conv_1turn, 1, 1,
        "<|im_start|>user\nTell me a joke about cats<|im_end|>\n<|im_start|>assistant\n"));
    CHECK(render_is("chatml", conv_1turn, 1, 0,
                    "<|im_start|>user\nTell me a joke about cats<|im_end|>\n"));
}

static void test_detect_substrings(void)
{
    static const struct {
        const char *text;
        loft_chat_kind kind;
    } cases[] = {
        {"{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + "
         "'<|im_end|>\\n'}}{% endfor %}",
         LOFT_CHAT_CHATML},
        {"{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}{% endfor %}",
         LOFT_CHAT_GEMMA},
        {"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' "
         "%}",
         LOFT_CHAT_LLAMA3},
        {"{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + eos_token "
         "}}{% endif %}{{ '<|assistant|>' }}",
         LOFT_CHAT_ZEPHYR},
    };
    loft_status st;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        loft_chat_template t;
        CHECKF(loft_chat_template_detect(&t, cases[i].text, strlen(cases[i].text), "llama", &st) ==
                   LOFT_OK,
               "case %zu: %s", i, st.msg);
        CHECKF(t.kind == cases[i].kind, "case %zu: got %s", i, loft_chat_kind_name(t.kind));
        CHECKF(t.default_system[0] == '\0', "case %zu: default system '%s'", i, t.default_system);
    }
    /* A Qwen-style default written with escaped newlines is found too. */
    const char *qwen = "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + "
                       "messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- "
                       "'<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}{%- endif %}";
    loft_chat_template t;
    CHECK(loft_chat_template_detect(&t, qwen, strlen(qwen), "qwen2", &st) == LOFT_OK);
    CHECK(t.kind == LOFT_CHAT_CHATML && !strcmp(t.default_system, "You are Qwen."));
}

static void test_detect_without_template(void)
{
    loft_status st;
    loft_chat_template t;
    CHECK(loft_chat_template_detect(&t, NULL, 0, "gemma3", &st) == LOFT_OK);
    CHECK(t.kind == LOFT_CHAT_GEMMA);
    CHECK(loft_chat_template_detect(&t, NULL, 0, "llama", &st) == LOFT_OK);
    CHECK(t.kind == LOFT_CHAT_CHATML);
}

static void test_unknown_template_lists_names(void)
{
    loft_status st;
    loft_chat_template t;
    const char *odd = "{% for m in messages %}### {{ m['role'] }}: {{ m['content'] }}{% endfor %}";
    CHECK(loft_chat_template_detect(&t, odd, strlen(odd), "llama", &st) == LOFT_ERR_UNSUPPORTED);
    CHECK(strstr(st.msg, "--chat-template") && strstr(st.msg, "chatml") &&
          strstr(st.msg, "gemma") && strstr(st.msg, "llama3") && strstr(st.msg, "zephyr"));
    CHECK(loft_chat_template_by_name(&t, "vicuna", &st) == LOFT_ERR_ARG);
    CHECK(strstr(st.msg, "vicuna") && strstr(st.msg, "chatml") && strstr(st.msg, "zephyr"));
}

static void test_bad_role_refused(void)
{
    loft_status st;
    loft_chat_template t;
    CHECK(loft_chat_template_by_name(&t, "gemma", &st) == LOFT_OK);
    const loft_chat_msg bad[] = {{"tool", "x"}};
    char *out = (char *)1;
    CHECK(loft_chat_render(&t, bad, 1, true, &out, &st) == LOFT_ERR_ARG);
    CHECK(out == NULL && strstr(st.msg, "tool"));
    /* An empty conversation with a generation prompt is just the opening. */
    CHECK(loft_chat_render(&t, NULL, 0, true, &out, &st) == LOFT_OK);
    CHECK(!strcmp(out, "<start_of_turn>model\n"));
    free(out);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"chat_smollm2_fixtures", test_smollm2_fixtures},
        {"chat_gemma3_fixtures", test_gemma3_fixtures},
        {"chat_smollm2_default_system", test_smollm2_default_system},
        {"chat_llama3", test_llama3},
        {"chat_zephyr", test_zephyr},
        {"chat_chatml_without_default", test_chatml_without_default},
        {"chat_detect_substrings", test_detect_substrings},
        {"chat_detect_without_template", test_detect_without_template},
        {"chat_unknown_template_lists_names", test_unknown_template_lists_names},
        {"chat_bad_role_refused", test_bad_role_refused},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
