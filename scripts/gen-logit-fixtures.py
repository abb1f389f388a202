#!/usr/bin/env python3
"""Reference logits and greedy continuations for tests/unit/test_model_logits.c.

For every prompt and each real model (models/*.gguf, fetched by
scripts/get-models) this writes, into tests/golden/logits/<model>.txt:

  * the prompt's token ids, from llama.cpp's own tokenizer (so the C test
    does not need loft's tokenizer);
  * llama.cpp's logits at the last prompt position: the top 64 ids with
    their values, and summary stats (max, mean, std) over the whole vector;
  * a float64 reference of the same logits at those 64 ids, computed here
    with numpy from the GGUF weights dequantized by the `gguf` package. It
    shows how far each engine is from the exact maths: llama.cpp quantizes
    activations to 8 bits inside its matmuls, loft does not;
  * llama.cpp's greedy 64-token continuation (argmax at each step, n_ctx
    512, logits_all) and, per step, the margin between its best and second
    best logit (a small margin means a near-tie);
  * the float64 reference's own greedy 64-token continuation and margins.

Needs llama-cpp-python, gguf and numpy. Run from the repository root:
    python3 scripts/gen-logit-fixtures.py
"""
import os
import sys

import numpy as np

import gguf
from gguf.quants import dequantize
import llama_cpp

N_CTX = 512
N_GEN = 64
N_TOP = 64

COMMON_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
    "Question: What is 17 times 23?\nAnswer:",
    "The three primary colors are",
    "import numpy as np\n\n# compute the mean of an array\n",
    "Water boils at a temperature of",
    "List of planets in the solar system:\n1. Mercury\n2.",
    "Die Hauptstadt von Deutschland ist",
    "The history of computing is a story of ideas and machines. Charles Babbage "
    "designed the Analytical Engine in the 1830s, and Ada Lovelace wrote what many "
    "call the first program for it. A century later, Alan Turing described a "
    "universal machine, and during the war engineers built Colossus and ENIAC. "
    "After the invention of the transistor,",
]

MODELS = [
    ("smollm2-135m-instruct-q4_1.gguf", "smollm2",
     "<|im_start|>user\nWrite a haiku about autumn.<|im_end|>\n<|im_start|>assistant\n"),
    ("gemma-3-270m-q4_k_m.gguf", "gemma3",
     "<start_of_turn>user\nWrite a haiku about autumn.<end_of_turn>\n<start_of_turn>model\n"),
]


class Float64Reference:
    """A float64 forward of the llama and gemma3 graphs (no cache; whole
    sequence at once), from the dequantized GGUF tensors."""

    def __init__(self, path):
        self.r = gguf.GGUFReader(path)
        self.t = {t.name: t for t in self.r.tensors}
        self.cache = {}
        f = self.field
        self.arch = f("general.architecture")
        a = self.arch
        self.n_layer = f(a + ".block_count")
        self.n_embd = f(a + ".embedding_length")
        self.n_head = f(a + ".attention.head_count")
        self.n_head_kv = f(a + ".attention.head_count_kv")
        self.eps = f(a + ".attention.layer_norm_rms_epsilon")
        self.base = f(a + ".rope.freq_base")
        key_len = a + ".attention.key_length"
        self.hd = f(key_len) if key_len in self.r.fields else self.n_embd // self.n_head
        self.gemma = self.arch == "gemma3"

    def field(self, key):
        return self.r.fields[key].contents()

    def w(self, name):
        if name not in self.cache:
            t = self.t[name]
            a = dequantize(t.data, t.tensor_type).astype(np.float64)
            self.cache[name] = a.reshape([int(x) for x in reversed(t.shape)])
        return self.cache[name]

    def rms(self, v, wt):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + self.eps) * wt

    def rope(self, v, base, pos):
        hd = self.hd
        inv = base ** (-np.arange(0, hd, 2) / hd)
        ang = pos[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        out = np.empty_like(v)
        if self.gemma:  # NEOX pairs (i, i + hd/2)
            x0, x1 = v[..., : hd // 2], v[..., hd // 2:]
            out[..., : hd // 2], out[..., hd // 2:] = x0 * c - x1 * s, x0 * s + x1 * c
        else:  # NORM pairs (2i, 2i + 1)
            x0, x1 = v[..., 0::2], v[..., 1::2]
            out[..., 0::2], out[..., 1::2] = x0 * c - x1 * s, x0 * s + x1 * c
        return out

    def reset(self):
        self.keys = [None] * self.n_layer
        self.values = [None] * self.n_layer
        self.n_past = 0

    def forward(self, toks):
        """Appends toks after the cached positions; returns the last logits."""
        n, H, HK, hd = len(toks), self.n_head, self.n_head_kv, self.hd
        p0 = self.n_past
        assert p0 + n <= 512, "sliding windows are not modelled"
        pos = np.arange(p0, p0 + n)
        emb = self.w("token_embd.weight")
        x = emb[toks].copy()
        if self.gemma:
            x *= np.sqrt(np.float32(self.n_embd))
        # query i (position p0 + i) sees keys 0 .. p0 + i
        mask = np.arange(p0 + n)[None, :] > pos[:, None]
        for il in range(self.n_layer):
            p = "blk.%d." % il
            h = self.rms(x, self.w(p + "attn_norm.weight"))
            q = (h @ self.w(p + "attn_q.weight").T).reshape(n, H, hd)
            k = (h @ self.w(p + "attn_k.weight").T).reshape(n, HK, hd)
            v = (h @ self.w(p + "attn_v.weight").T).reshape(n, HK, hd)
            base = self.base
            if self.gemma:
                q = self.rms(q, self.w(p + "attn_q_norm.weight"))
                k = self.rms(k, self.w(p + "attn_k_norm.weight"))
                if il % 6 < 5:
                    base = 10000.0
            q, k = self.rope(q, base, pos), self.rope(k, base, pos)
            if self.keys[il] is not None:
                k = np.concatenate([self.keys[il], k])
                v = np.concatenate([self.values[il], v])
            self.keys[il], self.values[il] = k, v
            att = np.zeros((n, H, hd))
            for hh in range(H):
                kh = hh // (H // HK)
                s = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(hd)
                s[mask] = -np.inf
                s = np.exp(s - s.max(-1, keepdims=True))
                s /= s.sum(-1, keepdims=True)
                att[:, hh, :] = s @ v[:, kh, :]
            o = att.reshape(n, H * hd) @ self.w(p + "attn_output.weight").T
            if self.gemma:
                o = self.rms(o, self.w(p + "post_attention_norm.weight"))
            x = x + o
            h = self.rms(x, self.w(p + "ffn_norm.weight"))
            g = h @ self.w(p + "ffn_gate.weight").T
            u = h @ self.w(p + "ffn_up.weight").T
            if self.gemma:
                a = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g ** 3))) * u
            else:
                a = g / (1 + np.exp(-g)) * u
            o = a @ self.w(p + "ffn_down.weight").T
            if self.gemma:
                o = self.rms(o, self.w(p + "post_ffw_norm.weight"))
            x = x + o
        self.n_past += n
        x = self.rms(x[-1:], self.w("output_norm.weight"))
        out = self.w("output.weight") if "output.weight" in self.t else emb
        return (x @ out.T)[0]


