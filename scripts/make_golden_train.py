#!/usr/bin/env python3
"""Builds the TRAINING golden fixture tests/fixtures/train/golden/ (issue 5): a tiny VILA-architecture
model (SigLIP vision tower -> mlp_downsample 2x2 projector -> Qwen2 LLM) in the released layout, one packed
batch of two samples with images, and a float64 PyTorch reference of

  - the loss (cross-entropy over the trained targets, summed over both samples, divided by their count),
  - the gradient of every parameter (zeros for the ones the loss does not reach: SigLIP's last layer and
    post_layernorm, since VILA reads hidden_states[-2]),
  - the losses of 5 torch.optim.AdamW steps (weight decay 0.1 on matrices only: biases, norms and
    embeddings in a no-decay group), loss before each step and after the last.

Samples are run one at a time through transformers (no packing there); the C++ side packs both into one
row with segments, so the fixture also checks that packing changes nothing.
Runs on the device machine (torch + transformers), on its CPU in float64:
    python3 scripts/make_golden_train.py [--out tests/fixtures/train/golden]
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from make_golden import dump_json, to_released_style  # noqa: E402
from make_golden_vision import add_key_prefix, make_projector  # noqa: E402

IMAGE_SIZE, PATCH = 28, 7  # 4 x 4 patches -> 2 x 2 -> 4 visual tokens per image
VT = dict(hidden_size=24, intermediate_size=40, num_hidden_layers=3, num_attention_heads=2)
LLM = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, vocab_size=96, rope_theta=10000.0, rms_norm_eps=1e-6)
IMAGE_TOKEN_ID = 95
LR, WD, BETAS, EPS, STEPS = 1e-2, 0.1, (0.9, 0.999), 1e-8, 5
SEED = 1234


def no_decay(full_name):
    """The issue's rule: no weight decay on norms, biases and embeddings (by role)."""
    n = full_name.lower()
    if n.endswith(".bias") or "norm" in n or "embed_tokens" in n or "position_embedding" in n:
        return True
    return full_name == "mm_projector/layers.1.weight"  # the projector's LayerNorm(4C)


def build(torch, transformers):
    torch.manual_seed(SEED)
    vcfg = transformers.SiglipVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH, num_channels=3,
                                           hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, **VT)
    vcfg.vision_use_head = False
    vt = transformers.SiglipVisionModel._from_config(vcfg, attn_implementation="eager").double()
    proj = make_projector("mlp_downsample", VT["hidden_size"], LLM["hidden_size"]).double()
    lcfg = transformers.Qwen2Config(max_position_embeddings=256, tie_word_embeddings=True,
                                    hidden_act="silu", **LLM)
    llm = transformers.Qwen2ForCausalLM._from_config(lcfg, attn_implementation="eager").double()
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():  # larger-than-default weights so every gradient is well above rounding
        for model in (vt, proj, llm):
            for name, p in model.named_parameters():
                if p.dim() == 1 and ("norm" in name or name.startswith("layers.1.")):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
                elif p.dim() == 1:
                    p.copy_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) / fan_in ** 0.5)
    return vt, proj, llm


