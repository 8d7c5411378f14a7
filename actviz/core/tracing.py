"""Re-trace a model layer by layer, stepping into nested models and into layers that hold a stack
of blocks (a transformer's encoder), so that every layer's output lives in one graph with the
model's predictions.

The naive ``keras.Model(model.inputs, inner_layer.output)`` fails for nested
bases (a VGG16 used as one layer) and for Sequential models loaded from a file.
Calling each layer again on a fresh symbolic input gives one graph in which
any set of layer outputs, the predictions and their gradients come from one
forward pass.

A transformer's tokens (N, T, D) are given an image-like view: the patch tokens as an
(N, h, w, D) grid, the class token (and any other leading token) kept apart. The grid is put on
the path to the answer (tokens -> grid -> tokens again), so gradients, feature maps and every
view work at it as at a convolution's map. Each attention layer's probabilities are kept too
(for attention rollout).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .. import keras_compat
from ..errors import NothingToShowError
from .layers import LayerInfo

#: Most tokens before the patches (a class token, a distillation token, register tokens).
MAX_LEADING_TOKENS = 8
#: Operations that read some tokens and drop the rest (``x[:, 0]``: the class token): past them, a
#: patch's value no longer reaches the answer.
_PICKING = frozenset({"GetItem", "Slice", "Take", "TakeAlongAxis"})
#: The attention layer whose probabilities are kept, by class name.
_ATTENTION = "MultiHeadAttention"


@dataclass(frozen=True)
class TokenGrid:
    """How a transformer's tokens (N, T, D) are laid out: ``leading`` tokens (the class token, ...)
    then ``height`` x ``width`` patch tokens, row by row."""

    leading: int
    height: int
    width: int

    @property
    def tokens(self) -> int:
        return self.leading + self.height * self.width


@dataclass
class Trace:
    """A model re-traced on a fresh input.

    ``rows``: the layer table, in call order; ``tensors``: name -> the symbolic
    output of that layer (None for a container row; for a transformer's tokens,
    their patch grid); ``layers``: name -> the Keras layer object; ``producers``:
    id(output tensor) -> (layer, its call arguments), to find what made the
    model's output (see ``logits``); ``attention``: name of each attention layer
    -> its probabilities (N, heads, T, T), in call order; ``grid``: the layout
    of the tokens (None for a model without them).
    """

    inputs: Any
    outputs: list
    rows: list[LayerInfo] = field(default_factory=list)
    tensors: dict[str, Any] = field(default_factory=dict)
    layers: dict[str, Any] = field(default_factory=dict)
    producers: dict[int, tuple[Any, tuple]] = field(default_factory=dict)
    attention: dict[str, Any] = field(default_factory=dict)
    grid: TokenGrid | None = None


def trace(model: Any) -> Trace:
    """Call every layer of ``model`` again on a fresh ``keras.Input``; record each output."""
    import keras

    shape = input_shape(model)
    tracer = _Tracer(keras.Input(shape=shape, name="actviz_input"))
    outputs = tracer.call(model, tracer.result.inputs, prefix="", depth=-1)
    tracer.result.outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    tracer.mark_paths()
    return tracer.result


class _Tracer:
    def __init__(self, inputs: Any):
        self.result = Trace(inputs=inputs, outputs=[])
        self._taken: set[str] = set()
        self._blocks: set[int] = set()  # ids of the blocks of a stack: stepped into too
        self._grids: dict[int, Any] = {}  # id(tokens as passed on) -> their patch grid
        self._rows_of: dict[int, list[int]] = {}  # id(tensor as passed on) -> indices of the rows it is the output of
        self._queries: list[Any] = []  # the query of each attention layer, in call order
        self._names: set[str] = set()  # names of the operations in the traced graph (Keras needs them unique)

    def call(self, layer: Any, inputs: Any, *, prefix: str, depth: int) -> Any:
        """Call ``layer`` on symbolic ``inputs``, stepping into nested models; record outputs."""
        import keras

        if isinstance(layer, keras.Sequential):
            self._container(layer, prefix, depth)
            inner = prefix + layer.name + "/" if depth >= 0 else prefix
            x = inputs
            for sub in layer.layers:
                x = self.call(sub, x, prefix=inner, depth=depth + 1)
            return x
        if isinstance(layer, keras.Model) and keras_compat.runs_a_graph(layer):
            self._container(layer, prefix, depth)
            inner = prefix + layer.name + "/" if depth >= 0 else prefix

            def operation_fn(operation):
                return lambda *args, **kwargs: self._call_node(operation, args, kwargs, inner, depth + 1)

            flat = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            return keras_compat.run_through_graph(layer, flat, operation_fn)
        if isinstance(layer, keras.layers.InputLayer):
            return inputs
        return self._call_node(layer, (inputs,), {}, prefix, depth)

    def _call_node(self, operation: Any, args: tuple, kwargs: dict, prefix: str, depth: int, *, unrolled: bool = False) -> Any:
        """One node of a graph: a layer, a nested model, a stack of blocks, or a plain keras.ops operation."""
        import keras

        if isinstance(operation, keras.Model):
            return self.call(operation, args[0] if len(args) == 1 else list(args), prefix=prefix, depth=depth)
        kwargs = {key: value for key, value in kwargs.items() if key != "training"}
        blocks = _blocks(operation)
        if blocks or id(operation) in self._blocks:
            self._blocks.update(id(block) for block in blocks)
            stepped = self._step_into(operation, args, kwargs, prefix, depth)
            if stepped is not None:
                return stepped
        name = operation.name if isinstance(operation, keras.layers.Layer) or not unrolled else _snake(type(operation).__name__)
        if type(operation).__name__ == _ATTENTION:
            return self._attention(operation, args, kwargs, prefix + name, depth)
        outputs = self._callable(operation)(*args, **kwargs)
        return self._record(operation, outputs, args, prefix + name, depth)

    def _callable(self, operation: Any, *, wrapped: bool = False) -> Any:
        """The operation itself, or, when its name is already in the traced graph (two blocks each
        have a layer called "dropout") or ``wrapped`` is asked for, the operation under a name of its own."""
        if operation.name not in self._names and not wrapped:
            self._names.add(operation.name)
            return operation
        count = 2
        while f"{operation.name}_{count}" in self._names:
            count += 1
        self._names.add(f"{operation.name}_{count}")
        return _renamed_class()(operation, name=f"{operation.name}_{count}")

    def _step_into(self, layer: Any, args: tuple, kwargs: dict, prefix: str, depth: int) -> Any:
        """Trace what ``layer.call`` does with its sublayers and operations, each one a row, then the
        layer's own row for its output; None (nothing recorded) when its call cannot be followed
        symbolically, and the layer is then traced as one step."""
        import keras

        given = list({id(t): t for t in _tensors((args, kwargs))}.values())  # a tensor given twice is one input
        fresh = {id(t): keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in given}

        def swap(value: Any) -> Any:
            return fresh.get(id(value), value)

        try:
            outputs = layer.call(*keras.tree.map_structure(swap, args), **keras.tree.map_structure(swap, kwargs))
            flat = keras.tree.flatten(outputs)
            graph = keras.Model([fresh[id(t)] for t in given], [t for t in flat if isinstance(t, keras.KerasTensor)])
        except Exception:  # noqa: BLE001 -- Keras raises many types for a call it cannot follow symbolically
            return None
        inner = prefix + layer.name + "/"
        traced = iter(keras_compat.run_through_graph(graph, given, lambda operation: (
            lambda *a, **k: self._call_node(operation, a, k, inner, depth + 1, unrolled=True))))
        rebuilt = keras.tree.pack_sequence_as(outputs, [next(traced) if isinstance(t, keras.KerasTensor) else t for t in flat])
        first = next(t for t in keras.tree.flatten(rebuilt) if isinstance(t, keras.KerasTensor))
        self._record(layer, first, args, prefix + layer.name, depth)
        return rebuilt

    def _attention(self, layer: Any, args: tuple, kwargs: dict, name: str, depth: int) -> Any:
        """An attention layer, called so that it also returns its probabilities (kept in the trace)."""
        wanted = bool(kwargs.get("return_attention_scores"))
        try:
            # wrapped: a MultiHeadAttention already called without its probabilities (Keras 3.15) gives
            # probabilities that a keras.Model cannot reach from its input
            output, scores = self._callable(layer, wrapped=True)(*args, **{**kwargs, "return_attention_scores": True})
        except ValueError:  # flash attention gives no probabilities: the layer is traced as it is
            return self._record(layer, self._callable(layer)(*args, **kwargs), args, name, depth)
        passed = self._record(layer, output, args, name, depth)
        self.result.attention[self.result.rows[-1].name] = scores
        self._queries.append(args[0])
        return (passed, scores) if wanted else passed

    def _record(self, layer: Any, outputs: Any, args: tuple, name: str, depth: int) -> Any:
        """Add the row of ``layer``'s output; returns the output to pass on (for tokens: rebuilt from their grid)."""
        import keras

        tensor, passed = outputs, outputs
        if _is_tokens(outputs) and self.result.grid is None:
            self.result.grid = _token_grid(layer, args, outputs)
        grid = self.result.grid
        if grid is not None and _is_tokens(outputs) and outputs.shape[1] == grid.tokens:
            tensor, passed = self._as_grid(outputs, grid)
        shape = tuple(tensor.shape[1:]) if hasattr(tensor, "shape") else ()
        info = LayerInfo(
            index=len(self.result.rows), name=self._unique(name), type=type(layer).__name__,
            output_shape=shape, params=_params(layer), spatial=hasattr(tensor, "shape") and len(tensor.shape) == 4,
            depth=max(depth, 0), tokens=grid.leading if tensor is not outputs else None,
            block=id(layer) in self._blocks or (tensor is not outputs and any(len(a.shape) == 4 for a in _tensors(args))),
        )
        self._add(info, tensor, layer)
        for out in [passed, *(t for t in keras.tree.flatten(outputs) if isinstance(t, keras.KerasTensor))]:
            # a stack's row comes after its blocks' rows: the walk back goes through the blocks
            self.result.producers.setdefault(id(out), (layer, args))
        self._rows_of.setdefault(id(passed), []).append(info.index)
        return passed

    def _as_grid(self, tokens: Any, grid: TokenGrid) -> tuple[Any, Any]:
        """(patch grid (N, h, w, D), tokens rebuilt from it (N, T, D)): the grid lies on the path to the answer."""
        import keras

        if id(tokens) in self._grids:  # a stack's output is its last block's: one grid for both rows
            return self._grids[id(tokens)], tokens
        depth = tokens.shape[-1]
        patches = tokens[:, grid.leading:, :] if grid.leading else tokens
        image = keras.ops.reshape(patches, (-1, grid.height, grid.width, depth))
        back = keras.ops.reshape(image, (-1, grid.height * grid.width, depth))
        rebuilt = keras.ops.concatenate([tokens[:, : grid.leading, :], back], axis=1) if grid.leading else back
        self._grids[id(rebuilt)] = image
        return image, rebuilt

    def _container(self, model: Any, prefix: str, depth: int) -> None:
        if depth < 0:
            return
        info = LayerInfo(
            index=len(self.result.rows), name=self._unique(prefix + model.name), type=type(model).__name__,
            output_shape=(), params=int(model.count_params()), spatial=False, depth=depth, container=True,
        )
        self._add(info, None, model)

    def _add(self, info: LayerInfo, outputs: Any, layer: Any) -> None:
        self.result.rows.append(info)
        self.result.tensors[info.name] = outputs
        self.result.layers[info.name] = layer

    def _unique(self, name: str) -> str:
        """The name, or ``name#2``, ``name#3`` ... when a layer is called more than once."""
        unique, count = name, 2
        while unique in self._taken:
            unique, count = f"{name}#{count}", count + 1
        self._taken.add(unique)
        return unique

    # --- which maps lead to the answer, and what reads the last of them ----------------

    def mark_paths(self) -> None:
        """Mark each row whose output reaches the first output, and the rows a class activation map
        defaults to: the map a global pooling (or flattening, or picking tokens) reads, and the
        query of the last attention layer."""
        reached: set[int] = set()
        readers: dict[int, str] = {}
        stack = [(self.result.outputs[0], False)]  # (tensor, whether a map was passed on the way back)
        seen: set[tuple[int, bool]] = set()
        while stack:
            tensor, past = stack.pop()
            if (id(tensor), past) in seen:
                continue
            seen.add((id(tensor), past))
            reached.add(id(tensor))
            layer, args = self.result.producers.get(id(tensor), (None, ()))
            here = self._is_map(tensor)
            for arg in _tensors(args):
                if not past and not here and self._is_map(arg):
                    readers.setdefault(id(arg), type(layer).__name__)
                stack.append((arg, past or here or self._is_map(arg)))
        if self._queries:
            readers.setdefault(id(self._queries[-1]), _ATTENTION)
        self._apply_marks(reached, readers)

    def _is_map(self, tensor: Any) -> bool:
        return len(tensor.shape) == 4 or id(tensor) in self._grids

    def _apply_marks(self, reached: set[int], readers: dict[int, str]) -> None:
        """Write the marks on the rows; a token's patches after the last attention's query reach the
        answer only if what reads the last tokens does not just pick some of them (``x[:, 0]``)."""
        marks: dict[int, dict] = {}
        for key, indices in self._rows_of.items():
            for index in indices:
                marks[index] = {"leads_to_output": key in reached, "read_by": readers.get(key, "")}
        last_query = max(self._rows_of.get(id(self._queries[-1]), [-1])) if self._queries else -1
        picked = any(reader in _PICKING for reader in readers.values())
        rows = self.result.rows
        for index, mark in marks.items():
            if rows[index].tokens is not None and picked and index > last_query:
                mark["leads_to_output"] = False
            rows[index] = dataclasses.replace(rows[index], **mark)


