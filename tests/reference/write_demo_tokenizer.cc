// Writes muserve's demo tokenizer.json so that make_tokenizer_fixtures.py can
// load it with Hugging Face `tokenizers` and record reference encodings.
// Usage: write_demo_tokenizer VOCAB_SIZE OUTPUT_PATH
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "engine/tokenizer/demo_tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " VOCAB_SIZE OUTPUT_PATH\n";
    return 2;
  }
  muserve::DemoTokenizerSpec spec;
  spec.vocab_size = std::atoi(argv[1]);
  std::ofstream out(argv[2], std::ios::binary);
  out << muserve::MakeDemoTokenizerJson(spec);
  out.close();
  if (!out) {
    std::cerr << "cannot write " << argv[2] << "\n";
    return 1;
  }
  return 0;
}
