#!/usr/bin/env python3
"""Interleaved few-shot documents in MMC4's JSONL schema for the in-context variant of experiment
2: like the built-in kFewShot documents (k solved examples "[image] This is a <class>." then the
query "[image] This is a <class>."), but one of the k examples always shows the query's class
(the hint), so that looking back at the examples pays off during training. Images are
Fashion-MNIST *training* images written as grey PNG files next to the JSONL.
Usage: make_hinted_fewshot.py OUT_DIR COUNT SEED [K]"""
import gzip
import json
import os
import random
import struct
import sys
import zlib

FASHION = "/usr/share/datasets/fashion-mnist"
NOUNS = ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
         "bag", "ankle boot"]
SIDE = 28


def load_train():
    with gzip.open(os.path.join(FASHION, "train-images-idx3-ubyte.gz")) as f:
        _, n, rows, cols = struct.unpack(">IIII", f.read(16))
        pixels = f.read(n * rows * cols)
    with gzip.open(os.path.join(FASHION, "train-labels-idx1-ubyte.gz")) as f:
        f.read(8)
        labels = f.read(n)
    return pixels, labels


def write_png(path, grey):
    raw = b"".join(b"\x00" + grey[r * SIDE:(r + 1) * SIDE] for r in range(SIDE))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIDE, SIDE, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def sentence(label):
    noun = NOUNS[label]
    return "This is %s %s." % ("an" if noun[0] in "aeiou" else "a", noun)


def main():
    out, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    rng = random.Random(seed)
    pixels, labels = load_train()
    by_class = [[] for _ in NOUNS]
    for i, label in enumerate(labels):
        by_class[label].append(i)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    written = set()
    with open(os.path.join(out, "fewshot_hinted.jsonl"), "w") as f:
        for d in range(count):
            query = d % len(NOUNS)
            hint_at = rng.randrange(k)
            classes = [query if i == hint_at else rng.randrange(len(NOUNS)) for i in range(k)]
            classes.append(query)
            texts, images = [], []
            for i, c in enumerate(classes):
                index = rng.choice(by_class[c])
                name = "images/train_%d.png" % index
                if index not in written:
                    write_png(os.path.join(out, name), pixels[index * SIDE * SIDE:(index + 1) * SIDE * SIDE])
                    written.add(index)
                texts.append(sentence(c))
                images.append({"image_name": name, "matched_text_index": i})
            f.write(json.dumps({"text_list": texts, "image_info": images}) + "\n")


if __name__ == "__main__":
    main()