@functools.cache
def _renamed_class() -> type:
    """A layer that calls another layer (or operation) under a name of its own, its inputs untouched."""
    import keras

    class Renamed(keras.layers.Layer):
        def __init__(self, operation: Any, **kwargs: Any):
            super().__init__(dtype=getattr(operation, "dtype_policy", None), autocast=False, **kwargs)
            self.operation = operation

        def call(self, *args: Any, **kwargs: Any) -> Any:
            return self.operation(*args, **kwargs)

    return Renamed


def _blocks(layer: Any) -> list:
    """The blocks a layer holds (a transformer's encoder): its first list attribute of two or more
    layers of one class; [] for a model or any other layer."""
    import keras

    if isinstance(layer, keras.Model) or not isinstance(layer, keras.layers.Layer):
        return []
    for value in vars(layer).values():
        if isinstance(value, (list, tuple)) and len(value) >= 2 and all(isinstance(v, keras.layers.Layer) for v in value):
            if len({type(v) for v in value}) == 1:
                return list(value)
    return []


def _tensors(args: Any) -> list:
    import keras

    return [t for t in keras.tree.flatten(args) if isinstance(t, keras.KerasTensor)]


def _is_tokens(tensor: Any) -> bool:
    return hasattr(tensor, "shape") and len(tensor.shape) == 3 and None not in tuple(tensor.shape[1:])


