"""Generates the chat template fixtures in tests/fixtures/chat_templates/.

Reference implementation: Hugging Face transformers' own chat template
rendering (transformers.utils.chat_template_utils.render_jinja_template, the
code behind tokenizer.apply_chat_template(..., tokenize=False)) and its Jinja
environment (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, transformers' tojson / raise_exception / strftime_now).

Writes:
  conversations.json  for each template (the three real ones from
                      ../shared/fixtures/chat-templates/ and the demo model's
                      template from engine/tokenizer/demo_chat_template.h):
                      conversations, options and the exact rendering, or the
                      raise_exception message (error_message), or just
                      "error": true for other template errors.
  snippets.json       small Jinja templates exercising single language
                      features, with jinja2's rendering under the same
                      environment (or "error": true).

Cases with "api": "chat" can be rendered through ChatTemplate::Render
(messages of role/content/name, extra_context); "api": "raw" cases carry the
full template context (tool calls, tool results) and are rendered through the
Jinja interpreter directly.

Tool schemas keep the caller's key order, deliberately not alphabetical
("type" before "function", "name" before "description", "required" before
"properties"...): transformers renders Python dicts in insertion order, and
ChatTemplateOptions::extra_context (nlohmann::ordered_json) must reproduce it.

Run from the repository root (deterministic; rerun after changing cases):
    python3 tests/reference/make_chat_template_fixtures.py
"""

import ast
import copy
import json
import os
import random
import re

from transformers.utils.chat_template_utils import _compile_jinja_template, render_jinja_template

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "fixtures", "chat-templates")
OUT = os.path.join(ROOT, "tests", "fixtures", "chat_templates")


def demo_template():
    header = open(os.path.join(ROOT, "engine", "tokenizer", "demo_chat_template.h")).read()
    body = header.split("kDemoChatTemplate =", 1)[1].split(";", 1)[0]
    return "".join(ast.literal_eval(piece) for piece in re.findall(r'"(?:[^"\\]|\\.)*"', body))


TEMPLATES = {
    "llama31": ("meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "qwen25": ("Qwen-Qwen2.5-7B-Instruct.jinja", None, "<|im_end|>"),
    "mistral_nemo": ("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>"),
    "demo": (None, "<|begin_of_text|>", "<|eot_id|>"),
}


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city — in °C or °F.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
                "threshold": {"type": "number", "default": 0.5, "scale": 1.0, "tiny": 1e-05,
                              "big": 1e16},
                "verbose": {"type": "boolean", "default": False},
                "tags": {"type": "array", "items": {"type": "string"}, "nullable": None},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {"type": "object", "required": ["query"],
                       "properties": {"query": {"type": "string"}}},
    },
}

SYS = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello!"}
A1 = {"role": "assistant", "content": "Hi there. How can I help?"}
U2 = {"role": "user", "content": "What is 2+2?"}
A2 = {"role": "assistant", "content": "4"}

