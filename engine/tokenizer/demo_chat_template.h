// The chat template of the demo model: Llama 3's format over the demo
// tokenizer's special tokens (<|begin_of_text|>, <|start_header_id|>,
// <|end_header_id|>, <|eot_id|>). Written into the demo model's
// tokenizer_config.json, so the whole server path (template -> tokenizer ->
// model) runs on the demo checkpoint exactly as on a real Llama 3 one.
#pragma once

#include <string_view>

namespace muserve {

// Each turn renders as "<|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>"
// (content trimmed), after a single bos_token; add_generation_prompt opens an
// assistant header. Rendering N+1 turns extends the rendering of N turns plus
// the assistant reply when the reply has no leading or trailing whitespace
// (content is trimmed), which prefix caching relies on.
inline constexpr std::string_view kDemoChatTemplate =
    "{{- bos_token }}\n"
    "{%- for message in messages %}\n"
    "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}\n"
    "    {{- message['content'] | trim }}\n"
    "    {{- '<|eot_id|>' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
    "{%- endif %}\n";

}  // namespace muserve