def greedy(first_logits, step, n):
    """n greedy tokens from first_logits, calling step(token) for the next
    logits; also each step's best-minus-second margin."""
    toks, margins, logits = [], [], first_logits
    for _ in range(n):
        order = np.argsort(-logits, kind="stable")
        toks.append(int(order[0]))
        margins.append(float(logits[order[0]] - logits[order[1]]))
        logits = step(toks[-1])
    return toks, margins


def fmt(v):
    return "%.6f" % v


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = os.path.join(root, "tests", "golden", "logits")
    os.makedirs(out_dir, exist_ok=True)
    for file_name, short, chat_prompt in MODELS:
        path = os.path.join(root, "models", file_name)
        llm = llama_cpp.Llama(model_path=path, n_ctx=N_CTX, logits_all=True, verbose=False,
                              n_threads=2, seed=0)
        ref = Float64Reference(path)
        add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
        lines = [
            "# made by scripts/gen-logit-fixtures.py with llama-cpp-python %s" % llama_cpp.__version__,
            "model %s" % file_name,
            "n_vocab %d" % llm.n_vocab(),
            "n_top %d" % N_TOP,
            "n_gen %d" % N_GEN,
        ]
        prompts = COMMON_PROMPTS + [chat_prompt]
        for i, text in enumerate(prompts):
            toks = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
            llm.reset()
            llm.eval(toks)
            last = np.array(llm.scores[len(toks) - 1], dtype=np.float64)
            top = np.argsort(-last, kind="stable")[:N_TOP]

            def llama_step(tok):
                llm.eval([tok])
                return np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)

            gen, margins = greedy(last, llama_step, N_GEN)
            ref.reset()
            exact = ref.forward(toks)
            gen_exact, margins_exact = greedy(exact, lambda t: ref.forward([t]), N_GEN)
            lines.append("prompt %d" % i)
            lines.append("text " + text.encode("unicode_escape").decode("ascii"))
            lines.append("tokens %d %s" % (len(toks), " ".join(map(str, toks))))
            lines.append("stats %s %s %s" % (fmt(last.max()), fmt(last.mean()), fmt(last.std())))
            lines.append("top_ids " + " ".join(str(int(t)) for t in top))
            lines.append("top_llama " + " ".join(fmt(last[t]) for t in top))
            lines.append("top_exact " + " ".join(fmt(exact[t]) for t in top))
            lines.append("greedy " + " ".join(map(str, gen)))
            lines.append("margins " + " ".join(fmt(m) for m in margins))
            lines.append("greedy_exact " + " ".join(map(str, gen_exact)))
            lines.append("margins_exact " + " ".join(fmt(m) for m in margins_exact))
            d = np.abs(last[top] - exact[top]).max()
            same = next((j for j in range(N_GEN) if gen[j] != gen_exact[j]), N_GEN)
            print("%s prompt %d: %d tokens, llama.cpp vs float64 max abs diff on top-%d %.4f, "
                  "min greedy margin %.4f, greedy llama.cpp == float64 for %d steps"
                  % (short, i, len(toks), N_TOP, d, min(margins), same))
        lines.append("end")
        with open(os.path.join(out_dir, short + ".txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
