"""What a training stage shows while it runs, hooked into Tunix rather than around its loop.

One line per step (a tqdm bar on a terminal, plain lines otherwise, as generation shows rows):

    sft: step 12/30 (40%) | loss 2.3141 | 4,210 tok/s | 0.49 s/step | eta 0m09s
    grpo: step 3/50 (6%) | reward 0.625 (format 0.750, math 0.500) | 310 gen tok/s | 6.12 s/step | eta 4m54s

A step's time is wall time from the end of the step before to the end of this one, both read where the step's
result is on the host (JAX runs steps ahead of Python, so the time between two step *starts* is mostly dispatch:
that measure read 1,135 then 12 then 14,601 tok/s on consecutive steps). SFT's tokens are the real (non-pad)
tokens of the step's batches; GRPO's are the completion tokens generated. A step during which JAX compiled (or
loaded a compiled program) is marked `compiling`: its time is not a speed. metrics.jsonl gets each step's
step_seconds (and tokens_per_sec for SFT), with compiled: 1 on those steps.

Where it hooks in: a Tunix metrics backend (runs.metrics_options) receives every scalar Tunix logs; Tunix's
TrainingHooks (step_hooks) say when a step starts and ends; JAX's monitoring says when it compiles.
"""

from __future__ import annotations

import sys
import time
from collections import deque

from tunixhack.generate.progress import PLAIN_EVERY, Progress, duration
from tunixhack.train import runs

# What JAX reports while it traces, lowers or compiles a program, or loads one from its persistent cache.
COMPILE_EVENTS = ("/jax/core/compile/", "/jax/compilation_cache/cache_retrieval_time_sec")
RECENT = 10   # steps the s/step and ETA are averaged over
OPEN_ENDED = 10**6  # a horizon this long is a placeholder (GRPO with only a --time-budget, before it is timed)


class StepBar(Progress):
    """generate's Progress, counted in steps: every step's line while the first ones run and when one compiled,
    then one about every PLAIN_EVERY seconds, and the last."""

    def __init__(self, stage: str, total: int, done_before: int, stream=None, every=PLAIN_EVERY):
        self.stage, self.line, self.shown = stage, "", ""
        # the bar counts the steps itself: its postfix is the rest of the line
        super().__init__(total, done_before, lambda: self.line.split(" | ", 1)[-1], stream, every)
        if self.bar is not None:
            self.bar.unit, self.bar.desc = "step", stage

    def step(self, total: int | None, line: str, force: bool) -> None:
        self.total, self.line = total or 0, line
        if self.bar is not None and self.bar.total != total:
            self.bar.total = total
        if self.plain and force:
            self._last = float("-inf")  # shown now, not at the next tick
        self.update(1)

    def _line(self, now: float) -> None:
        if self.line != self.shown:  # close() repeats the last line, which may be out already
            self.shown = self.line
            print(f"{self.stage}: {self.line}", file=self.stream, flush=True)


