#!/usr/bin/env python3
"""Writes the inconsistent model files in tests/corrupt/model/ and their
EXPECTED.tsv, plus the libFuzzer seeds tests/fuzz/seed-model/ and
tests/fuzz/seed-adapter/.

Each corrupt file is a well-formed GGUF container (so the reader accepts it)
holding a tiny model, the same shapes as the architectures of
tests/golden/qwen/ but only a few kilobytes, with one fault in its
hyperparameters, tensors or tokenizer tables. EXPECTED.tsv pairs each file
with the stage that must refuse it (model: model_load, vocab: vocab_load on
a model that loaded) and a substring of loft's message;
tests/unit/test_validate.c checks every row.

The byte-level helpers come from make-corrupt.py, so any field can be bent.
Run from the repository root: python3 tests/corrupt/make-corrupt-models.py
"""
import importlib.util
import math
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "model")
SEED_MODEL = os.path.join(HERE, "..", "fuzz", "seed-model")
SEED_ADAPTER = os.path.join(HERE, "..", "fuzz", "seed-adapter")

_spec = importlib.util.spec_from_file_location("mc", os.path.join(HERE, "make-corrupt.py"))
mc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mc)
kv, tinfo, build, pad = mc.kv, mc.tinfo, mc.build, mc.pad
U8, U32, I32, F32, BOOL, STR, ARR = mc.U8, mc.U32, mc.I32, mc.F32, mc.BOOL, mc.STR, mc.ARR
T_F32, T_Q8_0, T_F16 = mc.T_F32, mc.T_Q8_0, mc.T_F16

ALIGN = 32


def floats(n, seed):
    """n small deterministic float32 values (not all equal, none zero)."""
    vals = [((i * 37 + seed * 11) % 17 - 8.5) / 32.0 for i in range(n)]
    return struct.pack("<%df" % n, *vals)


def ones(n):
    return struct.pack("<%df" % n, *([1.0] * n))


class Tensor:
    def __init__(self, name, ne, ttype=T_F32, data=None):
        self.name, self.ne, self.ttype = name, list(ne), ttype
        n = 1
        for d in ne:
            n *= d
        if data is None:
            data = floats(n, len(name)) if ttype == T_F32 else b"\0" * (n // 32 * 34)
        self.data = data


def assemble(kvs, tensors):
    infos, blob = [], b""
    for t in tensors:
        infos.append(tinfo(t.name, t.ne, t.ttype, len(blob)))
        blob = pad(blob + t.data, ALIGN)
    return build(kvs, infos, blob, align=ALIGN)


# ---- tokenizers ---------------------------------------------------------------

BPE_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c", "d", "\u0120",
              "ab", "cd", "abcd", "\u0120a", "e", "f", "\u010a", "h"]
BPE_TYPES = [3, 3, 3] + [1] * 13
BPE_MERGES = ["a b", "c d", "ab cd", "\u0120 a"]

SPM_TOKENS = ["<unk>", "<s>", "</s>", "\u2581", "a", "b", "\u2581a", "ab",
              "<0x41>", "<0x0A>", "c", "d", "\u2581ab", "cd", "e", "f"]
SPM_TYPES = [2, 3, 3, 1, 1, 1, 1, 1, 6, 6, 1, 1, 1, 1, 1, 1]
SPM_SCORES = [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -1.5, -2.5, 0.0, 0.0, -4.0, -4.5, -1.2, -3.5,
              -5.0, -6.0]


def bpe_kvs(tokens=None, types=None, merges=None, extra=()):
    tokens = BPE_TOKENS if tokens is None else tokens
    types = BPE_TYPES if types is None else types
    merges = BPE_MERGES if merges is None else merges
    out = [kv("tokenizer.ggml.model", STR, "gpt2"), kv("tokenizer.ggml.pre", STR, "smollm"),
           kv("tokenizer.ggml.tokens", ARR, (STR, tokens)),
           kv("tokenizer.ggml.token_type", ARR, (I32, types)),
           kv("tokenizer.ggml.merges", ARR, (STR, merges)),
           kv("tokenizer.ggml.bos_token_id", U32, 0), kv("tokenizer.ggml.eos_token_id", U32, 2),
           kv("tokenizer.chat_template", STR, "{% for m in messages %}<|im_start|>{% endfor %}")]
    return out + list(extra)


