"""Chat-template rendering fixtures: what transformers' apply_chat_template(tokenize=False) produces.

Writes fixtures/chat_templates.json, a list of cases
  {"name", "template", "messages", "tools" (null or list), "add_generation_prompt",
   "extra" (object of extra template variables, {} when none), "rendered"}
where a case that must fail has {"error": "<message>"} instead of "rendered".

Rendering: transformers' own tokenizer.apply_chat_template(messages, tools=..., chat_template=...,
add_generation_prompt=..., tokenize=False, **extra) with the tokenizer of the converted SmolLM2
folder (models/smollm2-f32-hf, made by tools/make_smollm2_golden.py or gguf_to_hf.py). That uses
jinja2's ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loopcontrols), its
own `tojson` filter (json.dumps with ensure_ascii=False, default separators ", " / ": ", insertion
key order, no HTML escaping) and the `raise_exception` / `strftime_now` globals. apply_chat_template
also passes the tokenizer's special tokens (bos_token, eos_token, ...) as template variables; none
of the templates here read them unless `extra` sets them, and the script checks that rendering
with transformers.utils.chat_template_utils.render_jinja_template and only `extra` gives the same
text, so the fixture does not depend on the tokenizer. Messages contain no null values
(apply_chat_template drops keys whose value is None before rendering).

Templates:
  (a) SmolLM2-135M-Instruct's, read from the demo GGUF's tokenizer.chat_template
  (b) Qwen2.5-7B-Instruct's (Qwen/Qwen2.5-7B-Instruct tokenizer_config.json "chat_template"), text
      taken from llama.cpp's vendored copy tests/chat/templates/Qwen-Qwen2.5-7B-Instruct.jinja
      (github.com/ggerganov/llama.cpp at commit eaca756ecca033e6fdd241dad091974a2c0354ff)
  (c) small templates written here for loop controls, raise_exception, tojson(indent=...),
      string methods (minijinja pycompat), namespace, trim_blocks/lstrip_blocks and extra kwargs

Run from the repository root (deterministic, safe to re-run, a few seconds):
  /work/pyref/venv/bin/python tools/make_chat_template_fixtures.py
Requirements: tools/requirements.txt; needs models/SmolLM2-135M-Instruct.Q4_1.gguf
(scripts/fetch_model.sh) and creates models/smollm2-f32-hf when missing.
"""
import json
import os
import subprocess
import sys

import jinja2
from gguf import GGUFReader
from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import render_jinja_template

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
HF_DIR = os.path.join(ROOT, "models", "smollm2-f32-hf")
OUT = os.path.join(ROOT, "fixtures", "chat_templates.json")
GGUF_TO_HF = os.environ.get("GGUF_TO_HF", "/work/shared/tools/gguf_to_hf.py")

# (b) Qwen2.5-7B-Instruct chat template, verbatim (see the module docstring for the source).
QWEN25_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

# (c) templates written for these fixtures. Block tags sit on their own indented lines without
# `-` so that trim_blocks / lstrip_blocks decide the whitespace.
LOOP_CONTROLS_TEMPLATE = """{% for message in messages %}
    {% if message.role == 'system' %}
        {% continue %}
    {% endif %}
    {% if loop.index > 5 %}
        {% break %}
    {% endif %}
[{{ loop.index }}/{{ loop.length }}] {{ message.role }}: {{ message.content }}
{% endfor %}
{% for n in range(10) %}{% if n is odd %}{% continue %}{% endif %}{% if n > 6 %}{% break %}{% endif %}{{ n }},{% endfor %}
"""

RAISE_TEMPLATE = """{% if messages[0].role != 'user' %}
    {{ raise_exception('Conversation roles must start with user, got ' + messages[0].role + ' at index 0') }}
{% endif %}
{% for message in messages %}
    {% if (message.role == 'user') != (loop.index0 % 2 == 0) %}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {% endif %}
<{{ message.role }}>{{ message.content }}</{{ message.role }}>
{% endfor %}
"""

TOJSON_TEMPLATE = """{% for tool in tools %}
{{ tool | tojson(indent=2) }}
---
{{ tool.function.parameters | tojson }}
{% endfor %}
meta: {{ meta | tojson }}
meta(indent=4): {{ meta | tojson(indent=4) }}
args: {{ messages[-1].tool_calls[0].function.arguments | tojson }}
text: {{ messages[0].content | tojson }}
"""

