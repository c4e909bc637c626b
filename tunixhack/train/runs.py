"""What every training script shares: the run folder, metrics.jsonl, stopping cleanly, loading a run back.

A run folder (`--out`):
    run.json        the run's config; a resume with a different config is refused unless --force
    metrics.jsonl   one line per step: {"step", "loss", "eval_loss", "learning_rate", "step_seconds", ...}
    curves.png      the curves of metrics.jsonl, drawn when the stage ends (tunixhack/train/plots.py)
    tb/             TensorBoard events (the same scalars)
    ckpts/          Orbax checkpoints: ckpts/<step>/ (SFT) or ckpts/actor/<step>/ (GRPO), each with
                    model_params/ (the LoRA adapters only, or every weight for a full fine-tune)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tunixhack.errors import UserError
from tunixhack.train import budget
from tunixhack.dataset.traces import write_json

RUN_FILE = "run.json"
# Flags that may change when a run is resumed (to train longer, or log differently); any other change is
# a different run and is refused.
RESUMABLE = {"steps", "save_every", "eval_every", "time_budget", "force", "samples", "out"}
# What a run measures and writes down as it goes (record()): never compared on resume.
MEASURED = {"dtypes", "budget", "sft_fill", "rows_dropped", "isolation", "memory", "rows_read"}
FILL_IDS = "sft_fill_ids.txt"  # the fill-split rows an SFT run trained on (GRPO from it skips them)


def cli(main) -> None:
    """Run main(); bad input prints one line and exits 2, Ctrl-C exits 130 (checkpoints are kept)."""
    setup_jax()
    hide_tpu_hint()
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except budget.Stopped as e:
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
    cache = os.environ.get("TUNIXHACK_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tunixhack")
    # Through the environment, which JAX reads when it is imported: importing it here would cost every command
    # seconds before its flags are even parsed (a typo would wait for JAX).
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(cache, "jax")
    if "jax" in sys.modules:  # imported already (a test, a notebook): tell it directly
        sys.modules["jax"].config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])


def hide_tpu_hint() -> None:
    """Tunix logs "Skipping non-TPU device: cpu. You might be missing jax[tpu]" whenever it measures memory on a
    CPU; nothing is missing there (the CPU is what the user chose), so the line only misleads."""
    import logging

    logging.getLogger("absl").addFilter(lambda record: "missing jax[tpu]" not in record.getMessage())


def model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="gemma3-1b-it",
                       help="tiny | gemma3-1b-it | gemma3-270m | gemma3-270m-it | a Gemma 3 FILE.gguf (any type; "
                            "dequantized to float32) | lmstudio:KEY (a GGUF in LM Studio's models folder) | a Hugging "
                            "Face folder | a Kaggle Flax checkpoint folder")
    group.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"],
                       help="parameter dtype (auto: the checkpoint's own; float32 for a GGUF)")
    group.add_argument("--mesh", default=None, metavar="FSDP,TP",
                       help="device mesh (default: every device, tp dividing the 4 heads; 2,4 on a v5e-8)")


# --- the run folder ------------------------------------------------------------------------------------
def prepare_out(out: str, config: dict, force: bool) -> Path:
    """Create or reopen a run folder. A folder holding another run's checkpoints is never resumed silently."""
    path = Path(out)
    record = path / RUN_FILE
    config = {**config, **source_record(config.get("model"))}
    if record.exists():
        old = json.loads(record.read_text())
        fixed = lambda k: k not in RESUMABLE and k not in MEASURED  # noqa: E731
        diff = {k: (old.get(k), v) for k, v in config.items() if fixed(k) and old.get(k) != v}
        diff.update({k: (v, None) for k, v in old.items() if fixed(k) and k not in config})
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
    if record.exists():  # keep what the earlier part of the run measured until it is measured again
        config = {**{k: v for k, v in json.loads(record.read_text()).items() if k in MEASURED}, **config}
    write_json(record, config)
    return path