def spm_kvs(scores=None, extra=()):
    scores = SPM_SCORES if scores is None else scores
    out = [kv("tokenizer.ggml.model", STR, "llama"),
           kv("tokenizer.ggml.tokens", ARR, (STR, SPM_TOKENS)),
           kv("tokenizer.ggml.scores", ARR, (F32, scores)),
           kv("tokenizer.ggml.token_type", ARR, (I32, SPM_TYPES)),
           kv("tokenizer.ggml.bos_token_id", U32, 1), kv("tokenizer.ggml.eos_token_id", U32, 2),
           kv("tokenizer.ggml.add_bos_token", BOOL, 1)]
    return out + list(extra)


# ---- the tiny models -----------------------------------------------------------

def hparams(arch):
    hp = dict(n_layer=2, C=8, H=2, HKV=1, HD=4, F=16, V=16, ctx=64, eps=1e-5)
    if arch in ("qwen3", "gemma3"):
        hp["HD"] = 8
    return hp


def arch_kvs(arch, hp, drop=(), over=None):
    a = arch
    kvs = {
        "general.architecture": (STR, arch),
        a + ".block_count": (U32, hp["n_layer"]),
        a + ".context_length": (U32, hp["ctx"]),
        a + ".embedding_length": (U32, hp["C"]),
        a + ".feed_forward_length": (U32, hp["F"]),
        a + ".attention.head_count": (U32, hp["H"]),
        a + ".attention.head_count_kv": (U32, hp["HKV"]),
        a + ".attention.layer_norm_rms_epsilon": (F32, hp["eps"]),
        a + ".attention.key_length": (U32, hp["HD"]),
        a + ".attention.value_length": (U32, hp["HD"]),
        a + ".rope.dimension_count": (U32, hp["HD"]),
        a + ".rope.freq_base": (F32, 10000.0),
    }
    if arch == "gemma3":
        kvs[a + ".attention.sliding_window"] = (U32, 4)
        kvs[a + ".attention.sliding_window_pattern"] = (ARR, (BOOL, [1, 0][:hp["n_layer"]]
                                                             + [1] * max(0, hp["n_layer"] - 2)))
        kvs[a + ".rope.freq_base_swa"] = (F32, 10000.0)
    for k in drop:
        kvs.pop(k.replace("ARCH", a))
    for k, v in (over or {}).items():
        kvs[k.replace("ARCH", a)] = v
    return [kv(k, t, v) for k, (t, v) in kvs.items()]


def arch_tensors(arch, hp):
    C, H, HKV, HD, F, V = hp["C"], hp["H"], hp["HKV"], hp["HD"], hp["F"], hp["V"]
    qd, kd = H * HD, HKV * HD
    ts = [Tensor("token_embd.weight", [C, V]), Tensor("output_norm.weight", [C], data=ones(C))]
    for il in range(hp["n_layer"]):
        p = "blk.%d." % il
        ts += [Tensor(p + "attn_norm.weight", [C], data=ones(C)),
               Tensor(p + "attn_q.weight", [C, qd]), Tensor(p + "attn_k.weight", [C, kd]),
               Tensor(p + "attn_v.weight", [C, kd]), Tensor(p + "attn_output.weight", [qd, C]),
               Tensor(p + "ffn_norm.weight", [C], data=ones(C)),
               Tensor(p + "ffn_gate.weight", [C, F]), Tensor(p + "ffn_up.weight", [C, F]),
               Tensor(p + "ffn_down.weight", [F, C])]
        if arch == "qwen2":
            ts += [Tensor(p + "attn_q.bias", [qd]), Tensor(p + "attn_k.bias", [kd]),
                   Tensor(p + "attn_v.bias", [kd])]
        if arch in ("qwen3", "gemma3"):
            ts += [Tensor(p + "attn_q_norm.weight", [HD], data=ones(HD)),
                   Tensor(p + "attn_k_norm.weight", [HD], data=ones(HD))]
        if arch == "gemma3":
            ts += [Tensor(p + "post_attention_norm.weight", [C], data=ones(C)),
                   Tensor(p + "post_ffw_norm.weight", [C], data=ones(C))]
    return ts


