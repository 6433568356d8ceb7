#!/usr/bin/env python3
"""Loads a checkpoint written by `vila train` with transformers (issue 5: "its llm/ and vision_tower/
load in transformers") and checks it: no missing or unexpected tensors in llm/ (Qwen2ForCausalLM) and
vision_tower/ (SiglipVisionModel), the projector's state dict loads strictly into VILA's projector, and
the LLM's log-probabilities of a continuation equal the ones `vila score --raw --json` printed for the
same text (our tokenizer.json read by transformers' tokenizer).
    python3 scripts/check_trained_in_transformers.py MODEL_DIR OURS_SCORE.json PROMPT CONTINUATION
Runs on the device machine (torch + transformers), on its CPU in float32. Exit 0 when every check passes.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from make_golden_vision import make_projector  # noqa: E402

TOL = 1e-4


def main():
    import torch
    import transformers
    from safetensors.torch import load_file

    model_dir, ours_path, prompt, continuation = sys.argv[1:5]
    ours = json.load(open(ours_path))
    ok = True
    llm, info = transformers.Qwen2ForCausalLM.from_pretrained(os.path.join(model_dir, "llm"), output_loading_info=True,
                                                               dtype=torch.float32)
    print("llm: missing", info["missing_keys"], "unexpected", info["unexpected_keys"])
    ok &= not info["missing_keys"] and not info["unexpected_keys"]
    vt, vinfo = transformers.SiglipVisionModel.from_pretrained(os.path.join(model_dir, "vision_tower"),
                                                               output_loading_info=True, dtype=torch.float32)
    print("vision_tower: missing", vinfo["missing_keys"], "unexpected", vinfo["unexpected_keys"])
    ok &= not vinfo["missing_keys"] and not vinfo["unexpected_keys"]
    top = json.load(open(os.path.join(model_dir, "config.json")))
    ptype = top["mm_projector_cfg"]["mm_projector_type"]
    proj = make_projector("mlp_downsample" if ptype.startswith("mlp_downsample") and "3x3" not in ptype else ptype,
                          top["mm_hidden_size"], top["hidden_size"])
    missing = proj.load_state_dict(load_file(os.path.join(model_dir, "mm_projector", "model.safetensors")), strict=True)
    print("mm_projector: loaded strictly", missing)
    s = vt.config.image_size
    with torch.no_grad():
        feats = vt(pixel_values=torch.zeros(1, 3, s, s), output_hidden_states=True).hidden_states[-2]
        out = proj(feats)
    print("vision + projector forward:", tuple(feats.shape), "->", tuple(out.shape))

    tok = transformers.AutoTokenizer.from_pretrained(os.path.join(model_dir, "llm"))
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    c_ids = tok(continuation, add_special_tokens=False)["input_ids"]
    print("continuation ids: transformers", c_ids, "vila", ours["token_ids"])
    ok &= c_ids == ours["token_ids"]
    ids = torch.tensor([p_ids + c_ids])
    with torch.no_grad():
        logp = torch.log_softmax(llm(ids).logits[0].double(), dim=-1)
    theirs = [float(logp[len(p_ids) - 1 + i, t]) for i, t in enumerate(c_ids)]
    diff = max(abs(a - b) for a, b in zip(theirs, ours["token_logprobs"]))
    print("token logprobs: transformers", [round(x, 6) for x in theirs])
    print("                vila        ", [round(x, 6) for x in ours["token_logprobs"]])
    print("max |diff| %.3g (tolerance %g)" % (diff, TOL))
    ok &= diff <= TOL
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
