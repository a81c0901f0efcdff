"""Typed settings: environment (`AGENTFORGE_` prefix) over defaults, with one home directory.

The home directory holds the embedded stores: `memory.db` (SQLite, WAL) and `chroma/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EmbedderName = Literal["onnx", "hub", "litellm", "hash"]


def default_home() -> Path:
    return Path.home() / ".agentforge"


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
    embed_batch_size: int = 64
    query_cache_size: int = 4096
    namespace: str = "default"
    model: str | None = Field(default=None, description="Default LLM model id (litellm syntax).")
    model_timeout: float = Field(
        default=60.0, gt=0, description="Seconds one model call may take (slow local models)."
    )

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