def model(arch="llama", drop=(), over=None, edit=None, tok="bpe", tok_kvs=None, hp_over=None):
    """A tiny model; edit(list of Tensor) may change the tensors in place."""
    hp = hparams(arch)
    hp.update(hp_over or {})
    kvs = arch_kvs(arch, hp, drop, over)
    if tok_kvs is not None:
        kvs += tok_kvs
    elif tok == "bpe":
        kvs += bpe_kvs()
    elif tok == "spm":
        kvs += spm_kvs()
    ts = arch_tensors(arch, hp)
    if edit:
        edit(ts)
    return assemble(kvs, ts)


def replace(name, **kw):
    def f(ts):
        for i, t in enumerate(ts):
            if t.name == name:
                ne = kw.get("ne", t.ne)
                ttype = kw.get("ttype", t.ttype)
                ts[i] = Tensor(name, ne, ttype, kw.get("data"))
                return
        raise KeyError(name)
    return f


def add(*tensors):
    def f(ts):
        ts.extend(tensors)
    return f


def remove(name):
    def f(ts):
        ts[:] = [t for t in ts if t.name != name]
    return f


# ---- the cases -------------------------------------------------------------------

def model_cases():
    nan = float("nan")
    yield "no-architecture.gguf", model(drop=["general.architecture"]), \
        "key general.architecture is missing"
    yield "unknown-architecture.gguf", model(over={"general.architecture": (STR, "mamba")}), \
        "architecture \"mamba\" is not supported"
    yield "no-block-count.gguf", model(drop=["ARCH.block_count"]), \
        "required key llama.block_count is missing"
    yield "block-count-string.gguf", model(over={"ARCH.block_count": (STR, "2")}), \
        "key llama.block_count is not a 32-bit integer"
    yield "block-count-0.gguf", model(over={"ARCH.block_count": (U32, 0)}), \
        "llama.block_count is 0, expected a value in [1, 4096]"
    yield "block-count-too-big.gguf", model(over={"ARCH.block_count": (U32, 3)}), \
        "tensor blk.2.attn_norm.weight is missing"
    yield "layer-past-block-count.gguf", \
        model(edit=add(Tensor("blk.2.attn_norm.weight", [8], data=ones(8)))), \
        "tensor blk.2.attn_norm.weight: layer 2 is past llama.block_count 2"
    yield "layer-not-a-number.gguf", \
        model(edit=add(Tensor("blk.x.attn_norm.weight", [8], data=ones(8)))), \
        "tensor blk.x.attn_norm.weight: layer number is not a decimal integer"
    yield "unknown-tensor.gguf", model(edit=add(Tensor("blk.0.attn_mystery.weight", [8]))), \
        "tensor blk.0.attn_mystery.weight is not part of the llama architecture"
    yield "unknown-global-tensor.gguf", model(edit=add(Tensor("mystery.weight", [8]))), \
        "tensor mystery.weight is not part of the llama architecture"
    yield "gemma-tensor-in-llama.gguf", \
        model(edit=add(Tensor("blk.0.post_ffw_norm.weight", [8], data=ones(8)))), \
        "tensor blk.0.post_ffw_norm.weight is not part of the llama architecture"
    yield "embd-not-multiple-of-heads.gguf", \
        model(drop=["ARCH.attention.key_length", "ARCH.attention.value_length",
                    "ARCH.rope.dimension_count"], over={"ARCH.attention.head_count": (U32, 3),
                                                        "ARCH.attention.head_count_kv": (U32, 1)}), \
        "llama.embedding_length 8 is not a multiple of llama.attention.head_count 3"
    yield "head-count-kv-above-heads.gguf", model(over={"ARCH.attention.head_count_kv": (U32, 3)}), \
        "llama.attention.head_count_kv is 3, expected a value in [1, 2]"
    yield "gqa-not-divisible.gguf", \
        model(over={"ARCH.attention.head_count": (U32, 3), "ARCH.attention.head_count_kv": (U32, 2)}), \
        "head_count 3 is not a multiple of head_count_kv 2"
    yield "head-count-0.gguf", model(over={"ARCH.attention.head_count": (U32, 0)}), \
        "llama.attention.head_count is 0"
    yield "key-length-1.gguf", model(over={"ARCH.attention.key_length": (U32, 1)}), \
        "llama.attention.key_length is 1"
    yield "q-shape-vs-heads.gguf", model(over={"ARCH.attention.head_count": (U32, 1),
                                                "ARCH.attention.head_count_kv": (U32, 1)}), \
        "tensor blk.0.attn_q.weight has shape [8, 8, 1, 1], expected [8, 4]"
    yield "rope-dims-odd.gguf", model(over={"ARCH.rope.dimension_count": (U32, 3)}), \
        "llama.rope.dimension_count 3 must be even"
    yield "rope-dims-past-head.gguf", model(over={"ARCH.rope.dimension_count": (U32, 6)}), \
        "llama.rope.dimension_count 6 must be even and in [2, head_dim 4]"
    yield "rope-base-negative.gguf", model(over={"ARCH.rope.freq_base": (F32, -1.0)}), \
        "llama.rope.freq_base must be positive"
    yield "rope-base-nan.gguf", model(over={"ARCH.rope.freq_base": (F32, nan)}), \
        "key llama.rope.freq_base is not a finite number"
    yield "rope-scaling-yarn.gguf", model(over={"ARCH.rope.scaling.type": (STR, "yarn"),
                                                "ARCH.rope.scaling.factor": (F32, 4.0)}), \
        "llama.rope.scaling.type is \"yarn\""
    yield "rope-scale-factor-tiny.gguf", model(over={"ARCH.rope.scaling.type": (STR, "linear"),
                                                      "ARCH.rope.scaling.factor": (F32, 1e-45)}), \
        "llama rope scaling gives a frequency scale of inf"
    yield "rope-freqs-zero.gguf", \
        model(edit=add(Tensor("rope_freqs.weight", [2], data=struct.pack("<2f", 1.0, 0.0)))), \
        "tensor rope_freqs.weight: element 1 is 0, expected a finite value > 0"
    yield "rope-freqs-wrong-length.gguf", model(edit=add(Tensor("rope_freqs.weight", [4]))), \
        "tensor rope_freqs.weight has shape [4, 1, 1, 1], expected [2]"
    yield "eps-negative.gguf", model(over={"ARCH.attention.layer_norm_rms_epsilon": (F32, -1e-5)}), \
        "llama.attention.layer_norm_rms_epsilon is negative"
    yield "eps-zero.gguf", model(over={"ARCH.attention.layer_norm_rms_epsilon": (F32, 0.0)}), \
        "llama.attention.layer_norm_rms_epsilon is 0, expected a value in (0, 0.1]"
    yield "eps-huge.gguf", model(over={"ARCH.attention.layer_norm_rms_epsilon": (F32, 10.0)}), \
        "llama.attention.layer_norm_rms_epsilon is 10, expected a value in (0, 0.1]"
    yield "no-eps.gguf", model(drop=["ARCH.attention.layer_norm_rms_epsilon"]), \
        "required key llama.attention.layer_norm_rms_epsilon is missing"
    yield "context-length-0.gguf", model(over={"ARCH.context_length": (U32, 0)}), \
        "llama.context_length is 0, expected a value in [1, 16777216]"
    yield "context-length-huge.gguf", model(over={"ARCH.context_length": (U32, 1 << 30)}), \
        "llama.context_length is 1073741824, expected a value in [1, 16777216]"
    yield "softcap-negative.gguf", model(over={"ARCH.final_logit_softcapping": (F32, -30.0)}), \
        "a logit softcapping value is negative"
    yield "vocab-size-mismatch.gguf", model(over={"ARCH.vocab_size": (U32, 17)}), \
        "llama.vocab_size 17 differs from token_embd rows 16"
    yield "no-token-embd.gguf", model(edit=remove("token_embd.weight")), \
        "tensor token_embd.weight is missing"
    yield "token-embd-width.gguf", model(edit=replace("token_embd.weight", ne=[7, 16])), \
        "tensor token_embd.weight has shape [7, 16, 1, 1], expected [8, 16]"
    yield "token-embd-3d.gguf", model(edit=replace("token_embd.weight", ne=[8, 8, 2])), \
        "tensor token_embd.weight has shape [8, 8, 2, 1], expected [8, 8]"
    yield "output-rows.gguf", model(edit=add(Tensor("output.weight", [8, 15]))), \
        "tensor output.weight has shape [8, 15, 1, 1], expected [8, 16]"
    yield "norm-quantized.gguf", \
        model(edit=replace("blk.1.ffn_norm.weight", ttype=T_F16, data=b"\0" * 16)), \
        "tensor blk.1.ffn_norm.weight has type F16, expected F32"
    yield "norm-2d.gguf", model(edit=replace("output_norm.weight", ne=[8, 2])), \
        "tensor output_norm.weight has shape [8, 2, 1, 1], expected [8]"
    yield "ffn-down-transposed.gguf", model(edit=replace("blk.0.ffn_down.weight", ne=[8, 16])), \
        "tensor blk.0.ffn_down.weight has shape [8, 16, 1, 1], expected [16, 8]"
    yield "ffn-gate-missing.gguf", model(edit=remove("blk.1.ffn_gate.weight")), \
        "tensor blk.1.ffn_gate.weight is missing"
    yield "qwen2-bias-shape.gguf", \
        model("qwen2", edit=replace("blk.0.attn_k.bias", ne=[8])), \
        "tensor blk.0.attn_k.bias has shape [8, 1, 1, 1], expected [4]"
    yield "qwen3-no-q-norm.gguf", model("qwen3", edit=remove("blk.1.attn_q_norm.weight")), \
        "tensor blk.1.attn_q_norm.weight is missing"
    yield "gemma3-bias.gguf", model("gemma3", edit=add(Tensor("blk.0.attn_q.bias", [16]))), \
        "tensor blk.0.attn_q.bias is not part of the gemma3 architecture"
    yield "gemma3-rope-freqs.gguf", model("gemma3", edit=add(Tensor("rope_freqs.weight", [4]))), \
        "tensor rope_freqs.weight is not part of the gemma3 architecture"
    yield "gemma3-no-post-norm.gguf", model("gemma3", edit=remove("blk.0.post_ffw_norm.weight")), \
        "tensor blk.0.post_ffw_norm.weight is missing"
    yield "gemma3-swa-pattern-length.gguf", \
        model("gemma3", over={"ARCH.attention.sliding_window_pattern": (ARR, (BOOL, [1, 0, 1]))}), \
        "gemma3.attention.sliding_window_pattern has 3 entries, expected 2"
    yield "gemma3-swa-pattern-type.gguf", \
        model("gemma3", over={"ARCH.attention.sliding_window_pattern": (ARR, (STR, ["a", "b"]))}), \
        "gemma3.attention.sliding_window_pattern is an array of string"


