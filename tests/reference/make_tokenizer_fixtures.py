#!/usr/bin/env python3
"""Generates the tokenizer reference fixtures in tests/fixtures/tokenizer/.

What it writes (all with the Hugging Face `tokenizers` library, the reference
implementation that muserve's C++ Tokenizer must match exactly):

  <family>/tokenizer.json  a small BPE tokenizer (about 1000-2000 tokens),
                           trained deterministically on the corpus below and
                           configured like that family's real tokenizer.json:
      llama3             Split(Llama 3 regex, Isolated) + ByteLevel(use_regex
                         false), ignore_merges, <|begin_of_text|> etc. added
                         after the vocabulary, TemplateProcessing adding BOS.
      qwen2              NFC normalizer, Split(Qwen2 regex) + ByteLevel,
                         <|endoftext|> <|im_start|> <|im_end|>, no BOS, plus a
                         normalized non-special added token.
      gpt2               ByteLevel(use_regex true), <|endoftext|>, plus added
                         tokens exercising lstrip / rstrip / single_word /
                         normalized.
      llama2             legacy SentencePiece layout: normalizer
                         Sequence[Prepend("▁"), Replace(" ", "▁")], no
                         pre-tokenizer, byte_fallback with <0xNN> tokens,
                         <unk> <s> </s>, decoder Sequence[Replace,
                         ByteFallback, Fuse, Strip], TemplateProcessing BOS.
      mistral            same model, Metaspace pre-tokenizer with
                         prepend_scheme "first" and split false, [INST]
                         control tokens.
      metaspace_always   Metaspace(prepend_scheme "always", split true) with a
                         Metaspace decoder.
      llama2_normalized_specials
                         llama2 with <unk> <s> </s> marked normalized (as in
                         some conversions): matched after Prepend/Replace.
      byte_level_prefix_space
                         NFKC, Digits(individual_digits) + ByteLevel(
                         add_prefix_space, use_regex), lstrip+rstrip token.
  <family>/expected.json   for >= 200 test strings: ids with and without
                           special tokens, and Decode(ids_with_special) with
                           skip_special_tokens true and false; plus random id
                           sequences (including stray byte tokens) and their
                           decodings.
  demo/expected_<N>.json   (only with --demo-tool) the encodings, by HF
                           `tokenizers`, of the test strings under muserve's
                           built-in demo tokenizer of vocab_size N, whose JSON
                           is produced by the C++ `write_demo_tokenizer` tool.

Run from the repository root (deterministic; rerunning rewrites identical
files):

  cmake --build build --target write_demo_tokenizer
  python3 tests/reference/make_tokenizer_fixtures.py \
      --demo-tool build/tests/write_demo_tokenizer

Without --demo-tool the demo fixtures are left as they are.
"""

import argparse
import json
import os
import random
import subprocess
import tempfile

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,
                        normalizers, pre_tokenizers, processors, trainers)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "fixtures", "tokenizer")

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

PROSE = """\
The quick brown fox jumps over the lazy dog. A serving system answers many
requests at once: it batches prompts, streams tokens back, and keeps the
accelerator busy. When memory runs out it preempts the newest sequence and
recomputes it later, so no request is ever dropped. Users don't notice; they'd
only see a slightly longer wait. It's what we've built, and we'll keep it fast.
Tokenizers split text into pieces. Byte-level models never see an unknown
character, while SentencePiece models fall back to bytes for rare symbols.
Numbers like 3.14159, 2024-06-01, 1,000,000 and 42 appear in prose and tables.
"Quotes", (parentheses), [brackets], {braces}, <angles> and -- dashes -- too!
Le café était très bon, naïve façade, Ærøskøbing, São Paulo, Straße, coöperate.
你好，世界！今天天气很好。こんにちは世界。안녕하세요 세계. Привет, мир! Γειά σου κόσμε.
"""

CODE = """\
def fibonacci(n: int) -> list[int]:
    \"\"\"Returns the first n Fibonacci numbers.\"\"\"
    values = [0, 1]
    while len(values) < n:
        values.append(values[-1] + values[-2])
    return values[:n]

int main(int argc, char** argv) {
  std::vector<int> xs = {1, 2, 3};
  for (const auto& x : xs) {
    if (x % 2 == 0) std::cout << x << "\\n";
  }
  return 0;
}

{"model": "llama", "temperature": 0.7, "max_tokens": 128, "stream": true}
SELECT id, name FROM users WHERE age >= 18 ORDER BY name;
"""


