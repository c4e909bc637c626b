"""Without the Hub, every command that needs a dataset says at once what it was loading and the flag that gives a
local copy: the Hub is asked once, never retried, and HF_HUB_OFFLINE=1 means it is not asked at all.

The "Hub" here is a real local socket that counts the connections made to it and hangs up on each, as a
network that drops the connection does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import FIXTURES, ROOT, one_line_error


class DeadHub:
    """Accepts connections, counts them, closes each unanswered."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


def run(script, *args, hub, tmp_path, offline=False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OPENAI", "LMSTUDIO"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), PYTHONUNBUFFERED="1")  # an empty cache
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)


COMMANDS = {
    "generate": (["gsm8k/generate.py", "--split", "test", "--limit", "3"], "openai/gsm8k (config main, split test)",
                 "--source PATH"),
    "analyze_databricks": (["Databricks/analyze_databricks.py"], "databricks/databricks-dolly-15k (split train)",
                           "--source PATH"),
}


@pytest.mark.parametrize("offline", [False, True], ids=["unreachable", "HF_HUB_OFFLINE"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_dataset_from_an_unreachable_hub_fails_at_once_naming_it_and_the_local_flag(command, offline, tmp_path):
    argv, what, flag = COMMANDS[command]
    with DeadHub() as hub:
        result = run(*argv, hub=hub, tmp_path=tmp_path, offline=offline)
        connections = hub.connections
    line = one_line_error(result)
    assert line.startswith(f"error: cannot load {what}: ") and line.endswith(f"give a local copy with {flag}")
    assert "Retry" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert connections == (0 if offline else 1)  # asked once, or not at all when told it is offline
    assert ("HF_HUB_OFFLINE=1" in line) == offline and (hub.url in line) != offline


def test_mix_names_every_missing_evaluation_set_in_one_error(tmp_path):
    local = FIXTURES / "traces" / "evalsets" / "gsm8k_test.jsonl"
    with DeadHub() as hub:
        result = run("crap.py", "mix", FIXTURES / "traces" / "gsm8k.jsonl", "--out", tmp_path / "mix",
                     "--eval-set", f"gsm8k-test={local}", hub=hub, tmp_path=tmp_path)
        connections = hub.connections
    line = one_line_error(result)
    for key, what in (("mbpp-test", "google-research-datasets/mbpp (config full, split test)"),
                      ("sciq-validation", "allenai/sciq (split validation)"),
                      ("sciq-test", "allenai/sciq (split test)")):
        assert what in line and f"--eval-set {key}=PATH" in line, line
    assert "gsm8k-test" not in line and "--no-decontam" in line  # the local copy given is not asked for again
    assert connections == 1 and not (tmp_path / "mix").exists()


def test_compare_names_every_recipe_that_needs_a_local_source(tmp_path):
    with DeadHub() as hub, OpenAIFake({}) as a, OpenAIFake({}) as b:
        result = run("crap.py", "compare", "--teacher", a.url, "--teacher", b.url, "--n", 4, "--recipe", "gsm8k",
                     "--recipe", "SciQA", "--out", tmp_path / "compare", hub=hub, tmp_path=tmp_path)
        sent = len(a.requests) + len(b.requests)
    line = one_line_error(result)
    assert "openai/gsm8k" in line and "allenai/sciq" in line, line
    assert line.endswith("give local copies with --source gsm8k=PATH --source SciQA=PATH") and sent == 0


def test_training_data_from_an_unreachable_hub_fails_at_once(tmp_path):
    # train/'s --data USER/NAME asks the Hub once too, and says so in one line
    with DeadHub() as hub:
        result = run("train/sft.py", "--model", "tiny", "--data", "alice/think-mix", "--out", tmp_path / "sft",
                     hub=hub, tmp_path=tmp_path)
        connections = hub.connections
    line = one_line_error(result)
    assert line.startswith("error: --data alice/think-mix: no such file or folder here; as a Hub dataset id: the Hub "
                           f"({hub.url}) cannot be reached"), line
    assert "Retry" not in result.stderr and connections == 1 and not (tmp_path / "sft" / "run.json").exists()