def vocab_cases():
    bad_scores = list(SPM_SCORES)
    bad_scores[5] = float("nan")
    inf_scores = list(SPM_SCORES)
    inf_scores[3] = float("inf")
    toks17 = BPE_TOKENS + ["zz"]
    yield "tok-no-model.gguf", model(tok_kvs=bpe_kvs()[1:]), "tokenizer.ggml.model: missing"
    yield "tok-unknown-model.gguf", \
        model(tok_kvs=[kv("tokenizer.ggml.model", STR, "rwkv")] + bpe_kvs()[1:]), \
        "tokenizer model 'rwkv' is not supported"
    yield "tok-unknown-pre.gguf", \
        model(tok_kvs=bpe_kvs()[:1] + [kv("tokenizer.ggml.pre", STR, "nope")] + bpe_kvs()[2:]), \
        "pre-tokenizer 'nope' is not supported"
    yield "tok-no-tokens.gguf", model(tok_kvs=bpe_kvs()[:2] + bpe_kvs()[3:5]), \
        "tokenizer.ggml.tokens: missing or not an array of strings"
    yield "tok-more-than-embd.gguf", model(tok_kvs=bpe_kvs(tokens=toks17, types=BPE_TYPES + [1])), \
        "tokenizer.ggml.tokens: 17 tokens, but token_embd.weight has 16 rows"
    yield "tok-types-count.gguf", model(tok_kvs=bpe_kvs(types=BPE_TYPES[:-1])), \
        "tokenizer.ggml.token_type: expected 16 int32 values"
    yield "tok-type-unknown.gguf", model(tok_kvs=bpe_kvs(types=BPE_TYPES[:-1] + [9])), \
        "tokenizer.ggml.token_type[15]: unknown token type 9"
    yield "tok-duplicate.gguf", model(tok_kvs=bpe_kvs(tokens=BPE_TOKENS[:-1] + ["a"])), \
        "tokenizer.ggml.tokens[15]: duplicate token text 'a'"
    yield "tok-bad-utf8.gguf", model(tok_kvs=bpe_kvs(tokens=BPE_TOKENS[:-1] + [b"\xff\xfe"])), \
        "tokenizer.ggml.tokens[15]: token text is not valid UTF-8"
    yield "tok-nul-byte.gguf", model(tok_kvs=bpe_kvs(tokens=BPE_TOKENS[:-1] + [b"a\0b"])), \
        "tokenizer.ggml.tokens[15]: token text is not valid UTF-8 without NUL bytes"
    yield "tok-merge-missing-token.gguf", model(tok_kvs=bpe_kvs(merges=BPE_MERGES + ["a zz"])), \
        "tokenizer.ggml.merges[4]: 'a zz' names a missing token"
    yield "tok-merge-no-space.gguf", model(tok_kvs=bpe_kvs(merges=["ab"] + BPE_MERGES)), \
        "tokenizer.ggml.merges[0]: expected two token texts separated by a space"
    yield "tok-no-merges.gguf", model(tok_kvs=bpe_kvs()[:4] + bpe_kvs()[5:]), \
        "tokenizer.ggml.merges: missing or not an array of strings"
    yield "tok-bos-out-of-range.gguf", \
        model(tok_kvs=bpe_kvs()[:5] + [kv("tokenizer.ggml.bos_token_id", U32, 16)]
              + bpe_kvs()[6:]), \
        "tokenizer.ggml.bos_token_id: token id 16 out of range [0, 16)"
    yield "tok-eot-negative.gguf", \
        model(tok_kvs=bpe_kvs(extra=[kv("tokenizer.ggml.eot_token_id", mc.I32, -5)])), \
        "tokenizer.ggml.eot_token_id: token id -5 out of range [0, 16)"
    yield "tok-pad-not-int.gguf", \
        model(tok_kvs=bpe_kvs(extra=[kv("tokenizer.ggml.padding_token_id", STR, "0")])), \
        "tokenizer.ggml.padding_token_id: expected an integer token id, got string"
    yield "tok-add-bos-no-bos.gguf", \
        model(tok_kvs=bpe_kvs(tokens=BPE_TOKENS[:10], types=BPE_TYPES[:10])[:5]
              + bpe_kvs()[6:] + [kv("tokenizer.ggml.add_bos_token", BOOL, 1)]), \
        "tokenizer.ggml.add_bos_token is set but the vocabulary has no BOS token"
    yield "spm-score-nan.gguf", model(tok="spm", tok_kvs=spm_kvs(scores=bad_scores)), \
        "tokenizer.ggml.scores[5]: score is not a finite number"
    yield "spm-score-inf.gguf", model(tok="spm", tok_kvs=spm_kvs(scores=inf_scores)), \
        "tokenizer.ggml.scores[3]: score is not a finite number"
    yield "spm-scores-count.gguf", model(tok="spm", tok_kvs=spm_kvs(scores=SPM_SCORES[:4])), \
        "tokenizer.ggml.scores: expected 16 float32 or int32 values"
    yield "spm-bad-byte-token.gguf", \
        model(tok_kvs=[kv("tokenizer.ggml.model", STR, "llama"),
                       kv("tokenizer.ggml.tokens", ARR, (STR, SPM_TOKENS[:8] + ["<0xZZ>"]
                                                         + SPM_TOKENS[9:])),
                       kv("tokenizer.ggml.token_type", ARR, (I32, SPM_TYPES))]), \
        "tokenizer.ggml.tokens[8]: byte token text '<0xZZ>' is not of the form <0xHH>"


