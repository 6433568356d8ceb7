#!/usr/bin/env python3
"""Reference token ids of the real tokenizers (Qwen3, Llama-3, Llama-2) for every line of
tests/fixtures/tokenizer/sentences.jsonl. Runs where the HF `tokenizers` package is installed
(the lent GPU machine); needs no GPU.

Inputs : .devdata/tokenizers/{qwen3,llama3,llama2}/tokenizer.json
         (written here by `node scripts/export_npm_tokenizers.js .devdata/tokenizers`)
Outputs: tests/fixtures/tokenizer/ref_<name>.jsonl, line i = {"ids": [...], "decoded": "..."}
         for line i of sentences.jsonl: ids = Tokenizer.encode(text, add_special_tokens=False).ids,
         decoded = Tokenizer.decode(ids, skip_special_tokens=False).
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizers", default=os.path.join(ROOT, ".devdata/tokenizers"))
    ap.add_argument("--sentences", default=os.path.join(ROOT, "tests/fixtures/tokenizer/sentences.jsonl"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/tokenizer"))
    a = ap.parse_args()

    import tokenizers
    from tokenizers import Tokenizer

    with open(a.sentences, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    failed = False
    for name in ["qwen3", "llama3", "llama2"]:
        path = os.path.join(a.tokenizers, name, "tokenizer.json")
        if not os.path.isfile(path):
            print(f"MISSING {path}", file=sys.stderr)
            failed = True
            continue
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        if isinstance(j.get("default"), dict) and "model" in j["default"]:
            # export_npm_tokenizers.js writes the ES-module namespace object: the tokenizer.json keys plus a
            # duplicate of all of them under "default", which `tokenizers` rejects. Use the real object.
            print(f"{name}: dropping the stray top-level 'default' key of {os.path.relpath(path, ROOT)}")
            j = j["default"]
        tok = Tokenizer.from_str(json.dumps(j))
        out = os.path.join(a.out, f"ref_{name}.jsonl")
        n_tok = 0
        n_roundtrip = 0
        with open(out, "w", encoding="utf-8", newline="\n") as f:
            for t in texts:
                ids = tok.encode(t, add_special_tokens=False).ids
                dec = tok.decode(ids, skip_special_tokens=False)
                n_tok += len(ids)
                n_roundtrip += dec == t
                f.write(json.dumps({"ids": ids, "decoded": dec}, ensure_ascii=False) + "\n")
        print(f"{name}: {len(texts)} lines, {n_tok} tokens, exact decode round trips {n_roundtrip}/{len(texts)}"
              f" -> {os.path.relpath(out, ROOT)} ({os.path.getsize(out)} bytes), tokenizers {tokenizers.__version__}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
