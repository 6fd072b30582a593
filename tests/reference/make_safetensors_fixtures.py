#!/usr/bin/env python3
"""Generates the model-loader fixtures from Hugging Face transformers / PyTorch.

What it writes (all under tests/fixtures/):
  configs/llama31_8b.json, mistral_nemo.json, qwen25_7b.json, qwen25_05b.json
      config.json files saved by transformers' LlamaConfig / MistralConfig /
      Qwen2Config with the published shapes of Llama-3.1-8B, Mistral-Nemo-12B,
      Qwen2.5-7B and Qwen2.5-0.5B (tied embeddings).
  configs/kv_head_defaults.json
      hand-written config.json dicts without `num_key_value_heads`, one per
      architecture (and one naming it by model_type only), each with the
      num_key_value_heads that transformers' config class gives it
      (LlamaConfig: num_attention_heads; MistralConfig and Qwen2Config have
      fixed defaults).
  configs/make_model_tiny_expected.json
      the config.json transformers writes for `muserve make-model --preset tiny`
      (F32); make_model_test compares make-model's config.json with it.
  safetensors/dtypes.safetensors
      written by the `safetensors` library: F32/F16/BF16 tensors of special
      values (signed zeros, subnormals, inf, nan, extremes, ties), every F16
      bit pattern with its exact float32 value, and float32 inputs with
      PyTorch's round-to-nearest-even float16 / bfloat16 conversions.
  safetensors/tiny_llama_sharded/
      a tiny random LlamaForCausalLM saved with save_pretrained(max_shard_size)
      into three shards plus model.safetensors.index.json, and expected.json
      with the float64 sum of every tensor (computed by PyTorch).
  safetensors/tiny_qwen2_bf16/
      a tiny Qwen2ForCausalLM (q/k/v biases, tied embeddings) in bfloat16,
      single model.safetensors, plus expected.json as above.

Run from the repository root (deterministic; rerunning rewrites the same bytes):
    python3 tests/reference/make_safetensors_fixtures.py

Optional check that transformers loads a make-model output directory (not run
in CI, which has no Python ML packages):
    build/muserve make-model --preset tiny --out /tmp/tiny
    python3 tests/reference/make_safetensors_fixtures.py --check-model-dir /tmp/tiny
It loads the directory with AutoModelForCausalLM / AutoTokenizer, runs a
forward pass and renders the chat template.
"""

import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (GenerationConfig, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def save_config(config, architecture, name):
    config.architectures = [architecture]
    tmp = os.path.join(ROOT, "configs", "_tmp")
    config.save_pretrained(tmp)
    shutil.move(os.path.join(tmp, "config.json"), os.path.join(ROOT, "configs", name))
    shutil.rmtree(tmp)


def write_configs():
    os.makedirs(os.path.join(ROOT, "configs"), exist_ok=True)
    # meta-llama/Llama-3.1-8B-Instruct
    save_config(
        LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                    max_position_embeddings=131072, rms_norm_eps=1e-5,
                    rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                     "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 8192},
                    bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
                    tie_word_embeddings=False, dtype=torch.bfloat16),
        "LlamaForCausalLM", "llama31_8b.json")
    # mistralai/Mistral-Nemo-Instruct-2407: head_dim 128 != 5120 / 32.
    save_config(
        MistralConfig(hidden_size=5120, intermediate_size=14336, num_hidden_layers=40,
                      num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                      vocab_size=131072, max_position_embeddings=1024000, rms_norm_eps=1e-5,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                      sliding_window=None, bos_token_id=1, eos_token_id=2,
                      tie_word_embeddings=False, dtype=torch.bfloat16),
        "MistralForCausalLM", "mistral_nemo.json")
    # Qwen/Qwen2.5-7B-Instruct
    save_config(
        Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                    num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                    max_position_embeddings=32768, rms_norm_eps=1e-6,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                    use_sliding_window=False, sliding_window=131072, max_window_layers=28,
                    bos_token_id=151643, eos_token_id=151645, tie_word_embeddings=False,
                    dtype=torch.bfloat16),
        "Qwen2ForCausalLM", "qwen25_7b.json")
    # Qwen/Qwen2.5-0.5B-Instruct: tied embeddings.
    save_config(
        Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                    num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                    max_position_embeddings=32768, rms_norm_eps=1e-6,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                    use_sliding_window=False, sliding_window=32768, max_window_layers=21,
                    bos_token_id=151643, eos_token_id=151645, tie_word_embeddings=True,
                    dtype=torch.bfloat16),
        "Qwen2ForCausalLM", "qwen25_05b.json")
    # What make-model's tiny preset must write (engine/model/make_model.cc).
    save_config(
        LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                    max_position_embeddings=2048, rms_norm_eps=1e-5,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                    tie_word_embeddings=False, dtype=torch.float32),
        "LlamaForCausalLM", "make_model_tiny_expected.json")