# ---- seeds ---------------------------------------------------------------------

def model_seeds():
    yield "llama-bpe.gguf", model("llama")
    yield "llama-spm-tied.gguf", model("llama", tok="spm")
    yield "llama-rope-freqs-output.gguf", \
        model("llama", tok=None, edit=add(Tensor("rope_freqs.weight", [2], data=ones(2)),
                                          Tensor("output.weight", [8, 16])))
    yield "qwen2.gguf", model("qwen2")
    yield "qwen3.gguf", model("qwen3", tok="spm")
    yield "gemma3.gguf", model("gemma3", tok="spm",
                               over={"ARCH.final_logit_softcapping": (F32, 30.0),
                                     "ARCH.attn_logit_softcapping": (F32, 50.0)})


def adapter(pairs, alpha=4.0, arch="llama", extra=()):
    kvs = [kv("general.type", STR, "adapter"), kv("general.architecture", STR, arch),
           kv("adapter.type", STR, "lora"), kv("adapter.lora.alpha", F32, alpha)] + list(extra)
    ts = []
    for name, n_in, n_out, r in pairs:
        ts += [Tensor(name + ".lora_a", [n_in, r]), Tensor(name + ".lora_b", [r, n_out])]
    return assemble(kvs, ts)


def adapter_seeds():
    # Shapes of the llama seed model (C 8, q 8, k/v 4, ff 16, vocab 16).
    # loft's loader wants each adapted kind in every layer.
    yield "q-v-r2.gguf", adapter([("blk.%d.%s.weight" % (il, k), 8, o, 2) for il in range(2)
                                  for k, o in (("attn_q", 8), ("attn_v", 4))])
    yield "all-r1.gguf", adapter(
        [("blk.%d.%s.weight" % (il, k), i, o, 1) for il in range(2)
         for k, i, o in (("attn_q", 8, 8), ("attn_k", 8, 4), ("attn_v", 8, 4), ("attn_output", 8, 8),
                         ("ffn_gate", 8, 16), ("ffn_up", 8, 16), ("ffn_down", 16, 8))]
        + [("output.weight", 8, 16, 1)], alpha=1.0)


