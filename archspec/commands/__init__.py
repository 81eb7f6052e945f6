"""Where each `archspec` command lives. Commands are imported and built only when run
(so that `archspec cost` does not pay for torch, onnx or matplotlib, nor for the other
commands).

LAZY maps a command name to the module whose ``COMMANDS`` (archspec.cli_common.Commands)
define it, in the order `archspec --help` lists them (within their panels). Add one line
per command.
"""
LAZY: dict[str, str] = {
    "cost": "archspec.cli",
    "memory": "archspec.commands.memory",
    "validate": "archspec.cli",
    "graph": "archspec.cli",
    "specs": "archspec.cli",
    "blocks": "archspec.cli",
    "schema": "archspec.cli",
    "reproduce": "archspec.cli",
    "diff": "archspec.cli",
    "sweep": "archspec.commands.sweep",
    "plot": "archspec.commands.sweep",
    "search": "archspec.commands.search",
    "adapt": "archspec.commands.adapt",
    "rank": "archspec.commands.rank",
    "build": "archspec.cli",
    "bench": "archspec.commands.bench",
    "calibrate": "archspec.commands.latency",
    "latency": "archspec.commands.latency",
    "profiles": "archspec.commands.latency",
    "train": "archspec.commands.train",
    "eval": "archspec.commands.train",
}
