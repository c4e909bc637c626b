"""`--model lmstudio:KEY`: a Gemma 3 GGUF that LM Studio downloaded, found in its models folder.

LM Studio keeps models as `<models>/<publisher>/<repository>/<file>.gguf` (e.g.
`lmstudio-community/gemma-3-270m-it-GGUF/gemma-3-270m-it-Q4_K_M.gguf`), in ~/.lmstudio/models or the folder
LMSTUDIO_MODELS_DIR names. KEY is matched, ignoring case, against the file's path under that folder, its
`publisher/repository`, the repository with or without its `-GGUF` ending, and the file's name without
`.gguf` (a key with a publisher that matches nothing is tried without it): `lmstudio:gemma-3-270m-it`,
`lmstudio:lmstudio-community/gemma-3-270m-it-GGUF`, or with the
quantization LM Studio shows after `@` when several are downloaded: `lmstudio:gemma-3-270m-it@q8_0`.
Vision projectors (mmproj-*.gguf) are not models and are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from tunixhack.errors import UserError

PREFIX = "lmstudio:"


def models_dir() -> Path:
    return Path(os.environ.get("LMSTUDIO_MODELS_DIR") or Path.home() / ".lmstudio" / "models")


def find(spec: str) -> str:
    """The GGUF file `lmstudio:KEY` names; one line naming what is there when it names none or several."""
    key, _, quant = spec[len(PREFIX):].strip().lower().partition("@")
    root = models_dir()
    if not key:
        raise UserError(f"--model {spec!r}: give LM Studio's model key after 'lmstudio:', e.g. "
                        f"lmstudio:gemma-3-270m-it")
    if not root.is_dir():
        raise UserError(f"--model {spec}: LM Studio's models folder {root} does not exist (set LMSTUDIO_MODELS_DIR)")
    files = sorted(p for p in root.rglob("*.gguf") if not p.name.lower().startswith("mmproj"))
    found = [p for p in files if key in names(p.relative_to(root))]
    if not found and "/" in key:  # LM Studio's catalog keys name the author (google/...), the folder the uploader
        found = [p for p in files if key.rsplit("/", 1)[1] in names(p.relative_to(root))]
    if quant:
        found = [p for p in found if quant in p.stem.lower()]
    if len(found) == 1:
        return str(found[0])
    listed = ", ".join(str(p.relative_to(root)) for p in (found or files)[:8]) or "none"
    if not found:
        raise UserError(f"--model {spec}: no such model in {root} (GGUF files there: {listed})")
    raise UserError(f"--model {spec} matches {len(found)} files in {root} ({listed}): add @QUANT (e.g. "
                    f"{spec.split('@')[0]}@q8_0) or pass the file's path")


def names(relative: Path) -> set[str]:
    """The keys a model file answers to (lower case)."""
    parts = [p.lower() for p in relative.parts]
    stem = relative.name.lower().removesuffix(".gguf")
    found = {"/".join(parts), "/".join(parts).removesuffix(".gguf"), stem}
    if len(parts) >= 2:
        repo = parts[-2]
        found |= {repo, repo.removesuffix("-gguf")}
        if len(parts) >= 3:
            found |= {f"{parts[-3]}/{repo}", f"{parts[-3]}/{repo.removesuffix('-gguf')}"}
    return found
