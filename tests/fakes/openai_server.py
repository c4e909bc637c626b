"""A real local HTTP server speaking the OpenAI chat-completions API, answering Qwen3-style from a Script.

    with OpenAIFake(script) as fake:          # in-process, on a free port
        fake.url                               # "http://127.0.0.1:PORT/v1"
        fake.requests                          # every chat request body received (JSON), in arrival order
        fake.headers                           # their HTTP headers, in the same order
        fake.ports                             # their client ports (requests on one connection share one)

    python -m tests.fakes.openai_server --script FILE.json [--port N] [--slots S] [--reports lmstudio|llama.cpp|vllm]
                                        [--gpu SCALE]
        prints "listening on http://127.0.0.1:PORT/v1" (for subprocess tests and bench/)

`gpu` (tests/fakes/gpu.py) makes every streamed reply one token a decode step of a simulated consumer card, its
per-slot rate falling as slots fill; `GET /fake/stats` then says the card's simulated clock and tokens, and
each reply's prompt, tokens decoded, finish and whether its client left (bench/teacher_hours.py reads it).

`slots` bounds how many replies are generated at once, like a server's parallel slots: requests beyond it
wait in the server. `reports` says where the server tells its slots, as real ones do: "lmstudio" serves
LM Studio 0.4's `GET /api/v1/models` (each loaded instance's `config.parallel` = slots), "llama.cpp"
llama-server's `GET /props` (`total_slots` = slots) and behaves as llama-server does with connections: every
reply says `Server: llama.cpp`, and a streamed reply ends with the connection closed although it was kept
alive (unless the request said `Connection: close`: then the reply says so too); "vllm" serves a
Prometheus `GET /metrics` with vLLM's gauges; None (the default) tells nothing, so a client must find out. `reasoning_field` picks where the thinking goes: reasoning_content (LM Studio,
llama.cpp, DeepSeek), reasoning (vLLM, Ollama, OpenRouter), think_tags (<think> in content) or
lone_close (the template opened <think>: content holds only the closing tag).
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .gpu import GPU
from .script import Rule, Script, last_user_text, split_chunks

HANG_LIMIT = 120.0  # seconds a hanging request waits for its client to give up
# How long a llama.cpp fake waits, after a streamed reply, for the next request on the same connection before
# it closes. llama-server closes at once and a client's next request loses the race often (bench/README.md);
# waiting for that request makes the loss certain, so a test of a client that reuses the connection always fails.
REUSE_WAIT_S = 1.0


def prompt_words(body: dict) -> int:
    """The fake's prompt tokens: a word a token, over every message."""
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FakeHTTPServer"

    def log_message(self, *args):  # quiet
        pass

    def version_string(self) -> str:  # the Server header
        return "llama.cpp" if self.server.reports == "llama.cpp" else super().version_string()

    def setup(self):
        super().setup()
        # Real servers (uvicorn, llama.cpp) send small stream chunks at once; without this, Nagle's algorithm
        # and delayed ACKs hold each reply back by about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        fake = self.server
        if self.path == "/api/v1/models" and fake.reports == "lmstudio":
            return self._json(200, {"models": [lmstudio_model(m, fake.slot_count) for m in fake.script.models]})
        if self.path == "/props" and fake.reports == "llama.cpp":  # llama-server's, abridged
            return self._json(200, {"total_slots": fake.slot_count, "model_path": fake.script.models[0]})
        if self.path == "/metrics" and fake.reports == "vllm":
            data = vllm_metrics(fake.script.models[0], fake.in_flight).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if self.path == "/fake/stats":
            gpu = fake.gpu and {"clock": fake.gpu.clock, "tokens": fake.gpu.tokens}
            with fake.lock:
                return self._json(200, {"gpu": gpu, "streams": list(fake.streams)})
        if self.path.rstrip("/").endswith("/v1/models"):
            models = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.server.script.models]
            return self._json(200, {"object": "list", "data": models})
        self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        fake = self.server
        with fake.lock:
            fake.requests.append(body)
            fake.headers.append(dict(self.headers))
            fake.ports.append(self.client_address[1])
        if body.get("model") not in fake.script.models:
            return self._json(404, {"error": {"message": f"model '{body.get('model')}' not found", "type": "not_found"}})
        rule, misbehave = fake.script.pick(body.get("messages", []))
        with fake.slots:
            with fake.lock:
                fake.in_flight += 1
                fake.peak = max(fake.peak, fake.in_flight)
            try:
                self._answer(body, rule, misbehave)
            finally:
                with fake.lock:
                    fake.in_flight -= 1
        if fake.reports == "llama.cpp" and body.get("stream") and not self.close_connection:
            select.select([self.connection], [], [], REUSE_WAIT_S)  # the next request, unread: it is lost
            self.close_connection = True

    def _answer(self, body: dict, rule: Rule, misbehave: bool):
        fake = self.server
        if rule.hang:
            return self._hang()
        time.sleep(fake.script.delay(rule))
        if misbehave and not rule.drop:
            return self._json(rule.status, {"error": {"message": f"scripted failure {rule.status}", "type": "server_error"}})
        if (rule.word_by_word or fake.gpu) and body.get("stream"):
            return self._stream_words(body, rule)
        reasoning, content, finish = self._texts(rule)
        usage = {"prompt_tokens": prompt_words(body),
                 "completion_tokens": len((reasoning + " " + content).split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]  # as real servers add
        if not body.get("stream"):
            message = {"role": "assistant", "content": content}
            if reasoning:
                message[fake.reasoning_field] = reasoning
            return self._json(200, {"id": "fake", "object": "chat.completion", "model": body["model"],
                                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                    "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")  # keep-alive, as real servers do
        self._end_headers()
        pieces = [{fake.reasoning_field: p} for p in split_chunks(reasoning, rule.chunks)]
        pieces += [{"content": p} for p in split_chunks(content, rule.chunks)]
        try:
            for i, delta in enumerate(pieces):
                if misbehave and rule.drop and i == len(pieces) // 2:
                    self.connection.shutdown(socket.SHUT_RDWR)  # cut mid-reply
                    self.close_connection = True
                    return
                self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}, body)
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}, body)
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event({"choices": [], "usage": usage}, body)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")  # the empty chunk ends the body
        except (BrokenPipeError, ConnectionResetError):
            with fake.lock:
                fake.cancelled += 1

    def _stream_words(self, body: dict, rule: Rule):
        """One word an event at rule.rate words a second (or at once), a loop until max_tokens; records how
        many were sent and whether the client went away before the end (a cancel, for a streaming client)."""
        fake = self.server
        record = {"prompt": last_user_text(body.get("messages", [])), "sent": 0, "client_left": False}
        with fake.lock:
            fake.streams.append(record)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self._end_headers()
        field_ = fake.reasoning_field if fake.reasoning_field in ("reasoning_content", "reasoning") else None
        opened = False

        prompt = prompt_words(body)
        # llama.cpp, asked, times every token: the prompt read and the part cached apart, the tokens decoded
        # and its decode rate (here the rule's rate, exactly, so a test can tell where a rate came from)
        timed = fake.reports == "llama.cpp" and body.get("timings_per_token")
        decoded = 0

        def send(token: tuple[str, str]):
            nonlocal opened, decoded
            part, word = token
            if part == "reasoning" and field_:
                delta = {field_: word}
            elif part == "reasoning":
                delta, opened = {"content": word if opened else "<think>\n" + word}, True
            else:
                delta, opened = {"content": ("\n</think>\n\n" if opened and not field_ else "") + word}, False
            event = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            decoded += 1
            if timed:
                event["timings"] = {"cache_n": prompt // 2, "prompt_n": prompt - prompt // 2, "predicted_n": decoded,
                                    "predicted_per_second": float(rule.rate if decoded > 1 else 0)}
            self._event(event, body)

        tokens = rule.words(int(body.get("max_tokens") or 32768))
        try:
            if fake.gpu:  # one token a decode step of the simulated card, shared with the other busy slots
                record["sent"], left = fake.gpu.decode(tokens, send)
                if left:
                    raise BrokenPipeError
            for token in () if fake.gpu else tokens:
                send(token)
                record["sent"] += 1
                if rule.rate:
                    time.sleep(1 / rule.rate)
            record["finish"] = "length" if rule.runs_out() or record["sent"] >= int(body.get("max_tokens") or 32768) \
                else "stop"
            usage = {"prompt_tokens": prompt, "completion_tokens": record["sent"]}
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": record["finish"]}]}, body)
            self._event({"choices": [], "usage": usage}, body)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            record["client_left"] = True
            with fake.lock:
                fake.cancelled += 1
            self.close_connection = True

    def _end_headers(self):
        if self.close_connection:  # the request said Connection: close
            self.send_header("Connection", "close")
        self.end_headers()

    def _texts(self, rule: Rule) -> tuple[str, str, str]:
        """(reasoning field text, content text, finish) in the configured server style."""
        style = self.server.reasoning_field
        if rule.unclosed:
            if style == "think_tags":
                return "", f"<think>\n{rule.reasoning}", "length"
            return rule.reasoning, "", "length"
        if style == "think_tags":
            return "", f"<think>\n{rule.reasoning}\n</think>\n\n{rule.content}", "stop"
        if style == "lone_close":
            return "", f"{rule.reasoning}\n</think>\n\n{rule.content}", "stop"
        return rule.reasoning, rule.content, "stop"

    def _event(self, payload: dict, body: dict):
        chunk = {"id": "fake", "object": "chat.completion.chunk", "model": body["model"], **payload}
        self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _hang(self):
        """Answer nothing until the client gives up (closes its connection)."""
        deadline = time.monotonic() + HANG_LIMIT
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                with self.server.lock:
                    self.server.cancelled += 1
                break
        self.close_connection = True

    def _json(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._end_headers()
        self.wfile.write(data)


def lmstudio_model(key: str, parallel: int) -> dict:
    """One entry of LM Studio 0.4's GET /api/v1/models, loaded once with `parallel` slots."""
    return {"type": "llm", "publisher": "fake", "key": key, "display_name": key, "architecture": "qwen3",
            "quantization": {"name": "Q4_K_M", "bits_per_weight": 4}, "size_bytes": 1, "params_string": "14B",
            "loaded_instances": [{"id": key, "config": {"context_length": 32768, "eval_batch_size": 512,
                                                        "parallel": parallel, "flash_attention": True,
                                                        "offload_kv_cache_to_gpu": True}}],
            "max_context_length": 32768, "format": "gguf"}


def vllm_metrics(model: str, running: int) -> str:
    """The start of vLLM's /metrics (Prometheus text): the gauges that say it is vLLM."""
    return (f'# HELP vllm:num_requests_running Number of requests in model execution batches.\n'
            f'# TYPE vllm:num_requests_running gauge\n'
            f'vllm:num_requests_running{{engine="0",model_name="{model}"}} {float(running)}\n'
            f'# TYPE vllm:num_requests_waiting gauge\n'
            f'vllm:num_requests_waiting{{engine="0",model_name="{model}"}} 0.0\n'
            f'vllm:cache_config_info{{block_size="16",engine="0",num_gpu_blocks="31000"}} 1.0\n')


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, script: Script, port: int = 0, slots: int = 64, reasoning_field: str = "reasoning_content",
                 reports: str | None = None, gpu: GPU | None = None):
        super().__init__(("127.0.0.1", port), Handler)
        self.gpu = gpu
        self.script = script
        self.slot_count, self.reports = slots, reports
        self.slots = threading.BoundedSemaphore(slots)
        self.reasoning_field = reasoning_field
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.headers: list[dict] = []   # each chat request's HTTP headers, in the same order
        self.ports: list[int] = []      # each chat request's client port: one port, one connection
        self.in_flight = self.peak = self.cancelled = 0
        self.streams: list[dict] = []   # word-by-word replies: prompt, words sent, whether the client left

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return  # a client that closed its keep-alive connection: nothing to report
        super().handle_error(request, client_address)


class OpenAIFake:
    def __init__(self, script: Script | dict, slots: int = 64, reasoning_field: str = "reasoning_content",
                 reports: str | None = None, gpu: GPU | None = None):
        self.script = script if isinstance(script, Script) else Script.from_dict(script)
        self.server = FakeHTTPServer(self.script, slots=slots, reasoning_field=reasoning_field, reports=reports, gpu=gpu)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict]:
        return self.server.requests

    @property
    def headers(self) -> list[dict]:
        return self.server.headers

    @property
    def ports(self) -> list[int]:
        return self.server.ports

    def __enter__(self) -> "OpenAIFake":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--script", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--slots", type=int, default=64)
    p.add_argument("--reasoning-field", default="reasoning_content")
    p.add_argument("--reports", choices=("lmstudio", "llama.cpp", "vllm"), help="tell the slots where real servers do")
    p.add_argument("--gpu", type=float, metavar="SCALE", help="stream on a simulated consumer GPU (tests/fakes/gpu.py), "
                   "its time sped up at most SCALE times")
    args = p.parse_args()
    gpu = GPU(scale=args.gpu) if args.gpu else None
    server = FakeHTTPServer(Script.load(args.script), args.port, args.slots, args.reasoning_field, args.reports, gpu)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