def make_batch(torch):
    """Two samples: (ids, targets) rows with image placeholders, shifted targets."""
    g = torch.Generator().manual_seed(SEED + 1)
    ti = (IMAGE_SIZE // PATCH // 2) ** 2
    samples = []
    for n_images, n_prompt, n_answer in ((1, 5, 6), (2, 3, 4)):
        ids = []
        for _ in range(n_images):
            ids += [int(x) for x in torch.randint(0, IMAGE_TOKEN_ID, (2,), generator=g)]
            ids += [IMAGE_TOKEN_ID] * ti
        ids += [int(x) for x in torch.randint(0, IMAGE_TOKEN_ID, (n_prompt,), generator=g)]
        first_answer = len(ids)
        ids += [int(x) for x in torch.randint(0, IMAGE_TOKEN_ID, (n_answer,), generator=g)]
        targets = [-100] * len(ids)
        for t in range(first_answer - 1, len(ids) - 1):
            targets[t] = ids[t + 1]
        samples.append((ids, targets, n_images))
    pixels = torch.randn((3, 3, IMAGE_SIZE, IMAGE_SIZE), generator=g, dtype=torch.float64)
    return samples, pixels, ti


def loss_of(torch, vt, proj, llm, samples, pixels):
    hidden = vt(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]  # (N, P, C)
    feats = proj(hidden)  # (N, Ti, H)
    total, count, img = 0.0, 0, 0
    for ids, targets, n_images in samples:
        ids_t = torch.tensor(ids)
        emb = llm.model.embed_tokens(ids_t).clone()
        rows = (ids_t == IMAGE_TOKEN_ID).nonzero().flatten()
        emb[rows] = feats[img:img + n_images].reshape(-1, feats.shape[-1])
        img += n_images
        logits = llm(inputs_embeds=emb[None]).logits[0]
        tgt = torch.tensor(targets)
        total = total + torch.nn.functional.cross_entropy(logits, tgt, ignore_index=-100,
                                                          reduction="sum")
        count += int((tgt >= 0).sum())
    return total / count


def main():
    import torch
    import transformers
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/train/golden"))
    out = ap.parse_args().out
    torch.set_num_threads(4)
    vt, proj, llm = build(torch, transformers)
    samples, pixels, ti = make_batch(torch)

    # Released layout (fp32 weights).
    os.makedirs(out, exist_ok=True)
    vdir, pdir, ldir = (os.path.join(out, d) for d in ("vision_tower", "mm_projector", "llm"))
    vt.float().save_pretrained(vdir)
    add_key_prefix(os.path.join(vdir, "model.safetensors"), "vision_model.")
    vt.double()
    dump_json(os.path.join(vdir, "config.json"),
              to_released_style(json.load(open(os.path.join(vdir, "config.json")))))
    dump_json(os.path.join(vdir, "preprocessor_config.json"), {
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3,
        "image_processor_type": "SiglipImageProcessor", "rescale_factor": 1 / 255,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}})
    os.makedirs(pdir, exist_ok=True)
    save_file({k: v.float().contiguous() for k, v in proj.state_dict().items()},
              os.path.join(pdir, "model.safetensors"), metadata={"format": "pt"})
    dump_json(os.path.join(pdir, "config.json"), {
        "architectures": ["MultimodalProjector"], "mm_projector_type": "mlp_downsample_2x2_fix",
        "model_type": "v2l_projector", "torch_dtype": "float32"})
    llm.float().save_pretrained(ldir)
    llm.double()
    dump_json(os.path.join(ldir, "config.json"),
              to_released_style(json.load(open(os.path.join(ldir, "config.json")))))
    top = {"architectures": ["LlavaLlamaModel"], "model_type": "llava_llama", "chat_template": "qwen2",
           "mm_hidden_size": VT["hidden_size"], "hidden_size": LLM["hidden_size"],
           "mm_projector_type": "mlp_downsample_2x2_fix", "mm_vision_select_layer": -2,
           "mm_vision_select_feature": "cls_patch", "image_aspect_ratio": "resize", "s2": False,
           "dynamic_s2": False,
           "llm_cfg": json.load(open(os.path.join(ldir, "config.json"))) | {"_name_or_path": "llm"},
           "vision_tower_cfg": json.load(open(os.path.join(vdir, "config.json"))) | {
               "_name_or_path": "vision_tower"},
           "mm_projector_cfg": json.load(open(os.path.join(pdir, "config.json"))) | {
               "_name_or_path": "mm_projector"}}
    dump_json(os.path.join(out, "config.json"), top)

    # Named parameters with their released full names.
    named = {}
    for name, p in vt.named_parameters():
        named["vision_tower/" + (name if name.startswith("vision_model.") else "vision_model." + name)] = p
    for name, p in proj.named_parameters():
        named["mm_projector/" + name] = p
    for name, p in llm.named_parameters():
        named["llm/" + name] = p  # tied: lm_head.weight is embed_tokens.weight (not listed twice)

    # Batch tensors (packed as the C++ side packs them).
    ids, targets, segments, media_rows = [], [], [], []
    for s, (sids, stg, _) in enumerate(samples):
        base = len(ids)
        media_rows += [base + i for i, t in enumerate(sids) if t == IMAGE_TOKEN_ID]
        ids += sids
        targets += stg
        segments += [s] * len(sids)
    batch = {"ids": torch.tensor(ids, dtype=torch.int32), "targets": torch.tensor(targets, dtype=torch.int32),
             "segments": torch.tensor(segments, dtype=torch.int32),
             "media_rows": torch.tensor(media_rows, dtype=torch.int32),
             "pixels": pixels.float().contiguous()}
    save_file(batch, os.path.join(out, "batch.safetensors"))
    pixels = pixels.float().double()  # the C++ side sees the fp32 pixels

    # Gradients of the initial weights (the weights as saved: fp32 values in float64).
    with torch.no_grad():
        for p in named.values():
            p.copy_(p.float().double())
    loss = loss_of(torch, vt, proj, llm, samples, pixels)
    loss.backward()
    grads = {k: (p.grad if p.grad is not None else torch.zeros_like(p)).float().contiguous()
             for k, p in named.items()}
    save_file(grads, os.path.join(out, "grads.safetensors"))

    # 5 AdamW steps.
    decay = [p for k, p in named.items() if not no_decay(k)]
    nodecay = [p for k, p in named.items() if no_decay(k)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS, foreach=False)
    losses = [float(loss)]
    opt.step()
    for _ in range(STEPS):
        opt.zero_grad()
        loss = loss_of(torch, vt, proj, llm, samples, pixels)
        losses.append(float(loss))
        if len(losses) <= STEPS:
            loss.backward()
            opt.step()
    ref = {"loss": losses[0], "adamw_losses": losses, "lr": LR, "weight_decay": WD, "betas": list(BETAS),
           "eps": EPS, "steps": STEPS, "image_token_id": IMAGE_TOKEN_ID, "tokens_per_image": ti,
           "image_size": IMAGE_SIZE, "no_decay": sorted(k for k in named if no_decay(k)),
           "parameters": sorted(named), "torch": torch.__version__, "transformers": transformers.__version__,
           "note": "float64 CPU reference; adamw_losses[i] is the loss after i optimizer steps"}
    dump_json(os.path.join(out, "reference.json"), ref)
    print(json.dumps({k: ref[k] for k in ("loss", "adamw_losses")}, indent=1))
    print("parameters", len(named), "grad max", max(float(g.abs().max()) for g in grads.values()))


if __name__ == "__main__":
    main()