class StageProgress:
    """The progress of one stage (sft or grpo): a Tunix metrics backend, fed step ends by step_hooks."""

    def __init__(self, stage: str, budget, tokens=None, completions: int = 0, stream=None):
        """`tokens(step)`: real tokens of a step's batches (SFT). GRPO counts the tokens it generated: its mean
        completion length (from its metrics) x `completions` (per step: batch x generations)."""
        self.stage, self.budget, self.tokens, self.completions = stage, budget, tokens, completions
        self.stream = stream or sys.stderr
        self.values: dict[int, dict] = {}      # step -> the scalars Tunix logged for it (metrics.jsonl keys)
        self.pending: dict | None = None       # a GRPO step that ended, shown once its rewards are logged
        self.recent: deque = deque(maxlen=RECENT)  # seconds of the last steps that did not compile
        self.compiled = False                  # whether JAX compiled since the last step ended
        self.ended_at: float | None = None
        self.last_ended = 0
        self.view: StepBar | None = None

    # --- start ---------------------------------------------------------------------------------------------
    def begin(self, step: int) -> None:
        """Training starts (or resumes) after `step` steps: say so, and start the clock and the bar."""
        import jax

        if step:
            print(f"resumed from step {step}, its latest checkpoint", file=self.stream)
        quiet_tunix_bar()
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        self.ended_at, self.compiled, self.last_ended = time.perf_counter(), False, step
        self.view = StepBar(self.stage, self.total() or 0, step, self.stream)

    def total(self) -> int | None:
        """The steps the stage will make, as the budget plans them now (None: not known yet)."""
        return self.budget.horizon if self.budget.horizon < OPEN_ENDED else None

    # --- what Tunix and JAX report ---------------------------------------------------------------------------
    def log_scalar(self, event: str, value, **kwargs) -> None:
        """A Tunix metrics backend: keep each step's scalars; a GRPO step's line waits for its rewards."""
        parsed = runs.metric_key(event, kwargs.get("step"), shift_cluster=self.stage == "grpo")
        if parsed is None:
            return
        step, key = parsed
        try:
            # rounded as metrics.jsonl rounds it, so the line shows exactly what the log holds
            self.values.setdefault(step, {})[key] = round(float(value), 6)
        except (TypeError, ValueError):
            return
        for old in [s for s in self.values if s < step - 2]:  # a line needs its own step's values only
            del self.values[old]
        if self.pending and self.pending["step"] == step and key == "completions/mean_length":
            self._show(**self.pending)

    def close(self) -> None:
        """Tunix closes its backends with its logger; the line is closed by finish()."""

    def _on_duration(self, event: str, seconds: float, **kwargs) -> None:
        if event.startswith(COMPILE_EVENTS):
            self.compiled = True

    # --- step ends (step_hooks) ----------------------------------------------------------------------------
    def step_ended(self, step: int, log=None) -> None:
        """Step `step` is done and its result is on the host. `log(name, value)` adds to its metrics.jsonl row."""
        if self.view is None or step <= self.last_ended:
            return
        if self.pending:  # the step before never got its rewards logged: shown without them
            self._show(**self.pending)
        self.last_ended = step
        now = time.perf_counter()
        seconds, compiled = now - self.ended_at, self.compiled
        self.ended_at, self.compiled = now, False
        if not compiled:
            self.recent.append(seconds)
        if log:
            log("step_seconds", seconds)
            if compiled:
                log("compiled", 1.0)
            if self.tokens is not None and not compiled:
                log("tokens_per_sec", self.tokens(step) / seconds)
        self.pending = {"step": step, "seconds": seconds, "compiled": compiled}
        if self.tokens is not None or "completions/mean_length" in self.values.get(step, {}):
            self._show(**self.pending)

    def _show(self, step: int, seconds: float, compiled: bool) -> None:
        self.pending = None
        total = self.total() and max(self.total(), step)
        self.view.step(total, self.line(step, total, seconds, compiled), force=compiled or self.view.count < 3)

    def line(self, step: int, total: int | None, seconds: float, compiled: bool) -> str:
        where = f"step {step:,}/{total:,} ({100 * step / total:.0f}%)" if total else f"step {step:,}"
        parts = [where, self.measure(step)]
        tokens = self.step_tokens(step)
        if tokens is not None and not compiled:
            parts.append(f"{tokens / seconds:,.0f} {'gen ' if self.tokens is None else ''}tok/s")
        parts.append(f"{seconds:.2f} s/step" + (" (compiling)" if compiled else ""))
        eta = self.eta(step)
        if eta is not None:
            parts.append(f"eta {duration(eta)}")
        return " | ".join(p for p in parts if p)

    def measure(self, step: int) -> str:
        """SFT: the step's loss. GRPO: its mean summed reward, and each reward's mean."""
        values = self.values.get(step, {})
        if self.tokens is not None:
            return f"loss {values['loss']:.4f}" if "loss" in values else ""
        if "rewards/sum" not in values:
            return ""
        each = [f"{k[len('rewards/'):-len('_reward')]} {v:.3f}" for k, v in values.items()
                if k.startswith("rewards/") and k.endswith("_reward")]
        return f"reward {values['rewards/sum']:.3f}" + (f" ({', '.join(each)})" if each else "")

    def step_tokens(self, step: int) -> float | None:
        if self.tokens is not None:
            return self.tokens(step)
        length = self.values.get(step, {}).get("completions/mean_length")
        return None if length is None else length * self.completions

    def eta(self, step: int) -> float | None:
        """Seconds left: the steps left at the recent pace, or what is left of --time-budget if that is sooner."""
        left = []
        if self.recent and self.total():
            left.append((self.total() - step) * sum(self.recent) / len(self.recent))
        if self.budget.deadline:
            left.append(max(0.0, self.budget.deadline - time.monotonic()))
        return min(left) if left else None

    def finish(self) -> None:
        """The last line (a GRPO step whose rewards never came is shown without them); stop listening to JAX."""
        import jax

        if self.view is None:
            return
        if self.pending:
            self._show(**self.pending)
        self.view.close()
        try:
            jax.monitoring.unregister_event_duration_listener(self._on_duration)
        except (AssertionError, ValueError):
            pass


def quiet_tunix_bar() -> None:
    """Tunix draws its own tqdm bar on a terminal (total: --steps, even when --time-budget decides), which would
    fight ours for the same line: it is switched off. Tunix keeps the bar's class in a module variable."""
    from tqdm import auto
    from tunix.sft import progress_bar

    progress_bar.tqdm = lambda *args, **kwargs: auto.tqdm(*args, **{**kwargs, "disable": True})


def step_hooks(budget, progress: StageProgress):
    """Tunix TrainingHooks: feed the budget each step start, log each finished step's learning rate (computed on
    the host: reading it from the optimizer state would make Tunix wait for every step), and tell `progress`
    when a step has ended.

    Where a step ends: PeftTrainer (SFT) calls on_train_step_end once the step's loss is on the host. An RL
    trainer trains one step per train() call, which waits for its computations before on_train_end; its
    on_train_step_end comes a step late, after the next rollout.
    """
    from tunix.sft.hooks import TrainingHooks

    class Hooks(TrainingHooks):
        def __init__(self):
            self.started = None  # completed steps at the last step start

        def on_train_start(self, trainer):
            self.started = None

        def on_train_step_start(self, trainer):
            done = trainer.train_steps
            if self.started is not None and done == self.started + 1:
                log_step(trainer, done, "learning_rate", budget.rate(done))
            budget.step_started(done)
            self.started = done

        def on_train_end(self, trainer):
            done = trainer.train_steps
            if self.started is not None and done == self.started + 1:  # the last step: no start follows
                log_step(trainer, done, "learning_rate", budget.rate(done))
            if trainer.is_managed_externally:
                progress.step_ended(done, lambda name, value: log_step(trainer, done, name, value))

        def on_train_step_end(self, trainer, train_step, train_loss):
            if not trainer.is_managed_externally:
                progress.step_ended(train_step, lambda name, value: log_step(trainer, train_step, name, value))

        def on_eval_step_start(self, trainer):
            pass

        def on_eval_step_end(self, trainer, eval_loss):
            pass

    return Hooks()


def log_step(trainer, step: int, name: str, value: float) -> None:
    trainer.metrics_logger.log(trainer.metrics_prefix, name, value, "train", step)
