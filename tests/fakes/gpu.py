"""A simulated consumer GPU for the fake OpenAI server: one decode step gives every busy slot one token, and a
step takes longer the more slots share it, as llama.cpp's batched decoding does on one card.

    gpu = GPU()                       # Qwen3-14B Q4_K_M on a 16 GB card (below), time sped up at most 1000 x
    OpenAIFake(script, slots=4, gpu=gpu)
    gpu.clock                         # simulated seconds spent decoding so far

The curve: one slot alone decodes SINGLE_SLOT_TOKENS_S = 60 tokens/s (the issue's figure for a 14B Q4 on a
16 GB card; an RTX 4080's 717 GB/s over the ~9 GB of Qwen3-14B Q4_K_M weights bounds it at ~80). With n slots
busy the card makes BATCH_SPEEDUP[n-1] times as many tokens a second in all: llama.cpp's CUDA throughput per
micro-batch size 1..8 for a Q4_0 8B on an RTX 3090 (155, 277, 390, 469, 514, 529, 559, 570 t/s,
https://github.com/ggml-org/llama.cpp/pull/15802), the same quantized matrix-vector kernels a batch of n
decoding slots runs. So each of 4 busy slots gets 60 x 3.03 / 4 = 45 tokens/s, 182 tokens/s in all.

The clock advances by one step's simulated time per step, whatever the machine's load: steps run as fast as
the streams are written, at most `scale` times faster than real time (so a client's turnaround between two
requests costs the slots a realistic few steps, not thousands). Time with no slot busy is not counted, and
neither is prompt processing (~0.1 s for a 150-token prompt at ~1,500 tokens/s: under 0.5% of a trace).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

SINGLE_SLOT_TOKENS_S = 60.0
BATCH_SPEEDUP = (1.0, 1.79, 2.52, 3.03, 3.32, 3.41, 3.61, 3.68)   # PR 15802: t/s at micro-batch n / at 1


class _Reply:
    def __init__(self, tokens: Iterator, emit: Callable):
        self.tokens, self.emit = tokens, emit
        self.decoded, self.client_left, self.done = 0, False, threading.Event()

    def step(self) -> bool:
        """Decode one token and send it; False once the reply has ended or its client has gone."""
        token = next(self.tokens, None)
        if token is None:
            return False
        self.decoded += 1   # the card spent it, whether or not the client takes it
        try:
            self.emit(token)
        except (BrokenPipeError, ConnectionResetError):
            self.client_left = True   # the server sees the client go and frees the slot, as llama.cpp does
            return False
        return True


class GPU:
    def __init__(self, single: float = SINGLE_SLOT_TOKENS_S, speedup: tuple = BATCH_SPEEDUP, scale: float = 1000.0):
        self.single, self.speedup, self.scale = single, speedup, scale
        self.clock = 0.0        # simulated seconds spent decoding
        self.tokens = 0         # tokens decoded, sent or not
        self._busy: list[_Reply] = []
        self._wake = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def step_seconds(self, busy: int) -> float:
        """Simulated time of one decode step with `busy` slots: each gets one token."""
        speedup = self.speedup[min(busy, len(self.speedup)) - 1]
        return busy / (self.single * speedup)

    def decode(self, tokens: Iterator, emit: Callable) -> tuple[int, bool]:
        """Stream `tokens` through emit, one a step, sharing the card with the other busy slots; blocks until
        the reply ends or its client goes. Returns (tokens decoded, whether the client left)."""
        reply = _Reply(tokens, emit)
        with self._wake:
            self._busy.append(reply)
            self._wake.notify()
        reply.done.wait()
        return reply.decoded, reply.client_left

    def _run(self):
        due = None   # the real time the next step is due, at `scale` times the simulated pace
        while True:
            with self._wake:
                while not self._busy:
                    due = None
                    self._wake.wait()
                busy = list(self._busy)
            seconds = self.step_seconds(len(busy))
            before = sum(reply.decoded for reply in busy)
            ended = [reply for reply in busy if not reply.step()]
            with self._wake:
                self.clock += seconds
                self.tokens += sum(reply.decoded for reply in busy) - before
                for reply in ended:
                    self._busy.remove(reply)
                    reply.done.set()
            now = time.perf_counter()
            due = (now if due is None or due < now - 0.05 else due) + seconds / self.scale
            if due - now > 0.001:
                time.sleep(due - now)
