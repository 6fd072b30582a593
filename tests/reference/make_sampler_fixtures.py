"""Generates the sampler's reference fixture with PyTorch and transformers.

Writes tests/fixtures/sampler/cases.json with three lists of cases over small
random float32 logits rows (masked entries, -inf, are written as null):

  penalties  (logits, prompt, output, repetition/presence/frequency penalty)
             -> penalised logits. The repetition penalty is transformers'
             RepetitionPenaltyLogitsProcessor over prompt + output; frequency
             and presence are vLLM's apply_penalties written in torch
             (logits -= frequency * output_counts; logits -= presence *
             output_mask), transformers having no processor for them.
  filters    (logits, optional history and penalties, temperature, top_k,
             top_p, min_p) -> the surviving token ids and their logits after
             TemperatureLogitsWarper, TopKLogitsWarper, MinPLogitsWarper and
             TopPLogitsWarper (transformers, in vLLM's order). Cases whose
             min_p or top_p cut lies within 1e-4 of a token are redrawn, so
             that float rounding cannot move a token across it.
  logprobs   logits -> torch.log_softmax and the 20 most likely tokens.

Deterministic (fixed torch seed, CPU); rerun from the repository root:
    python3 tests/reference/make_sampler_fixtures.py
"""

import json
import math
import os

import torch
from transformers import (MinPLogitsWarper, RepetitionPenaltyLogitsProcessor,
                          TemperatureLogitsWarper, TopKLogitsWarper,
                          TopPLogitsWarper)

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures",
                                    "sampler", "cases.json"))
MARGIN = 1e-4


def encode(row):
    """Float32 values as exact decimals; -inf as null."""
    return [None if math.isinf(v) else float(v) for v in row.tolist()]


def random_logits(gen, vocab, scale, masked):
    logits = torch.randn(vocab, generator=gen, dtype=torch.float32) * scale
    for index in torch.randperm(vocab, generator=gen)[:masked].tolist():
        logits[index] = float("-inf")
    return logits


