"""What every lowering needs, without importing torch or onnx: which graph outputs to
produce (the output, or named taps) and which nodes they depend on."""
from __future__ import annotations

from ..errors import BackendError, close_match
from ..ir.graph import Graph


def outputs_for(graph: Graph, features) -> dict[str, str]:
    """The named outputs to produce: the graph's output, or the requested taps."""
    if features is None:
        return dict(graph.outputs)
    features = [features] if isinstance(features, str) else list(features)
    if not features:
        taps = ", ".join(sorted(graph.taps)) or "none"
        raise BackendError(f"features: name at least one tap (available taps: {taps})")
    for f in features:
        if f not in graph.taps:
            close = close_match(f, graph.taps)
            hint = f"did you mean `{close}`? " if close else ""
            raise BackendError(f"{graph.name} has no tap `{f}` ({hint}available taps: "
                               f"{', '.join(sorted(graph.taps)) or 'none'})")
    return {f: graph.taps[f] for f in features}


def live_nodes(graph: Graph, wanted) -> set[str]:
    """The nodes ``wanted`` and everything they are computed from."""
    live, todo = set(), list(wanted)
    while todo:
        name = todo.pop()
        if name not in live:
            live.add(name)
            todo.extend(graph[name].inputs)
    return live