def write_kv_head_defaults():
    cases = []
    raw_configs = [
        (LlamaConfig, {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                       "hidden_size": 96, "num_attention_heads": 6}),
        (MistralConfig, {"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                         "hidden_size": 256, "num_attention_heads": 16}),
        (MistralConfig, {"model_type": "mistral", "hidden_size": 128, "num_attention_heads": 8}),
        (Qwen2Config, {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                       "hidden_size": 512, "num_attention_heads": 64}),
    ]
    for config_class, raw in raw_configs:
        raw = dict(raw, intermediate_size=128, num_hidden_layers=2, vocab_size=512,
                   max_position_embeddings=256, rms_norm_eps=1e-5, torch_dtype="float32")
        config = config_class.from_dict(raw)
        cases.append({"config": raw, "num_key_value_heads": config.num_key_value_heads})
    with open(os.path.join(ROOT, "configs", "kv_head_defaults.json"), "w") as f:
        json.dump(cases, f, indent=2, sort_keys=True)
        f.write("\n")


def special_values():
    f16_min_sub = 2.0 ** -24
    bf16_min_sub = 2.0 ** -133
    return [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.140625, 1.0 / 3.0, 65504.0, -65504.0, 65519.996,
            65520.0, 1e5, float("inf"), float("-inf"), float("nan"), f16_min_sub,
            -f16_min_sub, f16_min_sub * 0.5, f16_min_sub * 0.5000001, f16_min_sub * 1.5,
            f16_min_sub * 2.5, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -24, 6.0e-5, 1e-8, 1e-30,
            bf16_min_sub, -bf16_min_sub, 2.0 ** -126, 1e-40, 3.3895314e38, -3.4028235e38,
            1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8,
            1.00390625, 1.01171875, 2049.0, 4097.0]


def write_dtypes():
    rng = np.random.default_rng(1234)
    tensors = {}
    values = torch.tensor(special_values(), dtype=torch.float32)
    tensors["special_f32"] = values
    tensors["special_f16"] = values.to(torch.float16)
    tensors["special_bf16"] = values.to(torch.bfloat16)
    tensors["special_f16_as_f32"] = tensors["special_f16"].to(torch.float32)
    tensors["special_bf16_as_f32"] = tensors["special_bf16"].to(torch.float32)
    # Every float16 bit pattern, and PyTorch's float32 value for it.
    all_f16 = torch.from_numpy(np.arange(65536, dtype=np.uint16).view(np.float16).copy())
    tensors["all_f16"] = all_f16.reshape(256, 256)
    tensors["all_f16_as_f32"] = all_f16.to(torch.float32).reshape(256, 256)
    # float32 inputs across every magnitude, and PyTorch's rounding of them.
    exponents = rng.integers(-150, 130, size=3000).astype(np.float64)
    mantissas = rng.uniform(-2.0, 2.0, size=3000)
    with np.errstate(over="ignore"):  # the largest exponents overflow to inf on purpose
        random_values = (mantissas * np.exp2(exponents)).astype(np.float32)
    random_bits = rng.integers(0, 2 ** 32, size=1000, dtype=np.uint64).astype(np.uint32)
    inputs = np.concatenate([np.array(special_values(), dtype=np.float32), random_values,
                             random_bits.view(np.float32)])
    f32_inputs = torch.from_numpy(inputs)
    tensors["f32_inputs"] = f32_inputs
    tensors["f32_inputs_to_f16"] = f32_inputs.to(torch.float16)
    tensors["f32_inputs_to_bf16"] = f32_inputs.to(torch.bfloat16)
    tensors["matrix_bf16"] = torch.arange(-6, 6, dtype=torch.float32).reshape(3, 4).to(
        torch.bfloat16)
    tensors["scalar_f32"] = torch.tensor(42.5, dtype=torch.float32)
    save_file(tensors, os.path.join(ROOT, "safetensors", "dtypes.safetensors"),
              metadata={"format": "pt"})


def tensor_sums(model):
    return {name: float(t.detach().to(torch.float64).sum())
            for name, t in model.state_dict().items()}


def write_tiny_llama_sharded():
    out = os.path.join(ROOT, "safetensors", "tiny_llama_sharded")
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=64,
                         max_position_embeddings=128, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norm weights are ones at init; make them distinguishable
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model.save_pretrained(out, max_shard_size="10KB")
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"tensor_sums": tensor_sums(model)}, f, indent=2, sort_keys=True)
        f.write("\n")


def write_tiny_qwen2_bf16():
    out = os.path.join(ROOT, "safetensors", "tiny_qwen2_bf16")
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(1)
    config = Qwen2Config(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=64,
                         max_position_embeddings=128, rms_norm_eps=1e-6,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # biases are zeros at init; make them distinguishable
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model = model.to(torch.bfloat16)
    model.save_pretrained(out)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"tensor_sums": tensor_sums(model)}, f, indent=2, sort_keys=True)
        f.write("\n")


def check_model_dir(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hello!"}],
                                        add_generation_prompt=True, return_tensors="pt")
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    logits = model(ids).logits
    print(f"loaded {path}: {type(model).__name__}, logits {tuple(logits.shape)}, "
          f"prompt {tokenizer.decode(ids[0])!r}")
    assert torch.isfinite(logits).all()
    assert logits.shape[-1] == model.config.vocab_size


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check-model-dir", help="load a make-model directory with transformers")
    args = parser.parse_args()
    if args.check_model_dir:
        check_model_dir(args.check_model_dir)
        return
    torch.use_deterministic_algorithms(True)
    os.makedirs(os.path.join(ROOT, "safetensors"), exist_ok=True)
    write_configs()
    write_kv_head_defaults()
    write_dtypes()
    write_tiny_llama_sharded()
    write_tiny_qwen2_bf16()
    for directory, _, files in os.walk(ROOT):
        for name in files:  # safetensors writes 0600; fixtures are for everyone
            path = os.path.join(directory, name)
            if "safetensors" in path or "configs" in path:
                os.chmod(path, 0o644)


if __name__ == "__main__":
    sys.exit(main())
