"""Generates tests/fixtures/chat_templates/turns.json: multi-turn prompts.

For prefix caching, turn N+1's prompt should extend turn N's prompt plus the
assistant's reply, so the KV computed for turn N is reused. This script
records, with transformers' own renderer (render_jinja_template, the code
behind apply_chat_template(..., tokenize=False)), the prompt of every turn of
small conversations through each built-in template (the same four as
make_chat_template_fixtures.py, with the same bos/eos tokens).

Each case is one conversation: an optional system message, user messages
u1..uK and replies a1..a(K-1) in one style (plain, multi-line, Unicode,
leading/trailing whitespace, Unicode whitespace, empty...), optionally with
tools. prompts[i] renders the conversation up to and including u(i+1) with
add_generation_prompt=True. For each turn boundary i (reply a(i+1)):
  extends          prompts[i+1].startswith(prompts[i] + reply)
  extends_trimmed  prompts[i+1].startswith(prompts[i] + reply.strip())
(str.strip is what Jinja's `trim` filter does). The C++ test renders the
same conversations through ChatTemplate, checks every prompt byte for byte,
and pins per template which turn boundaries extend.

Run from the repository root (deterministic; rerun after changing cases):
    python3 tests/reference/make_chat_turn_fixtures.py
"""

import json
import os

from transformers.utils.chat_template_utils import render_jinja_template

import make_chat_template_fixtures as base

USERS = ["Hi", "What is 2+2?", "Thanks! One more thing:\nexplain it.", "Bye."]

# name -> replies (one per turn boundary).
REPLY_STYLES = [
    ("plain", ["Hello! How can I help?", "4", "Sure."]),
    ("multi_line", ["Line one.\nLine two.", "- a\n- b\n\n- c"]),
    ("unicode", ["Grüße 🙂", "日本語です。 Привет, мир! 👋🏽"]),
    ("leading_space", [" Hello!", " 4"]),
    ("trailing_newline", ["Hello!\n", "4\n\n"]),
    ("surrounding_whitespace", ["\n\nHello!\n\n", "\t 4 \t"]),
    # Python's str.strip (Jinja's trim) removes Unicode whitespace too.
    ("unicode_whitespace", ["Hello!\u00a0", "\u3000" "4\u2003"]),
    # Only the padded reply's boundary breaks under a trimming template.
    ("one_padded_reply", ["Hello!", " 4", "Sure."]),
    ("empty_reply", ["", "4"]),
    ("whitespace_only_reply", ["   ", "\n"]),
]

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}

# name -> (system message or None, extra_context)
VARIANTS = [
    ("no_system", None, {}),
    ("system", SYSTEM, {}),
]
# Tools change where some templates put text (Mistral Nemo: before the last
# user message), so a couple of styles are also rendered with tools.
TOOL_STYLES = ("plain", "leading_space")
TOOL_VARIANT = ("tools", None, {"tools": [base.SEARCH_TOOL]})


def render(template, bos, eos, messages, extra):
    kwargs = dict(extra)
    tools = kwargs.pop("tools", None)
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    rendered, _ = render_jinja_template(
        conversations=[messages], tools=tools, chat_template=template,
        add_generation_prompt=True, **kwargs)
    return rendered[0]


def conversation(system, replies):
    messages = [system] if system is not None else []
    for i, reply in enumerate(replies):
        messages.append({"role": "user", "content": USERS[i]})
        messages.append({"role": "assistant", "content": reply})
    messages.append({"role": "user", "content": USERS[len(replies)]})
    return messages


def case(template, bos, eos, name, system, extra, replies):
    messages = conversation(system, replies)
    offset = 1 if system is not None else 0
    # Prefixes ending at each user message: offset + 1, offset + 3, ...
    prompts = [render(template, bos, eos, messages[:offset + 2 * i + 1], extra)
               for i in range(len(replies) + 1)]
    turns = []
    for i, reply in enumerate(replies):
        turns.append({
            "reply": reply,
            "reply_trimmed": reply.strip(),
            "extends": prompts[i + 1].startswith(prompts[i] + reply),
            "extends_trimmed": prompts[i + 1].startswith(prompts[i] + reply.strip()),
        })
    return {"name": name, "has_system": system is not None, "extra_context": extra,
            "messages": messages, "prompts": prompts, "turns": turns}


def turn_cases():
    out = {}
    for key, (file_name, bos, eos) in base.TEMPLATES.items():
        template = (base.demo_template() if file_name is None
                    else open(os.path.join(base.SHARED, file_name)).read())
        cases = []
        for style, replies in REPLY_STYLES:
            variants = VARIANTS + ([TOOL_VARIANT] if style in TOOL_STYLES else [])
            for variant, system, extra in variants:
                cases.append(case(template, bos, eos, f"{variant}/{style}", system, extra, replies))
        out[key] = {"template_file": file_name, "bos_token": bos or "", "eos_token": eos or "",
                    "cases": cases}
    return out


def main():
    os.makedirs(base.OUT, exist_ok=True)
    with open(os.path.join(base.OUT, "turns.json"), "w", encoding="utf-8") as f:
        json.dump(turn_cases(), f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
