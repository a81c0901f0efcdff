"""Prompts are versioned data files (`prompts/*.md`: front matter + template), because the
reflector evolves them; templates use `str.format` placeholders."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from agentforge.errors import ConfigError

PROMPT_DIR = Path(__file__).parent / "prompts"


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    template: str

    def render(self, **values: Any) -> str:
        try:
            return self.template.format(**values)
        except KeyError as exc:
            raise ConfigError(f"prompt {self.name} v{self.version} needs {exc}") from None


@cache
def load_prompt(name: str, directory: Path = PROMPT_DIR) -> Prompt:
    path = directory / f"{name}.md"
    if not path.is_file():
        raise ConfigError(f"no prompt named {name!r} in {directory}")
    text = path.read_text(encoding="utf-8")
    meta: dict[str, Any] = {}
    if text.startswith("---\n"):
        head, _, text = text[4:].partition("\n---\n")
        meta = yaml.safe_load(head) or {}
    return Prompt(name=name, version=int(meta.get("version", 1)), template=text.strip())