def training_corpus():
  lines = (PROSE + CODE).splitlines()
  # Repeat with small variations so common pieces get merged.
  out = []
  for i in range(20):
    for line in lines:
      out.append(line if i % 2 == 0 else line.lower())
  return out


def test_strings():
  base = [
      "", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n\n", " \n ", "\t\t x",
      "Hello", "Hello world", "hello world", " Hello world", "Hello world ",
      "  leading and trailing  ", "multiple     spaces   here",
      "tabs\tand\ttabs", "line one\nline two\r\nline three\rline four",
      "trailing newline\n", "\n\nleading newlines", "a\u00a0b", "x\u3000y",
      "thin\u2009space", "ideographic\u3000\u3000spaces", "a\u0085b",
      "x \u0085 y", "\u0085", "line\u2028sep", "vt\u000bff\u000c", "a\u1680b",
      "mongolian\u180evowel", "  \u180e", "  \u0085", "  \u00a0 ",
      "I'm", "don't", "You'LL", "she'd", "they've", "it's", "IT'S",
      "we're here", "O'Brien's", "'s", "''quoted''",
      "0", "7", "42", "123", "1234", "12345678901234567890", "3.14159",
      "1,000,000", "2024-06-01T12:30:00Z", "-17.5e+3", "0x1F", "v1.2.3",
      "$100.00", "50%", "1st 2nd 3rd 4th", "٣٤٥", "½ ¾", "Ⅻ",
      "def f(x):\n    return x * 2\n",
      "for (int i = 0; i < n; ++i) {\n  sum += a[i];\n}",
      "if (a && b || !c) { return; }", "x = {'key': [1, 2, 3]}",
      "<div class=\"main\">Hello</div>", "SELECT * FROM t WHERE id = 1;",
      "std::vector<std::string> names;", "#include <iostream>",
      "    indented code", "\tif x:\n\t\tpass", "a->b; c::d; e=>f",
      "https://example.com/path?q=1&r=two#frag", "user@example.com",
      "café", "naïve", "façade", "Ærøskøbing", "Straße", "São Paulo",
      "coöperate", "ÀÉÎÕÜ", "ñandú",
      "e\u0301", "cafe\u0301", "A\u030A", "\u00c5", "\u212b",
      "o\u0308\u0304", "\u1100\u1161\u11a8", "n\u0303o",
      "你好，世界！", "今天天气很好。", "こんにちは世界", "안녕하세요",
      "中文English混合", "日本語のテキスト", "繁體中文測試",
      "Привет, мир!", "Γειά σου κόσμε", "مرحبا بالعالم", "שלום עולם",
      "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới",
      "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇯🇵", "❤️", "🙂 smile", "smile🙂",
      "🏳️‍🌈 flag", "👩🏾‍💻 coder", "x😀y😀z", "🤖🤖🤖",
      "▁", "▁hello", "hello▁world", "▁▁▁", "Ġ", "Ċ",
      "<|begin_of_text|>", "<|begin_of_text|>Hello", "Hi<|eot_id|>",
      "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
      "<|end_of_text|> after", " <|begin_of_text|> spaced ",
      "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
      "<|endoftext|>", "text<|endoftext|>more", "<|im_start", "im_end|>",
      "<s>", "</s>", "<unk>", "<s>Hello</s>", "<s> Hello </s>",
      "[INST] What is 2+2? [/INST]", "<s>[INST] hi [/INST] ok</s>",
      "<s", "< s>", "</s >", "<mask>", "a <mask> b", "a<mask>b",
      "   <mask>", "[NL]x", "[NL]   x", "yes", "yes!", "say yes", "yesno",
      "eyes", "é!", "e\u0301!", "é! there", "<|reserved_special_token_0|>",
      "!!!!!!", "........", "?!?!", "----", "====", "~~~", "***bold***",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababab", "zzz",
      "\u200b", "a\u200bb", "\ufeffBOM", "soft\u00adhyphen", "\u0000null",
      "\x7f", "\u00ff", "\uffff", "\U0001F600\U0001F601", "\U00010348",
      "The quick brown fox jumps over the lazy dog.",
      "THE QUICK BROWN FOX", "tHe QuIcK bRoWn",
      "A serving system answers many requests at once.",
      "Numbers like 3.14159 appear in prose.",
  ]
  rng = random.Random(20240601)
  pieces = [s for s in base if s]
  seps = ["", " ", "  ", "\n", "\t", ". ", ", ", "\r\n"]
  generated = []
  while len(base) + len(generated) < 240:
    parts = [rng.choice(pieces) for _ in range(rng.randint(2, 4))]
    text = parts[0]
    for p in parts[1:]:
      text += rng.choice(seps) + p
    generated.append(text)
  long_text = PROSE + CODE
  return base + generated + [long_text]


