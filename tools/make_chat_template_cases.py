"""Writes python_cases.rs: chat-template cases with the output Python transformers renders for them.

Run with the reference env (jinja2 3.1.6, transformers 5.x):
    python tools/make_chat_template_cases.py      # a venv from tools/requirements.txt

Each case is rendered with transformers' own `render_jinja_template`, after the message
normalization `apply_chat_template` does first (`_normalize_chat_messages`), with the special
tokens passed as keyword arguments the way `apply_chat_template` passes `special_tokens_map`.
"""

import json
from pathlib import Path

import jinja2

from transformers.utils.chat_template_utils import _normalize_chat_messages, render_jinja_template

# The generated cases and the template files they use live beside the Rust test.
HERE = Path(__file__).resolve().parent.parent / "crates" / "ferrotune-data" / "tests" / "chat_template"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather \"now\" in a city, e.g. Zürich",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "days": {"type": "integer", "minimum": 1, "default": 1.0},
                },
                "required": ["city"],
            },
        },
    }
]

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi there!"},
    {"role": "assistant", "content": "Hello. How can I help?"},
    {"role": "user", "content": "Weather in Zürich? 😀"},
]

TOOL_CHAT = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_123456789",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_123456789", "content": "{\"temp\": 21.5}"},
    {"role": "assistant", "content": "It is 21.5 °C."},
]

TRICKY_VALUES = {
    "nested": {"b": [1, 2.0, {"c": None}], "a": True, "empty": {}, "list": []},
    "text": "quote \" backslash \\ newline \n tab \t bell \x07 del \x7f </script> é 中文 😀",
    "floats": [1.0, 0.1, 1e20, 1e16, 1e15, 1e-5, 0.0001, -0.0, 2.5e-7, 123456.789],
    "ints": [0, -1, 9007199254740993, 18446744073709551615],
    "flags": [True, False, None],
}

WS_TEMPLATE = """{# comment line #}
{% for m in messages %}
    {% if m.role == 'user' %}
  U: {{ m.content }}
    {% else %}
  A: {{ m.content }}
    {%- endif %}
{%+ if loop.last %}  (last){% endif %}
{% endfor %}
{% raw %}{{ not a tag }}{% endraw %}
tail text
"""

