"""Blocks: named lowerings from a table row to IR ops. Importing this package registers
the built-in blocks."""
from . import core  # noqa: F401  (registers the built-in blocks)
from . import mobilenext, paper  # noqa: F401  (the blocks of the other papers)
from .builder import BlockBuilder
from .registry import BLOCKS, REQUIRED, BlockDef

__all__ = ["BLOCKS", "REQUIRED", "BlockDef", "BlockBuilder"]
