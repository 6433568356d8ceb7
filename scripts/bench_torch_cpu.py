"""CPU peer for `vila bench`: the same random Qwen2-shaped model in PyTorch + transformers on CPU.

Measures prefill (one forward over P tokens) and decode (D steps with the KV cache) tokens/s in
fp32 and bf16, best of N, with torch's thread count pinned. Usage (on a machine with torch):
  python3 scripts/bench_torch_cpu.py --preset qwen2-0.5b --threads 16 --json out.json
"""
import argparse
import json
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

PRESETS = {
    "qwen2-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, intermediate_size=4864, vocab_size=151936,
                       tie_word_embeddings=True),
    "qwen2-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12,
                       num_key_value_heads=2, intermediate_size=8960, vocab_size=151936,
                       tie_word_embeddings=True),
}


def bench(model, prompt_tokens, decode_tokens, repeats):
    vocab = model.config.vocab_size
    ids = (torch.arange(prompt_tokens) * 7919 % vocab).unsqueeze(0)
    best_prefill, best_decode = 1e30, 1e30
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            best_prefill = min(best_prefill, time.perf_counter() - t0)
            past = out.past_key_values
            t0 = time.perf_counter()
            for step in range(decode_tokens):
                nxt = torch.tensor([[step % vocab]])
                out = model(input_ids=nxt, past_key_values=past, use_cache=True, logits_to_keep=1)
                past = out.past_key_values
            best_decode = min(best_decode, time.perf_counter() - t0)
    return prompt_tokens / best_prefill, decode_tokens / best_decode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="qwen2-0.5b", choices=sorted(PRESETS))
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = Qwen2Config(**PRESETS[args.preset], max_position_embeddings=32768, rope_theta=1e6,
                         rms_norm_eps=1e-6, attn_implementation="sdpa")
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        model = Qwen2ForCausalLM(config).to(dtype).eval()
        prefill, decode = bench(model, args.prompt_tokens, args.decode_tokens, args.repeats)
        name = f"{args.preset} {'f32' if dtype == torch.float32 else 'bf16'}"
        print(f"torch {name}: prefill {prefill:.1f} tok/s, decode {decode:.2f} tok/s "
              f"({torch.get_num_threads()} threads)", flush=True)
        results.append(dict(model=name, prefill_tokens_per_s=prefill,
                            decode_tokens_per_s=decode, threads=torch.get_num_threads()))
        del model
    meta = dict(torch=torch.__version__, transformers=__import__("transformers").__version__)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, runs=results), f, indent=2)


if __name__ == "__main__":
    main()