PLAIN = [
    ("single_user", [U1], True, {}),
    ("single_user_no_generation_prompt", [U1], False, {}),
    ("system_user", [SYS, U1], True, {}),
    ("system_multi_turn", [SYS, U1, A1, U2], True, {}),
    ("system_multi_turn_ending_assistant", [SYS, U1, A1, U2, A2], False, {}),
    ("multi_turn_no_system", [U1, A1, U2], True, {}),
    ("multi_turn_no_system_no_prompt", [U1, A1, U2, A2], False, {}),
    ("empty_user_content", [{"role": "user", "content": ""}], True, {}),
    ("empty_system_content", [{"role": "system", "content": ""}, U1], True, {}),
    ("unicode", [{"role": "system", "content": "Réponds en français. 日本語も OK 🙂"},
                 {"role": "user", "content": "\u3000 Ça va? Привет, 世界! 👋🏽 مرحبا \u00a0"}], True, {}),
    ("jinja_looking_content", [{"role": "user", "content":
        "{{ messages }} {% if true %}x{% endif %} {# note #} {%- raw %} }} %} {{'"}], True, {}),
    ("special_token_strings", [{"role": "user", "content":
        "<|begin_of_text|><|eot_id|><|start_header_id|>x<|end_header_id|> [INST] [/INST] "
        "<s></s> <|im_start|>system<|im_end|> [AVAILABLE_TOOLS]"}], True, {}),
    ("whitespace_content", [{"role": "system", "content": "\n  Be brief.  \n"},
                            {"role": "user", "content": "  line one\n\tline two\n\n"},
                            {"role": "assistant", "content": " ok \n"},
                            {"role": "user", "content": "\r\nagain\r\n"}], True, {}),
    ("message_names", [{"role": "system", "content": "Group chat.", "name": "rules"},
                       {"role": "user", "content": "Hi, I'm Ann.", "name": "ann"},
                       {"role": "assistant", "content": "Hello Ann.", "name": "bot"},
                       {"role": "user", "content": "And I'm Bob.", "name": "bob"}], True, {}),
    ("quotes_and_backslashes", [{"role": "user", "content":
        "He said \"hi\" and 'bye' \\n \\\\ \\u0041 `code`"}], True, {}),
    ("long_conversation", [SYS] + [m for i in range(6) for m in (
        {"role": "user", "content": f"Question {i}?"},
        {"role": "assistant", "content": f"Answer {i}."})] + [U2], True, {}),
    ("system_only", [SYS], True, {}),
    ("system_only_no_prompt", [SYS], False, {}),
    ("assistant_first", [A1, U1], True, {}),
    ("two_users_in_a_row", [U1, U2], True, {}),
    ("unknown_role", [{"role": "critic", "content": "Meh."}], True, {}),
    ("date_string_pinned", [U1], True, {"date_string": "01 Jan 2025"}),
    ("extra_context_ignored_by_most", [SYS, U1], True, {"custom_flag": True, "date_string": "26 Jul 2024"}),
    ("empty_conversation", [], True, {}),
]

TOOLS = [
    ("tools_single_user", [U1], True, {"tools": [WEATHER_TOOL]}),
    ("tools_system_user", [SYS, U1, A1, U2], True, {"tools": [WEATHER_TOOL, SEARCH_TOOL]}),
    ("tools_not_in_user_message", [SYS, U1], True,
     {"tools": [WEATHER_TOOL], "tools_in_user_message": False}),
    ("tools_no_user_message", [SYS], True, {"tools": [WEATHER_TOOL]}),
]

CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"id": "abcDEF123", "type": "function",
     "function": {"name": "get_weather", "arguments": {"unit": "celsius", "city": "Zürich", "days": 2}}}]}
RESULT = {"role": "tool", "tool_call_id": "abcDEF123", "name": "get_weather",
          "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"}

RAW = [
    ("tool_call_round_trip", [SYS, {"role": "user", "content": "Weather in Zürich?"}, CALL, RESULT],
     True, {"tools": [WEATHER_TOOL]}),
    ("tool_call_then_answer", [{"role": "user", "content": "Weather?"}, CALL, RESULT,
                               {"role": "assistant", "content": "It is 21.5 °C."},
                               {"role": "user", "content": "Thanks"}], True, {"tools": [WEATHER_TOOL]}),
    ("two_tool_calls", [{"role": "user", "content": "Both?"},
                        {"role": "assistant", "content": None, "tool_calls": [
                            CALL["tool_calls"][0],
                            {"id": "xyzXYZ789", "type": "function",
                             "function": {"name": "search", "arguments": {"query": "news"}}}]},
                        {"role": "tool", "tool_call_id": "abcDEF123", "content": "sunny"},
                        {"role": "tool", "tool_call_id": "xyzXYZ789", "content": {"hits": [1, 2.5]}}],
     True, {"tools": [WEATHER_TOOL, SEARCH_TOOL]}),
    ("builtin_tools", [SYS, {"role": "user", "content": "Search the news"},
                       {"role": "assistant", "content": "", "tool_calls": [
                           {"id": "srch00001", "type": "function",
                            "function": {"name": "brave_search", "arguments": {"query": "news"}}}]},
                       {"role": "ipython", "content": "top story"}], True,
     {"builtin_tools": ["brave_search", "code_interpreter", "wolfram_alpha"]}),
    ("bad_tool_call_id", [{"role": "user", "content": "x"},
                          {"role": "assistant", "content": "", "tool_calls": [
                              {"id": "short", "type": "function",
                               "function": {"name": "search", "arguments": {"query": "q"}}}]}],
     True, {"tools": [SEARCH_TOOL]}),
]


