#!/usr/bin/env python3
"""Pillow reference outputs for the vision tests (tests/vision/pillow_test.cpp).

Usage: pillow_ref.py JOBS.jsonl
Each line of JOBS is a JSON object with "op" and "out"; every output is written as
<u32 width LE><u32 height LE><RGB bytes>. Ops:
  decode   {"src"}                    Image.open(src).convert("RGB")
  exif     {"src"}                    ImageOps.exif_transpose(Image.open(src)).convert("RGB")
  resize   {"src", "w", "h"}          Image.open(src).convert("RGB").resize((w, h))
  resize_raw {"src", "w", "h"}        same on a raw file in the output format above
  make     {"kind", "seed"}           writes a synthetic test image file to "out" (not raw)
  vila_tiles {"src", "mode", "scales", "max_tiles", "min_tiles", "size", "mean", "std", "rescale"}
           VILA's tiling (mode "dynamic_s2" / "dynamic" / "resize") of Image.open(src).convert("RGB")
           then SiglipImageProcessor-style normalisation; writes <i32 n><i32 rows><i32 cols> and
           n * 3 * size * size float32 (CHW per tile, native byte order) to "out".
Needs python3-pil and python3-numpy (Debian). Exit status 0 on success.
"""
import json
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps


def write_raw(path, im):
    im = im.convert("RGB")
    with open(path, "wb") as f:
        f.write(struct.pack("<II", im.width, im.height))
        f.write(im.tobytes())


