/*
 * chat.h - built-in chat templates.
 *
 * loft never executes a model's Jinja chat template. It recognises the
 * template's family from distinctive substrings of tokenizer.chat_template
 * (or, when the file has none, from the architecture) and renders the
 * conversation with the matching built-in formatter:
 *
 *   chatml  <|im_start|>ROLE\nCONTENT<|im_end|>\n ... <|im_start|>assistant\n
 *           (SmolLM2, Qwen; a default system prompt found in the template is
 *           used when the conversation does not start with a system turn)
 *   gemma   <start_of_turn>user\nCONTENT<end_of_turn>\n ... <start_of_turn>model\n
 *           (the system prompt is folded into the first user turn)
 *   llama3  <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|> ...
 *   zephyr  <|ROLE|>\nCONTENT</s>\n ... <|assistant|>\n  (Zephyr, TinyLlama)
 *
 * The rendered text never contains the BOS token: the tokenizer adds it
 * (tokenizer.ggml.add_bos_token), as llama.cpp does.
 */
#ifndef LOFT_TEXT_CHAT_H
#define LOFT_TEXT_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "loft.h"

typedef enum loft_chat_kind {
    LOFT_CHAT_CHATML,
    LOFT_CHAT_GEMMA,
    LOFT_CHAT_LLAMA3,
    LOFT_CHAT_ZEPHYR,
    LOFT_CHAT_KIND_COUNT
} loft_chat_kind;

#define LOFT_CHAT_SYSTEM_MAX 512

typedef struct loft_chat_template {
    loft_chat_kind kind;
    /* Used as the system turn when the first message is not "system"; empty
     * when the template has none. */
    char default_system[LOFT_CHAT_SYSTEM_MAX];
} loft_chat_template;

typedef struct loft_chat_msg {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} loft_chat_msg;

/* Name of a kind ("chatml", "gemma", "llama3", "zephyr"). */
const char *loft_chat_kind_name(loft_chat_kind kind);

/* The names accepted by loft_chat_template_by_name, comma-separated. */
const char *loft_chat_template_names(void);

/* Looks up a built-in template by name (no default system prompt). An
 * unknown name fails with LOFT_ERR_ARG and a message listing the names. */
loft_code loft_chat_template_by_name(loft_chat_template *out, const char *name, loft_status *st);

/* Recognises a model's template text (len bytes, not NUL-terminated; NULL
 * or len 0 when the model has none). With no template the architecture
 * decides (gemma* -> gemma, anything else -> chatml, as llama.cpp falls back).
 * A template that matches no family fails with LOFT_ERR_UNSUPPORTED and a
 * message listing the names that --chat-template accepts. */
loft_code loft_chat_template_detect(loft_chat_template *out, const char *text, size_t len,
                                    const char *arch, loft_status *st);

/* Renders msgs[0..n) and, when add_generation_prompt, the opening of the
 * assistant's turn. On LOFT_OK *out is a NUL-terminated malloc'd string the
 * caller frees. Roles other than system/user/assistant are refused. */
loft_code loft_chat_render(const loft_chat_template *t, const loft_chat_msg *msgs, size_t n,
                           bool add_generation_prompt, char **out, loft_status *st);

#endif
