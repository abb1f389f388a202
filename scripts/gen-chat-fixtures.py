#!/usr/bin/env python3
"""Renders the chat-template fixtures in tests/golden/chat/ with jinja2.

For each real model the template is the model's own Jinja text: read from
tokenizer.chat_template in the GGUF when the file carries one (SmolLM2), and
otherwise the published template of that model family (the Gemma 3 GGUF in
models/ has no chat template, so Gemma 3's published template is written out
below). The C test (tests/unit/test_chat.c) renders the same conversations
with loft's built-in formatters and must produce the same bytes.

A leading BOS written by a template is removed from the fixture: loft's
rendered text never contains BOS, because the tokenizer adds it
(tokenizer.ggml.add_bos_token), as llama.cpp does.

usage: scripts/gen-chat-fixtures.py [MODELS_DIR] [OUT_DIR]
"""
import os
import sys

import jinja2
from gguf import GGUFReader

# Gemma 3's chat template as published with the instruction-tuned models
# (google/gemma-3-*-it tokenizer_config.json), text-only parts.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {{- message['content'] | trim -}}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n"
)

# The conversations; tests/unit/test_chat.c holds the same ones.
CONVERSATIONS = {
    "1turn": [
        {"role": "user", "content": "Tell me a joke about cats"},
    ],
    "3turn": [
        {"role": "user", "content": "Hi there!"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": "What is 2 + 2?"},
    ],
    "system": [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "  Where is the treasure?  \n"},
        {"role": "assistant", "content": "Arr, buried deep."},
        {"role": "user", "content": "Dig it up."},
    ],
}

MODELS = {
    "smollm2": ("smollm2-135m-instruct-q4_1.gguf", "<|im_start|>"),  # its bos_token
    "gemma3": ("gemma-3-270m-q4_k_m.gguf", "<bos>"),
}


def gguf_template(path):
    reader = GGUFReader(path)
    field = reader.fields.get("tokenizer.chat_template")
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def raise_exception(msg):
    raise jinja2.exceptions.TemplateError(msg)


def main():
    models_dir = sys.argv[1] if len(sys.argv) > 1 else "models"
    out_dir = sys.argv[2] if len(sys.argv) > 2 else "tests/golden/chat"
    os.makedirs(out_dir, exist_ok=True)
    # The settings Hugging Face transformers renders chat templates with.
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    for name, (file_name, bos) in MODELS.items():
        text = gguf_template(os.path.join(models_dir, file_name))
        if text is None:
            if name != "gemma3":
                sys.exit(f"{file_name}: no tokenizer.chat_template")
            text = GEMMA3_TEMPLATE
        tmpl = env.from_string(text)
        for conv_name, messages in CONVERSATIONS.items():
            out = tmpl.render(messages=messages, add_generation_prompt=True, bos_token=bos)
            if "bos_token" in text and out.startswith(bos):
                out = out[len(bos):]
            path = os.path.join(out_dir, f"{name}-{conv_name}.txt")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(out)
            print(f"wrote {path} ({len(out)} bytes)")


if __name__ == "__main__":
    main()
