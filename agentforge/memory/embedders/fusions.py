"""Graph fusions for the quantized embedder (`quantize.py`): patterns of torch's ONNX exporter
that onnxruntime's own fusions miss, each rewritten as one com.microsoft node.

- `fuse_gelu`: an exact GELU, `x * (0.5 * (1 + erf(x / sqrt(2))))`, becomes one `Gelu`;
- `fuse_attention`: a self-attention block (scores, additive mask, softmax, context, head
  reshapes and transposes) becomes one `MultiHeadAttention`.

Both compute the same function as the nodes they replace. The attention pattern is matched
loosely (any Reshape or Transpose on the way back from the scores to a projection), so `build`
keeps its result only if the fused model embeds like the unfused one (see `quantize.build`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, NodeProto

#: The int32 key padding mask that every fused attention reads (cast once from the model's
#: `attention_mask` input).
KEY_PADDING_MASK = "attention_mask_int32"


class _Graph:
    """Lookups over one graph: its constants, the producer and the readers of every tensor."""

    def __init__(self, graph: GraphProto) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.constants = {t.name: t for t in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output}
        self.readers: dict[str, list[NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in graph.output}
        self._array = numpy_helper.to_array

    def array(self, name: str | None) -> np.ndarray | None:
        tensor = self.constants.get(name or "")
        return None if tensor is None else np.asarray(self._array(tensor))

    def scalar(self, name: str | None) -> float | None:
        array = self.array(name)
        return float(array.reshape(-1)[0]) if array is not None and array.size == 1 else None

    def sole_reader(self, name: str, op: str) -> NodeProto | None:
        found = self.readers.get(name, [])
        if len(found) != 1 or name in self.outputs or found[0].op_type != op:
            return None
        return found[0]

    def keep(self, nodes: list[NodeProto], read: set[str] | None = None) -> None:
        """Make `nodes` the graph's nodes, without those whose outputs nobody reads, and drop
        the constants (of `read`, default: all) that no node reads any more. What a subgraph
        (an If or Loop body) reads from the outer graph counts as read."""
        live = set(self.outputs) | _read_by_subgraphs(nodes)
        kept: list[NodeProto] = []
        for node in reversed(nodes):
            if any(out in live for out in node.output):
                kept.append(node)
                live.update(node.input)
        kept.reverse()
        del self.graph.node[:]
        self.graph.node.extend(kept)
        candidates = self.constants.keys() if read is None else read
        for name in [n for n in candidates if n not in live]:
            self.graph.initializer.remove(self.constants.pop(name))


def _read_by_subgraphs(nodes: list[NodeProto]) -> set[str]:
    """Every name the subgraphs of `nodes` (at any depth) read: a superset of what they take
    from the outer graph."""
    from onnx import AttributeProto

    names: set[str] = set()
    for node in nodes:
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                graphs = [attribute.g]
            elif attribute.type == AttributeProto.GRAPHS:
                graphs = list(attribute.graphs)
            else:
                continue
            for graph in graphs:
                names.update(name for inner in graph.node for name in inner.input)
                names.update(o.name for o in graph.output)
                names |= _read_by_subgraphs(list(graph.node))
    return names


def use_microsoft_ops(model: ModelProto) -> None:
    """Import the com.microsoft domain (onnxruntime's contrib ops) if the model does not."""
    from onnx import helper

    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def fuse_gelu(model: ModelProto) -> int:
    """Replace each exact GELU written out as `x * (0.5 * (1 + erf(x / sqrt(2))))` (torch's
    exporter's form, which onnxruntime's own Gelu fusion does not match) by one com.microsoft
    `Gelu` node computing the same function; returns how many.

    Five elementwise passes over a layer's widest activation become one: 3.6% less time for a
    batch of 8 short texts, 2.4% for one query (MiniLM-L6, int8).
    """
    from onnx import helper

    g = _Graph(model.graph)

    def other(node: NodeProto, name: str) -> str | None:
        inputs = list(node.input)
        if len(inputs) != 2 or name not in inputs:
            return None
        return inputs[1] if inputs[0] == name else inputs[0]

    fused: dict[int, NodeProto] = {}  # id of the last node of a pattern -> its Gelu
    dropped: set[int] = set()
    read: set[str] = set()  # the constants the dropped nodes read
    for erf in [n for n in g.graph.node if n.op_type == "Erf" and n.domain in ("", "ai.onnx")]:
        div = g.producer.get(erf.input[0])
        if div is None or div.op_type != "Div" or g.sole_reader(div.output[0], "Erf") is not erf:
            continue
        x, root2 = div.input[0], g.scalar(div.input[1])
        add = g.sole_reader(erf.output[0], "Add")
        half = add and g.sole_reader(add.output[0], "Mul")
        last = half and g.sole_reader(half.output[0], "Mul")
        if (
            root2 is None
            or abs(root2 - math.sqrt(2.0)) > 1e-5
            or add is None
            or half is None
            or last is None
            or g.scalar(other(add, erf.output[0])) != 1.0
            or g.scalar(other(half, add.output[0])) != 0.5
            or other(last, half.output[0]) != x
        ):
            continue
        name = f"{last.name or last.output[0]}_gelu"
        fused[id(last)] = helper.make_node(
            "Gelu", [x], [last.output[0]], domain="com.microsoft", name=name
        )
        dropped.update(id(n) for n in (div, erf, add, half))
        read.update(i for n in (div, add, half) for i in n.input if i in g.constants)
    if not fused:
        return 0
    g.keep([fused.get(id(n), n) for n in g.graph.node if id(n) not in dropped], read)
    use_microsoft_ops(model)
    return len(fused)


@dataclass(frozen=True)
class _Projection:
    """Where one input of the attention scores (or of its context) starts."""

    name: str  # the projected tensor, [batch, tokens, hidden], before its bias
    bias: np.ndarray  # [hidden]
    scale: float  # the scalar factors between it and the scores
    head_size: int | None  # the last dimension of the first head reshape met, if constant


def _projection(g: _Graph, name: str) -> _Projection | None:
    """Walk back from `name` through head reshapes, transposes and scalar Mul/Div to the Add of
    a 1-D bias; None if anything else is in the way."""
    scale, head_size = 1.0, None
    while (node := g.producer.get(name)) is not None:
        op, inputs = node.op_type, list(node.input)
        if op == "Transpose":
            name = inputs[0]
        elif op == "Reshape":
            head_size = head_size or _last_dimension(g, inputs[1])
            name = inputs[0]
        elif (step := _scaled(g, node)) is not None:
            factor, name = step
            scale *= factor
        elif op == "Add" and len(inputs) == 2:
            for x, b in ((0, 1), (1, 0)):
                bias = g.array(inputs[b])
                if bias is not None and bias.ndim == 1 and inputs[x] not in g.constants:
                    return _Projection(inputs[x], bias.astype(np.float32), scale, head_size)
            return None
        else:
            return None
    return None


def _scaled(g: _Graph, node: NodeProto) -> tuple[float, str] | None:
    """(factor, the tensor) of a Mul or Div of a tensor by a scalar constant; else None."""
    inputs = list(node.input)
    if len(inputs) != 2:
        return None
    if node.op_type == "Div" and (value := g.scalar(inputs[1])):  # not 0
        return 1.0 / value, inputs[0]
    if node.op_type == "Mul":
        for x, c in ((0, 1), (1, 0)):
            if (value := g.scalar(inputs[c])) is not None and inputs[x] not in g.constants:
                return value, inputs[x]
    return None


def _scores(g: _Graph, masked: NodeProto) -> tuple[NodeProto, float] | None:
    """The MatMul of the scores that the mask's Add reads, through scalar Mul/Div (HF's
    exporters divide the scores by sqrt(head size); torch's scales the query and the key), and
    the product of those scalars."""
    for name in masked.input:
        factor = 1.0
        while (node := g.producer.get(name)) is not None and (step := _scaled(g, node)):
            value, name = step
            factor *= value
        if node is not None and node.op_type == "MatMul":
            return node, factor
    return None


def _last_dimension(g: _Graph, shape: str) -> int | None:
    """The last entry of a Reshape's target shape when it is a positive constant (a constant
    shape, or a Concat whose last part is one)."""
    array = g.array(shape)
    if array is None and (concat := g.producer.get(shape)) is not None:
        array = g.array(concat.input[-1]) if concat.op_type == "Concat" else None
    if array is None or array.size == 0 or int(array.reshape(-1)[-1]) <= 0:
        return None
    return int(array.reshape(-1)[-1])


def _attention(g: _Graph, softmax: NodeProto) -> tuple[NodeProto, NodeProto, np.ndarray] | None:
    """The attention block around `softmax`: (its last node, the MultiHeadAttention that
    replaces it, the bias of that node), or None if it is not one."""
    from onnx import helper

    axis = next((a.i for a in softmax.attribute if a.name == "axis"), -1)
    masked = g.producer.get(softmax.input[0])
    if axis not in (-1, 3) or masked is None or masked.op_type != "Add":
        return None
    found = _scores(g, masked)
    probabilities = softmax.output[0]
    for reader in g.readers.get(probabilities, []):  # torch's guard: Where(IsNaN(p), 0, p)
        if reader.op_type == "Where" and reader.input[2] == probabilities:
            probabilities = reader.output[0]
    context = next(
        (
            r
            for r in g.readers.get(probabilities, [])
            if r.op_type == "MatMul" and r.input[0] == probabilities
        ),
        None,
    )
    if found is None or context is None:
        return None
    scores, factor = found
    q, k, v = (_projection(g, name) for name in (*scores.input, context.input[1]))
    heads = g.sole_reader(context.output[0], "Transpose")
    last = heads and g.sole_reader(heads.output[0], "Reshape")
    if q is None or k is None or v is None or last is None or v.scale != 1.0:
        return None
    hidden = q.bias.size
    head_size = q.head_size or k.head_size or v.head_size
    if not head_size or hidden % head_size or k.bias.size != hidden or v.bias.size != hidden:
        return None
    name = f"{last.name or last.output[0]}_mha"
    node = helper.make_node(
        "MultiHeadAttention",
        [q.name, k.name, v.name, f"{name}_bias", KEY_PADDING_MASK],
        [last.output[0]],
        domain="com.microsoft",
        name=name,
        num_heads=hidden // head_size,
        scale=q.scale * k.scale * factor,
    )
    return last, node, np.concatenate([q.bias, k.bias, v.bias])


def fuse_attention(model: ModelProto, mask: str = "attention_mask") -> int:
    """Replace each self-attention block of a BERT-style encoder by one com.microsoft
    `MultiHeadAttention` node (the projections' biases folded in, `mask` as the key padding
    mask); returns how many. The nodes only the blocks used (the mask's arithmetic, the head
    reshapes' shape computations) go with them.

    MiniLM-L6 (int8): 30 nodes a layer become one, 483 -> 303 nodes after onnxruntime's own
    optimizations; one 10-token query 10-16% faster, a batch of 8 texts 4-6%, and the vectors
    are bit for bit those of the unfused model.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    if mask not in {i.name for i in graph.input}:
        return 0
    g = _Graph(graph)
    fused: dict[int, NodeProto] = {}  # id of the last node of a block -> its attention node
    softmaxes = [n for n in graph.node if n.op_type == "Softmax" and n.domain in ("", "ai.onnx")]
    for softmax in softmaxes:
        found = _attention(g, softmax)
        if found is not None:
            last, node, bias = found
            fused[id(last)] = node
            graph.initializer.append(numpy_helper.from_array(bias, node.input[3]))
    if not fused:
        return 0
    cast = helper.make_node("Cast", [mask], [KEY_PADDING_MASK], to=TensorProto.INT32)
    _Graph(graph).keep([cast, *(fused.get(id(n), n) for n in graph.node)])
    use_microsoft_ops(model)
    return len(fused)
