#!/usr/bin/env python3
"""Builds the tiny model fixtures under tests/fixtures/models/ and their fp32 reference outputs.

Runs where PyTorch + transformers + tokenizers + sentencepiece + safetensors are installed (the lent
GPU machine; see scripts/run_golden_on_device.sh). Everything is computed on the CPU in float32
(no TF32), with a fixed seed per model.

Fixtures (see docs/fixtures.md):
  nvila-qwen2-untied  NVILA "vila-upload" layout, Qwen2 LLM (GQA 2, untied), slow Qwen2 tokenizer files
  nvila-qwen2-tied    same layout, tied embeddings, MHA, LLM weights sharded into 2 files
  vila15-llama2       VILA1.5 layout, Llama-2 style LLM, SentencePiece tokenizer.model
  llama3-plain        plain HF folder, Llama-3 style (GQA 4/1), bf16 weights, tokenizer.json
  qwen2-plain         plain HF folder, Qwen2 (tied, GQA 2), tokenizer.json

For each: reference.json (prompts, input ids, greedy continuation), reference_logits.safetensors
(fp32 logits [T, vocab_size] per prompt) and tokenizer_ref.jsonl (ids of the first 300 lines of
tests/fixtures/tokenizer/sentences.jsonl, add_special_tokens=False).

Usage: python3 scripts/make_golden.py [--only NAME[,NAME]] [--out DIR]
"""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTENCES = os.path.join(ROOT, "tests/fixtures/tokenizer/sentences.jsonl")
REAL_TOKENIZERS = os.path.join(ROOT, ".devdata/tokenizers")

QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# VILA conversation templates (llava/conversation.py), user turn + generation prompt.
TEMPLATES = {
    "qwen2": "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\n{msg}<|im_end|>\n"
             "<|im_start|>assistant\n",
    "vicuna_v1": "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                 "helpful, detailed, and polite answers to the user's questions. USER: {msg} ASSISTANT:",
    "llama_3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful language and "
               "vision assistant. You are able to understand the visual content that the user provides, and assist "
               "the user with a variety of tasks using natural language.<|eot_id|><|start_header_id|>user"
               "<|end_header_id|>\n\n{msg}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
}

RAW_SHORT = ("The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election "
             "produced no evidence that any irregularities took place.")
RAW_HARD = "def f(x):\n    return x * 2  # 2x\n\nCaf\u00e9 na\u00efve \u2014 \u6771\u4eac \U0001F600 1234567, it's 'fine'!"
CHAT_MSG_1 = "What is the capital of France? Answer in one word."
CHAT_MSG_2 = "List three numbers: 7, 42 and 1999.\nThen add them up."

N_GREEDY = 12
N_TOKREF = 300
SENTINEL, IMAGE, VIDEO = "<vila/sentinel>", "<image>", "<vila/video>"


def log(*a):
    print(*a, flush=True)


def load_texts():
    with open(SENTENCES, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def added_token_entry(content, special=True):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": special}


def dump_json(path, obj, indent=2, sort_keys=False):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False) + "\n")


def safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def list_files(d):
    out = []
    for r, _, fs in os.walk(d):
        for fn in fs:
            p = os.path.join(r, fn)
            out.append(f"{os.path.relpath(p, d)} ({os.path.getsize(p)} B)")
    return sorted(out)


# ----------------------------------------------------------------------------- tokenizers


