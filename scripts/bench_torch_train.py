#!/usr/bin/env python3
"""PyTorch peer for `vila bench --train` (issue 5, "Speed"): training throughput, model FLOPs
utilisation and peak memory of the same model shapes trained in PyTorch bf16, eager and
torch.compile, on one GPU. Random weights and random token ids, built on the GPU (no files, no
downloads):
  - LLM: Qwen2ForCausalLM from a Qwen2Config of the "qwen2-1.5b" / "qwen2-0.5b" shapes of
    src/model/random_checkpoint.cpp (vocab 151936, tied embeddings as the released models);
  - --vlm: an NVILA-Lite-2B-shaped VLM: SiglipVisionModel (so400m-patch14-448 geometry, the 26
    layers up to VILA's select layer -2, no head) -> mlp_downsample_3x3_fix projector (121 tokens
    per 448x448 tile, make_golden_vision.make_projector) -> the 1.5B LLM; each sample is
    --tiles tiles spliced after a short text prefix, the rest of the --seq positions text; every
    module is trained (VILA's sft stage); the loss skips the visual positions.

The training step, as a user writes it: fp32 master weights; forward under
torch.autocast("cuda", bfloat16) with SDPA attention; loss = cross-entropy over all (text) tokens
(transformers' shifted next-token loss, labels = input ids); backward;
clip_grad_norm_(1.0); torch.optim.AdamW(lr 1e-4, fused=True); zero_grad(set_to_none=True).
Optional activation recomputation (--grad-checkpointing, non-reentrant).
Modes: eager, compile (torch.compile(model), default mode; the compile time, i.e. the first
step's wall time minus a steady step, is reported separately) and compile-regional (each decoder /
encoder layer compiled on its own, the cheap-to-compile variant; not in the default list).

Timing: CUDA events around the timed steps after --warmup steps (the first warm-up step includes
compilation); step_ms = elapsed / steps; tokens/s = batch * seq * steps / elapsed.
FLOPs (stated in the output):
  palm:     flops/token = 6 * N_nonembed + 12 * layers * hidden * seq  (PaLM, appendix B; N_nonembed
            = all parameters but the input embedding, so a tied lm_head is not counted; the
            attention term counts the full S x S score and value products, no causal halving)
  6n_total: flops/token = 6 * N_total (N_total counts the tied embedding / lm_head once)
  For --vlm the vision tower adds, per 448 tile, 6 * N_vision * 1024 + 12 * L_v * H_v * 1024 * 1024
  (N_vision without the position embedding) and the projector 6 * N_proj * 121; the 6n_total
  variant counts 6 * N_vision_total * 1024 + 6 * N_proj * 121 per tile.
MFU = achieved FLOP/s over 989e12 (H100 SXM dense bf16, datasheet) and over a bf16 torch.matmul
8192^3 measured in the same run. Peak memory: torch.cuda.max_memory_allocated per mode (reset
between modes; weights, gradients, AdamW state and activations).

Robustness: with no --batch the largest of 4/2/1 that fits is used (an OOM falls back to the next
smaller batch and says so; --batch B falls back B/2, ...); a failing mode is recorded and the next
one runs; everything is bounded by --time-limit seconds (timed steps are cut to fit, a mode that
runs past the limit is reported as such). The JSON is rewritten after each mode.
Usage (on the GPU machine):
  python3 scripts/bench_torch_train.py --shape qwen2-1.5b --seq 2048 --json out.json
  python3 scripts/bench_torch_train.py --vlm --modes eager --grad-checkpointing
"""
import argparse
import gc
import json
import os
import signal
import statistics
import sys
import time

T_START = time.monotonic()
# Allocator setting a user fighting OOM sets; recorded in the JSON (an explicit value is kept).
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig,  # noqa: E402
                          SiglipVisionModel)

PRESETS = {  # src/model/random_checkpoint.cpp random_llm_preset
    "qwen2-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, intermediate_size=4864),
    "qwen2-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, intermediate_size=8960),
}
QWEN2_COMMON = dict(vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=32768,
                    rope_theta=1e6, rms_norm_eps=1e-6, hidden_act="silu")
