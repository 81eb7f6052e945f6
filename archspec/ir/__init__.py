"""Graph IR: primitive ops (:mod:`.ops`) and the graph facade (:mod:`.graph`)."""
from .graph import Graph, Node
from .ops import OPS, Shape, ShapeError

__all__ = ["Graph", "Node", "OPS", "Shape", "ShapeError"]