def write_dir(path, items):
    os.makedirs(path, exist_ok=True)
    for name, blob in items:
        with open(os.path.join(path, name), "wb") as f:
            f.write(blob)


def main():
    rows = []
    names = set()
    for stage, gen in (("model", model_cases), ("vocab", vocab_cases)):
        for name, blob, expect in gen():
            assert name not in names, name
            names.add(name)
            assert len(blob) < 16384, name
            assert "\t" not in expect and "\n" not in expect
            rows.append((name, blob, f"{name}\t{stage}\t{expect}\n"))
    os.makedirs(OUT_DIR, exist_ok=True)
    for old in os.listdir(OUT_DIR):
        if old.endswith(".gguf"):
            os.remove(os.path.join(OUT_DIR, old))
    write_dir(OUT_DIR, [(n, b) for n, b, _ in rows])
    with open(os.path.join(OUT_DIR, "EXPECTED.tsv"), "w") as f:
        f.write("# file\tstage (model: model_load, vocab: vocab_load)\tsubstring of loft's "
                "message (written by make-corrupt-models.py)\n")
        f.writelines(r for _, _, r in rows)
    write_dir(SEED_MODEL, model_seeds())
    write_dir(SEED_ADAPTER, adapter_seeds())
    assert not math.isnan(SPM_SCORES[0])
    print(f"wrote {len(rows)} corrupt models and the model/adapter seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