def source_record(model: str | None) -> dict:
    """run.json's `gguf`: the file a GGUF-sourced run trains, its sha256 and quantization (nothing otherwise).

    Compared on resume like the config: the same --model path holding another file is another run.
    """
    from tunixhack.train import gguf_in, lmstudio_models

    if not model or not (model.startswith(lmstudio_models.PREFIX) or gguf_in.is_gguf(model)):
        return {}
    path = lmstudio_models.find(model) if model.startswith(lmstudio_models.PREFIX) else model
    return {"gguf": gguf_in.provenance(gguf_in.cached_folder(path))}


def nothing_left(budget, step: int, out: Path) -> bool:
    """True (and says so) when a re-run finds its stage's schedule already done: it is not trained again."""
    if not budget.done(step):
        return False
    print(f"{out}: step {step} already ends this stage's schedule; nothing to train (a new --out starts over)",
          file=sys.stderr)
    budget.finish(step)
    return True


def record(out: Path, **measured) -> None:
    """Add what the run measured (dtypes, budget, ...) to its run.json."""
    unknown = set(measured) - MEASURED
    if unknown:
        raise ValueError(f"not a measured field of run.json: {', '.join(sorted(unknown))}")
    path = Path(out) / RUN_FILE
    write_json(path, {**json.loads(path.read_text()), **measured})


def dtypes(model, optimizer) -> dict:
    """The dtypes of the base weights, of what trains and of the optimizer state, read off the live objects."""
    import jax
    from flax import nnx

    def names(state) -> str:
        found = sorted({str(leaf.dtype) for leaf in jax.tree.leaves(state) if hasattr(leaf, "dtype")
                        and leaf.ndim > 0})
        return ",".join(found) or "none"

    lora = bool(jax.tree.leaves(nnx.state(model, nnx.LoRAParam)))
    trainable = nnx.state(model, nnx.LoRAParam) if lora else nnx.state(model, nnx.Param)
    base = nnx.state(model, nnx.All(nnx.Param, nnx.Not(nnx.LoRAParam)))
    return {"base": names(base), "trainable": names(trainable), "optimizer_state": names(optimizer.opt_state)}

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
def load_run(run_dir: str, mesh, dtype: str | None = None):
    """(model, cfg, tokenizer, run): the model exactly as the run trained it, at its latest checkpoint.

    A LoRA run is the base plus its float32 adapters, unmerged. The base is the stock model when every run
    in the chain is LoRA (GRPO continues the SFT adapter), or the full weights of the full fine-tune it
    started from. `run["restored_step"]` is the step restored. `dtype` loads the stock base in another dtype.
    """
    run = read_run(run_dir)
    base, cfg, tok = load_base_of(run, mesh, dtype)
    net = lora_model(base, run, mesh)
    root = ckpt_root(run_dir, run)
    step = latest_step(root)
    if step is None:
        raise UserError(f"{run_dir} has no checkpoint yet (looked in {root})")
    restore(net, root, step, bool(run.get("lora")))
    run["restored_step"] = step
    return net, cfg, tok, run


def restore(net, root: str, step: int, lora: bool) -> None:
    """Load a checkpoint's weights (the adapters only, for a LoRA run) into `net`."""
    from tunix.sft.checkpoint_manager import CheckpointManager

    manager = CheckpointManager(root)
    manager.maybe_restore(net, step=step, restore_only_lora_params=lora)
    manager.close()


def fill_ids(run_dir: str | None) -> set[str]:
    """The ids of the fill-split rows an SFT run trained on (none for another run)."""
    path = Path(run_dir) / FILL_IDS if run_dir else None
    return set(path.read_text().split()) if path and path.exists() else set()

def load_base_of(run: dict, mesh, dtype: str | None = None):
    """(base model, cfg, tokenizer) that `run`'s adapters (or, for a full fine-tune, its weights) apply to."""
    from tunixhack.train import model as models

    init = read_run(run["init"]) if run.get("init") else None
    if init and not (run.get("lora") and init.get("lora")):  # on top of a full fine-tune, or itself one
        net, cfg, tok, _ = load_run(run["init"], mesh, dtype)
        if init.get("lora"):  # a full fine-tune from a LoRA run starts from its merge
            from tunixhack.train import lora

            net = lora.merge(net, cfg, mesh, init["lora"]["alpha"] / init["lora"]["rank"])
        return net, cfg, tok
    source = models.resolve(root_model(run))
    base, cfg = models.load_base(source, mesh, dtype or run.get("param_dtype") or run["dtype"])
    return base, cfg, models.load_tokenizer(source)


