"""Input validation, normalisation, hashing and chunking for `retain` (no LLM)."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from agentforge.errors import InputError

MAX_CHARS = 2_000_000  # one retain item; longer input is an error, not a silent truncation
CHUNK_WORDS = 180  # all-MiniLM-L6-v2 reads 256 word pieces; ~180 words fit
CHUNK_OVERLAP_SENTENCES = 1

_SPACE = re.compile(r"[ \t\f\v\u00a0]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{2,}")
_CONTROL_OK = {"\n", "\t", "\r"}


def normalize(text: object) -> str:
    """Validate and normalise one piece of content; raise InputError with a clear reason."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("content is binary, not UTF-8 text") from None
    if not isinstance(text, str):
        raise InputError(f"content must be text, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise InputError(
            f"content is {len(text):,} characters; the limit per item is {MAX_CHARS:,} "
            "(split it into documents)"
        )
    if "\x00" in text:
        raise InputError("content contains NUL bytes: binary data cannot be retained as text")
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n")
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in _CONTROL_OK)
    if controls > max(4, len(text) // 100):
        raise InputError("content looks binary (too many control characters)")
    lines = [_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not text:
        raise InputError("content is empty")
    return text


def content_hash(text: str) -> str:
    """Hash of the content modulo case and whitespace, for exact de-duplication."""
    key = " ".join(text.lower().split())
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def chunk(text: str, max_words: int = CHUNK_WORDS) -> list[str]:
    """Split long text into sentence-aligned chunks of at most ~max_words, overlapping by one
    sentence so that a fact cut at a boundary is still whole in one chunk."""
    if len(text.split()) <= max_words:
        return [text]
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    pieces: list[str] = []
    for sentence in sentences:  # a single over-long sentence is cut by words
        words = sentence.split()
        for start in range(0, len(words), max_words):
            pieces.append(" ".join(words[start : start + max_words]))
    chunks: list[str] = []
    current: list[str] = []
    count = 0
    for piece in pieces:
        n = len(piece.split())
        if current and count + n > max_words:
            chunks.append(" ".join(current))
            current = current[-CHUNK_OVERLAP_SENTENCES:] if CHUNK_OVERLAP_SENTENCES else []
            count = sum(len(p.split()) for p in current)
            if count + n > max_words:
                current, count = [], 0
        current.append(piece)
        count += n
    if current:
        chunks.append(" ".join(current))
    return chunks