def train_byte_level(pre_tokenizer, normalizer, ignore_merges, vocab_size):
  tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
  if normalizer is not None:
    tok.normalizer = normalizer
  tok.pre_tokenizer = pre_tokenizer
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, min_frequency=2, show_progress=False,
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(training_corpus(), trainer=trainer)
  tok.decoder = decoders.ByteLevel()
  return tok


def make_llama3():
  tok = train_byte_level(
      pre_tokenizers.Sequence([
          pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated",
                               invert=False),
          pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                   use_regex=False),
      ]), None, True, 1800)
  specials = ["<|begin_of_text|>", "<|end_of_text|>",
              "<|reserved_special_token_0|>", "<|start_header_id|>",
              "<|end_header_id|>", "<|eot_id|>"]
  tok.add_special_tokens([AddedToken(s, special=True, normalized=False)
                          for s in specials])
  bos = tok.token_to_id("<|begin_of_text|>")
  tok.post_processor = processors.Sequence([
      processors.ByteLevel(trim_offsets=False),
      processors.TemplateProcessing(
          single="<|begin_of_text|> $A",
          pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
          special_tokens=[("<|begin_of_text|>", bos)]),
  ])
  return tok


def make_qwen2():
  tok = train_byte_level(
      pre_tokenizers.Sequence([
          pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated",
                               invert=False),
          pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                   use_regex=False),
      ]), normalizers.NFC(), False, 1500)
  tok.add_special_tokens([
      AddedToken(s, special=True, normalized=False)
      for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]])
  # A normalized, non-special added token: matched after NFC.
  tok.add_tokens([AddedToken("é!", normalized=True, special=False)])
  tok.post_processor = processors.ByteLevel(trim_offsets=False)
  return tok


def make_gpt2():
  tok = train_byte_level(
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), None,
      False, 1200)
  tok.add_special_tokens([
      AddedToken("<|endoftext|>", special=True, normalized=False),
      AddedToken("<mask>", special=True, lstrip=True, normalized=False),
  ])
  tok.add_tokens([
      AddedToken("[NL]", rstrip=True, normalized=False, special=False),
      AddedToken("yes", single_word=True, normalized=True, special=False),
  ])
  tok.post_processor = processors.ByteLevel(trim_offsets=True)
  return tok


def sentencepiece_model_json(vocab_size):
  """Trains a Metaspace BPE and lays it out like Llama 2's tokenizer.json."""
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁",
                                               prepend_scheme="always")
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                show_progress=False)
  # Only Latin characters enter the alphabet, so the rest (CJK, emoji, ...)
  # exercises byte fallback. (limit_alphabet would break ties by hash order.)
  latin = ["".join(c for c in line if ord(c) < 0x250)
           for line in training_corpus()]
  tok.train_from_iterator(latin, trainer=trainer)
  trained = json.loads(tok.to_str())["model"]
  vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
  for b in range(256):
    vocab["<0x%02X>" % b] = len(vocab)
  for token, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
    if token not in vocab:
      vocab[token] = len(vocab)
  return {
      "type": "BPE", "dropout": None, "unk_token": "<unk>",
      "continuing_subword_prefix": None, "end_of_word_suffix": None,
      "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
      "vocab": vocab, "merges": trained["merges"],
  }


def added(id_, content, special=True, normalized=False, lstrip=False,
          rstrip=False, single_word=False):
  return {"id": id_, "content": content, "single_word": single_word,
          "lstrip": lstrip, "rstrip": rstrip, "normalized": normalized,
          "special": special}


def bos_template(bos, bos_id):
  return {
      "type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": bos, "type_id": 1}},
               {"Sequence": {"id": "B", "type_id": 1}}],
      "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
  }


SP_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def tokenizer_json(model, added_tokens, normalizer, pre_tokenizer,
                   post_processor, decoder):
  return {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": added_tokens, "normalizer": normalizer,
          "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
          "decoder": decoder, "model": model}