def render_case(template, bos, eos, messages, add_generation_prompt, extra):
    kwargs = dict(extra)
    tools = kwargs.pop("tools", None)
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    try:
        rendered, _ = render_jinja_template(
            conversations=[messages], tools=tools, chat_template=template,
            add_generation_prompt=add_generation_prompt, **kwargs)
        return {"expected": rendered[0]}
    except Exception as e:  # noqa: BLE001 - any template failure is a fixture outcome
        # raise_exception raises a bare TemplateError; other failures are
        # subclasses (UndefinedError, TypeError...) with jinja2's own wording.
        if type(e).__name__ == "TemplateError":
            return {"error": True, "error_message": str(e)}
        return {"error": True}


def raw_context(bos, eos, messages, add_generation_prompt, extra):
    context = {"messages": messages, "tools": extra.get("tools"), "documents": None,
               "add_generation_prompt": add_generation_prompt}
    if bos is not None:
        context["bos_token"] = bos
    if eos is not None:
        context["eos_token"] = eos
    context.update({k: v for k, v in extra.items() if k != "tools"})
    return context


def conversations():
    out = {}
    for key, (file_name, bos, eos) in TEMPLATES.items():
        template = demo_template() if file_name is None else open(os.path.join(SHARED, file_name)).read()
        cases = []
        for api, table in (("chat", PLAIN + TOOLS), ("raw", RAW)):
            for name, messages, agp, extra in table:
                case = {"name": name, "api": api, "add_generation_prompt": agp}
                if api == "chat":
                    case["messages"] = messages
                    case["extra_context"] = extra
                else:
                    case["context"] = raw_context(bos, eos, messages, agp, extra)
                case.update(render_case(template, bos, eos, messages, agp, extra))
                cases.append(case)
        out[key] = {"template_file": file_name, "bos_token": bos or "", "eos_token": eos or "",
                    "cases": cases}
    return out


