"""A child process that runs an uploaded generator, so the API process never loads it.

TorchScript is executable code (PyTorch's SECURITY.md: "there is no safe mode for jit.load"); it
is accepted only where the server allows code uploads, and even then only ever runs here. ONNX is
a graph with no code in it, accepted everywhere, but onnxruntime parses and allocates what an
untrusted file says: a crash or a memory blow-up takes down this process, not the server. The
pipe carries plain .npy frames (no pickle either way): latents in, images out.
"""

from __future__ import annotations

import io
import json
import struct
import sys
from collections.abc import Callable
from typing import IO

import numpy as np

_HEADER = struct.Struct("<cQ")  # kind (b"A" array, b"E" error), payload length


def write_frame(stream: IO[bytes], kind: bytes, payload: bytes) -> None:
    stream.write(_HEADER.pack(kind, len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes], limit: int = 1 << 31) -> tuple[bytes, bytes]:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the generator process closed its pipe")
    kind, length = _HEADER.unpack(header)
    if length > limit:
        raise ValueError("frame too large")
    payload = stream.read(length)
    if len(payload) < length:
        raise EOFError("the generator process closed its pipe")
    return kind, payload


def array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def bytes_array(payload: bytes) -> np.ndarray:
    return np.load(io.BytesIO(payload), allow_pickle=False)


KINDS = ("torchscript", "onnx")


def _torchscript_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        module = torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:
        raise ValueError(f"cannot load TorchScript: {exc}") from exc

    def run(latents: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            result = module(torch.from_numpy(latents))
        if not isinstance(result, torch.Tensor):
            raise ValueError("the module must return one tensor")
        return np.asarray(result.detach().float().cpu().numpy())

    return run


def _onnx_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the parent reads frames, not logs
    # CUDA where onnxruntime-gpu is installed in place of the CPU build; the CPU otherwise.
    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    try:
        with open(path, "rb") as handle:  # from bytes: no external data next to the upload
            session = ort.InferenceSession(handle.read(), options, providers=providers)
    except Exception as exc:
        raise ValueError(f"cannot load the ONNX graph: {exc}") from exc
    name = session.get_inputs()[0].name

    def run(latents: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: latents})[0], dtype=np.float32)

    return run


def serve(path: str, kind: str) -> None:
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    try:
        run = _onnx_runner(path) if kind == "onnx" else _torchscript_runner(path)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a message
        write_frame(out, b"E", json.dumps({"error": str(exc)}).encode())
        return
    while True:
        try:
            _, payload = read_frame(inp)
        except EOFError:
            return
        try:
            write_frame(out, b"A", array_bytes(run(bytes_array(payload))))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as a message
            write_frame(out, b"E", json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in KINDS:
        sys.exit(f"usage: python -m app.sources.generator_worker PATH {{{','.join(KINDS)}}}")
    serve(sys.argv[1], sys.argv[2])
