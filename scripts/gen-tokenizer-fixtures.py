#!/usr/bin/env python3
"""Reference token ids for tests/unit/test_tokenizer.c, from llama.cpp.

Run from the repository root (needs llama-cpp-python and the models under
models/):  python3 scripts/gen-tokenizer-fixtures.py

For every string of tests/golden/tokenizer/corpus.txt and each model it
writes one line to tests/golden/tokenizer/<model>.tsv:

    index <TAB> ids (add_special, parse_special off) <TAB> ids (parse_special on)
          <TAB> detokenized first list <TAB> detokenized second list

ids are space-separated; the texts come from llama.cpp's llama_detokenize
(remove_special off; unparse_special off for the first list, on for the
second), written with the corpus escapes below.

The pre-tokenizers the two models do not use are checked through copies of
the smollm vocabulary with tokenizer.ggml.pre changed (PRE_VARIANTS): one
line per string in tests/golden/tokenizer/pre-variants.tsv, the index, the
ids of each variant (add_special on, parse_special off) in that order, then
the detokenized ids of the first variant (whose clean_spaces is on).
The SentencePiece space prefix, off in gemma, is checked through a copy of
the gemma vocabulary with tokenizer.ggml.add_space_prefix = true:
tests/golden/tokenizer/space-prefix.tsv, in the models' format.
The C test builds the same copies with loft's GGUF writer.

Corpus lines are escaped: \\n \\t \\r \\\\ and \\xHH (one raw byte, so invalid
UTF-8 can be written); every other byte stands for itself.
"""
import ctypes
import os
import sys

import tempfile

import gguf
import llama_cpp

MODELS = ["smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m"]
PRE_BASE = "smollm2-135m-instruct-q4_1"
PRE_VARIANTS = ["gpt-2", "llama3", "qwen2", "default"]
SPM_BASE = "gemma-3-270m-q4_k_m"
CORPUS = "tests/golden/tokenizer/corpus.txt"


def unescape(line):
    out = bytearray()
    b = line.encode("utf-8")
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x5C and i + 1 < len(b):
            n = chr(b[i + 1])
            if n == "n":
                out.append(10)
            elif n == "t":
                out.append(9)
            elif n == "r":
                out.append(13)
            elif n == "\\":
                out.append(0x5C)
            elif n == "x":
                out.append(int(b[i + 2:i + 4].decode("ascii"), 16))
                i += 2
            else:
                raise ValueError("bad escape in %r" % line)
            i += 2
            continue
        out.append(c)
        i += 1
    return bytes(out)


def escape(data):
    """Inverse of unescape for output texts: printable ASCII and valid
    non-ASCII UTF-8 as is; controls, backslash and invalid bytes escaped."""
    out = []
    i = 0
    while i < len(data):
        c = data[i]
        if c == 0x5C:
            out.append("\\\\")
        elif c == 10:
            out.append("\\n")
        elif c == 9:
            out.append("\\t")
        elif c == 13:
            out.append("\\r")
        elif c < 0x20 or c == 0x7F:
            out.append("\\x%02x" % c)
        elif c < 0x80:
            out.append(chr(c))
        else:
            n = 2 if 0xC0 <= c < 0xE0 else 3 if 0xE0 <= c < 0xF0 else 4 if 0xF0 <= c < 0xF8 else 0
            try:
                if n == 0:
                    raise UnicodeDecodeError("utf-8", b"", 0, 1, "lead")
                out.append(data[i:i + n].decode("utf-8"))
                i += n
                continue
            except UnicodeDecodeError:
                out.append("\\x%02x" % c)
        i += 1
    return "".join(out)


def detokenize(vocab, ids, special):
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 64 + 64 * len(ids)
    buf = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), buf, size, False, special)
    if n < 0:
        raise RuntimeError("detokenize buffer too small")
    return buf.raw[:n]


def copy_with(src, dst, overrides):
    """A tensor-free GGUF with src's metadata, overrides (key -> str or bool)
    replacing or adding keys."""
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture" or key in overrides:
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, field.contents(), vtype, sub_type=sub)
    for key, val in overrides.items():
        if isinstance(val, bool):
            w.add_bool(key, val)
        else:
            w.add_string(key, val)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def model_rows(llm, texts):
    vocab = llm._model.vocab
    rows = []
    for i, t in enumerate(texts):
        plain = llm.tokenize(t, add_bos=True, special=False)
        spec = llm.tokenize(t, add_bos=True, special=True)
        rows.append("%d\t%s\t%s\t%s\t%s" % (
            i, " ".join(map(str, plain)), " ".join(map(str, spec)),
            escape(detokenize(vocab, plain, False)), escape(detokenize(vocab, spec, True))))
    return rows


def space_prefix_variant(texts):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vocab.gguf")
        copy_with(os.path.join("models", SPM_BASE + ".gguf"), path,
                  {"tokenizer.ggml.add_space_prefix": True})
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        rows = model_rows(llm, texts)
        del llm
    out = "tests/golden/tokenizer/space-prefix.tsv"
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(rows) + "\n")
    print("%s: %d strings" % (out, len(rows)), file=sys.stderr)


def pre_variants(texts):
    cols = []
    detok = []
    with tempfile.TemporaryDirectory() as tmp:
        for pre in PRE_VARIANTS:
            path = os.path.join(tmp, "vocab.gguf")
            copy_with(os.path.join("models", PRE_BASE + ".gguf"), path,
                      {"tokenizer.ggml.pre": pre})
            llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            ids = [llm.tokenize(t, add_bos=True, special=False) for t in texts]
            cols.append([" ".join(map(str, x)) for x in ids])
            if not detok:
                detok = [escape(detokenize(llm._model.vocab, x, False)) for x in ids]
            del llm
    out = "tests/golden/tokenizer/pre-variants.tsv"
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for i in range(len(texts)):
            f.write("%d\t%s\t%s\n" % (i, "\t".join(c[i] for c in cols), detok[i]))
    print("%s: %d strings x %s" % (out, len(texts), PRE_VARIANTS), file=sys.stderr)


def main():
    with open(CORPUS, "rb") as f:
        raw = f.read().decode("utf-8")
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    texts = [unescape(l) for l in lines]
    for name in MODELS:
        path = os.path.join("models", name + ".gguf")
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        vocab = llm._model.vocab
        rows = model_rows(llm, texts)
        out = "tests/golden/tokenizer/%s.tsv" % name
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(rows) + "\n")
        print("%s: %d strings, eot %d, eos %d, bos %d" % (
            out, len(rows), llama_cpp.llama_vocab_eot(vocab), llama_cpp.llama_vocab_eos(vocab),
            llama_cpp.llama_vocab_bos(vocab)), file=sys.stderr)
    pre_variants(texts)
    space_prefix_variant(texts)


if __name__ == "__main__":
    main()
