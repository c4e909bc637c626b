"""What every training script shares: the run folder, metrics.jsonl, stopping cleanly, loading a run back.

A run folder (`--out`):
    run.json        the run's config; a resume with a different config is refused unless --force
    metrics.jsonl   one line per step: {"step", "loss", "eval_loss", "learning_rate", "tokens_per_sec", ...}
    tb/             TensorBoard events (the same scalars)
    ckpts/          Orbax checkpoints: ckpts/<step>/ (SFT) or ckpts/actor/<step>/ (GRPO), each with
                    model_params/ (the LoRA adapters only, or every weight for a full fine-tune)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from tunixhack.errors import UserError
from tunixhack.traces import write_json

RUN_FILE = "run.json"
# Flags that may change when a run is resumed (to train longer, or log differently); any other change is
# a different run and is refused.
RESUMABLE = {"steps", "save_every", "eval_every", "time_budget", "force", "samples", "out"}


def cli(main) -> None:
    """Run main(); bad input prints one line and exits 2, Ctrl-C exits 130 (checkpoints are kept)."""
    setup_jax()
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except Stopped as e:
        print(str(e), file=sys.stderr)
        sys.exit(e.code)
    except KeyboardInterrupt:
        print("interrupted; the checkpoints written so far are kept", file=sys.stderr)
        sys.exit(130)


def setup_jax() -> None:
    """Keep compiled programs across runs (JAX's persistent cache) unless the environment chose otherwise.

    Compiling is most of a short run's time; a resumed or repeated run reuses what the last one compiled.
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    import jax

    cache = os.environ.get("TUNIXHACK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tunixhack")
    jax.config.update("jax_compilation_cache_dir", os.path.join(cache, "jax"))


def model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="gemma3-1b-it",
                       help="tiny | gemma3-1b-it | a Hugging Face folder | a Kaggle Flax checkpoint folder")
    group.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"],
                       help="parameter dtype (auto: the checkpoint's own)")
    group.add_argument("--mesh", default=None, metavar="FSDP,TP",
                       help="device mesh (default: every device, tp dividing the 4 heads; 2,4 on a v5e-8)")


# --- the run folder ------------------------------------------------------------------------------------
def prepare_out(out: str, config: dict, force: bool) -> Path:
    """Create or reopen a run folder. A folder holding another run's checkpoints is never resumed silently."""
    path = Path(out)
    record = path / RUN_FILE
    if record.exists():
        old = json.loads(record.read_text())
        diff = {k: (old.get(k), v) for k, v in config.items() if k not in RESUMABLE and old.get(k) != v}
        diff.update({k: (v, None) for k, v in old.items() if k not in RESUMABLE and k not in config})
        if diff and not force:
            shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items())[:4])
            raise UserError(f"{out} holds a run with a different config ({shown}); use a new --out, or --force "
                            f"to resume it anyway")
        if diff:
            with (path / "run.history.jsonl").open("a") as f:
                f.write(json.dumps(old) + "\n")
    elif (path / "ckpts").exists() and any((path / "ckpts").iterdir()):
        if not force:
            raise UserError(f"{out}/ckpts holds checkpoints but no {RUN_FILE}: not a run of ours; use a new --out, "
                            f"or --force to resume from them")
    path.mkdir(parents=True, exist_ok=True)
    write_json(record, config)
    return path


def read_run(run_dir: str) -> dict:
    record = Path(run_dir) / RUN_FILE
    if not record.exists():
        raise UserError(f"{run_dir} has no {RUN_FILE}: not an output folder of train/sft.py or train/grpo.py")
    return json.loads(record.read_text())


def ckpt_root(run_dir: str, run: dict) -> str:
    return os.path.abspath(os.path.join(run_dir, "ckpts", "actor" if run["stage"] == "grpo" else ""))


def latest_step(root: str) -> int | None:
    steps = [int(p.name) for p in Path(root).glob("[0-9]*") if p.name.isdigit() and (p / "model_params").exists()]
    return max(steps) if steps else None