CASES = [
    dict(name="smollm2_default_system", template="file:smollm2.jinja", messages=CHAT[1:], add_generation_prompt=True),
    dict(name="smollm2_own_system", template="file:smollm2.jinja", messages=CHAT),
    dict(
        name="deepseek_r1_tool_calls",
        template="file:deepseek-r1-distill-qwen.jinja",
        messages=[
            {"role": "system", "content": "Sys."},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
                ],
            },
            {"role": "tool", "content": "21"},
            {"role": "tool", "content": "25"},
            {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nParis 21, Rome 25."},
            {"role": "user", "content": "Thanks"},
        ],
        add_generation_prompt=True,
        bos_token="<｜begin▁of▁sentence｜>",
        eos_token="<｜end▁of▁sentence｜>",
    ),
    dict(
        name="mistral_small_tools",
        template="file:mistral-small-3.1.jinja",
        messages=[{"role": "system", "content": "Be precise."}] + TOOL_CHAT,
        tools=TOOLS,
        bos_token="<s>",
        eos_token="</s>",
    ),
    dict(
        name="mistral_small_set_in_loop_is_scoped",
        template="file:mistral-small-3.1.jinja",
        messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        bos_token="<s>",
        eos_token="</s>",
    ),
    dict(
        name="minimax_m2_tools_and_thinking",
        template="file:minimax-m2.jinja",
        messages=[
            {"role": "system", "content": "You help.", "current_date": "2025-01-02"},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {
                "role": "assistant",
                "content": "<think>\nNeed the tool.\n</think>\n\nChecking.",
                "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2, "units": ["C"]}}}
                ],
            },
            {"role": "tool", "content": "21.5"},
            {"role": "tool", "content": [{"type": "text", "text": "sunny"}]},
        ],
        tools=TOOLS,
        add_generation_prompt=True,
    ),
    dict(name="whitespace_control", template=WS_TEMPLATE, messages=CHAT[1:]),
    dict(
        name="loop_controls",
        template=(
            "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
            "{% if loop.index0 > 2 %}{% break %}{% endif %}"
            "[{{ loop.index }}/{{ loop.length }} {{ loop.index0 }} first={{ loop.first }} last={{ loop.last }}] {{ m.role }}\n"
            "{% endfor %}{% for i in range(3) %}{{ loop.revindex }}{{ loop.previtem }}{{ loop.nextitem }};{% endfor %}"
        ),
        messages=CHAT,
    ),
    dict(
        name="namespace_and_sets",
        template=(
            "{% set ns = namespace(n=0, sys='') %}{% set outer = 'o' %}"
            "{% for m in messages %}{% set outer = 'inner' %}{% set ns.n = ns.n + 1 %}"
            "{% if m['role'] == 'system' %}{% set ns.sys = m['content'] %}{% endif %}{% endfor %}"
            "{{ ns.n }}|{{ ns.sys }}|{{ outer }}|{{ messages[0]['role'] }}|{{ messages[-1].content }}"
            "|{{ messages[1:]|length }}|{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(' / ') }}"
            "|{{ (messages|last).role }}|{{ messages|map(attribute='role')|unique|list }}"
        ),
        messages=CHAT,
    ),
    dict(
        name="raise_exception_message",
        template=(
            "{% for m in messages %}\n{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
            "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n"
            "{% endif %}{{ m.content }}{% endfor %}"
        ),
        messages=[{"role": "assistant", "content": "x"}],
    ),
    dict(
        name="tojson_defaults_and_options",
        template=(
            "{{ tools|tojson }}\n{{ tools[0].function.parameters|tojson(indent=2) }}\n{{ extra_data|tojson(indent=4) }}\n"
            "{{ extra_data|tojson(separators=(',', ':')) }}\n{{ extra_data|tojson(sort_keys=true) }}\n"
            "{{ extra_data.text|tojson(ensure_ascii=true) }}\n{{ extra_data|tojson(indent=1, separators=(', ', ' = ')) }}\n"
            "{{ [1, 'a', none, true]|tojson }}{{ {}|tojson(indent=2) }}{{ []|tojson }}{{ 'x'|tojson(indent='\\t') }}"
        ),
        messages=CHAT[1:2],
        tools=TOOLS,
        extra={"extra_data": TRICKY_VALUES},
    ),
    dict(
        name="string_methods",
        template=(
            "{% set s = '  \\n Hello, World!  \\n' %}"
            "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ s.strip(' \\n!') }}][{{ s.lstrip(' \\n') }}]"
            "[{{ s.rstrip('\\n ') }}][{{ s|trim }}][{{ s.upper() }}][{{ s.lower() }}][{{ 'hello wORLD-x\\'s'.title() }}]"
            "[{{ 'abc'.startswith('ab') }}][{{ 'abc'.endswith('bc') }}][{{ 'abc'.startswith(('x', 'a')) }}]"
            "[{{ 'a,b,,c'.split(',') }}][{{ ' a  b c '.split() }}][{{ 'a,b,c'.split(',', 1) }}][{{ 'a,b,c'.rsplit(',', 1) }}]"
            "[{{ '  a b  c '.rsplit(None, 1) }}][{{ 'a-b-a'.replace('a', 'x') }}][{{ 'a-b-a'.replace('a', 'x', 1) }}]"
            "[{{ 'hello'.capitalize() }}][{{ 'x</think>y'.split('</think>')[-1] }}][{{ 'prefix-body'.removeprefix('prefix-') }}]"
            "[{{ 'abcabc'.count('b') }}][{{ 'abc'.find('c') }}][{{ 'a b'|replace(' ', '_') }}]"
            "{% for k, v in extra_data.items() %}<{{ k }}={{ v }}>{% endfor %}"
            "[{{ extra_data.get('a') }}][{{ extra_data.get('zz', 'dflt') }}][{{ extra_data.get('zz') }}]"
            "[{{ extra_data.keys()|list }}][{{ extra_data.values()|list }}][{{ extra_data|items|list }}]"
        ),
        messages=CHAT[1:2],
        extra={"extra_data": {"b": 1, "a": "two", "c": [1.5, None]}},
    ),
    dict(
        name="python_printing",
        template=(
            "{{ true }}|{{ false }}|{{ none }}|{{ 1.0 }}|{{ 1e20 }}|{{ 0.1 + 0.2 }}|{{ 3 / 2 }}|{{ 4 / 2 }}|{{ 7 // 2 }}"
            "|{{ [1, 'a', none, true, 2.5] }}|{{ {'k': 'it\\'s', 'n': [none]} }}|{{ messages[0] }}"
            "|{{ true|string }}|{{ [true, none, 1.0]|join(',') }}|{{ extra_data }}|{{ extra_data.big }}"
        ),
        messages=[{"role": "user", "content": "q", "meta": {"x": 1.0, "y": [True, None]}}],
        extra={"extra_data": {"big": 1e20, "small": 1e-7, "i": 10}},
    ),
    dict(
        name="undefined_is_lenient",
        template=(
            "[{{ missing }}][{{ messages[0].missing }}][{{ messages[0]['missing'] }}]"
            "[{% if messages[0].missing %}yes{% else %}no{% endif %}][{{ missing is defined }}][{{ messages is defined }}]"
            "[{{ missing|default('d') }}][{{ messages[0].missing|default('d2') }}][{{ ''|default('d3', true) }}]"
            "[{% for x in missing %}{{ x }}{% endfor %}][{{ missing|length }}][{{ tools is none }}][{{ documents is none }}]"
            "[{{ tools is defined }}][{{ bos_token is defined }}][{{ eos_token }}]"
        ),
        messages=[{"role": "user", "content": "q"}],
        eos_token="</s>",
    ),
    dict(
        name="escapes_and_concatenation",
        template=(
            "{{ '\\n' }}|{{ \"tab\\tq\\\"\" }}|{{ 'back\\\\slash' }}|{{ '\\u00e9\\x41' }}|{{ 'it\\'s' }}"
            "|{{ 'a' + 'b' ~ 1 ~ 'c' }}|{{ messages[0]['role'] + ': ' + messages[0]['content'] }}|{{ 2 ~ 3 }}"
            "|{{ 'x' in 'xyz' }}|{{ 'q' not in ['a', 'b'] }}|{{ 'abc'[::-1] }}|{{ 'abcdef'[1:4] }}|{{ [3, 1, 2]|sort }}"
            "|{{ messages|length }}|{{ 'Hello'|length }}|{{ 'MiXeD'|lower }}|{{ 'abc'|upper }}|{{ 2 ** 10 }}|{{ -7 // 2 }}|{{ 7 % 3 }}"
        ),
        messages=[{"role": "user", "content": "q"}],
    ),
    dict(
        name="messages_normalized_like_transformers",
        template=(
            "{% for m in messages %}{{ m|tojson }}|{{ m.tool_calls is defined }}|{{ m.thinking }}|{{ m.reasoning_content }}\n"
            "{% endfor %}"
        ),
        messages=[
            {"role": "user", "content": "q", "tool_calls": None},
            {"role": "assistant", "content": "a", "reasoning": "because"},
            {"role": "assistant", "thinking": "t0", "content": "a2", "reasoning_content": "r0"},
        ],
    ),
    dict(
        name="extra_kwargs_and_special_tokens",
        template=(
            "{{ bos_token }}{% if enable_thinking is defined and enable_thinking is false %}<think>\\n\\n</think>{% endif %}"
            "{{ messages[0].content }}{{ eos_token }}|{{ custom }}"
        ),
        messages=[{"role": "user", "content": "q"}],
        bos_token="<s>",
        eos_token="</s>",
        extra={"enable_thinking": False, "eos_token": "<|eot|>", "custom": [1, {"a": None}]},
    ),
    dict(
        name="generation_block",
        template=(
            "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}\n{{ m.content }}{% endgeneration %}\n"
            "{% else %}{{ m.content }}\n{% endif %}{% endfor %}{%- generation -%} x {%- endgeneration -%}"
        ),
        messages=CHAT[1:3],
    ),
    dict(
        name="tests_and_filters",
        template=(
            "{{ 'abc' is string }}{{ 'abc' is sequence }}{{ 'abc' is iterable }}{{ {} is mapping }}{{ [] is mapping }}"
            "{{ 1 is number }}{{ 1.5 is number }}{{ none is none }}{{ true is boolean }}{{ 1 is integer }}{{ 1.0 is float }}"
            "|{{ messages|map(attribute='role')|list }}|{{ messages|rejectattr('role', 'equalto', 'user')|list|length }}"
            "|{{ [1, 2, 3]|sum }}|{{ [1, 5, 3]|max }}|{{ ['b', 'a']|first }}|{{ ['b', 'a']|last }}|{{ [1, 2]|reverse|list }}"
            "|{{ 'x'|default('y') }}|{{ '3'|int + 1 }}|{{ '2.5'|float }}|{{ 2.567|round(2) }}|{{ -3|abs }}"
            "|{{ dict(a=1, b='x') }}|{{ range(2, 8, 2)|list }}|{{ 'a\\nb'|indent(2) }}|{{ 'x'|center(5) if false else 'c' }}"
        ),
        messages=CHAT,
    ),
    dict(
        name="python_string_escapes_and_crlf",
        template=(
            "{% set s = \"one\\\ntwo \\a\\v \\/ \\U0001F600 \\d \\101\" %}{{ s|tojson }}\r\n"
            "{{ 'x\r\ny' }}|{{ '{\\'k\\': 1}' }}|{{ \"}}\" }}\r\n{# it's a comment #}\r\nend\r\n"
        ),
        messages=[{"role": "user", "content": "q"}],
    ),
    dict(
        name="undefined_concat_error",
        template="ok\n{{ 'a' + messages[0].missing }}",
        messages=[{"role": "user", "content": "q"}],
    ),
    dict(
        name="raise_in_macro_line",
        template="line one\n{% macro boom(x) %}\n{{ raise_exception('bad role: ' + x) }}\n{% endmacro %}\n{{ boom(messages[0].role) }}",
        messages=[{"role": "narrator", "content": "q"}],
    ),
]