STRING_METHODS_TEMPLATE = """{% for message in messages %}
{% set content = message.content.strip() %}
{% if content.startswith('/') %}
command={{ content.split(' ')[0][1:] }} args={{ content.split(' ')[1:] | join('|') }}
{% elif content.endswith('?') %}
question={{ content.rstrip('?').lower() }} words={{ content.split() | length }}
{% else %}
text={{ content.upper() }} replaced={{ content.replace('o', '0') }} title={{ content.title() }}
{% endif %}
lstrip=[{{ message.content.lstrip() }}] rstrip=[{{ message.content.rstrip() }}]
{% endfor %}
{% for key, value in meta.items() %}{{ key }}={{ value }};{% endfor %}

get={{ meta.get('missing', 'default') }} keys={{ meta.keys() | list | join(',') }}
csv={{ 'a,b,,c'.split(',') | tojson }} split2={{ 'x y z'.split(' ', 1) | tojson }}
"""

EXTRA_KWARGS_TEMPLATE = """{{ bos_token }}
{% set ns = namespace(n_user=0, last_user='') %}
{% for message in messages %}
    {% if message.role == 'user' %}
        {% set ns.n_user = ns.n_user + 1 %}
        {% set ns.last_user = message.content %}
    {% endif %}
{% endfor %}
date: {{ date_string }} (year has {{ strftime_now('%Y') | length }} digits)
users: {{ ns.n_user }}, last: {{ ns.last_user }}
{% if enable_thinking is defined and enable_thinking is false %}
thinking: off
{% else %}
thinking: on
{% endif %}
{% if custom_items is defined %}
    {% for item in custom_items %}
  - {{ loop.index0 }}: {{ item }}{% if not loop.last %},{% endif %}

    {% endfor %}
{% endif %}
{% if add_generation_prompt %}
<assistant>
{% endif %}
"""

GET_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and country, e.g. Paris, France"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
            },
            "required": ["location"],
        },
    },
}

GET_TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the local time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "description": "IANA name, e.g. Europe/Paris"}},
            "required": ["timezone"],
        },
    },
}