# (name, template, context). Expected values come from jinja2 under
# transformers' environment.
SNIPPETS = [
    # Whitespace control, trim_blocks, lstrip_blocks, comments.
    ("trim_blocks_drops_newline", "{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("lstrip_blocks_indent", "a\n    {% if true %}\n    b\n    {% endif %}\nc", {}),
    ("lstrip_not_for_variables", "x\n    {{ 'v' }}\n", {}),
    ("lstrip_plus_disables", "x\n    {%+ if true %}y{% endif %}", {}),
    ("dash_strips_both_sides", "a  \n  {%- if true -%}  \n  b  \n  {%- endif -%}  \n  c", {}),
    ("var_dash", "a \n {{- 'b' -}} \n c", {}),
    ("comment_trim", "a\n{# comment #}\nb\n  {#- c -#}  \nd", {}),
    ("comment_lstrip", "a\n   {# c #}\nb", {}),
    ("trailing_newline_dropped", "line\n", {}),
    ("crlf_normalized", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc", {}),
    ("inline_tag_no_lstrip", "a {% if true %}b{% endif %} c\n", {}),
    ("tag_after_text_same_line", "ab  {% if true %}\nc{% endif %}", {}),
    ("raw_block", "{% raw %}{{ not a var }}{% endraw %}", {}),
    ("raw_block_whitespace", "a\n  {%- raw -%}  x  {%- endraw -%}  \nb|a\n  {% raw %}r{% endraw %}\n  b", {}),
    ("plus_keeps_trimmed_newline", "{% if true +%}\nx{% endif +%}\ny{# c +#}\nz", {}),
    ("set_dash_both_sides", "{%- set x = 1 -%}\n\n{{ x }}", {}),
    ("block_end_inside_string", "{{ '%}' + \"}}\" }}", {}),
    ("dict_literal_braces", "{{ {'a': {'b': 1}}['a']['b'] }}", {}),
    # Literals and formatting.
    ("float_formatting", "{{ 1.0 }} {{ 2.5 }} {{ 10 / 4 }} {{ 10 / 5 }} {{ 1e16 }} {{ 1.5e-5 }} {{ 0.1 + 0.2 }} {{ 1e100 }} {{ -0.0 }} {{ 123456789.123 }}", {}),
    ("int_division", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 7.5 // 2 }} {{ 10 / 4 * 2 }}", {}),
    ("string_escapes", "{{ 'a\\nb\\tc\\\\d\\'e' }}|{{ \"q\\\"q\" }}|{{ '\\u00e9\\x41' }}|{{ '\\d' }}", {}),
    ("adjacent_strings", "{{ 'a' 'b' \"c\" }}", {}),
    ("none_bool_render", "{{ none }} {{ true }} {{ False }} {{ [1, 'a', none, true, 1.5] }} {{ {'k': 'v', 'n': 2} }} {{ (1,) }} {{ (1, 2) }}", {}),
    ("undefined_renders_empty", "[{{ missing }}][{{ obj.missing }}][{{ obj['missing'] }}][{{ lst[10] }}]", {"obj": {"a": 1}, "lst": [1]}),
    ("repr_quotes", "{{ [\"it's\", 'say \"x\"', 'both \\' \"'] }}", {}),
    # Operators.
    ("arithmetic", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -3 + 1 }} {{ 'ab' * 3 }} {{ [1] + [2, 3] }} {{ 3 - 1.5 }}", {}),
    ("concat_tilde", "{{ 'a' ~ 1 ~ none ~ true ~ missing ~ 2.0 }}", {}),
    ("comparisons", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ true == 1 }} {{ [1, 2] == [1, 2] }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ none == none }} {{ 'a' != 'b' }}", {}),
    ("logic", "{{ true and 'x' }} {{ 0 or 'y' }} {{ not 0 }} {{ not 'a' }} {{ '' or [] or 'last' }} {{ none and 1 }}", {}),
    ("membership", "{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in 'abc' }} {{ 3 not in [1, 2] }}", {}),
    ("ternary", "{{ 'yes' if x else 'no' }} {{ 'yes' if y else 'no' }} [{{ 'only' if y }}]", {"x": 1, "y": 0}),
    ("precedence_filter_binds_tight", "{{ 'a' + ' b ' | trim + 'c' }} {{ -1 | abs }} {{ not [] | length }}", {}),
    # Subscripts and slices.
    ("subscripts", "{{ l[0] }} {{ l[-1] }} {{ d['k'] }} {{ d.k }} {{ s[1] }} {{ l.1 }}", {"l": [1, 2, 3], "d": {"k": "v"}, "s": "héllo"}),
    ("slices", "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ s[1:3] }} {{ s[::-1] }} {{ l[5:] }} {{ l[-2:] }}", {"l": [1, 2, 3, 4], "s": "añbc"}),
    ("attribute_vs_item", "{{ d.items is defined }} {{ d['items'] }} {{ d.get('k') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }}", {"d": {"items": "X", "k": 1}}),
    # Tests.
    ("tests_types", "{{ s is string }} {{ n is number }} {{ n is integer }} {{ f is float }} {{ d is mapping }} {{ l is iterable }} {{ s is iterable }} {{ l is sequence }} {{ b is boolean }} {{ nn is none }} {{ missing is defined }} {{ missing is undefined }} {{ d is string }}", {"s": "x", "n": 3, "f": 1.5, "d": {}, "l": [], "b": True, "nn": None}),
    ("tests_values", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }} {{ 'a' is equalto 'a' }} {{ 2 is eq 3 }} {{ x is not none }} {{ 'abc' is lower }} {{ 2 is in [1, 2] }} {{ none is sameas none }}", {"x": 0}),
    # Statements.
    ("for_loop_vars", "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}:{{ x }};{% endfor %}", {"l": ["a", "b", "c"]}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ ',' if not loop.last }}{% endfor %} n={% for x in range(10) if x > 6 %}{{ loop.length }}{% endfor %}", {}),
    ("for_dict_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for k, v in d | items %}{{ v }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("for_tuple_unpack", "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }} {% endfor %}{% for (a, b) in [(5, 6)] %}{{ a * b }}{% endfor %}", {}),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_cycle_prev_next", "{% for x in [1, 2, 3] %}{{ loop.cycle('o', 'e') }}{{ loop.previtem }}{{ loop.nextitem }} {% endfor %}", {}),
    ("nested_loops", "{% for i in [1, 2] %}{% for j in ['a', 'b'] %}{{ i }}{{ j }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("if_elif_else", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %} {% endfor %}", {}),
    ("set_scoping_in_loop", "{% set x = 'outer' %}{% for i in [1, 2] %}{% set x = 'inner' ~ i %}{{ x }} {% endfor %}{{ x }}", {}),
    ("set_in_loop_persists_across_iterations", "{% for i in [1, 2, 3] %}{% if i > 1 %}[{{ y }}]{% endif %}{% set y = i %}{% endfor %}", {}),
    ("set_in_if_leaks", "{% if true %}{% set x = 5 %}{% endif %}{{ x }}", {}),
    ("namespace", "{% set ns = namespace(count=0, found=false) %}{% for i in [1, 2, 3] %}{% set ns.count = ns.count + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }}", {}),
    ("block_set", "{% set content %}Hello {{ name }}!{% endset %}[{{ content | upper }}]", {"name": "Ann"}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}", {}),
    ("macro", "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', greeting='Hi') }} {{ greet('Cy', 'Yo') }}", {}),
    ("macro_sees_template_vars", "{% set sep = '/' %}{% macro j(a, b) %}{{ a }}{{ sep }}{{ b }}{% endmacro %}{{ j(1, 2) }}", {}),
    ("generation_block", "a{% generation %}b{{ 1 }}{% endgeneration %}c", {}),
    # String methods.
    ("string_methods", "{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  y'.lstrip() }}|{{ 'z  '.rstrip() }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'MiXed'.upper() }}{{ 'MiXed'.lower() }}|{{ 'hello world'.title() }}|{{ 'hello'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abc'.find('c') }}|{{ '{} and {}'.format(1, 'two') }}|{{ '-'.join(['a', 'b']) }}", {}),
    ("string_strip_unicode_whitespace", "[{{ s.strip() }}][{{ s | trim }}]", {"s": "\u3000\u00a0 text \u2003\n"}),
    # Filters.
    ("filter_length_count", "{{ 'héllo' | length }} {{ [1, 2] | count }} {{ {'a': 1} | length }} {{ missing | length }}", {}),
    ("filter_first_last", "{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} {{ 'abc' | last }}", {}),
    ("filter_join", "{{ [1, 2, 3] | join(', ') }} {{ ['a', 'b'] | join }} {{ users | join(',', attribute='name') }}", {"users": [{"name": "a"}, {"name": "b"}]}),
    ("filter_default", "{{ missing | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | d('n') }} {{ x | default('d') }}", {"x": 0}),
    ("filter_case", "{{ 'hello World' | upper }} {{ 'HeLLo' | lower }} {{ 'hELLO wORLD' | capitalize }} {{ 'hello-world foo(bar)' | title }}", {}),
    ("filter_replace_trim", "{{ 'a-b-c' | replace('-', '+') }} [{{ '  t  ' | trim }}] {{ 'xxtxx' | trim('x') }}", {}),
    ("filter_tojson", "{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ d | tojson(sort_keys=true) }}|{{ [] | tojson(indent=4) }}|{{ {} | tojson }}|{{ 'é\"<>&\\n' | tojson }}|{{ [1.0, 2.5, none, true] | tojson }}", {"d": {"z": 1, "a": [1, {"b": "ü"}], "m": None, "f": 0.1}}),
    ("filter_tojson_separators", "{{ d | tojson(separators=(',', ':')) }}", {"d": {"a": [1, 2]}}),
    ("filter_string_int_float", "{{ 3 | string }}{{ '4' | int + 1 }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 2.9 | int }} {{ '1.5' | float }} {{ 2 | float }} {{ true | int }}", {}),
    ("filter_list", "{{ 'abc' | list }} {{ d | list }} {{ (1, 2) | list }}", {"d": {"x": 1, "y": 2}}),
    ("filter_map", "{{ users | map(attribute='name') | join(',') }} {{ ['a', 'b'] | map('upper') | list }} {{ users | map(attribute='age', default=0) | list }}", {"users": [{"name": "a", "age": 3}, {"name": "b"}]}),
    ("filter_select_reject", "{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('odd') | list }} {{ [0, 1, '', 'a'] | select | list }} {{ ['a', 'b', 'a'] | reject('equalto', 'a') | list }} {{ [1, 5, 9] | select('gt', 4) | list }}", {}),
    ("filter_selectattr", "{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('|') }} {{ msgs | rejectattr('role', 'equalto', 'user') | list | length }} {{ msgs | selectattr('flag') | list | length }} {{ msgs | selectattr('flag', 'defined') | list | length }}", {"msgs": [{"role": "user", "content": "a", "flag": True}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c", "flag": False}]}),
    ("filter_items", "{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}{{ missing | items | list }}", {"d": {"b": 1, "a": 2}}),
    ("filter_indent", "[{{ 'a\\nb\\n\\nc' | indent }}][{{ 'a\\nb' | indent(2, true) }}][{{ 'a\\n\\nb' | indent(2, blank=true) }}][{{ 'x\\ny' | indent('> ') }}]", {}),
    ("filter_unique_sort", "{{ ['b', 'A', 'a', 'c', 'b'] | unique | list }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ users | sort(attribute='age') | map(attribute='n') | join }}", {"users": [{"n": "x", "age": 3}, {"n": "y", "age": 1}]}),
    ("filter_misc", "{{ 'a<b>&\"' | e }} {{ 'safe' | safe }} {{ -3 | abs }} {{ [1, 2, 3] | sum }} {{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ [1, 2] | reverse | list }} {{ 'abc' | reverse }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ '%s-%s' | format(1, 'a') }} {{ {'b': 1, 'a': 2} | dictsort }}", {}),
    ("dict_and_namespace_globals", "{% set d = dict(a=1, b='x') %}{{ d.a }}{{ d['b'] }} {% set ns = namespace(items=[]) %}{{ ns.items | length }}", {}),
    ("range_global", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }}", {}),
    ("messages_like", "{% for m in messages %}{{ m.role }}:{{ m['content'] }}{% if m.name is defined %}({{ m.name }}){% endif %}\n{% endfor %}", {"messages": [{"role": "user", "content": "hi", "name": "ann"}, {"role": "assistant", "content": "yo"}]}),
    # Constructs from other popular chat templates.
    ("hermes_recursive_macro",
     "{%- macro json_to_python_type(spec) %}{%- set basic = {'string': 'str', 'number': 'float', 'integer': 'int', 'boolean': 'bool'} %}"
     "{%- if basic[spec.type] is defined %}{{- basic[spec.type] }}{%- elif spec.type == 'array' %}{{- 'list[' + json_to_python_type(spec['items']) + ']' }}"
     "{%- elif spec.type == 'object' %}{%- if spec.additionalProperties is defined %}{{- 'dict[str, ' + json_to_python_type(spec.additionalProperties) + ']' }}{%- else %}dict{%- endif %}"
     "{%- elif spec.type is string %}Any{%- elif spec.type is iterable %}{{- 'Union[' }}{%- for t in spec.type %}{{- json_to_python_type({'type': t}) }}{%- if not loop.last %},{% endif %}{%- endfor %}{{- ']' }}"
     "{%- else %}Any{%- endif %}{%- endmacro %}"
     "{%- for name, p in params.items() %}{{ name }}: {{ json_to_python_type(p) }}\n{% endfor %}",
     {"params": {"a": {"type": "array", "items": {"type": "integer"}}, "b": {"type": ["string", "number"]},
                 "c": {"type": "object", "additionalProperties": {"type": "boolean"}}, "d": {"type": "null"}}}),
    ("deepseek_think_split",
     "{%- for m in messages %}{%- set content = m['content'] %}{%- if '</think>' in content %}"
     "{%- set content = content.split('</think>')[-1].lstrip('\n') %}{%- endif %}<｜{{ m.role | capitalize }}｜>{{ content }}{%- endfor %}",
     {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nA"}]}),
    ("qwen3_reverse_namespace",
     "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
     "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}"
     "{%- if ns.multi_step_tool and message.role == 'user' and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}"
     "{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}{%- endif %}{%- endfor %}{{ ns.last_query_index }}",
     {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "user", "content": "<tool_response>x</tool_response>"}]}),
    ("gemma_alternation",
     "{%- for message in messages %}{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}"
     "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
     "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{%- endfor %}",
     {"messages": [{"role": "user", "content": " hi "}, {"role": "user", "content": "again"}]}),
    ("multimodal_content_parts",
     "{%- for m in messages %}{%- if m.content is string %}{{ m.content }}{%- else %}"
     "{%- for part in m.content %}{%- if part.type == 'text' %}{{ part.text }}{%- elif part.type == 'image' %}<image>{%- endif %}{%- endfor %}"
     "{%- endif %}|{%- endfor %}{{ messages | map(attribute='role') | join(',') }}",
     {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
                   {"role": "assistant", "content": "A cat."}]}),
    ("tool_arguments_string_or_mapping",
     "{%- for tc in calls %}{%- if tc.arguments is string %}{{ tc.arguments }}{%- else %}{{ tc.arguments | tojson }}{%- endif %}"
     "{{ ', ' if not loop.last }}{%- endfor %} {{ calls | selectattr('name', 'in', ['a', 'c']) | map(attribute='name') | list }}",
     {"calls": [{"name": "a", "arguments": "{\"x\": 1}"}, {"name": "b", "arguments": {"y": [1.5, "é"]}},
                {"name": "c", "arguments": {}}]}),
    ("strftime_pinned_date_default",
     "{%- if not date_string is defined %}{%- set date_string = '26 Jul 2024' %}{%- endif %}Today Date: {{ date_string }}", {}),
    # Digit strings as indexes: Python counts the digits of every script, and
    # its ints are unbounded (an index beyond int64 must read as out of range).
    ("attribute_path_unicode_digits",
     "{{ l | map(attribute='\u0663') | list }}|{{ l | map(attribute='0.\u0661') | list }}|"
     "{{ d | map(attribute='\u0663') | map('default', 'U') | list }}|"
     "{{ l | map(attribute='\u0661\u0660') | map('default', 'U') | list }}",
     {"l": [[0, 1, 2, 3, 4]], "d": [{"\u0663": "key"}]}),
    ("attribute_path_non_ascii_name",
     "{{ l | map(attribute='\u00e9') | list }} {{ l | selectattr('\u00e9') | list | length }}",
     {"l": [{"\u00e9": 1}]}),
    ("attribute_path_huge_index",
     "{{ l | map(attribute='99999999999999999999') | map('default', 'D') | join(',') }}|"
     "{{ m | map(attribute='0.99999999999999999999') | map('default', 'D') | join(',') }}",
     {"l": [[1], {"99999999999999999999": 2}, "ab"], "m": [[[1]], "ab"]}),
    ("huge_integer_attribute",
     "{{ x.99999999999999999999 is defined }} {{ y.99999999999999999999 is defined }} "
     "{{ s.99999999999999999999 is defined }} {{ x.1 }}",
     {"x": [1, 2], "y": {"99999999999999999999": 1}, "s": "abc"}),
    ("str_format_unicode_index", "{{ '{\u0660}-{\u0661}'.format('a', 'b') }}", {}),
    ("str_isdigit_unicode",
     "{{ '\u0663'.isdigit() }} {{ '\u00b2'.isdigit() }} {{ '\u00b2'.isdecimal() }} "
     "{{ '\u0663'.isdecimal() }} {{ '\u00e9'.isdigit() }} {{ '1\u0663'.isdigit() }} {{ ''.isdigit() }}", {}),
    # Errors (only the fact of failing is compared).
    ("error_attribute_path_superscript_digit", "{{ l | map(attribute='\u00b2') | list }}", {"l": [[1, 2, 3]]}),
    ("error_str_format_huge_index", "{{ '{99999999999999999999}'.format(1) }}", {}),
    ("error_str_format_superscript_name", "{{ '{\u00b2}'.format(1) }}", {}),
    ("error_undefined_attribute", "{{ missing.attr }}", {}),
    ("error_add_str_int", "{{ 'a' + 1 }}", {}),
    ("error_raise_exception", "{{ raise_exception('custom failure') }}", {}),
    ("error_add_undefined", "{{ 'a' + missing }}", {}),
    ("error_divide_by_zero", "{{ 1 // 0 }}", {}),
    ("error_iterate_none", "{% for x in none %}{% endfor %}", {}),
]