def train_bytelevel_bpe(template_name, base_vocab, texts, ignore_merges):
    """Byte-level BPE with the pipeline (normalizer / pre-tokenizer / decoder) of a real tokenizer.json,
    trained like transformers' train_new_from_iterator: empty vocab + BpeTrainer with the byte alphabet."""
    from tokenizers import Tokenizer, pre_tokenizers, trainers

    with open(os.path.join(REAL_TOKENIZERS, template_name, "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    if isinstance(j.get("default"), dict) and "model" in j["default"]:
        j = j["default"]  # export_npm_tokenizers.js also nests a copy under "default" (see make_tokenizer_refs.py)
    j["added_tokens"] = []
    j["post_processor"] = None
    j["model"]["vocab"] = {}
    j["model"]["merges"] = []
    tok = Tokenizer.from_str(json.dumps(j))
    trainer = trainers.BpeTrainer(vocab_size=base_vocab, min_frequency=2, show_progress=False, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([t for t in texts if t], trainer=trainer)
    j2 = json.loads(tok.to_str())
    j2["model"]["ignore_merges"] = ignore_merges
    return Tokenizer.from_str(json.dumps(j2))


def with_added(core, specials):
    """Copy of `core` with special added tokens appended (ids = current size, size+1, ...)."""
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_str(core.to_str())
    tok.add_special_tokens([AddedToken(s, single_word=False, lstrip=False, rstrip=False, normalized=False,
                                       special=True) for s in specials])
    return tok


def hf_fast_class():
    import transformers

    return getattr(transformers, "PreTrainedTokenizerFast", None) or getattr(transformers, "TokenizersBackend")


def save_fast_tokenizer(d, tok, chat_template=None, **special):
    """Saves a tokenizers.Tokenizer through transformers (what HF writes), returns the list of files written."""
    before = set(os.listdir(d)) if os.path.isdir(d) else set()
    hf = hf_fast_class()(tokenizer_object=tok, **{k: v for k, v in special.items() if v is not None})
    if chat_template is not None:
        hf.chat_template = chat_template
    hf.save_pretrained(d)
    written = sorted(set(os.listdir(d)) - before)
    log(f"  transformers wrote tokenizer files: {written}")
    return written


def write_qwen2_slow_tokenizer(d, core, in_vocab_specials, media, eos, bos, pad, extra_special):
    """NVILA ships the LLM tokenizer in the slow Qwen2 format (vocab.json + merges.txt + added_tokens.json +
    special_tokens_map.json + tokenizer_config.json, no tokenizer.json), as written by transformers 4.4x's
    Qwen2Tokenizer. transformers 5 only writes tokenizer.json, so these files are written here in that format."""
    import transformers

    j = json.loads(core.to_str())
    vocab = j["model"]["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")))
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(m + "\n")
    base = len(vocab)
    added = {t: base + i for i, t in enumerate(list(in_vocab_specials) + list(media))}
    dump_json(os.path.join(d, "added_tokens.json"), added, sort_keys=True)
    tok_entry = lambda s: {"content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    dump_json(os.path.join(d, "special_tokens_map.json"), {
        "additional_special_tokens": list(extra_special),
        "bos_token": tok_entry(bos), "eos_token": tok_entry(eos), "pad_token": tok_entry(pad)}, sort_keys=True)
    cfg = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(i): added_token_entry(t) for t, i in sorted(added.items(), key=lambda x: x[1])},
        "additional_special_tokens": list(extra_special),
        "bos_token": bos,
        "chat_template": QWEN2_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": eos,
        "errors": "replace",
        "legacy": False,
        "model_max_length": 4096,
        "pad_token": pad,
        "padding_side": "right",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    dump_json(os.path.join(d, "tokenizer_config.json"), cfg, sort_keys=True)
    # For the docs: what does transformers itself write for this tokenizer?
    try:
        from transformers import AutoTokenizer

        t = AutoTokenizer.from_pretrained(d)
        with tempfile.TemporaryDirectory() as tmp:
            t.save_pretrained(tmp)
            log(f"  (note) {type(t).__name__}.save_pretrained of the slow-format folder writes: {list_files(tmp)}")
            tc = json.load(open(os.path.join(tmp, "tokenizer_config.json"), encoding="utf-8"))
            log(f"  (note) its tokenizer_config keys: {sorted(tc.keys())}")
    except Exception as e:  # informational only
        log(f"  (note) re-save of slow-format folder failed: {e!r}")
    return base + len(in_vocab_specials), added


def train_spm(d, texts, vocab_size=800):
    import sentencepiece as spm

    # A fixed scratch path: tokenizer.model records trainer_spec.input / model_prefix, so a random temp dir
    # would make the file differ from run to run (the pieces do not).
    tmp = os.path.join(tempfile.gettempdir(), "vila_cpp_spm_train")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        inp = os.path.join(tmp, "in.txt")
        with open(inp, "w", encoding="utf-8", newline="\n") as f:
            for t in texts:
                t = t.replace("\r", " ").replace("\n", " ")
                if t.strip():
                    f.write(t + "\n")
        kw = dict(input=inp, model_prefix=os.path.join(tmp, "sp"), vocab_size=vocab_size, model_type="bpe",
                  byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, unk_piece="<unk>", bos_piece="<s>",
                  eos_piece="</s>", character_coverage=0.9995, split_digits=True, allow_whitespace_only_pieces=True,
                  normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
                  num_threads=1, shuffle_input_sentence=False, max_sentence_length=8192)
        try:
            with open(os.devnull, "w") as devnull:
                spm.SentencePieceTrainer.train(logstream=devnull, **kw)
        except TypeError:
            spm.SentencePieceTrainer.train(**kw)
        shutil.copyfile(os.path.join(tmp, "sp.model"), os.path.join(d, "tokenizer.model"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
    log(f"  sentencepiece {spm.__version__}: trained {sp.get_piece_size()} pieces")
    return sp


def write_llama_spm_config(d, media, n_vocab):
    added = {"0": added_token_entry("<unk>"), "1": added_token_entry("<s>"), "2": added_token_entry("</s>")}
    for i, t in enumerate(media):
        added[str(n_vocab + i)] = added_token_entry(t)
    cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": 4096,
        "pad_token": "<unk>",
        "padding_side": "right",
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    dump_json(os.path.join(d, "tokenizer_config.json"), cfg, sort_keys=True)
    tok_entry = lambda s: {"content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    dump_json(os.path.join(d, "special_tokens_map.json"), {
        "bos_token": tok_entry("<s>"), "eos_token": tok_entry("</s>"), "pad_token": "<unk>",
        "unk_token": tok_entry("<unk>")}, sort_keys=True)
    dump_json(os.path.join(d, "added_tokens.json"), {t: n_vocab + i for i, t in enumerate(media)}, sort_keys=True)


class CoreTokenizer:
    """Minimal stand-in with the AutoTokenizer calls used here, over a tokenizers.Tokenizer; used only if
    transformers cannot load a saved tokenizer folder (then reference.json says so in "tokenizer_source")."""

    def __init__(self, tk, bos=None, eos=None, chat_template=None):
        self.tk, self.bos_token, self.eos_token, self.chat_template = tk, bos, eos, chat_template
        self.vocab_size = tk.get_vocab_size(with_added_tokens=False)

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": self.tk.encode(text, add_special_tokens=add_special_tokens).ids}

    def __len__(self):
        return self.tk.get_vocab_size(with_added_tokens=True)

    def decode(self, ids, skip_special_tokens=False):
        return self.tk.decode(ids, skip_special_tokens=skip_special_tokens)

    def get_vocab(self):
        return self.tk.get_vocab(with_added_tokens=True)

    def convert_tokens_to_ids(self, toks):
        return [self.tk.token_to_id(t) for t in toks]

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        import jinja2

        return jinja2.Template(self.chat_template).render(messages=messages, bos_token=self.bos_token,
                                                          eos_token=self.eos_token,
                                                          add_generation_prompt=add_generation_prompt)


def hf_encode(tok, text):
    return list(tok(text, add_special_tokens=False)["input_ids"])


# ----------------------------------------------------------------------------- models


def set_rope_theta(cfg, theta):
    """transformers 5 keeps RoPE settings in `rope_parameters`; only fall back to `rope_theta` without it
    (setting the attribute on a v5 config would add a key that transformers itself does not write)."""
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict):
        rp["rope_theta"] = float(theta)
        rp.setdefault("rope_type", "default")
    elif getattr(cfg, "rope_theta", None) != theta:
        cfg.rope_theta = float(theta)


