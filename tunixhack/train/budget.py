"""How long a stage trains, and a learning-rate schedule that ends where the stage really ends.

The optimizer is AdamW with a linear warmup, then a cosine decay to FLOOR x the peak at the schedule's
horizon. The horizon is a hyperparameter in the optimizer state (optax.inject_hyperparams), so it can be set
while training runs without recompiling: with a --time-budget, the stage times its first steps (compiling
excluded), sets the horizon to the step the budget will reach, corrects it as it goes, and stops there; the
decay ends at the stop, not in the middle of a schedule laid over a guessed --steps. Without a budget the
horizon is the stage's step count. Ctrl-C stops after the current step, as the budget does.
"""

from __future__ import annotations

import signal
import sys
import time

import numpy as np

FLOOR = 0.1               # the schedule ends at 10% of the peak learning rate
MEASURE_AFTER = 3         # steps after the first (compiling) one before a step time is trusted
REPLAN_EVERY = 0.1        # re-estimate the horizon each time this share of the budget has passed
RESERVE = 0.03            # of the budget, kept for the last checkpoint and the end of the stage


class Stopped(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def learning_rate(count, peak: float, warmup, horizon):
    """The rate of step `count` (0-based), numpy or jax: warmup to `peak` (at most a tenth of the schedule), then
    cosine to FLOOR x peak at the last step of `horizon` steps (count horizon - 1), so a stage ends at the floor
    whatever horizon its time budget chose."""
    xp = sys.modules["jax.numpy"] if type(count).__module__.startswith("jax") else np
    count = xp.asarray(count, xp.float32)
    horizon = xp.maximum(xp.asarray(horizon, xp.float32), 2.0)
    last = horizon - 1  # the count of the schedule's last step: it gets the floor exactly, however long it is
    warmup = xp.clip(xp.asarray(warmup, xp.float32), 0.0, last // 10)
    warm = peak * (count + 1) / (warmup + 1)  # the first step already learns
    progress = xp.clip((count - warmup) / xp.maximum(last - warmup, 1.0), 0.0, 1.0)
    decay = peak * (FLOOR + (1 - FLOOR) * 0.5 * (1 + xp.cos(np.pi * progress)))
    return xp.where(count < warmup, warm, decay)


def adamw(peak: float, warmup: int, horizon: int, weight_decay: float, clip: float, b2: float = 0.99):
    """Clipping, then AdamW on `learning_rate(count, peak, warmup, horizon)`; horizon settable (set_horizon).

    Clipping comes first and holds no hyperparameters, which Tunix's own learning-rate logging expects.
    """
    import optax

    def inner(peak, warmup, horizon, weight_decay):
        return optax.chain(optax.scale_by_adam(b1=0.9, b2=b2), optax.add_decayed_weights(weight_decay),
                           optax.scale_by_schedule(lambda count: -learning_rate(count, peak, warmup, horizon)))

    schedule = optax.inject_hyperparams(inner)(peak=peak, warmup=warmup, horizon=int(horizon),
                                               weight_decay=weight_decay)
    return optax.chain(optax.clip_by_global_norm(clip), schedule)


def _hyperparams(optimizer) -> dict:
    """The injected hyperparameters in an nnx.Optimizer's state (under optax.MultiSteps with grad accumulation)."""
    stack = [optimizer.opt_state]
    while stack:
        node = stack.pop()
        params = getattr(node, "hyperparams", None)
        if isinstance(params, dict) and "horizon" in params:
            return params
        if isinstance(node, (tuple, list)):
            stack.extend(node)
        elif hasattr(node, "_fields"):
            stack.extend(getattr(node, f) for f in node._fields)
        elif hasattr(node, "inner_opt_state"):
            stack.append(node.inner_opt_state)
    raise ValueError("the optimizer has no horizon: build it with budget.adamw")


def set_horizon(optimizer, horizon: int) -> None:
    """Change the horizon between two steps. Same dtype, weak type and placement as before: the compiled step
    sees an argument of the same kind and is not compiled again."""
    import jax
    import jax.numpy as jnp

    variable = _hyperparams(optimizer)["horizon"]
    old = variable.value
    new = jnp.asarray(int(horizon)) if getattr(old, "weak_type", False) else jnp.asarray(int(horizon), old.dtype)
    # Before the trainer shards its optimizer state the value is uncommitted and must stay so (a value committed to
    # one device cannot be re-sharded onto the mesh); after, it keeps the mesh's sharding.
    sharded = isinstance(getattr(old, "sharding", None), jax.sharding.NamedSharding)
    variable.value = jax.device_put(new, old.sharding) if sharded else new


class Budget:
    """Decides when a stage stops, and lays the schedule's horizon over the steps it will make.

    `max_steps` caps the stage (--steps, or what the data allows); `minutes` is --time-budget (None: no limit).
    The trainer's hooks call `step_started`; the batch stream goes through `batches`, which ends at the stop
    (Tunix's trainers take the end of the data as the end of training, and save the last step).

    A resumed stage keeps the horizon it had planned (resume()): its schedule goes on where it was, the new
    minutes only decide whether it gets there; a stage whose schedule is done is not trained again.
    """

    def __init__(self, max_steps: int, minutes: float | None, peak: float, warmup: int):
        self.max_steps, self.peak, self.warmup = max_steps, peak, warmup
        self.minutes = minutes
        self.deadline = time.monotonic() + minutes * 60 if minutes else None
        self.horizon = max_steps
        self.optimizer = None       # set by attach()
        self.steps_done = lambda: 0
        self.reason: str | None = None
        self.step_seconds: float | None = None
        self._clock: tuple[float, int] | None = None   # (time, step) where measuring started
        self._started_at: int | None = None             # steps done when this process first started a step
        self._plans = minutes is not None               # whether to lay the horizon over the budget
        self._next_plan = 0.0
        self._ending = False                            # the budget ran out: the next step ends the schedule
        self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def attach(self, optimizer, steps_done) -> None:
        self.optimizer, self.steps_done = optimizer, steps_done
        set_horizon(optimizer, self.horizon)

    def resume(self, previous: dict | None) -> None:
        """Go on with the horizon an earlier run of this stage laid over its time budget (its run.json "budget"
        record). A run without a budget had no plan: its horizon was its --steps, and a new --steps may extend it."""
        if previous and previous.get("minutes") and previous.get("horizon"):
            self.horizon, self._plans = min(int(previous["horizon"]), self.max_steps), False
            if self.optimizer is not None:
                set_horizon(self.optimizer, self.horizon)

    def done(self, step: int) -> bool:
        """Whether the schedule has nothing left to train."""
        return step >= self.horizon

    def _on_sigint(self, signum, frame):
        if self.reason == "interrupted":
            raise KeyboardInterrupt
        self.reason = "interrupted"
        print("\nstopping after this step (Ctrl-C again to stop now)", file=sys.stderr)

    # --- called before each step ---------------------------------------------------------------------
    def step_started(self, done: int) -> None:
        """A step starts with `done` steps finished (GRPO's trainer may start several passes per step)."""
        if not self._plans:
            return
        now = time.monotonic()
        if self._started_at is None:
            self._started_at = done
            return
        if self._clock is None:
            if done > self._started_at:  # the step that compiled is done: time from here
                self._clock = (now, done)
            return
        measured = done - self._clock[1]
        if measured >= MEASURE_AFTER and now >= self._next_plan:
            self.step_seconds = (now - self._clock[0]) / measured
            left = self.deadline - now - RESERVE * self.minutes * 60
            horizon = min(self.max_steps, max(done + 1, done + int(left / self.step_seconds)))
            if horizon != self.horizon:
                self.horizon = horizon
                if self.optimizer is not None:
                    set_horizon(self.optimizer, horizon)
            self._next_plan = now + REPLAN_EVERY * self.minutes * 60

    def rate(self, step: int) -> float:
        """The learning rate the optimizer applies at `step` (1-based: the step just finished)."""
        return float(learning_rate(max(step - 1, 0), self.peak, self.warmup, self.horizon))

    # --- the batch stream ------------------------------------------------------------------------------
    def batches(self, dataset):
        first = None  # steps done when this process started (a resumed run's trainer skips the batches before)
        for batch in dataset:
            done = self.steps_done()
            first = done if first is None else first
            if self.reason is None and done >= self.horizon:
                return  # the schedule's last step is done
            if (self.reason is None and not self._ending and self.deadline and time.monotonic() > self.deadline
                    and done > first):  # at least one step of this process is saved
                if self._plans:
                    self.end_with_next_step(done)
                else:  # a resumed stage keeps the horizon it planned: the new minutes decide how far it gets
                    self.reason = "time budget reached"
            if self.reason:
                return
            yield batch

    def end_with_next_step(self, done: int) -> None:
        """The budget ran out before the planned horizon (a slow compile, steps slower than measured): the next
        step is the schedule's last, at the floor rate, so the stage still ends with its schedule finished,
        one step past the budget (RESERVE keeps room for it)."""
        self.horizon, self._plans, self._ending = min(self.horizon, done + 1), False, True
        if self.optimizer is not None:
            set_horizon(self.optimizer, self.horizon)

    def summary(self, step: int) -> dict:
        """What run.json records of the stage's length."""
        return {"minutes": self.minutes, "max_steps": self.max_steps, "horizon": self.horizon, "steps_done": step,
                "step_seconds": self.step_seconds, "ended": self.reason or "schedule done"}

    def finish(self, step: int) -> None:
        """Restore Ctrl-C; say how the stage ended (exit 130 when interrupted)."""
        signal.signal(signal.SIGINT, self._previous)
        if self.reason == "interrupted":
            raise Stopped(f"interrupted at step {step}; re-run the same command to continue", 130)
        if self.reason == "time budget reached":
            print(f"time budget reached at step {step} of the schedule's {self.horizon}", file=sys.stderr)
        elif self._ending:
            print(f"time budget reached: the schedule ended at step {step}, at the floor rate", file=sys.stderr)

