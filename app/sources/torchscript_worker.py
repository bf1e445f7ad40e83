"""A child process that runs an untrusted TorchScript generator, so the API process never loads it.

TorchScript is executable code (PyTorch's SECURITY.md: "there is no safe mode for jit.load"); it
is accepted only where the server allows code uploads, and even then only ever runs here. The pipe
carries plain .npy frames (no pickle either way): latents in, images out.
"""

from __future__ import annotations

import io
import json
import struct
import sys
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


def serve(path: str) -> None:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    try:
        module = torch.jit.load(path, map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a message
        write_frame(out, b"E", json.dumps({"error": f"cannot load TorchScript: {exc}"}).encode())
        return
    while True:
        try:
            _, payload = read_frame(inp)
        except EOFError:
            return
        try:
            with torch.no_grad():
                result = module(torch.from_numpy(bytes_array(payload)))
            if not isinstance(result, torch.Tensor):
                raise ValueError("the module must return one tensor")
            write_frame(out, b"A", array_bytes(result.detach().float().cpu().numpy()))
        except Exception as exc:  # noqa: BLE001 - reported to the parent as a message
            write_frame(out, b"E", json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())


if __name__ == "__main__":
    serve(sys.argv[1])