def effective_rope_theta(cfg):
    rp = getattr(cfg, "rope_parameters", None)
    if isinstance(rp, dict) and "rope_theta" in rp:
        return float(rp["rope_theta"])
    return float(getattr(cfg, "rope_theta"))


def init_weights(model, seed, tied=False):
    """Deterministic, deliberately non-default init: larger weights so logits are well spread, and norm
    weights / biases away from 1 / 0 so an engine that ignores them fails the comparison.

    Tied embeddings: with the plain scales a random tied model's greedy continuation just repeats one token
    (logit_t = norm(h) . e_t favours the token already in the residual stream), which makes the greedy test
    weak. For tied models the embedding is smaller (0.05), attention sharper (q/k 0.3), the residual
    branches larger (o/down 0.15) and the final norm weight ~4, which gives varied continuations and logits
    of the same spread as the untied models."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = p.shape
            if p.dim() == 1 and ("norm" in name or "layernorm" in name):
                v = 1.0 + 0.1 * torch.randn(shape, generator=g)
                if tied and name == "model.norm.weight":
                    v = 4.0 * v
            elif p.dim() == 1:
                v = 0.1 * torch.randn(shape, generator=g)
            elif "embed_tokens" in name or "lm_head" in name:
                v = (0.05 if tied else 0.2) * torch.randn(shape, generator=g)
            elif "q_proj" in name or "k_proj" in name:
                v = (0.3 if tied else 0.15) * torch.randn(shape, generator=g)
            elif tied and ("o_proj" in name or "down_proj" in name):
                v = 0.15 * torch.randn(shape, generator=g)
            else:
                v = 0.08 * torch.randn(shape, generator=g)
            p.copy_(v.to(p.dtype))


def build_llm(arch, vocab_size, seed, *, heads, kv_heads, tie, rope_theta, rms_eps, eos_id=None, bos_id=None,
              pad_id=None):
    import torch
    import transformers

    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
                  rms_norm_eps=rms_eps, tie_word_embeddings=tie, rope_theta=rope_theta, hidden_act="silu",
                  bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id, attention_dropout=0.0)
    if arch == "qwen2":
        cfg = transformers.Qwen2Config(use_sliding_window=False, **common)
        cls = transformers.Qwen2ForCausalLM
    else:
        cfg = transformers.LlamaConfig(head_dim=16, attention_bias=False, mlp_bias=False, **common)
        cls = transformers.LlamaForCausalLM
    set_rope_theta(cfg, rope_theta)
    torch.manual_seed(seed)
    model = cls(cfg)
    init_weights(model, seed, tied=tie)
    model.eval()
    return model


def save_llm(model, d, *, shards=1, bf16=False):
    import torch

    os.makedirs(d, exist_ok=True)
    if bf16:
        model = model.to(torch.bfloat16)
    if shards == 1:
        model.save_pretrained(d)
    else:
        total = sum(p.numel() * p.element_size() for p in model.parameters())
        ok = False
        for frac in (0.6, 0.55, 0.65, 0.5, 0.7, 0.75, 0.45, 0.8):
            with tempfile.TemporaryDirectory() as tmp:
                model.save_pretrained(tmp, max_shard_size=int(total * frac))
                n = len([f for f in os.listdir(tmp) if f.endswith(".safetensors")])
                if n == shards:
                    for fn in os.listdir(tmp):
                        shutil.copyfile(os.path.join(tmp, fn), os.path.join(d, fn))
                    ok = True
                    log(f"  sharded into {n} files with max_shard_size={int(total * frac)} (total {total} B)")
                    break
        if not ok:
            log(f"  PROBLEM: save_pretrained(max_shard_size=...) never gave {shards} shards; sharding by hand")
            manual_shards(model, d, shards)
    if bf16:
        model.to(torch.float32)
    files = [f for f in os.listdir(d) if f.endswith(".safetensors")]
    dtypes = set()
    keys = set()
    for f in files:
        h = safetensors_header(os.path.join(d, f))
        for k, v in h.items():
            if k != "__metadata__":
                dtypes.add(v["dtype"])
                keys.add(k)
    log(f"  weights: {sorted(files)} dtypes {sorted(dtypes)} tensors {len(keys)} lm_head {'lm_head.weight' in keys}")
    return keys, dtypes


def manual_shards(model, d, n):
    """HF-format sharding (model-0000i-of-0000n.safetensors + model.safetensors.index.json) done by hand."""
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        for fn in os.listdir(tmp):
            if not fn.endswith(".safetensors"):
                shutil.copyfile(os.path.join(tmp, fn), os.path.join(d, fn))
        sd = load_file(os.path.join(tmp, "model.safetensors"))
    keys = list(sd.keys())
    total = sum(t.numel() * t.element_size() for t in sd.values())
    weight_map, cur, acc, idx = {}, {}, 0, 1
    for i, k in enumerate(keys):
        cur[k] = sd[k]
        acc += sd[k].numel() * sd[k].element_size()
        if (acc >= total * idx / n and idx < n) or i == len(keys) - 1:
            fn = f"model-{idx:05d}-of-{n:05d}.safetensors"
            save_file(cur, os.path.join(d, fn), metadata={"format": "pt"})
            weight_map.update({kk: fn for kk in cur})
            cur, idx = {}, idx + 1
    dump_json(os.path.join(d, "model.safetensors.index.json"),
              {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})


def to_released_style(cfg):
    """transformers 5 writes `dtype` and `rope_parameters`; the released NVILA/VILA configs (transformers 4.4x)
    have `torch_dtype` and top-level `rope_theta` / `rope_scaling`. Rewrites a saved config dict to the latter."""
    cfg = dict(cfg)
    rp = cfg.pop("rope_parameters", None)
    if isinstance(rp, dict):
        cfg["rope_theta"] = rp.get("rope_theta", cfg.get("rope_theta"))
        extra = {k: v for k, v in rp.items() if k not in ("rope_theta", "rope_type")}
        cfg["rope_scaling"] = None if rp.get("rope_type", "default") == "default" and not extra else rp
    if "dtype" in cfg and "torch_dtype" not in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    return dict(sorted(cfg.items()))


def load_reference_model(d):
    import torch
    from transformers import AutoModelForCausalLM

    kw = dict(attn_implementation="eager", output_loading_info=True)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, **kw)
    except TypeError:
        model, info = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, **kw)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        raise RuntimeError(f"loading {d}: {bad}")
    model.eval()
    assert next(model.parameters()).dtype == torch.float32
    return model


def check_rope(model, theta, head_dim=16):
    import torch

    rot = None
    for name, mod in model.named_modules():
        if hasattr(mod, "inv_freq") and isinstance(getattr(mod, "inv_freq"), torch.Tensor):
            rot = mod
            break
    if rot is None:
        log("  WARNING: no rotary module with inv_freq found; rope theta not checked")
        return
    expect = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    got = rot.inv_freq.float().cpu()
    if got.shape != expect.shape or not torch.allclose(got, expect, rtol=1e-5, atol=0):
        raise RuntimeError(f"rotary inv_freq does not match theta {theta}: {got[:4].tolist()} vs {expect[:4].tolist()}")


def run_prompts(model, vocab_size, prompts):
    import torch

    tensors = {}
    for i, p in enumerate(prompts):
        ids = torch.tensor([p["input_ids"]], dtype=torch.long)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :, :vocab_size].float().contiguous()
        seq = list(p["input_ids"])
        greedy = []
        margin = float("inf")
        with torch.no_grad():
            for _ in range(N_GREEDY):
                lg = model(input_ids=torch.tensor([seq], dtype=torch.long)).logits[0, -1, :vocab_size].float()
                nxt = int(torch.argmax(lg).item())
                t2 = torch.topk(lg, 2).values
                margin = min(margin, float(t2[0] - t2[1]))
                greedy.append(nxt)
                seq.append(nxt)
        top = torch.topk(logits[-1], 5)
        p["logits_tensor"] = f"prompt{i}"
        p["logits_shape"] = list(logits.shape)
        p["logits_max_abs"] = float(logits.abs().max().item())
        p["last_top5"] = [[int(a), float(b)] for a, b in zip(top.indices.tolist(), top.values.tolist())]
        p["greedy_ids"] = greedy
        p["greedy_min_margin"] = margin  # smallest top-1 minus top-2 logit over the greedy steps
        tensors[f"prompt{i}"] = logits.clone()
    return tensors


def make_prompts(tok, template, texts, bos_id=None):
    def enc(text, add_bos=False):
        ids = hf_encode(tok, text)
        return ([bos_id] + ids) if add_bos else ids

    long_parts, long_text = [], ""
    for t in texts[40:]:
        # plain corpus sentences only (no special-token look-alikes, control characters or odd unicode)
        if len(t) < 40 or not t.isprintable() or not t.isascii() or "<" in t or ">" in t:
            continue
        long_parts.append(t)
        long_text = " ".join(long_parts)
        if len(enc(long_text)) >= 100:
            break
    prompts = [
        {"name": "raw_short", "kind": "raw", "message": None, "text": RAW_SHORT},
        {"name": "raw_long", "kind": "raw", "message": None, "text": long_text},
        {"name": "chat_1", "kind": "chat", "message": CHAT_MSG_1, "text": TEMPLATES[template].format(msg=CHAT_MSG_1)},
        {"name": "raw_hard", "kind": "raw", "message": None, "text": RAW_HARD},
        {"name": "chat_2", "kind": "chat", "message": CHAT_MSG_2, "text": TEMPLATES[template].format(msg=CHAT_MSG_2)},
    ]
    for p in prompts:
        add_bos = p["kind"] == "chat" and template == "vicuna_v1"
        p["add_bos"] = add_bos
        p["input_ids"] = enc(p["text"], add_bos)
        p["template"] = template if p["kind"] == "chat" else None
    return prompts


def hf_chat_text(tok, msg):
    try:
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template([{"role": "user", "content": msg}], tokenize=False,
                                           add_generation_prompt=True)
    except Exception as e:
        return f"<apply_chat_template failed: {e!r}>"
    return None


def write_references(out_dir, name, layout, arch, tok_dir, template, texts, vocab_size, seed, weights_dtype,
                     rope_theta, extra=None, spm_proc=None, bos_id=None, fallback_tok=None):
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    tokenizer_source = "transformers.AutoTokenizer.from_pretrained(llm_dir)"
    try:
        tok = AutoTokenizer.from_pretrained(tok_dir)
    except Exception as e:
        if fallback_tok is None:
            raise
        traceback.print_exc(file=sys.stdout)
        log(f"  PROBLEM: AutoTokenizer could not load {tok_dir} ({e!r}); using the in-memory tokenizers object")
        tok = fallback_tok
        tokenizer_source = f"tokenizers.Tokenizer used to write the files (AutoTokenizer failed: {e!r})"
    log(f"  AutoTokenizer -> {type(tok).__name__}, len {len(tok)}, vocab_size(base) {getattr(tok, 'vocab_size', None)}")
    # tokenizer_ref.jsonl
    n_spm_diff = 0
    with open(os.path.join(out_dir, "tokenizer_ref.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for t in texts[:N_TOKREF]:
            rec = {"ids": hf_encode(tok, t)}
            if spm_proc is not None:
                rec["spm_ids"] = spm_proc.encode(t)
                n_spm_diff += rec["spm_ids"] != rec["ids"]
            f.write(json.dumps(rec) + "\n")
    if spm_proc is not None:
        log(f"  HF ids differ from the sentencepiece library on {n_spm_diff}/{N_TOKREF} lines")

    model = load_reference_model(tok_dir)
    theta = effective_rope_theta(model.config)
    if abs(theta - rope_theta) > 1e-6 * rope_theta:
        raise RuntimeError(f"loaded rope theta {theta} != intended {rope_theta}")
    check_rope(model, rope_theta)
    assert model.config.vocab_size == vocab_size, (model.config.vocab_size, vocab_size)
    prompts = make_prompts(tok, template, texts, bos_id=bos_id)
    for p in prompts:
        if max(p["input_ids"]) >= vocab_size:
            raise RuntimeError(f"prompt {p['name']} has ids >= vocab_size")
    tensors = run_prompts(model, vocab_size, prompts)
    for p in prompts:
        p["greedy_text"] = tok.decode(p["greedy_ids"], skip_special_tokens=False)
        if p["kind"] == "chat":
            p["hf_chat_template_text"] = hf_chat_text(tok, p["message"])
    save_file(tensors, os.path.join(out_dir, "reference_logits.safetensors"), metadata={"format": "pt"})

    c = model.config
    specials = {}
    for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[BOS]", "[PAD]", SENTINEL, IMAGE, VIDEO, "<s>", "</s>",
              "<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
              "<|eot_id|>"]:
        if t in tok.get_vocab():
            specials[t] = tok.get_vocab()[t]
    ref = {
        "model": name,
        "layout": layout,
        "arch": arch,
        "llm_dir": os.path.relpath(tok_dir, out_dir),
        "vocab_size": vocab_size,
        "tokenizer_len": len(tok),
        "template": template,
        "tokenizer_source": tokenizer_source,
        "weights_dtype": weights_dtype,
        "compute": "float32 on CPU, attn_implementation=eager, logits restricted to ids < vocab_size",
        "seed": seed,
        "config": {
            "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": c.num_key_value_heads,
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
            "rope_theta": theta, "rms_norm_eps": c.rms_norm_eps,
            "tie_word_embeddings": bool(getattr(c, "tie_word_embeddings", False)),
            "max_position_embeddings": c.max_position_embeddings,
        },
        "special_tokens": specials,
        "bos_token": tok.bos_token, "eos_token": tok.eos_token,
        "n_greedy": N_GREEDY,
        "prompts": prompts,
        "generator": f"transformers {transformers.__version__}, torch {torch.__version__}",
    }
    if extra:
        ref.update(extra)
    dump_json(os.path.join(out_dir, "reference.json"), ref)
    log(f"  {len(prompts)} prompts, T = {[len(p['input_ids']) for p in prompts]}, "
        f"max|logit| = {max(p['logits_max_abs'] for p in prompts):.3f}, greedy[0] = {prompts[0]['greedy_ids']}")
    return tok


def check_same_ids(tok_hf, tok_core, texts, what):
    diff = []
    for i, t in enumerate(texts):
        a = hf_encode(tok_hf, t)
        b = tok_core.encode(t, add_special_tokens=False).ids
        if a != b:
            diff.append(i)
    log(f"  {what}: HF-loaded ids == tokenizers-core ids on {len(texts) - len(diff)}/{len(texts)} lines"
        + (f"; first differing lines {diff[:5]}" if diff else ""))
    return diff


# ----------------------------------------------------------------------------- NVILA layout pieces


def save_vision_tower(d, seed, select_layer_note=None):
    import torch
    import transformers

    os.makedirs(d, exist_ok=True)
    cfg = transformers.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=2, num_channels=3, image_size=28, patch_size=14,
                                          hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    torch.manual_seed(seed)
    vt = transformers.SiglipVisionModel(cfg)
    vt.eval()
    vt.save_pretrained(d)
    try:
        ip = transformers.SiglipImageProcessor(do_resize=True, size={"height": 28, "width": 28}, resample=3,
                                               do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                                               image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
        ip.save_pretrained(d)
    except Exception as e:
        log(f"  SiglipImageProcessor save failed ({e!r}); writing preprocessor_config.json by hand")
        dump_json(os.path.join(d, "preprocessor_config.json"), {
            "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5], "processor_class":
            "SiglipProcessor", "resample": 3, "rescale_factor": 1 / 255, "size": {"height": 28, "width": 28}})
    c = to_released_style(json.load(open(os.path.join(d, "config.json"), encoding="utf-8")))
    dump_json(os.path.join(d, "config.json"), c)
    return c, 32


def save_mm_projector(d, mm_hidden, llm_hidden, seed):
    import torch
    import transformers
    from safetensors.torch import save_file

    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    c4 = 4 * mm_hidden
    t = {
        "layers.1.weight": 1.0 + 0.1 * torch.randn(c4, generator=g),
        "layers.1.bias": 0.1 * torch.randn(c4, generator=g),
        "layers.2.weight": 0.05 * torch.randn(llm_hidden, c4, generator=g),
        "layers.2.bias": 0.05 * torch.randn(llm_hidden, generator=g),
        "layers.4.weight": 0.1 * torch.randn(llm_hidden, llm_hidden, generator=g),
        "layers.4.bias": 0.05 * torch.randn(llm_hidden, generator=g),
    }
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(d, "model.safetensors"),
              metadata={"format": "pt"})
    cfg = {"architectures": ["MultimodalProjector"], "mm_projector_type": "mlp_downsample",
           "model_type": "v2l_projector", "torch_dtype": "float32", "transformers_version": transformers.__version__}
    dump_json(os.path.join(d, "config.json"), cfg)
    return cfg


def write_top_config(root, name, llm_cfg, vt_cfg, proj_cfg, *, mm_hidden, nvila):
    import transformers

    def sub(cfg, folder):
        c = dict(cfg)
        c["_name_or_path"] = f"runs/train/{name}/model/{folder}"
        return c

    top = {
        "_name_or_path": f"runs/train/{name}/model",
        "architectures": ["LlavaLlamaModel"],
        "chat_template": None,
        "drop_path_rate": 0.0,
        "fps": 0.0,
        "hidden_size": llm_cfg["hidden_size"],
        "image_aspect_ratio": "dynamic_s2" if nvila else "resize",
        "interpolate_mode": "linear",
        "llm_cfg": sub(llm_cfg, "llm"),
        "mm_hidden_size": mm_hidden,
        "mm_projector_cfg": sub(proj_cfg, "mm_projector"),
        "mm_projector_lr": None,
        "mm_projector_type": "mlp_downsample",
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_vision_select_feature": "cls_patch",
        "mm_vision_select_layer": -2,
        "model_dtype": "torch.bfloat16",
        "model_type": "llava_llama",
        "num_video_frames": 8,
        "resume_path": f"runs/train/{name}/model",
        "s2": False,
        "s2_max_split_size": 28,
        "s2_resize_output_to_scale_idx": -1,
        "s2_scales": "28,56,84",
        "soft_ce_std": 1.0,
        "transformers_version": transformers.__version__,
        "tune_language_model": True,
        "tune_mm_projector": True,
        "tune_vision_tower": True,
        "vision_resolution": -1,
        "vision_tower_cfg": sub(vt_cfg, "vision_tower"),
    }
    if nvila:
        top.update({
            "dynamic_s2": True,
            "image_encoder": {"_target_": "llava.model.encoders.BasicImageEncoder"},
            "max_tiles": 12,
            "num_time_tokens": 0,
            "time_token_format": "<t{t}>",
            "time_token_ids": [],
            "version": "auto",
            "video_encoder": {"_target_": "llava.model.encoders.TSPVideoEncoder", "pool_sizes": [[8, 1, 1]]},
        })
    else:
        top.update({"s2_scales": "384,768,1152", "s2_max_split_size": 384, "version": "auto"})
    dump_json(os.path.join(root, "config.json"), dict(sorted(top.items())))


def rewrite_llm_config_released(llm_dir):
    p = os.path.join(llm_dir, "config.json")
    c = to_released_style(json.load(open(p, encoding="utf-8")))
    dump_json(p, c)
    return c


# ----------------------------------------------------------------------------- fixtures


def make_nvila(out_root, name, texts, seed, *, tied, kv_heads, shards):
    root = os.path.join(out_root, name)
    llm = os.path.join(root, "llm")
    os.makedirs(llm, exist_ok=True)
    in_vocab = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "[BOS]", "[PAD]"]
    media = [SENTINEL, IMAGE, VIDEO]
    core = train_bytelevel_bpe("qwen3", 763, texts, ignore_merges=False)
    vocab_size, added = write_qwen2_slow_tokenizer(llm, core, in_vocab, media, eos="<|im_end|>", bos="[BOS]",
                                                   pad="[PAD]", extra_special=["<|im_start|>", "<|im_end|>"])
    log(f"  base vocab {core.get_vocab_size()}, vocab_size {vocab_size}, added {added}")
    full = with_added(core, in_vocab + media)
    model = build_llm("qwen2", vocab_size, seed, heads=4, kv_heads=kv_heads, tie=tied, rope_theta=1e6, rms_eps=1e-6,
                      eos_id=added["<|im_end|>"], bos_id=added["[BOS]"], pad_id=added["[PAD]"])
    keys, _ = save_llm(model, llm, shards=shards)
    if ("lm_head.weight" in keys) != (not tied):
        log(f"  PROBLEM: lm_head.weight present={'lm_head.weight' in keys} with tie_word_embeddings={tied}")
    llm_cfg = rewrite_llm_config_released(llm)
    vt_cfg, vt_hidden = save_vision_tower(os.path.join(root, "vision_tower"), seed + 100)
    mm_hidden = 3 * vt_hidden
    proj_cfg = save_mm_projector(os.path.join(root, "mm_projector"), mm_hidden, 64, seed + 200)
    write_top_config(root, name, llm_cfg, vt_cfg, proj_cfg, mm_hidden=mm_hidden, nvila=True)
    tok = write_references(root, name, "nvila", "Qwen2ForCausalLM", llm, "qwen2", texts, vocab_size, seed, "float32",
                           1e6, extra={"media_tokens": {t: added[t] for t in media}},
                           fallback_tok=CoreTokenizer(full, "[BOS]", "<|im_end|>", QWEN2_CHAT_TEMPLATE))
    ids = tok.convert_tokens_to_ids(media)
    assert ids == [added[t] for t in media], (ids, added)
    assert hf_encode(tok, "<image>") == [added[IMAGE]], hf_encode(tok, "<image>")
    check_same_ids(tok, full, texts, "slow-format Qwen2 files vs trained tokenizer")


def make_vila15(out_root, name, texts, seed):
    root = os.path.join(out_root, name)
    llm = os.path.join(root, "llm")
    os.makedirs(llm, exist_ok=True)
    sp = train_spm(llm, texts, 800)
    n = sp.get_piece_size()
    media = [SENTINEL, IMAGE, VIDEO]
    write_llama_spm_config(llm, media, n)
    model = build_llm("llama", n, seed, heads=4, kv_heads=4, tie=False, rope_theta=1e4, rms_eps=1e-5,
                      eos_id=2, bos_id=1, pad_id=0)
    save_llm(model, llm)
    llm_cfg = rewrite_llm_config_released(llm)
    vt_cfg, vt_hidden = save_vision_tower(os.path.join(root, "vision_tower"), seed + 100)
    proj_cfg = save_mm_projector(os.path.join(root, "mm_projector"), vt_hidden, 64, seed + 200)
    write_top_config(root, name, llm_cfg, vt_cfg, proj_cfg, mm_hidden=vt_hidden, nvila=False)
    tok = write_references(root, name, "nvila", "LlamaForCausalLM", llm, "vicuna_v1", texts, n, seed, "float32",
                           1e4, extra={"media_tokens": {t: n + i for i, t in enumerate(media)}}, spm_proc=sp, bos_id=1)
    assert tok.convert_tokens_to_ids(media) == [n, n + 1, n + 2], tok.convert_tokens_to_ids(media)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        log(f"  (note) {type(tok).__name__}.save_pretrained of the SentencePiece folder writes: {list_files(tmp)}")
        tc = json.load(open(os.path.join(tmp, "tokenizer_config.json"), encoding="utf-8"))
        log(f"  (note) its added_tokens_decoder ids: {sorted(int(k) for k in tc.get('added_tokens_decoder', {}))}")


def make_llama3(out_root, name, texts, seed):
    from tokenizers import processors

    root = os.path.join(out_root, name)
    os.makedirs(root, exist_ok=True)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    core = train_bytelevel_bpe("llama3", 763, texts, ignore_merges=True)
    j = json.loads(core.to_str())
    split = j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
    assert split == LLAMA3_SPLIT, split
    full = with_added(core, specials)
    bos_id = full.token_to_id("<|begin_of_text|>")
    full.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos_id)]),
    ])
    vocab_size = full.get_vocab_size()
    model = build_llm("llama", vocab_size, seed, heads=4, kv_heads=1, tie=False, rope_theta=5e5, rms_eps=1e-5,
                      bos_id=bos_id, eos_id=full.token_to_id("<|eot_id|>"))
    save_llm(model, root, bf16=True)
    save_fast_tokenizer(root, full, chat_template=LLAMA3_CHAT_TEMPLATE, bos_token="<|begin_of_text|>",
                        eos_token="<|eot_id|>")
    tj = json.load(open(os.path.join(root, "tokenizer.json"), encoding="utf-8"))
    log(f"  saved tokenizer.json: model.ignore_merges={tj['model'].get('ignore_merges')}, "
        f"added={[(a['id'], a['content']) for a in tj['added_tokens']]}, post={json.dumps(tj['post_processor'])[:200]}")
    tok = write_references(root, name, "hf", "LlamaForCausalLM", root, "llama_3", texts, vocab_size, seed, "bfloat16",
                           5e5, fallback_tok=CoreTokenizer(full, "<|begin_of_text|>", "<|eot_id|>",
                                                           LLAMA3_CHAT_TEMPLATE))
    check_same_ids(tok, full, texts, "HF-saved tokenizer.json vs trained tokenizer")


def make_qwen2_plain(out_root, name, texts, seed):
    root = os.path.join(out_root, name)
    os.makedirs(root, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = train_bytelevel_bpe("qwen3", 765, texts, ignore_merges=False)
    j = json.loads(core.to_str())
    assert j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == QWEN_SPLIT
    full = with_added(core, specials)
    vocab_size = full.get_vocab_size()
    model = build_llm("qwen2", vocab_size, seed, heads=4, kv_heads=2, tie=True, rope_theta=1e6, rms_eps=1e-6,
                      eos_id=full.token_to_id("<|im_end|>"), pad_id=full.token_to_id("<|endoftext|>"))
    keys, _ = save_llm(model, root)
    if "lm_head.weight" in keys:
        log("  PROBLEM: lm_head.weight saved although tie_word_embeddings=True")
    save_fast_tokenizer(root, full, chat_template=QWEN2_CHAT_TEMPLATE, eos_token="<|im_end|>",
                        pad_token="<|endoftext|>", unk_token=None)
    tok = write_references(root, name, "hf", "Qwen2ForCausalLM", root, "qwen2", texts, vocab_size, seed, "float32",
                           1e6, fallback_tok=CoreTokenizer(full, None, "<|im_end|>", QWEN2_CHAT_TEMPLATE))
    check_same_ids(tok, full, texts, "HF-saved tokenizer.json vs trained tokenizer")


FIXTURES = {
    "nvila-qwen2-untied": lambda o, t: make_nvila(o, "nvila-qwen2-untied", t, 1001, tied=False, kv_heads=2, shards=1),
    "nvila-qwen2-tied": lambda o, t: make_nvila(o, "nvila-qwen2-tied", t, 1002, tied=True, kv_heads=4, shards=2),
    "vila15-llama2": lambda o, t: make_vila15(o, "vila15-llama2", t, 1003),
    "llama3-plain": lambda o, t: make_llama3(o, "llama3-plain", t, 1004),
    "qwen2-plain": lambda o, t: make_qwen2_plain(o, "qwen2-plain", t, 1005),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/models"))
    a = ap.parse_args()

    import torch
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    log(f"transformers {transformers.__version__}, torch {torch.__version__}")
    texts = load_texts()
    names = [n for n in a.only.split(",") if n] or list(FIXTURES)
    failed = []
    for n in names:
        log(f"== {n}")
        d = os.path.join(a.out, n)
        if os.path.isdir(d):
            shutil.rmtree(d)
        try:
            FIXTURES[n](a.out, texts)
            log(f"  files: {list_files(d)}")
        except Exception:
            traceback.print_exc(file=sys.stdout)
            failed.append(n)
    if failed:
        log(f"FAILED: {failed}")
        sys.exit(1)
    log("all fixtures written")


if __name__ == "__main__":
    main()
