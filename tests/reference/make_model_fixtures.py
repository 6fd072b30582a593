"""Generates the CPU backend's reference fixtures with Hugging Face transformers.

For each architecture it builds a tiny random model (torch float32, seeded),
saves it with save_pretrained into tests/fixtures/models/<name>/ (config.json
and model.safetensors) and writes, beside it:
  reference.json        prompts, greedy tokens, offsets into the .bin file,
                        and the rotary inverse frequencies transformers uses
  reference_logits.bin  float32 little-endian logits rows, [rows, vocab]

Models:
  llama        LlamaForCausalLM, llama3 rope scaling, GQA 4/2, untied, F32
  qwen2        Qwen2ForCausalLM, q/k/v biases, tied embeddings, GQA 4/1, F32
  mistral      MistralForCausalLM, head_dim 24 != hidden/heads, GQA 4/1,
               sliding_window 8 (prompts longer than the window), F32
  llama_bf16   LlamaForCausalLM, linear rope scaling, BF16 weights; the
               reference runs in fp32 on the bf16 weights upcast (as Muserve does)

Logits come from the eager attention path, recomputing the whole sequence at
every greedy step (no KV cache), so they are independent of paged attention.

Run from the repository root (CPU only, deterministic, about half a minute):
    python3 tests/reference/make_model_fixtures.py
"""

import json
import math
import os
import shutil

import numpy as np
import torch
import transformers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")
GREEDY_STEPS = 32


def randomize(model, seed, embed_std):
    """Replaces transformers' init (zero biases, unit norms, tiny weights) with
    values that give well-separated logits: linear weights ~ N(0, 1/in),
    embeddings ~ N(0, embed_std), norms ~ 1 + N(0, 0.1), biases ~ N(0, 0.1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif "embed_tokens" in name:
                p.copy_(embed_std * noise)
            else:
                p.copy_(noise / math.sqrt(p.shape[1]))


def last_logits(model, tokens):
    with torch.no_grad():
        out = model(torch.tensor([tokens], dtype=torch.long))
    return out.logits[0].to(torch.float32)


def build(name, config_cls, model_cls, config_kwargs, prompts, seed, bf16=False, embed_std=0.5):
    torch.manual_seed(seed)
    config = config_cls(attn_implementation="eager", **config_kwargs)
    model = model_cls(config).eval()
    randomize(model, seed, embed_std)
    if bf16:
        model = model.to(torch.bfloat16)
    out_dir = os.path.join(OUT, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    for extra in ("generation_config.json",):
        path = os.path.join(out_dir, extra)
        if os.path.exists(path):
            os.remove(path)
    # The reference reloads the saved checkpoint in fp32: bf16 weights are
    # upcast exactly, and the rotary buffers are computed afresh in fp32 (a
    # model cast to bf16 in memory would also round inv_freq to bf16).
    model = model_cls.from_pretrained(out_dir, dtype=torch.float32,
                                      attn_implementation="eager").eval()

    rows = []

    def add(logits_2d):
        offset = sum(r.shape[0] for r in rows) * config.vocab_size
        rows.append(logits_2d.numpy().astype("<f4"))
        return offset

    ref = {"architecture": model_cls.__name__, "vocab_size": config.vocab_size, "prompts": []}
    for i, tokens in enumerate(prompts):
        logits = last_logits(model, tokens)
        entry = {"tokens": tokens, "last_logits_offset": add(logits[-1:])}
        if i == len(prompts) - 1:
            entry["all_logits_offset"] = add(logits)
        ref["prompts"].append(entry)

    # Greedy decoding from prompt 0: step i's logits chose token i.
    seq = list(prompts[0])
    greedy_tokens, greedy_rows = [], []
    for _ in range(GREEDY_STEPS):
        logits = last_logits(model, seq)[-1]
        token = int(torch.argmax(logits))
        top2 = torch.topk(logits, 2).values
        assert float(top2[0] - top2[1]) > 1e-3, f"{name}: near-tie in greedy decoding"
        greedy_tokens.append(token)
        greedy_rows.append(logits)
        seq.append(token)
    ref["greedy"] = {"prompt_index": 0, "tokens": greedy_tokens,
                     "logits_offset": add(torch.stack(greedy_rows))}
    ref["inv_freq"] = [float(x) for x in model.model.rotary_emb.inv_freq.to(torch.float32)]

    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    np.concatenate(rows, axis=0).tofile(os.path.join(out_dir, "reference_logits.bin"))


def prompts_for(vocab, lengths, seed):
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.integers(0, vocab, size=n)] for n in lengths]


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    common = dict(hidden_size=64, num_hidden_layers=2, max_position_embeddings=128,
                  rms_norm_eps=1e-5, initializer_range=0.02)

    build("llama", transformers.LlamaConfig, transformers.LlamaForCausalLM,
          dict(common, num_attention_heads=4, num_key_value_heads=2, intermediate_size=136,
               vocab_size=320, tie_word_embeddings=False, rope_theta=10000.0,
               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
          prompts_for(320, [5, 13, 40], 1), seed=11)

    build("qwen2", transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
          dict(common, num_attention_heads=4, num_key_value_heads=1, intermediate_size=128,
               vocab_size=300, tie_word_embeddings=True, rope_theta=1000000.0,
               use_sliding_window=False),
          # Tied embeddings with large rows make every token predict itself.
          prompts_for(300, [6, 17, 33], 2), seed=12, embed_std=0.15)

    build("mistral", transformers.MistralConfig, transformers.MistralForCausalLM,
          dict(common, num_attention_heads=4, num_key_value_heads=1, head_dim=24,
               intermediate_size=128, vocab_size=256, tie_word_embeddings=False,
               rope_theta=10000.0, sliding_window=8),
          prompts_for(256, [4, 11, 21], 3), seed=13)

    build("llama_bf16", transformers.LlamaConfig, transformers.LlamaForCausalLM,
          dict(common, num_attention_heads=4, num_key_value_heads=4, intermediate_size=128,
               vocab_size=288, tie_word_embeddings=False, rope_theta=10000.0,
               rope_scaling={"rope_type": "linear", "factor": 2.0}),
          prompts_for(288, [7, 12, 19], 4), seed=14, bf16=True)


if __name__ == "__main__":
    main()
