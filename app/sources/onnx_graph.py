"""Checks on an uploaded ONNX generator that need no runtime: read the protobuf, never run it.

ONNX is how users bring an architecture of their own without code (DESIGN.md). The file is parsed
with the onnx package (a protobuf: no code runs) and refused before any runtime sees it when it
points outside itself (external data files are read from paths the file names) or does not
look like a generator: one float input (B, latent_dim), at least one output. The parse itself
runs in a child process (`inspect_onnx_isolated`): a protobuf parser fed hostile bytes may crash
or recurse deeply (protobuf's own advisories), and a model of a few hundred MB is held whole while
it is read; neither belongs in the API process. The graph is then run only in the generator
worker process (generator_worker), which probes its output shape.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["inspect_onnx", "inspect_onnx_isolated"]

MAX_INPUTS = 1
INSPECT_TIMEOUT_S = 120.0


def inspect_onnx_isolated(
    path: Path, latent_dim: int | None, timeout: float = INSPECT_TIMEOUT_S
) -> int:
    """`inspect_onnx` in a child process: its answer, or its error as a ValueError."""
    command = [sys.executable, "-m", "app.sources.onnx_graph", str(path), json.dumps(latent_dim)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"reading the ONNX file took longer than {timeout:g} s") from exc
    try:
        answer = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (IndexError, ValueError, UnicodeDecodeError):
        raise ValueError(
            f"not an ONNX model: reading it stopped its reader (exit status {done.returncode})"
        ) from None
    if not isinstance(answer, dict):
        raise ValueError(f"not an ONNX model: its reader answered {answer!r}")
    if "error" in answer:
        raise ValueError(str(answer["error"]))
    return int(answer["latent_dim"])


def inspect_onnx(path: Path, latent_dim: int | None) -> int:
    """The generator's latent size: the input's static second dimension, which a given
    latent_dim must match, or latent_dim where the graph leaves it open."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as exc:
        raise ValueError(f"not an ONNX model: {exc}") from exc
    graph = model.graph
    if not graph.node or not graph.output:
        raise ValueError("not an ONNX model: the graph has no nodes or no output")
    stored_outside = [
        t.name
        for t in graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL or t.external_data
    ]
    if stored_outside:
        raise ValueError(
            "tensors stored in external data files are not accepted "
            f"({', '.join(stored_outside[:3])}): save the model as one file"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ValueError(f"the ONNX graph is invalid: {exc}") from exc
    fed = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in fed]
    if len(inputs) != MAX_INPUTS:
        raise ValueError(f"a generator takes one input, the latent z; this graph has {len(inputs)}")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError("the generator's input must be float32 latents")
    dims = tensor.shape.dim
    if len(dims) != 2:
        raise ValueError(f"the generator's input must be (batch, latent_dim), not rank {len(dims)}")
    declared = dims[1].dim_value if dims[1].HasField("dim_value") else None
    if declared is not None and latent_dim is not None and declared != latent_dim:
        raise ValueError(f"the graph's latent size is {declared}, not latent_dim={latent_dim}")
    latent = declared if declared is not None else latent_dim
    if latent is None:
        raise ValueError("the graph leaves the latent size open: give latent_dim")
    if latent < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent}")
    return int(latent)


def _main(arguments: list[str]) -> None:
    path, latent_dim = Path(arguments[0]), json.loads(arguments[1])
    try:
        answer: dict[str, object] = {"latent_dim": inspect_onnx(path, latent_dim)}
    except ValueError as exc:
        answer = {"error": str(exc)}
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
