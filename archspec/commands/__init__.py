"""Commands that live in their own modules and are imported only when run (so that
`archspec cost` does not pay for torch, onnx or matplotlib).

LAZY maps a command name to "module:app", the module's typer app that defines a command
of that name. Add one line per command; `archspec --help` lists them in their panels.
"""
LAZY: dict[str, str] = {
    "sweep": "archspec.commands.sweep:app",
    "plot": "archspec.commands.sweep:app",
    "memory": "archspec.commands.memory:app",
    "bench": "archspec.commands.bench:app",
    "calibrate": "archspec.commands.latency:app",
    "latency": "archspec.commands.latency:app",
    "train": "archspec.commands.train:app",
    "eval": "archspec.commands.train:app",
}
