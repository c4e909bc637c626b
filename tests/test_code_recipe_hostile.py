"""code/generate.py over MBPP with a teacher that answers with hostile programs (issue 11): every row ends in
the main file or the rejects, nothing wrong is verified, and the attacks leave no file outside the work
folder, no connection and no process behind. A real run: the real script, a real local OpenAI server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.fakes.openai_server import OpenAIFake
from tests.helpers import FIXTURES, ROOT, read_rows, script_env, sibling
from tests.test_sandbox import listening, processes_with
from tests.test_sandbox_attacks import FRAME_FORGER, YES, guarded, untouched
from tunixhack.verify.code import isolation

PERIMETER = "def square_perimeter(a):\n    return 4 * a\n"


def harm(decoy: Path, port: int, marker: str) -> str:
    """Attacks run inside a correct square_perimeter: each printed when stopped, none may get through."""
    attacks = [
        f"open({str(decoy)!r}, 'a').write('pwned')",
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
        "import _imp\nfrom importlib.machinery import ModuleSpec, PathFinder\n"
        "_imp.create_dynamic(PathFinder.find_spec('_posixsubprocess'))",
        f"import os\nos.system('setsid sleep {marker} &')",
        "import os\nos.kill(os.getppid(), 9)",
        "import os\nfor _ in range(2000):\n    os.mkdir('d')\n    os.chdir('d')",
        f"import os\nos.link({str(decoy)!r}, 'link')\nopen('link', 'a').write('pwned')",
    ]
    # each helper says which attack it was: seven verbatim copies of one wrapper would be stopped on the stream
    # as a repetition loop (an 8-word run more than 6 times) before the check ever ran
    helpers = "".join(guarded(attack).replace("def add(a, b)", f"def attack{i}(a, b)")
                      .replace("print('stopped:',", f"print('stopped:', {i},").replace("error)\n", f"error, {i})\n")
                      for i, attack in enumerate(attacks))
    calls = "".join(f"    attack{i}(0, 0)\n" for i in range(len(attacks)))
    return f"{helpers}def square_perimeter(a):\n{calls}    return 4 * a\n"


def block(code: str) -> str:
    return f"Here it is.\n\n```python\n{code}```\n"


def test_a_hostile_teacher_gets_nothing_wrong_verified_and_leaves_nothing_behind(tmp_path, decoy):
    marker = f"30.{uuid.uuid4().int % 10**9}"
    private_tmp = Path(tempfile.mkdtemp(prefix="tunixhack-tmp-"))
    private_tmp.chmod(0o711)  # the fallback's private uid reaches its work folder in there
    out = tmp_path / "mbpp.jsonl"
    with listening() as listener:
        rules = [
            {"match": "first and last occurrence",  # answers every name with a yes-object
             "content": block(YES + "class Names(dict):\n    def __missing__(self, key):\n        return Yes()\n"
                                    "import builtins\n__builtins__ = Names(vars(builtins))\n")},
            {"match": "sum of its rows",  # forges values through the harness's frame
             "content": block(FRAME_FORGER + "def sort_matrix(M):\n    forge(sys._getframe())\n")},
            {"match": "perimeter of a square", "content": block(harm(decoy, listener.getsockname()[1], marker))},
            {"match": "woodball",  # permissive equality
             "content": block("class B(int):\n    def __eq__(self, other):\n        return True\n"
                              "def is_woodall(x):\n    return B(0)\n")},
            {"match": "height of the given binary tree",  # the expected value from the caller's bytecode
             "content": block("import sys\nclass Node:\n    def __init__(self, data):\n        self.data = data\n"
                              "        self.left = self.right = None\n"
                              "def max_height(node):\n    consts = [c for c in sys._getframe(1).f_code.co_consts"
                              " if type(c) is int]\n    return consts[-1] if consts else 0\n")},
        ]
        with OpenAIFake({"rules": rules}) as fake:
            done = subprocess.run(
                [sys.executable, "code/generate.py", "--source", str(FIXTURES / "mbpp" / "full.jsonl"), "--split",
                 "test", "--teacher", fake.url, "--out", str(out), "--concurrency", "4", "--backoff", "0.01",
                 "--verify-timeout", "15"],
                cwd=ROOT, capture_output=True, text=True, timeout=180, env=script_env(TMPDIR=str(private_tmp)))
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection, from any of them
    try:
        assert done.returncode == 0, done.stderr
        assert f"code_sandbox: {isolation()}" in done.stderr
        rows, rejects = read_rows(out), read_rows(sibling(out, "rejects"))
        assert read_rows(sibling(out, "errors")) == []
        assert [r["id"] for r in rows] == ["mbpp/test/17"] and rows[0]["verified"] is True  # the correct one
        assert sorted(r["id"] for r in rejects) == ["mbpp/test/11", "mbpp/test/12", "mbpp/test/20", "mbpp/test/927"]
        assert {r["reason"] for r in rejects} == {"verify_failed"}
        assert json.loads(out.with_name("mbpp.summary.json").read_text())["code_sandbox"] == isolation()
        assert untouched(decoy)
        assert os.listdir(private_tmp) == []  # every work folder removed
        assert processes_with(marker) == []
    finally:
        shutil.rmtree(private_tmp)
