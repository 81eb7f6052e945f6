"""Blocks: named lowerings from a table row to IR ops, each with its declared fields.

Every module of this package is a block module, found when a block is first asked for
(no hand imports); third-party packages add blocks through the ``archspec.blocks``
entry-point group (see :mod:`archspec.blocks.registry`)."""
from .builder import BlockBuilder
from .fields import REQUIRED, Field, Nonlinearity
from .registry import BLOCKS, BlockDef

__all__ = ["BLOCKS", "REQUIRED", "BlockDef", "BlockBuilder", "Field", "Nonlinearity"]