def make_llama2_normalized_specials(model):
  # Some Llama 2 conversions mark <s> etc. normalized: their patterns then go
  # through Prepend("▁"), so "<s>" matches only as "▁<s>" in normalized text.
  return Tokenizer.from_str(json.dumps(tokenizer_json(
      model, [added(0, "<unk>", normalized=True), added(1, "<s>", normalized=True),
              added(2, "</s>", normalized=True)],
      {"type": "Sequence", "normalizers": [
          {"type": "Prepend", "prepend": "▁"},
          {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
      None, bos_template("<s>", 1), SP_DECODER)))


def make_byte_level_prefix_space():
  """ByteLevel with add_prefix_space, Digits and NFKC: less common options."""
  tok = train_byte_level(
      pre_tokenizers.Sequence([
          pre_tokenizers.Digits(individual_digits=True),
          pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
      ]), normalizers.NFKC(), False, 1000)
  tok.add_special_tokens([AddedToken("<|endoftext|>", special=True,
                                     normalized=False)])
  tok.add_tokens([AddedToken("<mask>", lstrip=True, rstrip=True,
                             normalized=False, special=False)])
  return tok


def make_llama2(model):
  return Tokenizer.from_str(json.dumps(tokenizer_json(
      model, [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
      {"type": "Sequence", "normalizers": [
          {"type": "Prepend", "prepend": "▁"},
          {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
      None, bos_template("<s>", 1), SP_DECODER)))


def make_mistral(model):
  model = dict(model)
  vocab = dict(model["vocab"])
  inst, inst_end = len(vocab), len(vocab) + 1
  vocab["[INST]"] = inst
  vocab["[/INST]"] = inst_end
  model["vocab"] = vocab
  return Tokenizer.from_str(json.dumps(tokenizer_json(
      model, [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"),
              added(inst, "[INST]"), added(inst_end, "[/INST]")],
      None,
      {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
       "split": False},
      bos_template("<s>", 1), SP_DECODER)))


def make_metaspace_always(model):
  return Tokenizer.from_str(json.dumps(tokenizer_json(
      model, [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")], None,
      {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
       "split": True},
      bos_template("<s>", 1),
      {"type": "Sequence", "decoders": [
          {"type": "ByteFallback"},
          {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
           "split": True}]})))


def expected_cases(tok, strings):
  cases = []
  for text in strings:
    with_special = tok.encode(text, add_special_tokens=True).ids
    without = tok.encode(text, add_special_tokens=False).ids
    cases.append({
        "text": text,
        "ids": without,
        "ids_with_special": with_special,
        "decoded": tok.decode(with_special, skip_special_tokens=False),
        "decoded_skip": tok.decode(with_special, skip_special_tokens=True),
    })
  return cases


def random_decode_cases(tok, seed):
  rng = random.Random(seed)
  size = tok.get_vocab_size(with_added_tokens=True)
  cases = []
  for _ in range(60):
    ids = [rng.randrange(size) for _ in range(rng.randint(1, 12))]
    cases.append({"ids": ids,
                  "decoded": tok.decode(ids, skip_special_tokens=False),
                  "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
  return cases


def write_json(path, value, compact=False):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    if compact:
      json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
    else:
      json.dump(value, f, ensure_ascii=False, indent=0)
    f.write("\n")


def write_family(name, tok, strings, seed):
  # Round-trip through JSON so the saved file is exactly what is tested.
  text = tok.to_str()
  tok = Tokenizer.from_str(text)
  write_json(os.path.join(OUT_DIR, name, "tokenizer.json"), json.loads(text),
             compact=True)
  write_json(os.path.join(OUT_DIR, name, "expected.json"), {
      "cases": expected_cases(tok, strings),
      "decode_cases": random_decode_cases(tok, seed),
  }, compact=True)


def write_demo(tool, strings):
  for vocab_size in (300, 1000, 32000):
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "tokenizer.json")
      subprocess.run([tool, str(vocab_size), path], check=True)
      tok = Tokenizer.from_file(path)
    write_json(os.path.join(OUT_DIR, "demo", "expected_%d.json" % vocab_size), {
        "requested_vocab_size": vocab_size,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "cases": expected_cases(tok, strings),
    }, compact=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--demo-tool",
                      help="path to the built write_demo_tokenizer tool")
  args = parser.parse_args()
  strings = test_strings()
  write_family("llama3", make_llama3(), strings, 1)
  write_family("qwen2", make_qwen2(), strings, 2)
  write_family("gpt2", make_gpt2(), strings, 3)
  sp_model = sentencepiece_model_json(1200)
  write_family("llama2", make_llama2(sp_model), strings, 4)
  write_family("mistral", make_mistral(sp_model), strings, 5)
  write_family("metaspace_always", make_metaspace_always(sp_model), strings, 6)
  write_family("llama2_normalized_specials",
               make_llama2_normalized_specials(sp_model), strings, 7)
  write_family("byte_level_prefix_space", make_byte_level_prefix_space(),
               strings, 8)
  if args.demo_tool:
    write_demo(args.demo_tool, strings)


if __name__ == "__main__":
  main()
