"""Graph fusions of the quantized embedder (`fusions.py`): each fused model computes what the
unfused one did, patterns that differ are left alone, and `build` keeps an attention fusion only
if the fused model embeds like the unfused one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import NodeProto, TensorProto, helper, numpy_helper

from agentforge.memory.embedders import fusions
from agentforge.memory.embedders import quantize as q
from agentforge.memory.embedders.onnx import _make_session


def _gelu_model(path: Path, one: float = 1.0) -> Path:
    """Two exact GELUs as torch's exporter writes them, x * (0.5 * (1 + erf(x / sqrt(2)))), the
    second one over the first's output (with `one` other than 1: not a GELU)."""
    nodes = []
    for i, x in enumerate(["x", "g0"]):
        nodes += [
            helper.make_node("Div", [x, "root2"], [f"d{i}"]),
            helper.make_node("Erf", [f"d{i}"], [f"e{i}"]),
            helper.make_node("Add", [f"e{i}", "one"], [f"a{i}"]),
            helper.make_node("Mul", ["half", f"a{i}"], [f"h{i}"]),
            helper.make_node("Mul", [x, f"h{i}"], [f"g{i}"]),
        ]
    constants = {"root2": np.sqrt(2.0), "one": one, "half": 0.5}
    graph = helper.make_graph(
        nodes,
        "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("g1", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_exported_gelu_becomes_one_node_with_the_same_values(tmp_path: Path) -> None:
    source = _gelu_model(tmp_path / "gelu.onnx")
    model = onnx.load(str(source))
    assert fusions.fuse_gelu(model) == 2
    assert [node.op_type for node in model.graph.node] == ["Gelu", "Gelu"]
    assert not model.graph.initializer  # the patterns' constants went with them
    fused = tmp_path / "fused.onnx"
    onnx.save(model, str(fused))
    x = np.random.default_rng(3).normal(size=(5, 8)).astype(np.float32) * 3
    (want,) = _make_session(source).run(None, {"x": x})
    (got,) = _make_session(fused).run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    other = onnx.load(str(_gelu_model(tmp_path / "not.onnx", one=2.0)))
    assert fusions.fuse_gelu(other) == 0 and len(other.graph.node) == 10


# -- one self-attention block as torch's exporter writes it: 2 heads of 4 -------------------

HIDDEN, HEADS, TOKENS = 8, 2, 5


def _attention_model(
    path: Path,
    *,
    value_scale: float = 1.0,
    mask_name: str = "attention_mask",
    scale_scores: bool = False,
) -> Path:
    """x -> query, key, value projections (MatMul + bias) -> heads -> scaled scores + the
    additive padding mask -> Softmax -> context -> back to [batch, tokens, hidden]. As torch's
    exporter writes it, the query and the key are each scaled by head_size**-0.25 (the key's
    scale written constant first); with `scale_scores`, as Hugging Face's exporters write it,
    the scores are divided by sqrt(head_size) instead. `value_scale` other than 1 scales the
    values too (not an attention block that `MultiHeadAttention` computes)."""
    rng = np.random.default_rng(7)
    head = HIDDEN // HEADS
    constants: dict[str, np.ndarray] = {
        "heads": np.array([0, 0, HEADS, head], np.int64),
        "merged": np.array([0, 0, HIDDEN], np.int64),
        "scale": np.array(1.0 if scale_scores else head**-0.25, np.float32),
        "root": np.array(head**0.5, np.float32),
        "value_scale": np.array(value_scale, np.float32),
        "one": np.array(1.0, np.float32),
        "minus": np.array(-10000.0, np.float32),
        "axes": np.array([1, 2], np.int64),
    }
    nodes = []
    for p in "qkv":
        constants[f"w{p}"] = rng.normal(size=(HIDDEN, HIDDEN)).astype(np.float32) / 2
        constants[f"b{p}"] = rng.normal(size=HIDDEN).astype(np.float32) / 4
        perm = [0, 2, 3, 1] if p == "k" else [0, 2, 1, 3]
        nodes += [
            helper.make_node("MatMul", ["x", f"w{p}"], [f"{p}0"]),
            helper.make_node("Add", [f"{p}0", f"b{p}"], [f"{p}1"]),
            helper.make_node("Reshape", [f"{p}1", "heads"], [f"{p}2"]),
            helper.make_node("Transpose", [f"{p}2"], [f"{p}3"], perm=perm),
        ]
    nodes += [
        helper.make_node("Mul", ["q3", "scale"], ["q4"]),
        helper.make_node("Mul", ["scale", "k3"], ["k4"]),
        helper.make_node("Mul", ["v3", "value_scale"], ["v4"]),
        helper.make_node("Cast", [mask_name], ["m0"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one", "m0"], ["m1"]),
        helper.make_node("Mul", ["m1", "minus"], ["m2"]),
        helper.make_node("Unsqueeze", ["m2", "axes"], ["m3"]),
        helper.make_node("MatMul", ["q4", "k4"], ["s0" if scale_scores else "scores"]),
        *([helper.make_node("Div", ["s0", "root"], ["scores"])] if scale_scores else []),
        helper.make_node("Add", ["scores", "m3"], ["s1"]),
        helper.make_node("Softmax", ["s1"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v4"], ["c0"]),
        helper.make_node("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["c1", "merged"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "attention",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", HIDDEN]),
            helper.make_tensor_value_info(mask_name, TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", HIDDEN])],
        [numpy_helper.from_array(v, k) for k, v in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _attention_inputs(count: int) -> dict[str, np.ndarray]:
    """`count` sequences of TOKENS, the i-th padded after 5 - i % 4 tokens."""
    x = np.random.default_rng(8).normal(size=(count, TOKENS, HIDDEN)).astype(np.float32)
    lengths = TOKENS - np.arange(count) % 4
    mask = (np.arange(TOKENS)[None, :] < lengths[:, None]).astype(np.int64)
    return {"x": x, "attention_mask": mask}


def _attention_run(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    (y,) = _make_session(path).run(None, inputs)
    return np.asarray(y)


def _attention_encode(path: Path, texts: Sequence[str]) -> np.ndarray:
    """Mean-pooled, unit rows over the unpadded tokens (as the embedder pools)."""
    inputs = _attention_inputs(len(texts))
    weights = inputs["attention_mask"][..., None].astype(np.float32)
    pooled = (_attention_run(path, inputs) * weights).sum(axis=1) / weights.sum(axis=1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def _ops(model: onnx.ModelProto) -> list[str]:
    return sorted(node.op_type for node in model.graph.node)


@pytest.mark.parametrize("scale_scores", [False, True], ids=["torch", "scores-divided"])
def test_attention_block_becomes_one_node_with_the_same_values(
    tmp_path: Path, scale_scores: bool
) -> None:
    source = _attention_model(tmp_path / "attention.onnx", scale_scores=scale_scores)
    model = onnx.load(str(source))
    assert fusions.fuse_attention(model) == 1
    assert _ops(model) == ["Cast", "MatMul", "MatMul", "MatMul", "MultiHeadAttention"]
    (attention,) = [n for n in model.graph.node if n.op_type == "MultiHeadAttention"]
    attributes = {a.name: helper.get_attribute_value(a) for a in attention.attribute}
    assert attributes["num_heads"] == HEADS
    assert attributes["scale"] == pytest.approx((HIDDEN // HEADS) ** -0.5)
    # the mask's arithmetic and the head shapes went with the block; the biases are one
    assert sorted(t.name for t in model.graph.initializer) == sorted(
        ["wq", "wk", "wv", attention.input[3]]
    )
    fused = tmp_path / "fused.onnx"
    onnx.save(model, str(fused))
    inputs = _attention_inputs(6)
    np.testing.assert_allclose(
        _attention_run(fused, inputs), _attention_run(source, inputs), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "options", [{"value_scale": 2.0}, {"mask_name": "input_mask"}], ids=["scaled-values", "no-mask"]
)
def test_other_blocks_are_left_alone(tmp_path: Path, options: dict[str, object]) -> None:
    model = onnx.load(str(_attention_model(tmp_path / "other.onnx", **options)))  # type: ignore[arg-type]
    before = _ops(model)
    assert fusions.fuse_attention(model) == 0
    assert _ops(model) == before


def _built(cache: Path) -> tuple[dict[str, object], list[str]]:
    (sidecar,) = (cache / "embedders").glob("*.json")
    meta = json.loads(sidecar.read_text())
    return meta, _ops(onnx.load(str(sidecar.with_suffix(".onnx"))))


def test_build_fuses_the_attention_of_the_quantized_model(tmp_path: Path) -> None:
    source = _attention_model(tmp_path / "attention.onnx")
    assert q.quantized_model(source, tmp_path / "cache", _attention_encode) is not None
    meta, ops = _built(tmp_path / "cache")
    assert meta["passed"] is True and meta["quantized_matmuls"] == 3
    assert meta["fused_attentions"] == 1 and "MultiHeadAttention" in ops
    assert "Softmax" not in ops and "MatMulIntegerToFloat" in ops


def test_build_keeps_the_unfused_model_when_the_fusion_embeds_differently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fusions.fuse_attention

    def off_by_one_percent(model: onnx.ModelProto) -> int:
        count = real(model)
        attention: NodeProto
        for attention in [n for n in model.graph.node if n.op_type == "MultiHeadAttention"]:
            for attribute in attention.attribute:
                if attribute.name == "scale":
                    attribute.f *= 1.01
        return count

    monkeypatch.setattr(fusions, "fuse_attention", off_by_one_percent)
    source = _attention_model(tmp_path / "attention.onnx")
    assert q.quantized_model(source, tmp_path / "cache", _attention_encode) is not None
    meta, ops = _built(tmp_path / "cache")
    assert meta["passed"] is True and meta["fused_attentions"] == 0
    assert "MultiHeadAttention" not in ops and "Softmax" in ops


def test_a_fusion_keeps_what_only_a_subgraph_reads(tmp_path: Path) -> None:
    """`x2 = x * 2` is read only inside an If's branch: dropping the nodes nobody reads must not
    take it (nor its constant) with the GELU's."""
    model = onnx.load(str(_gelu_model(tmp_path / "gelu.onnx")))
    branch = helper.make_graph(
        [helper.make_node("Identity", ["x2"], ["branch_out"])],
        "branch",
        [],
        [helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, ["batch", 8])],
    )
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
            numpy_helper.from_array(np.array(True), "yes"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Mul", ["x", "two"], ["x2"]),
            helper.make_node("If", ["yes"], ["z"], then_branch=branch, else_branch=branch),
        ]
    )
    graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 8]))
    assert fusions.fuse_gelu(model) == 2
    assert _ops(model) == ["Gelu", "Gelu", "If", "Mul"]
    fused = tmp_path / "fused.onnx"
    onnx.save(model, str(fused))
    x = np.random.default_rng(4).normal(size=(3, 8)).astype(np.float32)
    _gelu_out, z = _make_session(fused).run(None, {"x": x})
    np.testing.assert_allclose(z, x * 2)
