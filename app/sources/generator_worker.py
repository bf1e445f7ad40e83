"""A child process that runs an uploaded generator, so the API process never loads it.

TorchScript is executable code (PyTorch's SECURITY.md: "there is no safe mode for jit.load"); it
is accepted only where the server allows code uploads, and even then only ever runs here. ONNX is
a graph with no code in it, accepted everywhere, but onnxruntime parses and allocates what an
untrusted file says: a crash or a memory blow-up takes down this process, not the server. The
process caps its own address space (WORKER_ADDRESS_SPACE) before it loads the file, so such a
blow-up fails an allocation instead of pushing the machine into swap or the OOM killer. The
pipe carries plain .npy frames (no pickle either way): latents in, images out.
"""

from __future__ import annotations

import io
import json
import math
import resource
import struct
import sys
from collections.abc import Callable
from typing import IO

import numpy as np

_HEADER = struct.Struct("<cQ")  # kind (b"A" array, b"E" error), payload length
# Address space (virtual memory) of the worker: importing torch maps ~3.3 GB, a 2 GB upload is
# held about twice while onnxruntime builds its session, and a batch of the parent's (at most
# 256 MB of images) needs the network's activations besides. Not set where onnxruntime runs on
# CUDA, whose driver reserves far more address space than it uses.
WORKER_ADDRESS_SPACE = 16 * 2**30


class FrameTooLarge(ValueError):
    """A frame declared more bytes than its reader accepts; they were left unread."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a frame of {size:,} bytes, more than {limit:,}")
        self.size = size


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
        raise FrameTooLarge(length, limit)
    payload = stream.read(length)
    if len(payload) < length:
        raise EOFError("the generator process closed its pipe")
    return kind, payload


def array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def bytes_array(payload: bytes) -> np.ndarray:
    """The array of an array_bytes frame, whose header must declare exactly the bytes that follow
    it (np.load would allocate what a header declares before reading)."""
    stream = io.BytesIO(payload)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ValueError(f"not an array frame: {exc}") from exc
    if dtype.hasobject:
        raise ValueError("object arrays are not accepted")
    if len(payload) - stream.tell() != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"an array frame of shape {shape} holds {len(payload)} bytes")
    array = np.frombuffer(payload, dtype, offset=stream.tell())
    return array.reshape(shape, order="F" if fortran else "C")


KINDS = ("torchscript", "onnx")


def limit_address_space(limit: int = WORKER_ADDRESS_SPACE) -> None:
    """Cap this process's address space (soft and hard: the loaded file cannot raise it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _torchscript_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    limit_address_space()  # torch is mapped; the code in the file is not loaded yet
    try:
        module = torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:
        raise ValueError(f"cannot load TorchScript: {exc}") from exc

    def run(latents: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            result = module(torch.from_numpy(latents.copy()))  # the frame's bytes are read-only
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
    if "CUDAExecutionProvider" not in providers:
        limit_address_space()
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