def _token_grid(layer: Any, args: tuple, tokens: Any) -> TokenGrid | None:
    """The layout of the tokens a layer makes from an image (its input (N, H, W, C)): ``patch_size``
    from its configuration if it has one, else the grid of the image's proportions that leaves at
    most ``MAX_LEADING_TOKENS`` tokens before the patches; None if neither fits."""
    images = [a for a in _tensors(args) if len(a.shape) == 4 and None not in tuple(a.shape[1:3])]
    if not images:
        return None
    height, width = int(images[0].shape[1]), int(images[0].shape[2])
    count = int(tokens.shape[1])
    patch = (layer.get_config() if hasattr(layer, "get_config") else {}).get("patch_size")
    if patch:
        size = (patch, patch) if isinstance(patch, int) else tuple(patch)
        rows, cols = height // int(size[0]), width // int(size[1])
        leading = count - rows * cols
        return TokenGrid(leading, rows, cols) if 0 <= leading <= MAX_LEADING_TOKENS and rows * cols > 0 else None
    for leading in range(MAX_LEADING_TOKENS + 1):
        patches = count - leading
        rows = math.isqrt(patches * height // width) if patches > 0 else 0
        for r in (rows, rows + 1):
            if r > 0 and patches % r == 0 and r * width == (patches // r) * height:
                return TokenGrid(leading, r, patches // r)
    return None


def _snake(name: str) -> str:
    """A class name as a row name: ``GetItem`` -> ``get_item``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _params(layer: Any) -> int:
    """Weights of a layer; 0 for an unbuilt layer or a plain operation (keras.ops in a functional graph)."""
    if not getattr(layer, "built", False) or not hasattr(layer, "count_params"):
        return 0
    return int(layer.count_params())


def input_shape(model: Any) -> tuple:
    """The model's single image input as (H, W, C) without the batch axis (None: any size)."""
    import keras

    try:
        shapes = [tuple(x.shape) for x in model.inputs]
    except (AttributeError, ValueError, TypeError):
        shapes = []
        first = next((layer for layer in keras_compat.all_layers(model) if isinstance(layer, keras.layers.InputLayer)), None)
        if first is not None:
            shapes = [tuple(first.batch_shape)]
        elif model.layers and (built := _built_shape(model.layers[0])):
            shapes = [built]
    if not shapes:
        raise NothingToShowError("This model was never given an input shape, so actviz cannot tell what images it takes.")
    if len(shapes) > 1:
        raise NothingToShowError(f"This model takes {len(shapes)} inputs; actviz shows models that take a single image.")
    shape = shapes[0][1:]
    if len(shape) != 3:
        raise NothingToShowError(
            f"This model's input has shape {shape}; actviz needs an image input of height x width x channels."
        )
    return tuple(None if dim is None else int(dim) for dim in shape)


def _built_shape(layer: Any) -> tuple | None:
    """The input shape ``layer`` was built for (its first, if it took several), from its public build config."""
    config = layer.get_build_config() or {}
    shape = config.get("input_shape", next(iter((config.get("shapes_dict") or {}).values()), None))
    return tuple(shape) if shape else None