# One-line templates covering jinja2 operators, filters, tests and Python semantics; the
# expected text of each is whatever Python produced (an error included).
SEMANTICS = [
    "{{ -7 % 3 }}|{{ 2 ** -1 }}|{{ 7 // 2.0 }}|{{ 2.5|round }}|{{ 3.14159|round(2, 'floor') }}|{{ 10 / 4 }}",
    "{{ '%s-%s'|format('a', 'b') }}|{{ '{} {}'.format(1, 'x') }}|{{ 'abc'|int }}|{{ '12'|int }}|{{ 3.9|int }}",
    "{{ [1,2] + [3] }}|{{ 'ab' * 3 }}|{{ 'a' in {'a': 1} }}|{{ {'a': 1}|length }}",
    "{{ 'hello wORLD-x\\'s (ok) [x]'|title }}|{{ 'hELLO world'|capitalize }}|{{ 'a\\nb\\n\\nc'|indent(2, true) }}"
    "|{{ 'a\\nb'|indent(2, first=true, blank=true) }}",
    "{% macro m(a, b='d') %}[{{ a }}{{ b }}{{ caller() if caller is defined else '' }}]{% endmacro %}{{ m(1) }}"
    "{% call m(2, 'e') %}body{% endcall %}",
    "{% filter upper %}abc{% endfilter %}|{% for k, v in {'b': 1, 'a': 2}|dictsort %}{{ k }}{{ v }}{% endfor %}"
    "|{{ [3,1,2]|sort(reverse=true) }}|{{ ['b','A','c']|sort }}",
    "{{ missing.attr }}",
    "{{ none|length }}",
    "{{ [1, 2, 3]|map('string')|join('-') }}|{{ ['a', 'b']|map('upper')|list }}|{{ [1, none, 2]|select|list }}"
    "|{{ [{'a': 1}, {'a': 2}]|sum(attribute='a') }}",
    "{{ 'ab'|list }}|{{ 'abc'|first }}|{{ [1,2,3]|batch(2)|list }}|{{ [1,2,3]|slice(2)|list }}",
    "{{ range(3)|list }}|{{ (1, 2) }}|{{ (1,) }}|{{ [(1, 'a')] }}|{{ {'a': (1, 2)} }}",
    "{{ 'abc'|replace('b', 'B') }}|{{ 'a  b'.split(' ') }}|{{ 'a\\tb\\nc'.splitlines() }}|{{ ' x '.strip() == 'x' }}"
    "|{{ 'ABC'.lower().startswith('ab') }}",
    "{% for i in range(3) %}{{ loop.cycle('x', 'y') }}{{ loop.revindex0 }}{{ loop.depth }}{% endfor %}"
    "|{% for a in [[1,2],[3]] recursive %}{{ loop.depth }}{% endfor %}",
    "{{ 'x'|center(5) }}|{{ 'x'|default('y', true) }}|{{ ''|default('y') }}|{{ none|default('y') }}|{{ false|default('y') }}",
    "{{ 1 == 1.0 }}|{{ 'a' < 'b' }}|{{ [1] == [1] }}|{{ {'a': 1} == {'a': 1} }}|{{ 1 if none else 2 }}|{{ not none }}"
    "|{{ none is not none }}",
    "{{ 5 // 0 if false else 'ok' }}|{{ 'x'[5:] }}|{{ [1,2,3][-2:] }}|{{ [1,2,3][::2] }}|{{ 'abc'[-1] }}",
    "{% set x = {'a': 1} %}{{ x.a }}{{ x['a'] }}{{ x.get('a') }}{{ x.items()|list }}{{ x.b is defined }}{{ x|items|list }}",
    "{{ 'a,b'.split(',')|length }}|{{ messages|default([])|length }}|{{ 1e3 }}|{{ 100000000000000000000 }}|{{ 2**64 }}",
    "{{ true is number }}|{{ 1 is integer }}|{{ true is integer }}|{{ 'a' is lower }}|{{ 4 is divisibleby 2 }}|{{ 3 is odd }}",
]
CASES += [
    dict(name=f"semantics_{i}", template=template, messages=[{"role": "user", "content": "q"}])
    for i, template in enumerate(SEMANTICS)
]


