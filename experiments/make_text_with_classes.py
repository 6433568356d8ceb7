#!/usr/bin/env python3
"""Text for the variant of experiment 2: GCIDE paragraphs from the start of the dictionary (the
same region training's `text: gcide` reads; held-out text starts at 4 MiB) plus text-only
"catalogue" documents that name the ten Fashion-MNIST classes the way the few-shot documents do
("This is a bag. This is a coat. ..."), so that the text-only base LLM knows the class words and
the pattern before any image is seen. Usage: make_text_with_classes.py OUT SEED"""
import gzip
import random
import re
import sys

NOUNS = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
         "bag", "ankle boot"]
GCIDE_BYTES = 1_600_000
GCIDE_PARAGRAPHS = 4000
CATALOGUE_DOCS = 2000


def gcide_paragraphs():
    with gzip.open("/usr/share/dictd/gcide.dict.dz", "rt", encoding="utf-8", errors="replace") as f:
        text = f.read(GCIDE_BYTES)
    text = text[text.find("\n\n", text.find("A \\")) + 2:] if "A \\" in text else text
    out = []
    for para in re.split(r"\n\s*\n", text):
        para = re.sub(r"\[(1913 Webster|WordNet[^\]]*|PJC|Century Dict\.)[^\]]*\]", "", para)
        para = re.sub(r"[{}]", "", para)
        para = " ".join(para.split())
        if len(para) >= 24:
            out.append(para)
    return out[:GCIDE_PARAGRAPHS]


def catalogue(rng):
    k = rng.randint(2, 5)
    return " ".join("This is %s %s." % ("an" if n[0] in "aeiou" else "a", n)
                    for n in (rng.choice(NOUNS) for _ in range(k)))


def main():
    out, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    docs = gcide_paragraphs() + [catalogue(rng) for _ in range(CATALOGUE_DOCS)]
    rng.shuffle(docs)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n\n".join(docs) + "\n")


if __name__ == "__main__":
    main()