# --- loading a run back --------------------------------------------------------------------------------
def load_run(run_dir: str, mesh, merged: bool = False):
    """(model, cfg, tokenizer, run) with the run's latest checkpoint restored.

    A GRPO run starts from an SFT run (`init`): that model is loaded first, its LoRA merged into the base,
    and the GRPO adapters put on top, exactly as grpo.py built it. merged=True returns a plain Gemma3.
    """
    from tunixhack.train import model as models
    from tunix.sft.checkpoint_manager import CheckpointManager

    run = read_run(run_dir)
    if run.get("init"):
        base, cfg, tok, _ = load_run(run["init"], mesh, merged=True)
    else:
        source = models.resolve(run["model"])
        base, cfg = models.load_base(source, mesh, run["dtype"])
        tok = models.load_tokenizer(source)
    lora = run.get("lora")
    net = models.apply_lora(base, mesh, lora["rank"], lora["alpha"], run["seed"]) if lora else base
    root = ckpt_root(run_dir, run)
    step = latest_step(root)
    if step is None:
        raise UserError(f"{run_dir} has no checkpoint yet (looked in {root})")
    manager = CheckpointManager(root)
    manager.maybe_restore(net, step=step, restore_only_lora_params=bool(lora))
    manager.close()
    run["restored_step"] = step
    if merged and lora:
        net = models.merge_lora(net, cfg, mesh, lora["alpha"] / lora["rank"])
    return net, cfg, tok, run


def root_model(run: dict) -> str:
    """The --model a run (or the run it started from) was trained from."""
    while run.get("init"):
        run = read_run(run["init"])
    return run["model"]


# --- metrics.jsonl -------------------------------------------------------------------------------------
class JsonlBackend:
    """A Tunix metrics backend writing one JSON line per step.

    Tunix reports each scalar as "<prefix>/<mode>/<name>" ("actor/train/kl", "rewards/train/format_reward",
    "/eval/loss"). Keys here drop the mode and the trainer prefixes ("kl", "rewards/format_reward"); eval
    scalars get an eval_ prefix ("eval_loss"). A step's line is written once the step after next shows up.
    """

    def __init__(self, path: Path, shift_cluster: bool = False):
        # GRPO: RLCluster reports rollout metrics (rewards, lengths) at the global step *before* the update
        # they feed, the actor its loss and KL after it; shifting the former by one puts both on one line.
        self.shift_cluster = shift_cluster
        # A resumed run re-reports its last step (Tunix evaluates again on start): written once is enough.
        self.done = max((row["step"] for row in read_metrics(path.parent)), default=-1)
        self.file = path.open("a", encoding="utf-8")
        self.rows: dict[int, dict] = {}

    def log_scalar(self, event: str, value, **kwargs) -> None:
        parts = event.lstrip("/").split("/")
        if len(parts) < 2:
            return
        mode_at = 0 if parts[0] in ("train", "eval") else 1
        if len(parts) <= mode_at + 1 or parts[mode_at] not in ("train", "eval"):
            return
        prefix, mode, name = "/".join(parts[:mode_at]), parts[mode_at], "/".join(parts[mode_at + 1:])
        key = name if prefix in ("", "actor", "global") else f"{prefix}/{name}"
        key = f"eval_{key}" if mode == "eval" else key
        step = int(kwargs.get("step") or 0) + (1 if self.shift_cluster and prefix not in ("", "actor") else 0)
        if step <= self.done:
            return
        try:
            self.rows.setdefault(step, {"step": step})[key] = round(float(value), 6)
        except (TypeError, ValueError):
            return
        # Trainers report a step's scalars at slightly different times: keep the last two steps open.
        for done in [s for s in self.rows if s < step - 1]:
            self._write(done)

    def _write(self, step: int) -> None:
        row = self.rows.pop(step)
        if len(row) > 1:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def close(self) -> None:
        for step in sorted(self.rows):
            self._write(step)
        self.file.close()


class Detaching:
    """A backend that stops listening when closed. Tunix registers backends as jax.monitoring listeners and
    relies on clear_event_listeners(), which in JAX 0.10 leaves scalar listeners in place: a second run in the
    same process would otherwise write into the first run's closed files."""

    def __init__(self, backend):
        self.backend = backend

    def log_scalar(self, event: str, value, **kwargs) -> None:
        self.backend.log_scalar(event, value, **kwargs)

    def close(self) -> None:
        import jax

        try:
            jax.monitoring.unregister_scalar_listener(self.log_scalar)
        except (AssertionError, ValueError):
            pass
        self.backend.close()