def template_text(template: str) -> str:
    if template.startswith("file:"):
        return (HERE / "templates" / template[5:]).read_text(encoding="utf-8")
    return template


def render(case: dict) -> tuple[str, str]:
    kwargs = {}
    for token in ("bos_token", "eos_token"):
        if case.get(token) is not None:
            kwargs[token] = case[token]
    kwargs.update(case.get("extra", {}))
    try:
        rendered, _ = render_jinja_template(
            conversations=[_normalize_chat_messages(json.loads(json.dumps(case["messages"])))],
            tools=case.get("tools"),
            chat_template=template_text(case["template"]),
            add_generation_prompt=case.get("add_generation_prompt", False),
            **kwargs,
        )
        return "rendered", rendered[0]
    except jinja2.exceptions.TemplateError as err:
        # raise_exception raises TemplateError itself; jinja2's own errors are subclasses.
        return ("raised" if type(err) is jinja2.exceptions.TemplateError else "engine_error"), str(err)
    except (TypeError, ValueError, OverflowError) as err:
        return "engine_error", f"{type(err).__name__}: {err}"


def rust_str(s: str) -> str:
    """A Rust string literal for s: raw when possible, escaped when s holds control characters."""
    if all(c == "\n" or c == "\t" or (ord(c) >= 0x20 and c != "\x7f") for c in s):
        hashes = 1
        while '"' + "#" * hashes in s:
            hashes += 1
        return "r" + "#" * hashes + '"' + s + '"' + "#" * hashes
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif ord(c) < 0x20 or c == "\x7f":
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def rust_option(value) -> str:
    return "None" if value is None else f"Some({rust_str(value)})"