def smollm2_template() -> str:
    reader = GGUFReader(GGUF)
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def cases(smollm2: str) -> list[dict]:
    user_paris = [{"role": "user", "content": "What is the capital of France?"}]
    multi_turn = [
        {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
        {"role": "user", "content": "Hi! Who are you?"},
        {"role": "assistant", "content": "I am a small language model."},
        {"role": "user", "content": "Name three primes, please.\nThanks."},
    ]
    tool_conversation = [
        {"role": "system", "content": "You are a weather bot. Use tools when needed."},
        {"role": "user", "content": "What's the weather in Paris and Tokyo, and the time in Tokyo?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather",
                                              "arguments": {"location": "Paris, France", "unit": "celsius"}}},
            {"type": "function", "function": {"name": "get_weather",
                                              "arguments": {"location": "Tōkyō, Japan", "unit": "celsius"}}},
            {"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}},
        ]},
        {"role": "tool", "name": "get_weather", "content": "{\"temperature\": 18.5, \"condition\": \"cloudy\"}"},
        {"role": "tool", "name": "get_weather", "content": "{\"temperature\": 24, \"condition\": \"sunny\"}"},
        {"role": "tool", "name": "get_time", "content": "21:07"},
        {"role": "assistant", "content": "Paris: 18.5 °C and cloudy. Tokyo: 24 °C and sunny, local time 21:07."},
        {"role": "user", "content": "Thanks!"},
    ]
    return [
        dict(name="smollm2_user_generation_prompt", template=smollm2, messages=user_paris, tools=None,
             add_generation_prompt=True, extra={}),
        dict(name="smollm2_system_multi_turn", template=smollm2, messages=multi_turn, tools=None,
             add_generation_prompt=False, extra={}),
        dict(name="qwen25_default_system_generation_prompt", template=QWEN25_TEMPLATE, messages=user_paris,
             tools=None, add_generation_prompt=True, extra={}),
        dict(name="qwen25_system_multi_turn", template=QWEN25_TEMPLATE, messages=multi_turn, tools=None,
             add_generation_prompt=True, extra={}),
        dict(name="qwen25_tools_user", template=QWEN25_TEMPLATE, messages=[
            {"role": "user", "content": "Is it raining in Paris?"}], tools=[GET_WEATHER],
             add_generation_prompt=True, extra={}),
        dict(name="qwen25_tools_system_tool_calls_and_responses", template=QWEN25_TEMPLATE,
             messages=tool_conversation, tools=[GET_WEATHER, GET_TIME], add_generation_prompt=True, extra={}),
        dict(name="qwen25_tool_calls_without_tools", template=QWEN25_TEMPLATE, messages=[
            {"role": "user", "content": "Check Berlin."},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"location": "Berlin"}}}]},
            {"role": "tool", "content": "rain"},
        ], tools=None, add_generation_prompt=False, extra={}),
        dict(name="loop_controls_break_continue", template=LOOP_CONTROLS_TEMPLATE, messages=[
            {"role": "system", "content": "skipped by continue"},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "system", "content": "skipped again"},
            {"role": "user", "content": "three"},
            {"role": "assistant", "content": "stopped by break"},
            {"role": "user", "content": "never rendered"},
        ], tools=None, add_generation_prompt=False, extra={}),
        dict(name="raise_exception_passes", template=RAISE_TEMPLATE, messages=[
            {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
        ], tools=None, add_generation_prompt=False, extra={}),
        dict(name="raise_exception_fails", template=RAISE_TEMPLATE, messages=[
            {"role": "system", "content": "sys"}, {"role": "user", "content": "a"},
        ], tools=None, add_generation_prompt=False, extra={}),
        dict(name="raise_exception_fails_alternation", template=RAISE_TEMPLATE, messages=[
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"},
        ], tools=None, add_generation_prompt=False, extra={}),
        dict(name="tojson_indent_and_defaults", template=TOJSON_TEMPLATE, messages=[
            {"role": "user", "content": "Quote \"this\" <b>&</b> 'that' — naïve café 日本 😀\nnew line\ttab"},
            {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                "name": "get_weather", "arguments": {"location": "Zürich", "unit": "celsius", "days": 3,
                                                     "detailed": True, "threshold": 0.25, "note": None}}}]},
        ], tools=[GET_WEATHER], add_generation_prompt=False, extra={"meta": {
            "zeta": 1, "alpha": [1, 2.5, -3], "nested": {"b": True, "a": None, "empty": {}, "list": []},
            "html": "<script>&amp;</script>", "unicode": "é€😀", "float": 1.0, "big": 12345678901234}}),
        dict(name="string_methods", template=STRING_METHODS_TEMPLATE, messages=[
            {"role": "user", "content": "  /search rust jinja templates  "},
            {"role": "assistant", "content": "\tHello World, good morning\n"},
            {"role": "user", "content": "What Is Minijinja?? "},
        ], tools=None, add_generation_prompt=False, extra={"meta": {"b": "2", "a": "1", "c": "3"}}),
        dict(name="extra_kwargs_namespace_trim_blocks", template=EXTRA_KWARGS_TEMPLATE, messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "reply"},
            {"role": "user", "content": "second"},
        ], tools=None, add_generation_prompt=True, extra={
            "bos_token": "<s>", "date_string": "30 Nov 2026", "enable_thinking": False,
            "custom_items": ["x", "y", "z"]}),
    ]


def main() -> None:
    if not os.path.exists(os.path.join(HF_DIR, "tokenizer.json")):
        subprocess.run([sys.executable, GGUF_TO_HF, GGUF, HF_DIR], check=True, stdout=subprocess.DEVNULL)
    tok = AutoTokenizer.from_pretrained(HF_DIR)
    smollm2 = smollm2_template()
    assert smollm2 == tok.chat_template, "GGUF and converted tokenizer_config chat templates differ"
    out = []
    for case in cases(smollm2):
        kwargs = dict(tools=case["tools"], chat_template=case["template"],
                      add_generation_prompt=case["add_generation_prompt"], **case["extra"])
        try:
            rendered = tok.apply_chat_template(case["messages"], tokenize=False, **kwargs)
            result = {"rendered": rendered}
        except jinja2.exceptions.TemplateError as e:
            rendered, result = None, {"error": str(e)}
        # the same text without the tokenizer's special-token variables: the fixture is self-contained
        try:
            bare = render_jinja_template([case["messages"]], **kwargs)[0][0]
        except jinja2.exceptions.TemplateError as e:
            bare = ("error", str(e))
        assert bare == (rendered if rendered is not None else ("error", result["error"])), case["name"]
        out.append({**case, **result})
        shown = result.get("rendered", result.get("error"))
        print(f"--- {case['name']} ({'error' if 'error' in result else 'rendered'}, {len(shown)} chars)")
        print(shown[:400] + ("..." if len(shown) > 400 else ""))
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}: {len(out)} cases")


if __name__ == "__main__":
    main()
