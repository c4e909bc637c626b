"""A fake LM Studio server: the websocket protocol the real `lmstudio` SDK (1.5.0) speaks, answering from a Script.

What the SDK needs (read from its source, see ../../shared/notes/teachers.md):
- `GET /lmstudio-greeting` -> {"lmstudio": true}, probed before connecting;
- one websocket per namespace: AsyncClient opens /embedding, /files, /llm, /repository and /system at once,
  each starting with the auth message {"authVersion": 1, ...} -> {"success": true};
- on /llm: channels `getOrLoad` and `predict`, RPC `listLoaded`; on /system: RPC `listDownloadedModels`.
Every message the fake sends must pass the SDK's strict msgspec schemas (LlmPredictionFragment,
LlmPredictionStats, LlmInfo, KvConfig).

Two ways to run it:
    with LMStudioFake(script) as fake:            # in-process, in a background thread
        LMStudioTeacher(fake.host, "qwen3-14b")
    python -m tests.fakes.lmstudio_server --script FILE.json [--port N]   # prints "listening on 127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from .openai_server import lmstudio_model
from .script import Rule, Script, split_chunks

STEP_S = 0.01  # pause between streamed fragments, so a cancel can land mid-reply


def model_info(key: str) -> dict:
    """An LlmInstanceInfo (it is also a valid LlmInfo: msgspec ignores the extra fields)."""
    return {
        "type": "llm", "modelKey": key, "format": "gguf", "displayName": key, "path": f"fake/{key}",
        "sizeBytes": 1, "identifier": key, "instanceReference": f"fake-{key}", "vision": False,
        "trainedForToolUse": False, "maxContextLength": 32768, "contextLength": 32768,
    }


def flat_config(stack: dict) -> dict:
    """The prediction config a client sent, as {"temperature": 0.6, "topKSampling": 20, ...}."""
    flat = {}
    for layer in stack.get("layers", []):
        for item in layer["config"]["fields"]:
            value = item.get("value")
            if isinstance(value, dict) and "checked" in value:  # fields that can be switched off
                value = value["value"] if value["checked"] else None
            flat[item["key"].removeprefix("llm.prediction.")] = value
    return flat


def count_tokens(text: str) -> int:
    return max(1, len(text.split()))


def piece(text: str, kind: str) -> dict:
    """One LlmPredictionFragment."""
    return {"content": text, "tokensCount": count_tokens(text), "containsDrafted": False, "reasoningType": kind}


class LMStudioFake:
    """Serves a Script over the LM Studio protocol and records what clients sent."""

    def __init__(self, script: Script, port: int = 0, parallel: int | None = None):
        """parallel: what LM Studio 0.4's REST API reports for the loaded model (GET /api/v1/models); None:
        an older LM Studio, without that endpoint."""
        self.script = script
        self.port = port
        self.parallel = parallel
        self.predictions: list[dict] = []  # {"model", "messages", "config"} for each predict request
        self.cancels: list[str] = []       # prompts of the predictions the client cancelled
        self.connections: list[str] = []   # the path of every websocket opened, e.g. "/llm"
        self.streams: list[dict] = []      # each prediction: prompt, tokens sent, whether it was cancelled
        self.in_flight = 0
        self.peak_in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- running ---------------------------------------------------------------------------------------

    async def serve(self, on_ready=None) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._session, "127.0.0.1", self.port, process_request=self._greeting) as server:
            self.port = server.sockets[0].getsockname()[1]
            if on_ready:
                on_ready()
            await self._stop.wait()

    def __enter__(self) -> "LMStudioFake":
        ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self.serve(ready.set),), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake LM Studio did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    # -- protocol --------------------------------------------------------------------------------------

    def _greeting(self, connection: ServerConnection, request):
        if request.path in ("/lmstudio-greeting", "/api/v1/models"):
            if request.path == "/lmstudio-greeting":
                body = json.dumps({"lmstudio": True}).encode()
            elif self.parallel is None:
                return Response(HTTPStatus.NOT_FOUND, "Not Found", Headers({"Content-Length": "0"}), b"")
            else:
                body = json.dumps({"models": [lmstudio_model(key, self.parallel) for key in self.script.models]}).encode()
            headers = Headers({"Content-Type": "application/json", "Content-Length": str(len(body))})
            return Response(HTTPStatus.OK, "OK", headers, body)
        return None  # anything else goes on to the websocket handshake

    async def _session(self, ws: ServerConnection) -> None:
        self.connections.append(ws.request.path)
        tasks: set[asyncio.Task] = set()
        cancels: dict[int, asyncio.Event] = {}
        try:
            await ws.recv()  # {"authVersion": 1, "clientIdentifier": ..., "clientPasskey": ...}
            await ws.send(json.dumps({"success": True}))
            async for raw in ws:
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "channelCreate":
                    cancels[msg["channelId"]] = asyncio.Event()
                    task = asyncio.create_task(self._channel(ws, msg, cancels[msg["channelId"]]))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif kind == "channelSend" and msg["message"].get("type") == "cancel":
                    if msg["channelId"] in cancels:
                        cancels[msg["channelId"]].set()
                elif kind == "rpcCall":
                    await self._rpc(ws, msg)
        except ConnectionClosed:
            pass
        finally:
            for task in tasks:
                task.cancel()

    async def _rpc(self, ws, msg) -> None:
        models = [model_info(key) for key in self.script.models]
        results = {"listLoaded": models, "listDownloadedModels": models}
        if msg["endpoint"] in results:
            reply = {"type": "rpcResult", "callId": msg["callId"], "result": results[msg["endpoint"]]}
        else:
            reply = {"type": "rpcError", "callId": msg["callId"],
                     "error": {"title": f"fake LM Studio has no RPC {msg['endpoint']!r}"}}
        await ws.send(json.dumps(reply))

    async def _channel(self, ws, msg, cancelled: asyncio.Event) -> None:
        channel, params = msg["channelId"], msg.get("creationParameter", {})

        async def send(message: dict) -> None:
            await ws.send(json.dumps({"type": "channelSend", "channelId": channel, "message": message}))

        async def fail(error: dict) -> None:
            await ws.send(json.dumps({"type": "channelError", "channelId": channel, "error": error}))

        if msg["endpoint"] == "getOrLoad":
            key = params["identifier"]
            if key not in self.script.models:
                return await fail({
                    "title": f"No model found that fits the query: {key!r}",
                    "displayData": {"code": "generic.noModelMatchingQuery", "query": {"identifier": key},
                                    "loadedModelsSample": self.script.models,
                                    "totalLoadedModels": len(self.script.models)},
                })
            await send({"type": "alreadyLoaded", "info": model_info(key)})
        elif msg["endpoint"] == "predict":
            await self._predict(params, send, fail, ws, cancelled)
        else:
            return await fail({"title": f"fake LM Studio has no channel endpoint {msg['endpoint']!r}"})
        await ws.send(json.dumps({"type": "channelClose", "channelId": channel}))

    async def _predict(self, params, send, fail, ws, cancelled: asyncio.Event) -> None:
        messages = [
            {"role": m["role"], "content": "".join(p.get("text", "") for p in m["content"])}
            for m in params["history"]["messages"]
        ]
        model = params["modelSpecifier"].get("query", {}).get("identifier", "")
        config = flat_config(params["predictionConfigStack"])
        self.predictions.append({"model": model, "messages": messages, "config": config})
        rule, misbehave = self.script.pick(messages)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        record = {"prompt": messages[-1]["content"] if messages else "", "sent": 0, "cancelled": False}
        self.streams.append(record)
        try:
            fragments = (self._words(rule, config.get("maxPredictedTokens") or 32768) if rule.word_by_word
                         else self._fragments(rule))
            stop = "maxPredictedTokensReached" if rule.runs_out() else "eosFound"
            cancelled_early = await self._pause(self.script.delay(rule), cancelled)
            if rule.hang and not cancelled_early:
                await cancelled.wait()  # a stuck server: nothing until the client cancels
            if misbehave and not rule.drop:
                return await fail({"title": f"fake LM Studio failure (status {rule.status})",
                                   "cause": "scripted by the test"})
            sent = []
            for i, fragment in enumerate(fragments):
                if cancelled.is_set():
                    break
                if misbehave and rule.drop and i == len(fragments) // 2:
                    ws.transport.abort()  # the server vanishes mid-reply, without a close frame
                    return
                await send({"type": "fragment", "fragment": fragment})
                sent.append(fragment)
                record["sent"] += fragment["tokensCount"]
                await self._pause(1 / rule.rate if rule.rate else STEP_S, cancelled)
            if cancelled.is_set():
                self.cancels.append(messages[-1]["content"] if messages else "")
                record["cancelled"] = True
                stop = "userStopped"
            await send(self._success(model, messages, sent, stop, params["predictionConfigStack"]))
        finally:
            self.in_flight -= 1

    @staticmethod
    async def _pause(seconds: float, cancelled: asyncio.Event) -> bool:
        """Sleep, waking early on a cancel; True if cancelled."""
        try:
            await asyncio.wait_for(cancelled.wait(), seconds)
        except TimeoutError:
            pass
        return cancelled.is_set()

    @staticmethod
    def _words(rule: Rule, max_tokens: int):
        """One word a fragment (a loop until max_tokens), with the thinking's start and end tags."""
        yield piece("<think>", "reasoningStartTag")
        thinking = True
        for part, word in rule.words(max_tokens):
            if part == "answer" and thinking:
                thinking = False
                yield piece("</think>", "reasoningEndTag")
            yield piece(word, "reasoning" if part == "reasoning" else "none")

    @staticmethod
    def _fragments(rule: Rule) -> list[dict]:
        out = [piece("<think>", "reasoningStartTag")]
        out += [piece(text, "reasoning") for text in split_chunks(rule.reasoning, rule.chunks)]
        if rule.unclosed:
            return out
        out.append(piece("</think>", "reasoningEndTag"))
        out += [piece(text, "none") for text in split_chunks("\n\n" + rule.content, rule.chunks)]
        return out

    @staticmethod
    def _success(model: str, messages: list[dict], sent: list[dict], stop: str, config_stack: dict) -> dict:
        prompt_tokens = sum(count_tokens(m["content"]) for m in messages)
        predicted = sum(f["tokensCount"] for f in sent)
        fields = [f for layer in config_stack.get("layers", []) for f in layer["config"]["fields"]]
        return {
            "type": "success",
            "stats": {"stopReason": stop, "tokensPerSecond": 50.0, "timeToFirstTokenSec": 0.01,
                      "promptTokensCount": prompt_tokens, "predictedTokensCount": predicted,
                      "totalTokensCount": prompt_tokens + predicted},
            "modelInfo": model_info(model),
            "loadModelConfig": {"fields": []},
            "predictionConfig": {"fields": fields},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", required=True, help="a Script as JSON (see tests/fakes/script.py)")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args()
    fake = LMStudioFake(Script.load(args.script), args.port)
    try:
        asyncio.run(fake.serve(lambda: print(f"listening on {fake.host}", flush=True)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