def whitespace_snippets(count=150, seed=1234):
    """Random mixes of text and whitespace-controlled tags (deterministic)."""
    rng = random.Random(seed)
    texts = ["a", " ", "\n", "  \n  ", "\t", "b \n", "\n\n", " c", "\n   "]
    opens = ["{%", "{%-", "{%+"]
    closes = ["%}", "-%}", "+%}"]
    out = []
    for i in range(count):
        parts = []
        depth = 0
        for _ in range(rng.randint(3, 12)):
            kind = rng.random()
            if kind < 0.45:
                parts.append(rng.choice(texts))
            elif kind < 0.6:
                parts.append(rng.choice(["{{", "{{-"]) + " 'v' " + rng.choice(["}}", "-}}"]))
            elif kind < 0.7:
                parts.append(rng.choice(["{#", "{#-"]) + " c " + rng.choice(["#}", "-#}", "+#}"]))
            elif kind < 0.85 or depth == 0:
                parts.append(rng.choice(opens) + " if " + rng.choice(["true", "false"]) + " " + rng.choice(closes))
                depth += 1
            else:
                parts.append(rng.choice(opens) + rng.choice([" else ", " endif "]) + rng.choice(closes))
                if "endif" in parts[-1]:
                    depth -= 1
                else:
                    parts.append(rng.choice(texts))
                    parts.append(rng.choice(opens) + " endif " + rng.choice(closes))
                    depth -= 1
        while depth > 0:
            parts.append(rng.choice(texts))
            parts.append(rng.choice(opens) + " endif " + rng.choice(closes))
            depth -= 1
        parts.append(rng.choice(texts))
        out.append((f"whitespace_random_{i}", "".join(parts), {}))
    return out


