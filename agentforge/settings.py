"""Typed settings: environment (`AGENTFORGE_` prefix) over defaults, with one home directory.

The home directory holds the embedded stores: `memory.db` (SQLite, WAL) and `chroma/`.
The cache directory holds files derived from installed packages (the quantized embedder), shared
by every home.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EmbedderName = Literal["onnx", "hub", "litellm", "hash"]
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def default_home() -> Path:
    return Path.home() / ".agentforge"


def default_cache_dir() -> Path:
    """`$AGENTFORGE_CACHE_DIR`, else `$XDG_CACHE_HOME/agentforge`, else `~/.cache/agentforge`."""
    if explicit := os.environ.get("AGENTFORGE_CACHE_DIR"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "agentforge"


class Settings(BaseSettings):
    """All configuration of AgentForge. Every field can be set as `AGENTFORGE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="AGENTFORGE_", extra="ignore")

    home: Path = Field(
        default_factory=default_home, description="Directory of the embedded stores."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the record store; default SQLite in home."
    )
    chroma_host: str | None = Field(
        default=None, description="Chroma server host; default embedded."
    )
    chroma_port: int = 8000
    embedder: EmbedderName = "onnx"
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="Model for the 'hub' or 'litellm' embedder (hub repo id or litellm model id).",
    )
    embedder_quantize: bool = Field(
        default=True,
        description="Run the 'onnx'/'hub' embedder as an int8 copy built once in cache_dir "
        "(about 2x faster); the source model is used if that copy is unavailable.",
    )
    dense_mirror: Literal["on", "snapshot", "off"] = Field(
        default="on",
        description="Answer recall's dense queries on SQLite from an in-process HNSW mirror of "
        "the stored vectors (exact for each read's snapshot): 'on' builds it when no snapshot "
        "exists, 'snapshot' only loads one (what short CLI commands use), 'off' leaves every "
        "query to the vector index. Booleans mean 'on' / 'off'.",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Directory of derived files shared by all homes (the quantized embedder); "
        "default $XDG_CACHE_HOME/agentforge or ~/.cache/agentforge.",
    )
    embed_batch_size: int = 8  # texts per embedder model run (see embedders/onnx.py)
    query_cache_size: int = 4096
    namespace: str = "default"
    model: str | None = Field(default=None, description="Default LLM model id (litellm syntax).")
    model_timeout: float = Field(
        default=60.0, gt=0, description="Seconds one model call may take (slow local models)."
    )

    @field_validator("dense_mirror", mode="before")
    @classmethod
    def _mirror_mode(cls, value: object) -> object:
        """Booleans (and their environment spellings) as the modes they mean."""
        if isinstance(value, str):
            value = _BOOLEANS.get(value.strip().lower(), value)
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    def resolved_home(self) -> Path:
        home = self.home.expanduser()
        home.mkdir(parents=True, exist_ok=True)
        return home

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home() / 'memory.db'}"

    def chroma_path(self) -> Path:
        return self.resolved_home() / "chroma"
