"""Commands that live in their own modules and are imported only when run (so that
`archspec cost` does not pay for torch, onnx or matplotlib).

LAZY maps a command name to "module:function" (a click command). Add one line per
command; `archspec --help` lists them with their help text.
"""
LAZY: dict[str, str] = {
    "train": "archspec.commands.train:train",
    "eval": "archspec.commands.train:evaluate",
    "sweep": "archspec.commands.sweep:sweep",
    "plot": "archspec.commands.sweep:plot",
    "memory": "archspec.commands.memory:memory",
    "bench": "archspec.commands.bench:bench",
    "calibrate": "archspec.commands.latency:calibrate",
    "latency": "archspec.commands.latency:latency",
}