def expression_snippets(count=250, seed=99):
    """Random expressions mixing types, operators, filters and tests (deterministic)."""
    rng = random.Random(seed)
    # (No float atoms near 1e20: `| int` there needs Python's unbounded ints.)
    atoms = ["0", "1", "2", "-3", "7", "0.5", "2.0", "-1.5", "1e15", "3.14", "0.1", "true", "false",
             "none", "'ab'", "''", "'Ab c '", "'é😀'", "[1, 2]", "[]", "['x', 'y']", "(1, 'a')",
             "{'k': 1}", "missing", "n", "s", "l", "d", "f"]
    binops = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", "<=", ">", ">=", "and", "or",
              "in", "not in"]
    filters = ["length", "string", "int", "float", "abs", "trim", "upper", "lower", "first", "last",
               "list", "join(',')", "tojson", "round(1)", "default('D')", "reverse | list", "sum", "min",
               "max", "unique | list", "sort", "capitalize", "title", "count", "items | list",
               "replace('a', 'Z')", "int(9)", "float(1.5)", "select('odd') | list", "map('string') | list",
               "indent(2)", "e", "tojson(indent=2)", "string | length"]
    tests = ["odd", "even", "none", "string", "number", "integer", "float", "defined", "undefined",
             "mapping", "iterable", "sequence", "boolean", "true", "false", "lower", "upper",
             "divisibleby(2)", "in([1, 2])", "eq(1)", "gt(0)", "callable"]

    def expr(depth):
        r = rng.random()
        if depth == 0 or r < 0.25:
            return rng.choice(atoms)
        if r < 0.55:
            return "(" + expr(depth - 1) + " " + rng.choice(binops) + " " + expr(depth - 1) + ")"
        if r < 0.75:
            return "(" + expr(depth - 1) + " | " + rng.choice(filters) + ")"
        if r < 0.85:
            return "(" + expr(depth - 1) + " is " + rng.choice(["", "not "]) + rng.choice(tests) + ")"
        if r < 0.92:
            return "(not " + expr(depth - 1) + ")"
        if r < 0.96:
            return "(" + expr(depth - 1) + " if " + expr(depth - 1) + " else " + expr(depth - 1) + ")"
        # Subscripts apply to variables: jinja2 constant-folds subscripts of
        # literals with different error rules, which real templates never hit.
        return rng.choice(["s", "l", "d", "f", "n", "missing"]) + "[" + rng.choice(
            ["0", "-1", "1:", "::-1", "'k'", "'a'", "1:2"]) + "]"

    context = {"n": 5, "s": "Hello", "l": [3, 1, 2], "d": {"b": 2, "a": 1}, "f": 2.5}
    return [(f"expression_random_{i}", "{{ " + expr(3) + " }}", context) for i in range(count)]


def snippets():
    out = []
    for name, template, context in SNIPPETS + whitespace_snippets() + expression_snippets():
        case = {"name": name, "template": template, "context": context}
        try:
            # A fresh copy: some failing filters mutate their input in Python
            # (indent does `s += "\n"`, extending a list in place).
            case["expected"] = _compile_jinja_template(template).render(**copy.deepcopy(context))
        except Exception as e:  # noqa: BLE001 - failing is the expected outcome of some snippets
            case["error"] = True
            if type(e).__name__ == "TemplateError":
                case["error_message"] = str(e)
        out.append(case)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    for file_name, data in (("conversations.json", conversations()), ("snippets.json", snippets())):
        with open(os.path.join(OUT, file_name), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