def random_history(gen, vocab, prompt_len, output_len):
    prompt = torch.randint(0, vocab, (prompt_len,), generator=gen).tolist()
    # Outputs drawn from a few tokens so that counts above 1 occur.
    pool = torch.randint(0, vocab, (max(1, output_len // 2),), generator=gen)
    output = pool[torch.randint(0, len(pool), (output_len,), generator=gen)].tolist()
    return prompt, output


def penalise(logits, prompt, output, rep, presence, frequency):
    scores = logits.clone().unsqueeze(0)
    if prompt or output:
        ids = torch.tensor([prompt + output], dtype=torch.long)
        scores = RepetitionPenaltyLogitsProcessor(penalty=rep)(ids, scores)
    scores = scores.squeeze(0)
    counts = torch.zeros(scores.shape[0], dtype=torch.long)
    for token in output:
        counts[token] += 1
    frequencies = torch.tensor([frequency], dtype=torch.float32)
    presences = torch.tensor([presence], dtype=torch.float32)
    scores = scores.unsqueeze(0)
    scores -= frequencies.unsqueeze(1) * counts.unsqueeze(0)
    scores -= presences.unsqueeze(1) * (counts > 0).unsqueeze(0)
    return scores.squeeze(0)


def filter_logits(scores, temperature, top_k, top_p, min_p):
    """Returns the warped row, or None if a cut is too close to call."""
    ids = torch.zeros((1, 1), dtype=torch.long)
    x = TemperatureLogitsWarper(temperature)(ids, scores.clone().unsqueeze(0))
    if top_k > 0:
        x = TopKLogitsWarper(top_k)(ids, x)
    if min_p > 0:
        probs = torch.softmax(x.double(), dim=-1)
        ratio = probs / probs.max()
        if ((ratio - min_p).abs() < MARGIN).any():
            return None
        x = MinPLogitsWarper(min_p)(ids, x)
    if top_p < 1:
        probs = torch.sort(torch.softmax(x.double(), dim=-1), descending=True).values
        before = torch.cumsum(probs, dim=-1) - probs
        if ((before - top_p).abs() < MARGIN).any():
            return None
        x = TopPLogitsWarper(top_p)(ids, x)
    return x.squeeze(0)


def penalty_cases(gen):
    cases = []
    settings = [(1.3, 0.0, 0.0), (0.7, 0.0, 0.0), (1.0, 0.5, 0.0), (1.0, 0.0, 0.7),
                (1.0, -0.8, -0.3), (1.9, 1.1, 0.35), (1.15, 2.0, -2.0), (1.0, 0.0, 0.0)]
    for i, (rep, presence, frequency) in enumerate(settings):
        vocab = 48
        logits = random_logits(gen, vocab, 4.0, masked=3)
        logits[0] = 0.0  # A zero logit: neither divided nor multiplied visibly.
        prompt, output = random_history(gen, vocab, 10 + i, 14)
        expected = penalise(logits, prompt, output, rep, presence, frequency)
        cases.append({"logits": encode(logits), "prompt": prompt, "output": output,
                      "repetition_penalty": rep, "presence_penalty": presence,
                      "frequency_penalty": frequency, "expected": encode(expected)})
    return cases


def filter_cases(gen):
    settings = [  # temperature, top_k, top_p, min_p, with penalties
        (1.0, 5, 1.0, 0.0, False), (0.7, 1, 1.0, 0.0, False), (1.0, 0, 0.5, 0.0, False),
        (0.6, 0, 0.9, 0.0, False), (1.5, 0, 0.95, 0.0, False), (1.0, 0, 1.0, 0.1, False),
        (0.8, 0, 1.0, 0.3, False), (1.0, 20, 0.8, 0.0, False), (1.2, 40, 0.7, 0.05, False),
        (0.5, 0, 0.3, 0.2, True), (1.0, 10, 0.6, 0.01, True), (2.0, 0, 0.99, 0.0, True),
        (1.0, 0, 0.001, 0.0, False), (1.0, 0, 1.0, 0.999, False), (0.9, 300, 0.9, 0.0, False),
    ]
    cases = []
    for temperature, top_k, top_p, min_p, with_history in settings:
        while True:
            vocab = 256
            logits = random_logits(gen, vocab, 2.5, masked=7)
            case = {"logits": encode(logits), "temperature": temperature, "top_k": top_k,
                    "top_p": top_p, "min_p": min_p, "prompt": [], "output": [],
                    "repetition_penalty": 1.0, "presence_penalty": 0.0,
                    "frequency_penalty": 0.0}
            scores = logits
            if with_history:
                prompt, output = random_history(gen, vocab, 30, 20)
                case.update({"prompt": prompt, "output": output, "repetition_penalty": 1.2,
                             "presence_penalty": 0.4, "frequency_penalty": 0.3})
                scores = penalise(logits, prompt, output, 1.2, 0.4, 0.3)
            warped = filter_logits(scores, temperature, top_k, top_p, min_p)
            if warped is not None:
                break
        kept = [i for i, v in enumerate(warped.tolist()) if not math.isinf(v)]
        case["kept"] = kept
        case["kept_logits"] = [float(warped[i]) for i in kept]
        cases.append(case)
    return cases


def logprob_cases(gen):
    cases = []
    for vocab, scale, masked in [(64, 1.0, 0), (300, 6.0, 12), (30, 0.01, 4)]:
        logits = random_logits(gen, vocab, scale, masked)
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        finite = [(i, v) for i, v in enumerate(logprobs.tolist()) if not math.isinf(v)]
        top = sorted(finite, key=lambda e: (-e[1], e[0]))[:20]
        cases.append({"logits": encode(logits), "logprobs": encode(logprobs),
                      "top_ids": [i for i, _ in top], "top_logprobs": [v for _, v in top]})
    return cases


def main():
    gen = torch.Generator().manual_seed(20261126)
    fixture = {"penalties": penalty_cases(gen), "filters": filter_cases(gen),
               "logprobs": logprob_cases(gen)}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
