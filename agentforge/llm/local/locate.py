"""From a `local/...` model id to a GGUF file on disk.

- `local/default` → the model `agentforge models pull` put in `<AGENTFORGE_HOME>/models/`;
- `local/<catalog name>` (e.g. `local/qwen2.5-1.5b`) → that pulled model;
- `local/<path>.gguf` → that file (`~` expanded, relative to the working directory;
  `local//abs/path.gguf` for an absolute path);
- `local/<owner>/<repo>[:<file glob>]` → a GGUF from that Hugging Face Hub repository (default glob
  `*q4_k_m.gguf`), downloaded into the Hugging Face cache on first use.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from agentforge.errors import ConfigError
from agentforge.llm.local.catalog import PULL_HINT, catalog_entry, default_model_path

DEFAULT_GLOB = "*[qQ]4_[kK]_[mM].gguf"
HUB_TIMEOUT_S = 30.0
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")
_FORMS = (
    "use local/default, local/<catalog name>, local/<path>.gguf or "
    "local/<owner>/<repo>[:<file glob>]"
)


@dataclass(frozen=True)
class ModelRef:
    """What a `local/...` id names: a file on disk (`path`) or a hub repo and file glob."""

    model_id: str
    path: Path | None = None
    repo: str | None = None
    glob: str = DEFAULT_GLOB


def parse_model_id(model_id: str, models_dir: Path) -> ModelRef:
    """Resolve everything that needs no network; hub refs are downloaded later (`hub_file`)."""
    rest = model_id.strip().removeprefix("local/").strip()
    full_id = f"local/{rest}"
    if not rest:
        raise ConfigError(f"empty local model id {model_id!r}; {_FORMS}", model=model_id)
    if rest == "default":
        path = default_model_path(models_dir)
        if path is None:
            raise ConfigError(
                f"no local model in {models_dir} for {full_id!r}: {PULL_HINT}, or set "
                f"AGENTFORGE_MODEL to another model",
                model=full_id,
            )
        return ModelRef(full_id, path=path)
    if ":" in rest:
        repo, _, glob = rest.partition(":")
        if _REPO.match(repo) and glob.strip():
            return ModelRef(full_id, repo=repo, glob=glob.strip())
    if rest.lower().endswith(".gguf"):
        path = Path(rest).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"model file not found: {path} (from {full_id!r}); {_FORMS}", model=full_id
            )
        return ModelRef(full_id, path=path.resolve())
    entry = catalog_entry(rest)
    if entry is not None:
        path = models_dir / entry.filename
        if not path.is_file():
            raise ConfigError(
                f"{entry.name} is not pulled yet ({path} missing): run "
                f"`agentforge models pull {entry.name}`",
                model=full_id,
            )
        return ModelRef(full_id, path=path)
    if _REPO.match(rest):
        return ModelRef(full_id, repo=rest)
    raise ConfigError(f"cannot tell which local model {full_id!r} means; {_FORMS}", model=full_id)


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE is set or huggingface.co does not answer within `timeout`."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    import httpx

    try:
        httpx.head("https://huggingface.co", timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


def _pick(files: list[Path], ref: ModelRef) -> Path:
    if not files:
        raise ConfigError(
            f"no file matching {ref.glob!r} in hub repo {ref.repo!r} ({ref.model_id!r}); pick one "
            f"with local/{ref.repo}:<file glob>",
            model=ref.model_id,
        )
    first = files[0]
    split = _SPLIT.search(first.name)
    if split is None and len(files) > 1:
        names = ", ".join(f.name for f in files[:5])
        raise ConfigError(
            f"{len(files)} files match {ref.glob!r} in {ref.repo!r} ({names}…); make the glob "
            f"name one, e.g. local/{ref.repo}:{files[0].name}",
            model=ref.model_id,
        )
    return first  # llama.cpp loads a split model from its first part


def hub_file(ref: ModelRef, *, timeout: float = HUB_TIMEOUT_S) -> Path:
    """Download (or find in the Hugging Face cache) the GGUF a hub `ref` names."""
    if ref.path is not None:
        return ref.path
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(timeout)))
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout)))
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a dependency of tokenizers and litellm
        raise ConfigError(
            f"{ref.model_id!r} needs huggingface_hub (pip install huggingface_hub)",
            model=ref.model_id,
        ) from exc
    assert ref.repo is not None
    try:
        folder = Path(snapshot_download(ref.repo, allow_patterns=[ref.glob], etag_timeout=timeout))
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ConfigError(
            f"could not get {ref.repo!r} ({ref.glob}) from the Hugging Face Hub: {detail}. "
            f"Offline? Use a file on disk (local/<path>.gguf) or {PULL_HINT}",
            model=ref.model_id,
        ) from exc
    files = sorted(
        p
        for p in folder.rglob("*.gguf")
        if p.is_file() and fnmatch(p.relative_to(folder).as_posix(), ref.glob)
    )
    return _pick(files, ref)