def read_raw(path):
    with open(path, "rb") as f:
        w, h = struct.unpack("<II", f.read(8))
        return Image.frombytes("RGB", (w, h), f.read())


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16(path, arr, color_type):
    """Minimal 16-bit PNG writer (Pillow cannot write 16-bit RGB / RGBA)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)))
        f.write(png_chunk(b"IDAT", zlib.compress(raw)))
        f.write(png_chunk(b"IEND", b""))


def write_png_adam7(path, arr):
    """Minimal interlaced (Adam7) 8-bit RGB PNG writer (Pillow cannot write interlaced PNGs)."""
    h, w = arr.shape[:2]
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        raw += b"".join(b"\x00" + sub[y].tobytes() for y in range(sub.shape[0]))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)))
        f.write(png_chunk(b"IDAT", zlib.compress(raw)))
        f.write(png_chunk(b"IEND", b""))


def make(kind, out, seed):
    rng = np.random.default_rng(seed)
    w, h = 37 + seed % 11, 23 + seed % 7
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "png_rgb":
        Image.fromarray(rgb).save(out)
    elif kind == "png_rgba":
        a = rng.integers(0, 256, (h, w, 1), dtype=np.uint8)
        Image.fromarray(np.concatenate([rgb, a], 2), "RGBA").save(out)
    elif kind == "png_l":
        Image.fromarray(rgb[:, :, 0], "L").save(out)
    elif kind == "png_la":
        Image.fromarray(rgb[:, :, :2], "LA").save(out)
    elif kind == "png_1bit":
        Image.fromarray(rgb[:, :, 0]).convert("1").save(out)
    elif kind == "png_p8":
        Image.fromarray(rgb).quantize(200).save(out)
    elif kind == "png_p4":
        Image.fromarray(rgb).quantize(16).save(out, bits=4)
    elif kind == "png_p_trns":
        im = Image.fromarray(rgb).quantize(50)
        im.save(out, transparency=3)
    elif kind == "png_p1":
        Image.fromarray(rgb).quantize(2).save(out, bits=1)
    elif kind == "png_l_trns":
        Image.fromarray(rgb[:, :, 2], "L").save(out, transparency=7)
    elif kind == "png_adam7":
        write_png_adam7(out, rgb)
    elif kind == "png_i16":
        g = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        g[0, :8] = [0, 1, 100, 255, 256, 1000, 40000, 65535]
        Image.fromarray(g.astype(np.uint16), "I;16").save(out)
    elif kind == "png_rgb16":
        write_png16(out, rng.integers(0, 65536, (h, w, 3), dtype=np.uint16), 2)
    elif kind == "png_rgba16":
        write_png16(out, rng.integers(0, 65536, (h, w, 4), dtype=np.uint16), 6)
    elif kind == "jpeg_rgb":
        Image.fromarray(rgb).save(out, quality=90)
    elif kind == "jpeg_444":
        Image.fromarray(rgb).save(out, quality=95, subsampling=0)
    elif kind == "jpeg_progressive":
        Image.fromarray(rgb).save(out, quality=80, progressive=True)
    elif kind == "jpeg_gray":
        Image.fromarray(rgb[:, :, 1], "L").save(out, quality=85)
    elif kind == "jpeg_cmyk":
        Image.fromarray(rgb).convert("CMYK").save(out, quality=90)
    elif kind.startswith("jpeg_exif"):
        orientation = int(kind[len("jpeg_exif"):])
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(rgb).save(out, quality=90, exif=exif.tobytes())
    else:
        raise SystemExit(f"pillow_ref.py: unknown kind {kind}")


def closest_grid(aspect, grids, width, height, size):
    # VILA llava/mm_utils.py find_closest_aspect_ratio.
    best_diff, best = float("inf"), (1, 1)
    for cols, rows in grids:
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best_diff, best = diff, (cols, rows)
        elif diff == best_diff and width * height > 0.5 * size * size * cols * rows:
            best = (cols, rows)
    return best


def grids(lo, hi):
    # Same construction as VILA: a set sorted by product (ties in set order).
    cands = {(i, j) for n in range(lo, hi + 1) for i in range(1, n + 1) for j in range(1, n + 1)
             if lo <= i * j <= hi}
    return sorted(cands, key=lambda g: g[0] * g[1])


def cut(im, cols, rows, size):
    big = im.resize((cols * size, rows * size))
    return [big.crop(((k % cols) * size, (k // cols) * size, (k % cols + 1) * size,
                      (k // cols + 1) * size)) for k in range(cols * rows)]


def vila_tiles(job):
    im = Image.open(job["src"]).convert("RGB")
    size, mode = job["size"], job["mode"]
    w, h = im.size
    rows = cols = 0
    if mode == "dynamic_s2":
        scales = job["scales"]
        tiles = []
        for s in scales[:-1]:
            n = s // scales[0]
            tiles += cut(im, n, n, size)
        cols, rows = closest_grid(w / h, grids((scales[-1] // scales[0]) ** 2, job["max_tiles"]),
                                  w, h, size)
        tiles += cut(im, cols, rows, size)
    elif mode == "dynamic":
        c, r = closest_grid(w / h, grids(job["min_tiles"], job["max_tiles"]), w, h, size)
        tiles = cut(im, c, r, size)
        if len(tiles) != 1:
            tiles.append(im.resize((size, size)))
    else:
        tiles = [im.resize((size, size))]
    mean = np.array(job["mean"], dtype=np.float32)
    std = np.array(job["std"], dtype=np.float32)
    out = []
    for t in tiles:  # HF: rescale in float64 then cast to float32; normalize in float32
        t = t.resize((size, size))
        x = (np.asarray(t).astype(np.float64) * job["rescale"]).astype(np.float32)
        x = (x - mean) / std
        out.append(x.transpose(2, 0, 1))
    with open(job["out"], "wb") as f:
        f.write(struct.pack("<iii", len(out), rows, cols))
        f.write(np.ascontiguousarray(np.stack(out), dtype=np.float32).tobytes())


def main():
    with open(sys.argv[1]) as f:
        jobs = [json.loads(line) for line in f if line.strip()]
    for job in jobs:
        op = job["op"]
        if op == "decode":
            write_raw(job["out"], Image.open(job["src"]).convert("RGB"))
        elif op == "exif":
            write_raw(job["out"], ImageOps.exif_transpose(Image.open(job["src"])).convert("RGB"))
        elif op == "resize":
            im = Image.open(job["src"]).convert("RGB")
            write_raw(job["out"], im.resize((job["w"], job["h"])))
        elif op == "resize_raw":
            write_raw(job["out"], read_raw(job["src"]).resize((job["w"], job["h"])))
        elif op == "vila_tiles":
            vila_tiles(job)
        elif op == "make":
            make(job["kind"], job["out"], job.get("seed", 0))
        else:
            raise SystemExit(f"pillow_ref.py: unknown op {op}")


if __name__ == "__main__":
    main()
