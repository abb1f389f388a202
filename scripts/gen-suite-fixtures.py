#!/usr/bin/env python3
"""The tiny model behind tests/unit/test_suite.c.

tests/golden/qwen/llama.gguf (a seeded random 2-layer llama, F32, 256-token
vocabulary, made by gen-qwen-fixtures.py) has no tokenizer, and `loft suite`
needs one to render prompts and training examples. This copies its
metadata and tensors into tests/golden/suite/tiny-llama.gguf and adds a
byte-level BPE tokenizer ("gpt2" model, "default" pre-tokenizer) that fits
the model's 256 outputs: id 0 is the end-of-text control token, id 1 is the
merge of a space and "t" (a BPE vocabulary needs at least one merge), and
ids 2..255 are the byte tokens of bytes 2..255. Bytes 0 and 1 never occur in
the test data.

The dataset files next to it (train.jsonl, validation.jsonl) are written by
hand in the published biomedical set's shape.

Needs the gguf and numpy packages. Run from the repo root:
    python3 scripts/gen-suite-fixtures.py
"""
import numpy as np
import gguf

SRC = "tests/golden/qwen/llama.gguf"
DST = "tests/golden/suite/tiny-llama.gguf"


def byte_chars():
    """GPT-2's reversible byte -> printable character map."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


def main():
    r = gguf.GGUFReader(SRC)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(DST, arch)
    for name, field in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vt = field.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            w.add_array(name, field.contents())
        else:
            w.add_key_value(name, field.contents(), vt)
    w.add_name("tiny-llama")
    bc = byte_chars()
    tokens = ["<|endoftext|>", bc[0x20] + "t"] + [bc[b] for b in range(2, 256)]
    types = [gguf.TokenType.CONTROL] + [gguf.TokenType.NORMAL] * 255
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([bc[0x20] + " t"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)
    w.add_add_bos_token(False)
    for t in r.tensors:
        data = np.array(t.data)
        w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
