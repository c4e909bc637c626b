"""Smoke check of the teacher before a long run: reach the server, get (or load) the model, send one short
prompt, and show how the reply came back (reasoning/answer split, finish reason, tokens per second).

    python Databricks/test.py                                               # LM Studio on this machine
    python Databricks/test.py --teacher http://localhost:8000/v1 --model Qwen/Qwen3-14B
    python Databricks/test.py --teacher lmstudio://10.0.0.5:1234 --teacher lmstudio://10.0.0.6:1234

Exit codes: 0 every teacher answered; 2 a server cannot be reached or does not serve the model (one line);
1 the server was reached but the request failed or timed out.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from tunixhack.generate.argtypes import positive
from tunixhack.errors import TransientError, UserError
from tunixhack.teachers import TEACHER_FORMS, make_teacher
from tunixhack.teachers.base import Reply, Sampling

PROMPT = "In two sentences: why is the sky blue?"
SHOWN_CHARS = 400  # of the reasoning and the answer


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", action="append", metavar="SPEC", help=f"{TEACHER_FORMS} (repeatable; default lmstudio)")
    p.add_argument("--model", default="qwen3-14b", help="model key on the server (default qwen3-14b)")
    p.add_argument("--prompt", default=PROMPT, help="the question to send (default: a one-line science question)")
    p.add_argument("--max-tokens", type=positive(), default=2048, help="thinking included (default 2048)")
    p.add_argument("--timeout", type=positive(float), default=300.0, help="seconds for the request (default 300)")
    return p.parse_args(argv)


async def smoke(spec: str, args) -> Reply:
    """Check the server and model, then send the prompt once; UserError if unreachable or model unknown."""
    teacher = make_teacher(spec, args.model)
    try:
        await teacher.check()
        print(f"{teacher.endpoint}: model {args.model} is ready", flush=True)
        sampling = Sampling(max_tokens=args.max_tokens, timeout=args.timeout)
        messages = [{"role": "user", "content": args.prompt}]
        try:
            return await asyncio.wait_for(teacher.complete(messages, sampling), args.timeout)
        except asyncio.TimeoutError:
            raise TransientError(f"{teacher.endpoint}: no reply within {args.timeout:g}s") from None
    finally:
        await teacher.close()


def describe(reply: Reply) -> list[str]:
    usage = reply.usage
    speed = usage.get("tokens_per_second")
    lines = [
        f"  reasoning ({len(reply.reasoning)} chars): {shorten(reply.reasoning) or '(none)'}",
        f"  answer ({len(reply.content)} chars): {shorten(reply.content) or '(none)'}",
        f"  finish: {reply.finish}; thinking closed: {reply.thinking_closed}",
        f"  tokens: prompt {usage.get('prompt_tokens')}, completion {usage.get('completion_tokens')}, "
        f"reasoning {usage.get('reasoning_tokens')}; {usage.get('seconds')} s; "
        f"{f'{speed:.1f} tok/s' if speed else 'tok/s unknown (the server sent no token counts)'}",
    ]
    if not reply.reasoning:
        lines.append("  note: no reasoning came back: is thinking on, and does the server separate it "
                     "(reasoning_content / reasoning / <think>)?")
    if not reply.thinking_closed:
        lines.append("  note: the thinking did not end within --max-tokens; raise it")
    return lines


def shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def main(argv=None) -> int:
    args = parse_args(argv)
    code = 0
    for spec in args.teacher or ["lmstudio"]:
        try:
            reply = asyncio.run(smoke(spec, args))
        except UserError as e:  # unreachable, unknown model, bad --teacher: the setup is wrong
            print(f"error: {e}", file=sys.stderr)
            code = max(code, 2)
            continue
        except TransientError as e:  # reached, but the request failed: may pass on another try
            print(f"error: {e}", file=sys.stderr)
            code = max(code, 1)
            continue
        print("\n".join(describe(reply)))
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
