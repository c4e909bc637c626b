"""Talking to servers: one backend per form of --teacher, which server has room (router), how many at once
(concurrency), splitting a reply's reasoning. May import only the shared modules (errors, student, tokens).

Teacher backends, chosen from a dict by the form of --teacher.

A backend is one small class: `await complete(messages, sampling) -> Reply` does one request, and
`await check()` says once, before the run, whether the server is reachable and serves the model.
"""

from __future__ import annotations

from ..errors import UserError

TEACHER_FORMS = "lmstudio | lmstudio://HOST:PORT | http(s)://HOST:PORT/v1"


def make_teacher(spec: str, model: str):
    """Build the backend that `spec` names; the import is lazy so each backend's SDK loads only when used."""
    if spec == "lmstudio" or spec.startswith("lmstudio://"):
        from .lmstudio import LMStudioTeacher

        host = spec.removeprefix("lmstudio").removeprefix("://") or None
        return LMStudioTeacher(host, model)
    if spec.startswith(("http://", "https://")):
        from .openai_compat import OpenAITeacher

        return OpenAITeacher(spec, model)
    raise UserError(f"--teacher must be {TEACHER_FORMS}, got {spec!r}")