# SigLIP so400m-patch14-448, the 26 layers VILA reads (select layer -2 of 27), no pooling head.
SIGLIP_448 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=26,
                  num_attention_heads=16, image_size=448, patch_size=14,
                  hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
PATCHES_PER_TILE = (448 // 14) ** 2  # 1024
DOWNSAMPLE = 3  # mlp_downsample_3x3_fix: 32x32 patches, zero-padded to 33x33, -> 11x11
TOKENS_PER_TILE = (-(-32 // DOWNSAMPLE)) ** 2  # 121
TEXT_PREFIX = 16  # text tokens before the image in a VLM sample
DATASHEET_FLOPS = 989e12  # H100 SXM dense bf16
LR, MAX_GRAD_NORM = 1e-4, 1.0
DEFAULT_BATCHES = (4, 2, 1)


class TimeLimit(BaseException):
    """Raised by SIGALRM at the deadline; a BaseException so that no `except Exception` (ours,
    dynamo's or inductor's) swallows or wraps it."""


def on_alarm(signum, frame):
    raise TimeLimit()


def elapsed_s():
    return time.monotonic() - T_START


def is_oom(e):
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def device_summary():
    p = torch.cuda.get_device_properties(0)
    return dict(name=p.name, memory_gib=round(p.total_memory / 2**30, 1),
                sm_count=p.multi_processor_count, capability=f"{p.major}.{p.minor}",
                cuda=torch.version.cuda)


def matmul_peak_tflops():
    """bf16 torch.matmul 8192^3, mean of 20 after 3 warm-ups, CUDA events."""
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 20
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    end.synchronize()
    ms = start.elapsed_time(end) / reps
    del a, b
    torch.cuda.empty_cache()
    return 2 * n ** 3 / (ms * 1e-3) / 1e12


# ---------------------------------------------------------------------------------------------
# Models.


def qwen2_config(shape):
    return Qwen2Config(**PRESETS[shape], **QWEN2_COMMON, attn_implementation="sdpa")


def tie(llm):
    """The released Qwen2 1.5B / 0.5B tie lm_head to the input embedding; make sure."""
    if llm.lm_head.weight is not llm.get_input_embeddings().weight:
        llm.lm_head.weight = llm.get_input_embeddings().weight
    return llm


def build_llm(shape):
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = tie(Qwen2ForCausalLM(qwen2_config(shape))).float()  # fp32 master weights
    return model


def flat_square_pad(x, k):
    """VILA's flat_square (make_golden_vision.flat_square) with the zero padding made by F.pad, so
    it follows x's device and traces under torch.compile: (n, rows, cols, C) ->
    (n, rows/k, cols/k, k*k*C), rows and cols zero-padded up to a multiple of k."""
    n, w, h, c = x.shape
    x = torch.nn.functional.pad(x, (0, 0, 0, (-h) % k, 0, (-w) % k))
    n, w, h, c = x.shape
    x = x.contiguous().view(n, w, h // k, c * k)
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.view(n, h // k, w // k, c * k * k)
    return x.permute(0, 2, 1, 3).contiguous()


class DownSamplePad(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):  # (n, S, C) with S = side^2 -> (n, ceil(side/k)^2, k*k*C)
        side = int(x.shape[1] ** 0.5)
        x = flat_square_pad(x.reshape(x.shape[0], side, side, -1), self.k)
        return x.reshape(x.shape[0], -1, x.shape[-1])


class Vlm(torch.nn.Module):
    """NVILA-Lite-2B shape: SigLIP (26 layers) -> 3x3 projector -> Qwen2 1.5B."""

    def __init__(self, shape):
        super().__init__()
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from make_golden_vision import make_projector
        vcfg = SiglipVisionConfig(**SIGLIP_448, attn_implementation="sdpa")
        vcfg.vision_use_head = False
        self.tower = SiglipVisionModel(vcfg)
        llm_cfg = qwen2_config(shape)
        self.proj = make_projector("mlp_downsample_3x3_fix", vcfg.hidden_size, llm_cfg.hidden_size)
        self.proj.layers[0] = DownSamplePad(DOWNSAMPLE)  # same math, device-following padding
        self.llm = tie(Qwen2ForCausalLM(llm_cfg))

    def forward(self, pixel_values, input_ids, labels):
        # pixel_values (B*T, 3, 448, 448); input_ids (B, S - T*121); labels (B, S) (-100 on images)
        b = input_ids.shape[0]
        feats = self.tower(pixel_values=pixel_values,
                           output_hidden_states=True).hidden_states[-1]  # (B*T, 1024, 1152)
        vis = self.proj(feats)  # (B*T, 121, H)
        vis = vis.reshape(b, -1, vis.shape[-1])  # (B, T*121, H)
        text = self.llm.get_input_embeddings()(input_ids)  # (B, S - T*121, H)
        embeds = torch.cat([text[:, :TEXT_PREFIX], vis.to(text.dtype), text[:, TEXT_PREFIX:]], 1)
        return self.llm(inputs_embeds=embeds, labels=labels, use_cache=False).loss


def build_vlm(shape):
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Vlm(shape).float()
    return model


def find_module(root, suffix):
    """The first submodule whose qualified name ends with `suffix` (transformers 5 moved SigLIP's
    parts: SiglipVisionModel no longer has .vision_model), or None."""
    for name, module in root.named_modules():
        if name == suffix or name.endswith("." + suffix):
            return module
    return None


def llm_flops_per_token(cfg, n_total, n_embed, seq):
    attn = 12 * cfg.num_hidden_layers * cfg.hidden_size * seq
    return 6 * (n_total - n_embed) + attn, 6 * n_total


def count_params(module):
    return sum(p.numel() for p in module.parameters())  # parameters() skips the tied duplicate


def flops_per_step(args, model, batch):
    """(palm, 6n_total) FLOPs of one training step, and a description of the counts."""
    llm = model.llm if args.vlm else model
    cfg = llm.config
    n_total, n_embed = count_params(llm), llm.get_input_embeddings().weight.numel()
    palm_tok, six_tok = llm_flops_per_token(cfg, n_total, n_embed, args.seq)
    tokens = batch * args.seq
    palm, six = palm_tok * tokens, six_tok * tokens
    info = dict(llm_params_total=n_total, llm_params_embedding=n_embed,
                llm_params_nonembed=n_total - n_embed,
                tied_embeddings=llm.lm_head.weight is llm.get_input_embeddings().weight,
                palm_flops_per_token=palm_tok, six_n_flops_per_token=six_tok)
    if args.vlm:
        vcfg = model.tower.config
        nv_total = count_params(model.tower)
        pos = find_module(model.tower, "position_embedding")
        post = find_module(model.tower, "post_layernorm")  # computed, its output unused
        nv_pos = pos.weight.numel() if pos is not None else 0
        nv_post = count_params(post) if post is not None else 0
        nv = nv_total - nv_pos - nv_post
        n_proj = count_params(model.proj)
        tiles = batch * args.tiles
        vis_palm = (6 * nv * PATCHES_PER_TILE + 12 * vcfg.num_hidden_layers * vcfg.hidden_size *
                    PATCHES_PER_TILE * PATCHES_PER_TILE)
        proj_f = 6 * n_proj * TOKENS_PER_TILE
        palm += tiles * (vis_palm + proj_f)
        six += tiles * (6 * nv_total * PATCHES_PER_TILE + proj_f)
        info.update(vision_params_total=nv_total, vision_params_counted=nv, projector_params=n_proj,
                    vision_palm_flops_per_tile=vis_palm, projector_flops_per_tile=proj_f)
    return palm, six, info


# ---------------------------------------------------------------------------------------------
# One mode at one batch.


def make_batch_fn(args, batch, vocab):
    if not args.vlm:
        def llm_batch():
            ids = torch.randint(0, vocab, (batch, args.seq), device="cuda")  # (B, S)
            return dict(input_ids=ids, labels=ids, use_cache=False)
        return llm_batch
    visual = args.tiles * TOKENS_PER_TILE
    text_len = args.seq - visual

    def vlm_batch():
        ids = torch.randint(0, vocab, (batch, text_len), device="cuda")  # (B, S - T*121)
        ignore = torch.full((batch, visual), -100, dtype=ids.dtype, device="cuda")
        labels = torch.cat([ids[:, :TEXT_PREFIX], ignore, ids[:, TEXT_PREFIX:]], 1)  # (B, S)
        pixels = torch.randn(batch * args.tiles, 3, 448, 448, device="cuda")  # (B*T, 3, 448, 448)
        return dict(pixel_values=pixels, input_ids=ids, labels=labels)
    return vlm_batch


def run_mode(args, mode, batch, deadline, peak_tflops):
    torch.cuda.reset_peak_memory_stats()
    model = build_vlm(args.shape) if args.vlm else build_llm(args.shape)
    model.train()
    if args.grad_checkpointing:
        kw = dict(gradient_checkpointing_kwargs={"use_reentrant": False})
        for m in ([model.llm, model.tower] if args.vlm else [model]):
            m.gradient_checkpointing_enable(**kw)
    llm = model.llm if args.vlm else model
    attn_impl = llm.config._attn_implementation
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, fused=True)
    if mode == "compile":
        fwd = torch.compile(model)
    elif mode == "compile-regional":
        layers = list(find_module(llm, "layers"))
        if args.vlm:
            layers += list(find_module(model.tower, "layers"))
        for layer in layers:
            layer.compile()
        fwd = model
    else:
        fwd = model
    next_batch = make_batch_fn(args, batch, llm.config.vocab_size)

    def step():
        opt.zero_grad(set_to_none=True)
        inputs = next_batch()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = fwd(**inputs)
            loss = out if args.vlm else out.loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        opt.step()
        return loss.detach()

    losses, warm_s = [], []
    for _ in range(max(1, args.warmup)):
        t0 = time.perf_counter()
        losses.append(step())
        torch.cuda.synchronize()
        warm_s.append(time.perf_counter() - t0)
    est = warm_s[-1]
    room = deadline - time.monotonic() - 6.0
    steps = max(1, min(args.steps, int(room / max(est, 1e-3))))
    events = [torch.cuda.Event(enable_timing=True) for _ in range(steps + 1)]
    events[0].record()
    for i in range(steps):
        losses.append(step())
        events[i + 1].record()
    events[-1].synchronize()
    total_ms = events[0].elapsed_time(events[-1])
    per_step = [events[i].elapsed_time(events[i + 1]) for i in range(steps)]
    step_ms = total_ms / steps
    palm, six, info = flops_per_step(args, model, batch)
    achieved = palm / (step_ms * 1e-3)
    achieved6 = six / (step_ms * 1e-3)
    loss_values = [float(x) for x in torch.stack(losses).float().cpu()]
    res = dict(batch=batch, steps=steps, warmup=len(warm_s), step_ms=step_ms,
               step_ms_median=statistics.median(per_step),
               tokens_per_s=batch * args.seq * steps / (total_ms * 1e-3),
               tflops=achieved / 1e12, tflops_6n=achieved6 / 1e12,
               mfu_datasheet=achieved / DATASHEET_FLOPS,
               mfu_measured_peak=achieved / peak_tflops / 1e12,
               mfu_datasheet_6n=achieved6 / DATASHEET_FLOPS,
               mfu_measured_peak_6n=achieved6 / peak_tflops / 1e12,
               peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30,
               peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30,
               first_step_s=warm_s[0], attn_implementation=attn_impl,
               loss_first=loss_values[0], loss_last=loss_values[-1],
               flops_per_step_palm=palm, flops_per_step_6n=six, counts=info)
    if args.vlm:
        res["tiles_per_s"] = batch * args.tiles * steps / (total_ms * 1e-3)
    if mode != "eager":
        res["compile_s"] = max(0.0, warm_s[0] - step_ms * 1e-3)
    if steps < args.steps:
        res["note"] = f"timed steps cut from {args.steps} to {steps} by --time-limit"
    return res


def cleanup(mode):
    if mode != "eager":
        torch._dynamo.reset()
    gc.collect()
    torch.cuda.empty_cache()


def bench_mode(args, mode, candidates, deadline, peak_tflops):
    """Runs `mode` at the first batch of `candidates` that does not run out of memory."""
    oom, res = [], None
    for b in candidates:
        msg = ""
        try:
            res = run_mode(args, mode, b, deadline, peak_tflops)
        except Exception as e:  # noqa: BLE001 (a failing mode must not kill the others)
            text = str(e).strip()
            msg = f"{type(e).__name__}: {text.splitlines()[0][:300] if text else ''}"
            was_oom = is_oom(e)
        cleanup(mode)
        if res is not None:
            break
        if not was_oom:
            res = dict(error=msg, batch=b)
            break
        oom.append(b)
        print(f"  {mode}: out of memory at batch {b}" +
              (f", trying batch {candidates[candidates.index(b) + 1]}" if b != candidates[-1] else
               ", no smaller batch left"), flush=True)
    if res is None:
        res = dict(error=f"out of memory at every batch {candidates}")
    res["oom_batches"] = oom
    return res


# ---------------------------------------------------------------------------------------------
# Output.


def print_row(mode, r):
    if "error" in r:
        print(f"{mode:17s} FAILED: {r['error']}", flush=True)
        return
    comp = f"{r['compile_s']:8.1f}" if "compile_s" in r else f"{'-':>8s}"
    print(f"{mode:17s} {r['batch']:5d} {r['steps']:5d} {r['step_ms']:9.1f} "
          f"{r['tokens_per_s']:10.0f} {r['tflops']:8.1f} {100 * r['mfu_datasheet']:7.1f}% "
          f"{100 * r['mfu_measured_peak']:7.1f}% "
          f"{100 * r['mfu_datasheet_6n']:7.1f}% {r['peak_mem_gib']:8.2f} {comp}", flush=True)


HEADER = (f"{'mode':17s} {'batch':>5s} {'steps':>5s} {'step ms':>9s} {'tokens/s':>10s} "
          f"{'TFLOP/s':>8s} {'MFU(ds)':>8s} {'MFU(mm)':>8s} {'MFU6N ds':>8s} {'peak GiB':>8s} "
          f"{'compile':>8s}")


def write_json(args, out):
    if not args.json:
        return
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=2)
    os.replace(tmp, args.json)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="qwen2-1.5b", choices=sorted(PRESETS))
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=0, help="default: largest of 4/2/1 that fits")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--modes", default="eager,compile",
                    help="comma list of eager, compile, compile-regional")
    ap.add_argument("--grad-checkpointing", action="store_true")
    ap.add_argument("--vlm", action="store_true", help="NVILA-Lite-2B-shaped VLM (LLM: --shape)")
    ap.add_argument("--tiles", type=int, default=5,
                    help="--vlm: 448 tiles per sample (5 = a 2x2 tiling + thumbnail)")
    ap.add_argument("--time-limit", type=float, default=170.0, help="seconds, whole run")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in ("eager", "compile", "compile-regional"):
            ap.error(f"unknown mode '{m}'")
    if args.vlm and args.seq <= args.tiles * TOKENS_PER_TILE + TEXT_PREFIX:
        ap.error(f"--seq {args.seq} leaves no text after {args.tiles} tiles x {TOKENS_PER_TILE}")
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1

    deadline = T_START + args.time_limit
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, deadline - time.monotonic() - 3.0))

    dev = device_summary()
    out = dict(device=dev["name"], device_info=dev, torch=torch.__version__,
               transformers=transformers.__version__, shape=args.shape,
               model=("nvila-lite-2b-shaped VLM: SigLIP so400m-448 (26 layers) + "
                      f"mlp_downsample_3x3_fix + {args.shape}, {args.tiles} tiles/sample")
               if args.vlm else f"Qwen2ForCausalLM {args.shape}",
               seq=args.seq, batch=None, grad_checkpointing=args.grad_checkpointing,
               alloc_conf=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""),
               step=("fp32 master weights, autocast bf16 forward, SDPA, CE over all text tokens, "
                     "backward, clip_grad_norm_(1.0), AdamW(fused, lr 1e-4), "
                     "zero_grad(set_to_none)"),
               flop_formula=dict(
                   palm="flops/token = 6*N_nonembed + 12*layers*hidden*seq (N_nonembed: all params "
                        "but the input embedding; tied lm_head not counted; full SxS attention)",
                   six_n_total="flops/token = 6*N_total (tied embedding counted once)",
                   vlm_vision_per_tile="palm: 6*N_vision*1024 + 12*L_v*H_v*1024^2 + "
                                       "6*N_proj*121; 6n: 6*N_vision_total*1024 + 6*N_proj*121"),
               datasheet_tflops=DATASHEET_FLOPS / 1e12, time_limit_s=args.time_limit, modes={})
    print(f"torch {torch.__version__}, transformers {transformers.__version__} on {dev['name']} "
          f"({dev['memory_gib']} GiB, {dev['sm_count']} SMs, CUDA {dev['cuda']})", flush=True)
    try:
        peak = matmul_peak_tflops()
        out["matmul_peak_tflops"] = peak
        print(f"bf16 matmul 8192^3: {peak:.0f} TFLOP/s (datasheet {DATASHEET_FLOPS / 1e12:.0f})",
              flush=True)
        print(f"{out['model']}, seq {args.seq}, step: {out['step']}", flush=True)
        print(f"MFU(ds)/MFU(mm): {out['flop_formula']['palm']}; MFU6N: "
              f"{out['flop_formula']['six_n_total']}", flush=True)
        print(HEADER, flush=True)
        if args.batch > 0:
            base = [args.batch >> i for i in range(args.batch.bit_length())]
        else:
            base = list(DEFAULT_BATCHES)
        fitted = None
        for i, mode in enumerate(modes):
            # Later modes start at the batch the first one fitted (same work, no wasted OOM tries).
            cands = [b for b in base if fitted is None or b <= fitted] or base[-1:]
            try:
                r = bench_mode(args, mode, cands, deadline, peak)
            except TimeLimit:
                cleanup(mode)
                out["modes"][mode] = dict(error=f"time limit ({args.time_limit:.0f} s) reached "
                                                f"after {elapsed_s():.0f} s")
                print_row(mode, out["modes"][mode])
                for m in modes[i + 1:]:
                    out["modes"][m] = dict(error="skipped: time limit")
                    print_row(m, out["modes"][m])
                break
            out["modes"][mode] = r
            if "error" not in r:
                fitted = fitted or r["batch"]
                out["batch"] = out["batch"] or r["batch"]
            print_row(mode, r)
            write_json(args, out)
    except TimeLimit:
        out["error"] = f"time limit ({args.time_limit:.0f} s) reached after {elapsed_s():.0f} s"
        print(out["error"], flush=True)
    signal.setitimer(signal.ITIMER_REAL, 0)
    for mode, r in out["modes"].items():
        if r.get("oom_batches"):
            print(f"note: {mode} ran out of memory at batch {r['oom_batches']}")
        if r.get("note"):
            print(f"note: {mode}: {r['note']}")
        if "loss_first" in r:
            print(f"{mode}: loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}, first step "
                  f"{r['first_step_s']:.1f} s, step median {r['step_ms_median']:.1f} ms, "
                  f"peak reserved {r['peak_reserved_gib']:.1f} GiB, "
                  f"attention {r['attn_implementation']}")
    out["wall_s"] = elapsed_s()
    write_json(args, out)
    wrote = f", wrote {args.json}" if args.json else ""
    print(f"total {out['wall_s']:.0f} s{wrote}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