def main() -> None:
    lines = [
        "// @generated by tools/make_chat_template_cases.py from Python transformers' render_jinja_template; do not edit.",
        "",
        "use super::{Case, Expected};",
        "",
        "pub const CASES: &[Case] = &[",
    ]
    for case in CASES:
        kind, text = render(case)
        template = case["template"]
        template_src = (
            f'include_str!("templates/{template[5:]}")' if template.startswith("file:") else rust_str(template)
        )
        tools = case.get("tools")
        variant = {"rendered": "Rendered", "raised": "Raised", "engine_error": "EngineError"}[kind]
        expected = f"Expected::{variant}({rust_str(text)})"
        lines += [
            "    Case {",
            f"        name: {rust_str(case['name'])},",
            f"        template: {template_src},",
            f"        messages: {rust_str(json.dumps(case['messages'], ensure_ascii=False))},",
            f"        tools: {rust_option(None if tools is None else json.dumps(tools, ensure_ascii=False))},",
            f"        add_generation_prompt: {'true' if case.get('add_generation_prompt') else 'false'},",
            f"        bos_token: {rust_option(case.get('bos_token'))},",
            f"        eos_token: {rust_option(case.get('eos_token'))},",
            f"        extra: {rust_str(json.dumps(case.get('extra', {}), ensure_ascii=False))},",
            f"        expected: {expected},",
            "    },",
        ]
    lines.append("];")
    (HERE / "python_cases.rs").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
