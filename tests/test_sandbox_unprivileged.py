"""The sandbox as a user who is not root gets it (a trainer on a shared machine, a Kaggle kernel): namespaces
where unprivileged user namespaces are allowed, Landlock + seccomp where the kernel has them, else a refusal
unless allow_unsafe(). Run for real as an unprivileged uid, with the system Python and a copy of
tunixhack/verify and pyseccomp (root's own files are out of reach)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyseccomp
import pytest

from tunixhack.verify import sandbox
from tunixhack.verify.kernel_wall import landlock_abi

ROOT = Path(__file__).resolve().parent.parent
PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
USER = 65533  # Debian's reserved range; any uid without a home, groups or files

SCRIPT = r"""
import json, os, subprocess
from tunixhack.verify.code import (IsolationRefused, allow_unsafe, available_levels, force_isolation, isolation,
                                   run_tests, why)
ADD = ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]
out = {"uid": os.getuid(), "level": isolation(), "levels": available_levels(), "why": why(),
       "unshare": subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True).returncode}
steal = ("import os, signal\ndef add(a, b):\n    try:\n        print(open(SECRET).read())\n"
         "    except OSError as e:\n        print('hidden', e)\n    try:\n        os.kill(os.getppid(), signal.SIGTERM)\n"
         "    except OSError as e:\n        print('no signal', e)\n    return a + b\n").replace("SECRET", repr(os.environ["SECRET"]))
for level in out["levels"]:
    if level == "rlimits+audit":
        continue
    force_isolation(level)
    out[level] = {"good": run_tests("def add(a, b):\n    return a + b\n", ADD).reason,
                  "wrong": run_tests("def add(a, b):\n    return a * b\n", ADD).reason,
                  "secret": run_tests(steal, ADD).output,
                  "process": run_tests("import os\nos.fork()\ndef add(a, b):\n    return a + b\n", ADD).reason}
force_isolation("rlimits+audit")
try:
    run_tests("def add(a, b):\n    return a + b\n", ADD)
    out["unsafe"] = "ran"
except IsolationRefused as error:
    out["unsafe"] = str(error)
allow_unsafe()
out["allowed"] = run_tests("def add(a, b):\n    return a + b\n", ADD).reason
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not Path(PYTHON).exists() or not shutil.which("setpriv"),
                    reason="needs root (to become another uid), setpriv and the system Python")
def test_an_unprivileged_user_gets_namespaces_or_a_refusal():
    work = Path(tempfile.mkdtemp(prefix="tunixhack-unprivileged-"))
    try:
        (work / "tunixhack").mkdir()
        (work / "tunixhack" / "__init__.py").write_text("")
        shutil.copy(ROOT / "tunixhack" / "errors.py", work / "tunixhack")
        shutil.copytree(ROOT / "tunixhack" / "verify", work / "tunixhack" / "verify",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(pyseccomp.__file__, work)  # one file over the system's libseccomp
        secret = work / "token"
        secret.write_text("hf_secret_of_the_user")
        for path in [work, *work.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        os.chown(secret, USER, USER)  # the user's own file: readable by the user, never by the code
        secret.chmod(0o600)
        lease = sandbox.hold_uid(USER)  # no check of ours (or of another run as root) uses this uid meanwhile
        done = subprocess.run(
            ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", PYTHON, "-c", SCRIPT],
            cwd=work, capture_output=True, text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": str(work), "PYTHONPATH": str(work), "SECRET": str(secret)})
        if lease is not None:
            lease.close()
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
    finally:
        shutil.rmtree(work)
    assert out["uid"] == USER and not {"uid+rlimits+audit", "uid+landlock+seccomp"} & set(out["levels"])
    assert "--unsafe-run-code" in out["unsafe"] and out["allowed"] == "passed"
    for level in set(out["levels"]) - {"rlimits+audit"}:  # behind a kernel wall: namespaces, Landlock or both
        assert (out[level]["good"], out[level]["wrong"], out[level]["process"]) == ("passed", "assertion_failed",
                                                                                   "error"), out[level]
        assert "hidden" in out[level]["secret"] and "hf_secret" not in out[level]["secret"]
        assert "no signal" in out[level]["secret"]  # and this script, our parent, is still here to report
    if "landlock+seccomp" not in out["levels"]:  # the kernel has no Landlock ABI 6 for this user
        assert landlock_abi() < 6, out["why"]
    if "namespaces" not in out["levels"]:  # the kernel refuses this user namespaces, not our probe
        assert out["unshare"] != 0, f"user namespaces work for this user, yet the probe refused them: {out['why']}"