def lora_model(base, run: dict, mesh):
    """The base with the run's adapters (fresh: a checkpoint or an init run fills them), or the base itself."""
    from tunixhack.train import lora

    spec = run.get("lora")
    return lora.apply_lora(base, mesh, spec["rank"], spec["alpha"], run["seed"]) if spec else base


def root_model(run: dict) -> str:
    """The --model a run (or the run it started from) was trained from."""
    while run.get("init"):
        run = read_run(run["init"])
    return run["model"]


def adapter_on_stock_base(run: dict) -> bool:
    """Whether the run's adapter applies to the stock model (every run in its chain is LoRA)."""
    while run.get("lora"):
        if not run.get("init"):
            return True
        run = read_run(run["init"])
    return False


# --- metrics.jsonl -------------------------------------------------------------------------------------
def metric_key(event: str, step, shift_cluster: bool = False) -> tuple[int, str] | None:
    """(step, metrics.jsonl key) of a Tunix scalar, or None for what is not a training metric (JAX's own events).

    Tunix reports each scalar as "<prefix>/<mode>/<name>" ("actor/train/kl", "rewards/train/format_reward",
    "/eval/loss"). Keys drop the mode and the trainer prefixes ("kl", "rewards/format_reward"); eval scalars get
    an eval_ prefix ("eval_loss"). GRPO (shift_cluster): RLCluster reports rollout metrics (rewards, lengths) at
    the global step *before* the update they feed, the actor its loss and KL after it; shifting the former by
    one puts both on one step.
    """
    parts = event.lstrip("/").split("/")
    if len(parts) < 2:
        return None
    mode_at = 0 if parts[0] in ("train", "eval") else 1
    if len(parts) <= mode_at + 1 or parts[mode_at] not in ("train", "eval"):
        return None
    prefix, mode, name = "/".join(parts[:mode_at]), parts[mode_at], "/".join(parts[mode_at + 1:])
    key = name if prefix in ("", "actor", "global") else f"{prefix}/{name}"
    key = f"eval_{key}" if mode == "eval" else key
    return int(step or 0) + (1 if shift_cluster and prefix not in ("", "actor") else 0), key


class JsonlBackend:
    """A Tunix metrics backend writing one JSON line per step (keys: metric_key). A step's line is written once
    the step after next shows up."""

    def __init__(self, path: Path, shift_cluster: bool = False):
        self.shift_cluster = shift_cluster
        # A resumed run re-reports its last step (Tunix evaluates again on start): written once is enough.
        self.done = max((row["step"] for row in read_metrics(path.parent)), default=-1)
        self.file = path.open("a", encoding="utf-8")
        self.rows: dict[int, dict] = {}

    def log_scalar(self, event: str, value, **kwargs) -> None:
        parsed = metric_key(event, kwargs.get("step"), self.shift_cluster)
        if parsed is None or parsed[0] <= self.done:
            return
        step, key = parsed
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


def metrics_options(out: Path, grpo: bool = False, watch=None):
    """Tunix logging options: TensorBoard under out/tb, metrics.jsonl, and `watch` (the progress line) if given."""
    from tunix.sft.metrics_logger import MetricsLoggerOptions, TensorboardBackend

    def tensorboard():
        return Detaching(TensorboardBackend(log_dir=str(out / "tb"), flush_every_n_steps=1))

    def jsonl():
        return Detaching(JsonlBackend(out / "metrics.jsonl", grpo))

    return MetricsLoggerOptions(log_dir=str(out / "tb"), flush_every_n_steps=1,
                                backend_kwargs={"custom_backend": [tensorboard, jsonl]
                                                + ([lambda: Detaching(watch)] if watch else [])})


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
