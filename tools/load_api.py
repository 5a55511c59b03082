"""Load test of `ferrotune api` with the official `openai` client (tools/requirements-api.txt).

Usage: load_api.py --base-url http://127.0.0.1:8000/v1 [--api-key KEY] [--clients 64]
                   [--requests 5] [--max-tokens 16] [--baseline 16]

Runs `--clients` concurrent streaming clients, each sending `--requests` chat completions one
after the other (short answers: `max_tokens`, temperature 0, questions varied per request), then
`--baseline` requests from one client at a time. Prints, for both: requests, errors, p50/p95
time to first token (first content chunk), generated tokens (from the usage chunk) and total
tokens/s over the wall time; then the throughput ratio. Exits 1 on any error.
"""

import argparse
import asyncio
import statistics
import sys
import time

import openai

QUESTIONS = [
    "What is the capital of France?",
    "Name a primary color.",
    "What is 2 + 2?",
    "Say hello in Spanish.",
    "What animal says moo?",
    "Name a planet.",
    "What is the opposite of hot?",
    "Give me a fruit.",
]


async def one_request(client, model, i, max_tokens):
    start = time.perf_counter()
    ttft, tokens = None, 0
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
        temperature=0, max_tokens=max_tokens, stream=True, stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if ttft is None and any(c.delta.content for c in chunk.choices):
            ttft = time.perf_counter() - start
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return (ttft if ttft is not None else time.perf_counter() - start), tokens


async def client_loop(client, model, cid, n, max_tokens, results, errors):
    for r in range(n):
        try:
            results.append(await one_request(client, model, cid * n + r, max_tokens))
        except Exception as e:  # counted and printed; the run fails at the end
            errors.append(f"client {cid} request {r}: {type(e).__name__}: {e}")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def run(args, clients, per_client):
    client = openai.AsyncOpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=600)
    results, errors = [], []
    start = time.perf_counter()
    await asyncio.gather(*[
        client_loop(client, args.model, c, per_client, args.max_tokens, results, errors) for c in range(clients)
    ])
    wall = time.perf_counter() - start
    await client.close()
    ttfts = [r[0] for r in results]
    tokens = sum(r[1] for r in results)
    label = f"{clients} client(s) x {per_client} request(s)"
    print(f"{label}: {len(results)} ok, {len(errors)} errors, wall {wall:.1f} s, "
          f"TTFT p50 {statistics.median(ttfts) * 1e3:.0f} ms p95 {pct(ttfts, 0.95) * 1e3:.0f} ms, "
          f"{tokens} tokens, {tokens / wall:.1f} tokens/s")
    for e in errors[:10]:
        print("  " + e)
    return tokens / wall, errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", default="unused")
    ap.add_argument("--model", default="gpt-3.5-turbo")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--baseline", type=int, default=16, help="requests sent one at a time")
    args = ap.parse_args()
    concurrent, errors = asyncio.run(run(args, args.clients, args.requests))
    single, errors1 = asyncio.run(run(args, 1, args.baseline))
    print(f"batching raises throughput {concurrent / single:.2f}x "
          f"({concurrent:.1f} vs {single:.1f} tokens/s one at a time)")
    sys.exit(1 if errors or errors1 else 0)


if __name__ == "__main__":
    main()
