"""Checks `ferrotune api` with the official `openai` Python client (tools/requirements-api.txt).

Usage: check_openai_client.py --base-url http://127.0.0.1:8000/v1 --api-key KEY [--model NAME]

The server must serve the demo model (SmolLM2-135M-Instruct) with `template=smollm2` and the
given API_KEY. Checks, each printed with its result:
  1. a non-streamed chat completion at temperature 0 answers "What is the capital of France?"
     with Paris, finish_reason "stop", and usage total = prompt + completion;
  2. the same request streamed gives the same text, then a usage chunk with the same counts;
  3. usage is consistent with the tokenizer: one more token in the user message (" Paris" after
     a newline boundary) adds exactly one prompt token, and `max_tokens=3` gives
     completion_tokens 3 with finish_reason "length";
  4. with a weather tool and tool_choice "required" the answer is a `get_weather` tool call whose
     arguments are a JSON object (finish_reason "tool_calls");
  5. a missing or wrong API key raises AuthenticationError (401); an unknown model NotFoundError.
Exits 1 on the first failed check.
"""

import argparse
import json
import sys

import openai

QUESTION = "What is the capital of France?"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name"}},
            "required": ["city"],
        },
    },
}


def check(name, ok, detail=""):
    print(f"[{'ok' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail else ""))
    if not ok:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--model", default="gpt-3.5-turbo")
    args = ap.parse_args()
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0)
    messages = [{"role": "user", "content": QUESTION}]

    models = client.models.list()
    check("models.list names the model", [m.id for m in models.data] == [args.model])

    # 1. Non-streamed.
    r = client.chat.completions.create(model=args.model, messages=messages, temperature=0, max_tokens=32)
    text = r.choices[0].message.content
    check("non-streamed answer names Paris", "Paris" in text, repr(text))
    check("finish_reason stop", r.choices[0].finish_reason == "stop", r.choices[0].finish_reason)
    u = r.usage
    check("usage total = prompt + completion", u.total_tokens == u.prompt_tokens + u.completion_tokens, str(u))

    # 2. Streamed.
    pieces, usage, finish = [], None, None
    stream = client.chat.completions.create(
        model=args.model, messages=messages, temperature=0, max_tokens=32, stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    streamed = "".join(pieces)
    check("streamed text equals the non-streamed one", streamed == text, repr(streamed))
    check("streamed finish_reason stop", finish == "stop", str(finish))
    check("streamed usage equals the non-streamed one", usage is not None and usage.model_dump() == u.model_dump(), str(usage))

    # 3. Usage against the tokenizer.
    longer = client.chat.completions.create(
        model=args.model, messages=[{"role": "user", "content": QUESTION + "\nParis"}], temperature=0, max_tokens=1,
    )
    # "\nParis" adds two tokens: "\n" and "Paris" (a newline is its own pre-token in the
    # byte-level BPE, and "Paris" is one token of the SmolLM2 vocabulary).
    check("two more tokens in the message → prompt_tokens + 2", longer.usage.prompt_tokens == u.prompt_tokens + 2,
          f"{u.prompt_tokens} → {longer.usage.prompt_tokens}")
    short = client.chat.completions.create(model=args.model, messages=messages, temperature=0, max_tokens=3)
    check("max_tokens=3 → completion_tokens 3, finish_reason length",
          short.usage.completion_tokens == 3 and short.choices[0].finish_reason == "length", str(short.usage))
    check("the 3-token answer starts the full answer", text.startswith(short.choices[0].message.content),
          repr(short.choices[0].message.content))

    # 4. Tool call.
    r = client.chat.completions.create(
        model=args.model, messages=[{"role": "user", "content": "What is the weather like in Paris today?"}],
        temperature=0, max_tokens=64, tools=[WEATHER_TOOL], tool_choice="required",
    )
    calls = r.choices[0].message.tool_calls or []
    check("a get_weather tool call comes back", len(calls) >= 1 and calls[0].function.name == "get_weather",
          str(r.choices[0].message))
    check("finish_reason tool_calls", r.choices[0].finish_reason == "tool_calls", r.choices[0].finish_reason)
    check("arguments are a JSON object", isinstance(json.loads(calls[0].function.arguments), dict), calls[0].function.arguments)

    # 5. Key and model enforcement.
    for key in ["wrong-key", ""]:
        bad = openai.OpenAI(base_url=args.base_url, api_key=key or "x", max_retries=0)
        if key == "":
            bad = openai.OpenAI(base_url=args.base_url, api_key="unused", max_retries=0,
                                default_headers={"Authorization": ""})
        try:
            bad.chat.completions.create(model=args.model, messages=messages, max_tokens=1)
            check(f"API key enforced ({'missing' if not key else 'wrong'} key)", False, "request succeeded")
        except openai.AuthenticationError as e:
            check(f"API key enforced ({'missing' if not key else 'wrong'} key)", e.status_code == 401)
    try:
        client.chat.completions.create(model="no-such-model", messages=messages, max_tokens=1)
        check("unknown model rejected", False, "request succeeded")
    except openai.NotFoundError as e:
        check("unknown model rejected with 404", e.status_code == 404)
    print("all checks passed")


if __name__ == "__main__":
    main()
