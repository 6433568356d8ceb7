"""GPU peer for `vila bench --device cuda`: the same shapes in PyTorch + transformers on the same GPU.

Random-weight models built directly on the GPU in bf16 (no files):
  - ceilings: device-to-device copy bandwidth (bytes read + written) and a bf16 8192^3 matmul;
  - LLM (Qwen2ForCausalLM, SDPA attention): prefill of P tokens from empty (logits of the last row
    only), decode at batch 1 for each context (eager, DynamicCache), decode at larger batches
    (eager), and decode at batch 1 with the static cache + torch.compile (reduce-overhead);
  - vision: SiglipVisionModel (so400m-patch14-448 geometry) over 17 tiles plus NVILA's 2x2
    spatial-to-channel projector (LayerNorm, Linear, GELU, Linear);
  - --ttft IMAGE: time to first token, the same stages as `vila bench --device cuda --ttft`:
    Pillow open + convert("RGB"), VILA's tiling (dynamic S2 448/896/1344 for nvila-8b, dynamic
    tiles + thumbnail for nvila-lite-2b; helpers from make_golden_vision.py, written from VILA's
    mm_utils.py) and SiglipImageProcessor's normalisation in numpy, upload + SigLIP (the 26 layers
    up to select layer -2, SDPA), S2 merge (area resize in fp32, as VILA) + projector + chessboard
    merge in torch, the prompt embeddings spliced around the visual rows (same layout and ids as
    ours), Qwen2ForCausalLM prefill with inputs_embeds (logits of the last row), argmax.
    Stage times with torch.cuda.synchronize() at each boundary; median of --ttft-runs after a
    warm-up.
Prints one line per figure and writes JSON. Usage (on the GPU machine):
  python3 scripts/bench_torch_gpu.py --model-shape nvila-8b --json out.json [--no-compile]
  python3 scripts/bench_torch_gpu.py --ttft image.jpg --ttft-only
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel

PRESETS = {
    "qwen2-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, intermediate_size=8960, vocab_size=151936,
                       tie_word_embeddings=True),
    "qwen2-7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28,
                     num_key_value_heads=4, intermediate_size=18944, vocab_size=152064,
                     tie_word_embeddings=False),
}
SIGLIP_448 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                  num_attention_heads=16, image_size=448, patch_size=14)


def sync_time(fn, repeats):
    """Best wall time of fn() over `repeats` runs after one warm-up, in ms."""
    fn()
    torch.cuda.synchronize()
    best = 1e30
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) * 1e3)
    return best


def ceilings():
    n = 1 << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda").fill_(1)
    dst = torch.empty_like(src)
    ms = sync_time(lambda: dst.copy_(src), 5)
    copy_gbps = 2 * n / (ms * 1e-3) / 1e9
    del src, dst
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    ms = sync_time(lambda: a @ b, 5)
    return copy_gbps, 2 * 8192 ** 3 / (ms * 1e-3) / 1e12


def build_llm(preset):
    cfg = Qwen2Config(**PRESETS[preset], max_position_embeddings=32768, rope_theta=1e6,
                      attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.eval()
    return model


def llm_flops(cfg, t):
    c, f, l = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    hd = cfg.num_attention_heads * (c // cfg.num_attention_heads)
    kd = cfg.num_key_value_heads * (c // cfg.num_attention_heads)
    linear = l * (c * (hd + 2 * kd) + hd * c + 3 * c * f)
    return 2 * linear * t + 2 * cfg.vocab_size * c + 4 * l * hd * t * (t + 1) / 2


def bench_llm(model, args, out):
    from transformers import DynamicCache
    cfg = model.config
    vocab = cfg.vocab_size
    for t in args.prefill:
        ids = (torch.arange(t, device="cuda") * 7919 % vocab).unsqueeze(0)

        def run():
            with torch.inference_mode():
                model(input_ids=ids, use_cache=True, past_key_values=DynamicCache(),
                      logits_to_keep=1)
        ms = sync_time(run, args.repeats)
        tflops = llm_flops(cfg, t) / (ms * 1e-3) / 1e12
        print(f"torch prefill {t:5d} tokens: {ms:8.2f} ms {t / ms * 1e3:9.0f} tok/s "
              f"{tflops:6.1f} TFLOP/s", flush=True)
        out["prefill"].append(dict(tokens=t, ms=ms, tokens_per_s=t / ms * 1e3, tflops=tflops))

    def eager_decode(batch, context):
        ids = (torch.arange(context, device="cuda") * 7919 % vocab).unsqueeze(0).repeat(batch, 1)
        with torch.inference_mode():
            res = model(input_ids=ids, use_cache=True, past_key_values=DynamicCache(),
                        logits_to_keep=1)
            past = res.past_key_values
            nxt = res.logits[:, -1].argmax(-1, keepdim=True)
            for _ in range(3):
                res = model(input_ids=nxt, past_key_values=past, use_cache=True)
                nxt = res.logits[:, -1].argmax(-1, keepdim=True)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.decode_tokens):
                res = model(input_ids=nxt, past_key_values=past, use_cache=True)
                nxt = res.logits[:, -1].argmax(-1, keepdim=True)
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3 / args.decode_tokens
        print(f"torch decode eager batch {batch:2d} context {context:5d}: {ms:7.3f} ms/step "
              f"{batch / ms * 1e3:8.1f} tok/s", flush=True)
        out["decode"].append(dict(mode="eager", batch=batch, context=context, ms_per_step=ms,
                                  tokens_per_s=batch / ms * 1e3))

    for context in args.context:
        eager_decode(1, context)
    for batch in args.batch:
        if batch > 1:
            eager_decode(batch, args.batch_context)

    if args.compile:
        compiled_decode(model, args, out)


def compiled_decode(model, args, out):
    """Batch-1 decode with transformers' StaticCache and torch.compile(mode="reduce-overhead")
    (CUDA graphs), the gpt-fast pattern: prefill eagerly into the static cache, then one compiled
    single-token step per token, marking each CUDA-graph step."""
    from transformers import StaticCache
    cfg = model.config
    vocab = cfg.vocab_size
    step = torch.compile(
        lambda ids, pos, cache: model(input_ids=ids, past_key_values=cache, cache_position=pos,
                                      position_ids=pos.unsqueeze(0), use_cache=True).logits,
        mode="reduce-overhead", fullgraph=True)
    for context in args.context:
        length = context + args.decode_tokens + 16
        try:
            cache = StaticCache(config=cfg, max_cache_len=length)
        except TypeError:
            cache = StaticCache(config=cfg, max_batch_size=1, max_cache_len=length,
                                device="cuda", dtype=torch.bfloat16)
        ids = (torch.arange(context, device="cuda") * 7919 % vocab).unsqueeze(0)
        with torch.inference_mode():
            pos = torch.arange(context, device="cuda")
            logits = model(input_ids=ids, past_key_values=cache, cache_position=pos,
                           use_cache=True, logits_to_keep=1).logits
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            pos = torch.tensor([context], device="cuda")

            def one():
                nonlocal nxt, pos
                torch.compiler.cudagraph_mark_step_begin()
                lg = step(nxt, pos, cache)
                nxt = lg[:, -1].argmax(-1, keepdim=True).clone()
                pos = pos + 1
            for _ in range(8):  # compile + record the graph
                one()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.decode_tokens):
                one()
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t0) * 1e3 / args.decode_tokens
        print(f"torch decode compiled static batch 1 context {context:5d}: {ms:7.3f} ms/step "
              f"{1 / ms * 1e3:8.1f} tok/s", flush=True)
        out["decode"].append(dict(mode="static+compile", batch=1, context=context,
                                  ms_per_step=ms, tokens_per_s=1 / ms * 1e3))


class Projector2x2(torch.nn.Module):
    """NVILA mlp_downsample_2x2_fix: 2x2 spatial-to-channel, LayerNorm, Linear, GELU, Linear."""

    def __init__(self, mm_hidden, llm_hidden):
        super().__init__()
        self.norm = torch.nn.LayerNorm(mm_hidden * 4)
        self.fc1 = torch.nn.Linear(mm_hidden * 4, llm_hidden)
        self.fc2 = torch.nn.Linear(llm_hidden, llm_hidden)

    def forward(self, x):  # (B, S, C) with S = side^2
        b, s, c = x.shape
        side = int(s ** 0.5)
        x = x.reshape(b, side // 2, 2, side // 2, 2, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, (side // 2) ** 2, 4 * c)
        return self.fc2(torch.nn.functional.gelu(self.fc1(self.norm(x))))


def bench_vision(args, out, llm_hidden):
    cfg = SiglipVisionConfig(**SIGLIP_448, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device("cuda"):
        tower = SiglipVisionModel(cfg).to(torch.bfloat16).eval()
        proj = Projector2x2(cfg.hidden_size, llm_hidden).to(torch.bfloat16).eval()
    tiles = torch.randn(args.tiles, 3, 448, 448, device="cuda", dtype=torch.bfloat16)

    def run():
        with torch.inference_mode():
            h = tower(pixel_values=tiles).last_hidden_state
            proj(h)
    ms = sync_time(run, args.repeats)
    params = sum(p.numel() for n, p in tower.named_parameters() if "embeddings" not in n)
    s, d, heads = 1024, cfg.hidden_size // cfg.num_attention_heads, cfg.num_attention_heads
    patch = 3 * 14 * 14 * cfg.hidden_size
    flops = args.tiles * (2 * (params + patch) * s + 4 * s * s * heads * d * cfg.num_hidden_layers)
    tflops = flops / (ms * 1e-3) / 1e12
    print(f"torch vision {args.tiles} tiles (SigLIP-so400m 448 + 2x2 projector): {ms:7.2f} ms "
          f"{args.tiles / ms * 1e3:7.1f} tiles/s {tflops:6.1f} TFLOP/s (tower only)", flush=True)
    out["vision"] = dict(tiles=args.tiles, ms=ms, tiles_per_s=args.tiles / ms * 1e3,
                         tflops=tflops)


# The prompt of the TTFT run, as cmd_bench_ttft.cpp builds it (Qwen2 ids of VILA's qwen2 template).
IM_START, IM_END, NEWLINE = 151644, 151645, 198
PREFIX = [IM_START, 8948, NEWLINE, 2610, 525, 264, 10950, 17847, IM_END, NEWLINE, IM_START, 872,
          NEWLINE]
SUFFIX = [IM_END, NEWLINE, IM_START, 77091, NEWLINE]
SHAPES = {"nvila-8b": "qwen2-7b", "nvila-lite-2b": "qwen2-1.5b"}


def bench_ttft(model, args, out):
    import numpy as np
    import torch.nn.functional as F
    from PIL import Image
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_golden_vision import (make_projector, merge_chessboard, split_chessboard,
                                    tiles_dynamic, tiles_dynamic_s2)

    lite = args.model_shape == "nvila-lite-2b"
    llm_hidden = model.config.hidden_size
    # Select layer -2 of the 27-layer tower = the output of its first 26 layers, no post-LN.
    cfg = SiglipVisionConfig(**dict(SIGLIP_448, num_hidden_layers=26), vision_use_head=False,
                             attn_implementation="sdpa")
    torch.manual_seed(1)
    with torch.device("cuda"):
        tower = SiglipVisionModel(cfg).to(torch.bfloat16).eval()
        if lite:
            proj = make_projector("mlp_downsample_3x3_fix", cfg.hidden_size, llm_hidden)
        else:
            proj = make_projector("mlp_downsample", 3 * cfg.hidden_size, llm_hidden)
        proj = proj.to(torch.bfloat16).eval()
    embed = model.get_input_embeddings()
    question = [1000 + 37 * i for i in range(args.question_tokens)]
    scales = [448, 896, 1344]

    def once():
        ms = {}
        t_start = t0 = time.perf_counter()

        def lap(name):
            nonlocal t0
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            ms[name] = (t1 - t0) * 1e3
            t0 = t1

        img = Image.open(args.ttft).convert("RGB")
        lap("decode")
        if lite:
            tiles, (rows, cols) = tiles_dynamic(img, 1, 12, 448)
        else:
            tiles, (rows, cols) = tiles_dynamic_s2(img, scales, 12, 448)
        arr = np.stack([np.asarray(t, dtype=np.uint8) for t in tiles])  # (n, 448, 448, 3)
        x = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)
        x = np.ascontiguousarray(((x - np.float32(0.5)) / np.float32(0.5)).transpose(0, 3, 1, 2))
        lap("preprocess")
        with torch.inference_mode():
            px = torch.from_numpy(x).to("cuda").to(torch.bfloat16)
            feats = tower(pixel_values=px, output_hidden_states=True).hidden_states[-1]
            lap("vision_tower")
            if lite:
                with torch.device("cuda"):  # flat_square's zero padding follows the default device
                    items = list(proj(feats))  # (121, H) per tile
            else:
                per_scale, cnt = [], 0
                for sc in scales[:-1]:
                    k = sc // scales[0]
                    per_scale.append(merge_chessboard(feats[cnt:cnt + k * k], k, k))
                    cnt += k * k
                per_scale.append(merge_chessboard(feats[cnt:cnt + rows * cols], rows, cols))
                size = per_scale[-1].shape[-2:]
                merged = torch.cat([F.interpolate(t.float(), size=size, mode="area").to(t.dtype)
                                    for t in per_scale], dim=1)
                blocks = split_chessboard(merged, rows, cols).flatten(2).transpose(1, 2)
                y = merge_chessboard(proj(blocks.contiguous()), rows, cols)
                items = [y.flatten(2).transpose(1, 2)[0]]
            lap("vision_projector")
            ids = torch.tensor(PREFIX + question + SUFFIX + [NEWLINE], device="cuda")
            text = embed(ids)
            nl = text[-1:]
            parts = [text[:len(PREFIX)]]
            for it in items:
                parts += [it, nl] + ([nl] if lite else [])
            parts.append(text[len(PREFIX):-1])
            embeds = torch.cat(parts).unsqueeze(0)
            lap("splice")
            logits = model(inputs_embeds=embeds, use_cache=True, past_key_values=DynamicCache(),
                           logits_to_keep=1).logits
            lap("prefill")
            token = int(logits[0, -1].argmax().item())
            lap("first_token")
        total = (time.perf_counter() - t_start) * 1e3
        return ms, total, dict(tiles=len(tiles), visual_tokens=sum(int(i.shape[0]) for i in items),
                               prompt_tokens=int(embeds.shape[1]), width=img.size[0],
                               height=img.size[1], first_token=token)

    from transformers import DynamicCache
    once()  # warm-up
    runs = [once() for _ in range(args.ttft_runs)]
    info = runs[0][2]
    stages = {k: statistics.median(r[0][k] for r in runs) for k in runs[0][0]}
    total = statistics.median(r[1] for r in runs)
    print(f"torch ttft ({args.model_shape}): {args.ttft} {info['width']}x{info['height']}, "
          f"{info['tiles']} tiles, {info['visual_tokens']} visual tokens, "
          f"{info['prompt_tokens']} prompt tokens; median of {args.ttft_runs} runs", flush=True)
    for k, v in stages.items():
        print(f"  torch ttft {k:17s} {v:9.2f} ms")
    print(f"  torch ttft {'total':17s} {total:9.2f} ms", flush=True)
    out["ttft"] = dict(info, model_shape=args.model_shape, image=args.ttft, runs=args.ttft_runs,
                       stages_ms=stages, total_ms=total)
    del tower, proj
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-shape", default="nvila-8b", choices=sorted(SHAPES))
    ap.add_argument("--preset", default="", choices=[""] + sorted(PRESETS),
                    help="LLM preset (default: the model shape's)")
    ap.add_argument("--prefill", type=int, nargs="+", default=[512, 3072, 4096])
    ap.add_argument("--context", type=int, nargs="+", default=[512, 4096])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--batch-context", type=int, default=512)
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiles", type=int, default=17)
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--only-compile", action="store_true",
                    help="skip the vision, prefill and eager decode parts")
    ap.add_argument("--no-vision", dest="vision", action="store_false")
    ap.add_argument("--ttft", default="", help="image file: time to first token")
    ap.add_argument("--ttft-runs", type=int, default=5)
    ap.add_argument("--question-tokens", type=int, default=32)
    ap.add_argument("--ttft-only", action="store_true", help="with --ttft: nothing else")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    args.preset = args.preset or SHAPES[args.model_shape]

    out = dict(model_shape=args.model_shape, preset=args.preset, torch=torch.__version__, device=torch.cuda.get_device_name(),
               prefill=[], decode=[])
    out["copy_gbps"], out["gemm_bf16_tflops"] = ceilings()
    print(f"torch {torch.__version__} on {out['device']}: device copy {out['copy_gbps']:.0f} GB/s, "
          f"bf16 matmul {out['gemm_bf16_tflops']:.0f} TFLOP/s", flush=True)
    if args.only_compile or args.ttft_only:
        args.vision = False
    if args.vision:
        bench_vision(args, out, PRESETS[args.preset]["hidden_size"])
        torch.cuda.empty_cache()
    model = build_llm(args.preset)
    if args.ttft:
        bench_ttft(model, args, out)
    if args.only_compile:
        compiled_decode(model, args, out)
    elif not args.ttft_only:
        bench_llm(model, args, out)
    out["max_memory_allocated"] = torch.cuda.max_memory_allocated()
    print(f"torch peak memory allocated {out['max_memory_allocated'] / 2**30:.2f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