def metrics_options(out: Path, grpo: bool = False):
    """Tunix logging options: TensorBoard under out/tb and metrics.jsonl."""
    from tunix.sft.metrics_logger import MetricsLoggerOptions, TensorboardBackend

    def tensorboard():
        return Detaching(TensorboardBackend(log_dir=str(out / "tb"), flush_every_n_steps=1))

    def jsonl():
        return Detaching(JsonlBackend(out / "metrics.jsonl", grpo))

    return MetricsLoggerOptions(log_dir=str(out / "tb"), flush_every_n_steps=1,
                                backend_kwargs={"custom_backend": [tensorboard, jsonl]})


def mesh_context(mesh):
    """`with mesh:`, which Tunix 0.1.7's trainers read to shard batches (jax.set_mesh does not set it)."""
    import contextlib
    import warnings

    stack = contextlib.ExitStack()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        stack.enter_context(mesh)
    return stack


def read_metrics(out) -> list[dict]:
    path = Path(out) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


# --- stopping cleanly ----------------------------------------------------------------------------------
class Stopped(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class StopControl:
    """Ends training between two steps, where model, optimizer and step counter agree.

    The first Ctrl-C (or the end of --time-budget, counted once this process has made a step) ends the
    stream of batches: Tunix's trainers take that as the end of the data, finish, and save the latest step.
    A second Ctrl-C stops at once (the checkpoints already written stay).
    """

    def __init__(self, budget_minutes: float | None):
        self.deadline = time.monotonic() + budget_minutes * 60 if budget_minutes else None
        self.reason: str | None = None
        self.steps_done = lambda: 0
        self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame):
        if self.reason == "interrupted":
            raise KeyboardInterrupt
        self.reason = "interrupted"
        print("\nstopping after this step (Ctrl-C again to stop now)", file=sys.stderr)

    def batches(self, dataset):
        """The dataset's batches until a stop is asked for."""
        first = None
        for batch in dataset:
            first = self.steps_done() if first is None else first
            if self.reason is None and self.deadline and time.monotonic() > self.deadline \
                    and self.steps_done() > first:
                self.reason = "time budget reached"
            if self.reason:
                return
            yield batch

    def finish(self, step: int) -> None:
        """Restore Ctrl-C; if training was stopped early, say so (exit 130 when interrupted)."""
        signal.signal(signal.SIGINT, self._previous)
        if self.reason:
            raise Stopped(f"{self.reason} at step {step}; re-run the same command to continue",
                          130 if self.reason == "interrupted" else 0)


def learning_rates(schedule, steps: int):
    """The schedule's rate for every step, computed once: logging it from the optimizer state instead
    (optax.inject_hyperparams) makes Tunix wait for each step to finish before it dispatches the next."""
    import numpy as np

    return np.asarray(schedule(np.arange(steps + 1)), dtype=np.float64)


def step_hooks(rates, batches=None):
    """Tunix TrainingHooks: log each finished step's learning rate (rates[step - 1]: optax counts from 0)
    and, given `batches` whose `previous` is the real token count of the finished step's batch, tokens/s."""
    from tunix.sft.hooks import TrainingHooks

    class Hooks(TrainingHooks):
        def __init__(self):
            self.started = None  # (time, completed steps, measurable) at the last step start

        def on_train_start(self, trainer):
            self.started = None

        def on_train_step_start(self, trainer):
            now, done = time.perf_counter(), trainer.train_steps
            log = trainer.metrics_logger.log
            if self.started and done == self.started[1] + 1:
                log(trainer.metrics_prefix, "learning_rate", float(rates[min(done, len(rates)) - 1]), "train", done)
                # The first step after a start also compiled: its tokens/s would mislead.
                if batches is not None and self.started[2]:
                    log(trainer.metrics_prefix, "tokens_per_sec", batches.previous / (now - self.started[0]),
                        "train", done)
            self.started = (now, done, self.started is not None)

        def on_train_end(self, trainer):
            if self.started and trainer.train_steps == self.started[1] + 1:  # the last step: no start follows
                done = trainer.train_steps
                trainer.metrics_logger.log(trainer.metrics_prefix, "learning_rate",
                                           float(rates[min(done, len(rates)) - 1]), "train", done)

        def on_train_step_end(self, trainer, train_step, train_loss):
            pass

        def on_eval_step_start(self, trainer):
            pass

        def on_eval_step_end(self, trainer, eval_loss):
            pass

    return Hooks()
