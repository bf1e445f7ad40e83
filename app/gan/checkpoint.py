"""Saving and loading generator weights for a built-in architecture, treating every file as hostile.

Two formats (DESIGN.md, "Generators: conventions and formats"):
- safetensors: the header is read and checked by hand before the library sees the file, because
  a huge header is a known denial of service; the architecture and options travel in its metadata.
- a state_dict `.pt`: only ever `torch.load(weights_only=True)`, whose restricted unpickler refuses
  anything but tensors and plain containers, so no code in the file runs.
Both check every tensor's name, shape and dtype against the architecture before loading, and
count the architecture's parameters on the meta device before building it: the options come from
the uploader, and a few bytes of metadata can ask for a network of hundreds of GiB.
A trained discriminator is saved the same way, tagged as one, so that its features can embed an
audit's pool (app.embed.discriminator) and a generator file is never taken for it.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from app.gan.registry import (
    GeneratorSpec,
    build_discriminator,
    build_generator,
    canonical_options,
    generator_spec,
)
from app.gan.run_size import check_network_size, meta_network, network_size
from app.gan.zip_directory import check_zip_directory

MAX_HEADER_BYTES = 16 * 1024 * 1024  # safetensors header (JSON) size we accept
MAX_TENSORS = 10_000  # tensors per file; built-in generators have well under 100
METADATA_ARCHITECTURE = "birthday.architecture"
METADATA_OPTIONS = "birthday.options"
METADATA_NETWORK = "birthday.network"  # "discriminator"; generator files predate the tag
# A state_dict `.pt` is a zip of one pickle and a record per storage, plus a few small records.
MAX_STATE_DICT_RECORDS = MAX_TENSORS + 16
# What a `.pt` may hold past its architecture's weights: the pickle (~200 bytes a tensor) and small
# records. Twice the weights leaves room for a tensor saved as a view of a larger storage.
STATE_DICT_SLACK_BYTES = 4 * 2**20

# safetensors dtype names (the format's spec) of the torch dtypes our modules hold
_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}

StrPath = str | os.PathLike[str]


def save_generator(
    path: StrPath, module: nn.Module, architecture: str, options: Mapping[str, Any] | None
) -> None:
    """Write `module`'s weights as safetensors, with the architecture and full options as metadata.

    Refuses a module whose weights do not match the architecture, so every saved file loads.
    """
    reference, _ = build_generator(architecture, options)
    _save_module(path, module, reference, architecture, options, {})


def save_discriminator(
    path: StrPath, module: nn.Module, architecture: str, options: Mapping[str, Any] | None
) -> None:
    """save_generator for the discriminator of a built-in architecture, tagged as one."""
    reference = build_discriminator(architecture, options)
    _save_module(
        path, module, reference, architecture, options, {METADATA_NETWORK: "discriminator"}
    )


def load_discriminator_safetensors(path: StrPath) -> tuple[nn.Module, str, dict[str, Any]]:
    """Discriminator (eval mode), its architecture and options, from a save_discriminator file."""
    header, metadata = read_safetensors_header(path)
    if metadata.get(METADATA_NETWORK) != "discriminator":
        raise ValueError(
            "not a discriminator file: its metadata lacks 'birthday.network' = 'discriminator' "
            "(training runs save one as trained/run_<id>.discriminator.safetensors)"
        )
    architecture = metadata.get(METADATA_ARCHITECTURE)
    if architecture is None:
        raise ValueError("the file does not name its architecture ('birthday.architecture')")
    options = _options_from_metadata(metadata.get(METADATA_OPTIONS, "{}"))
    module = _build_checked(lambda: build_discriminator(architecture, options), path, header)
    _load_into(module, path)
    return module.eval(), architecture, canonical_options(architecture, options)


def _build_checked(
    build: Callable[[], nn.Module], path: StrPath, header: Mapping[str, Any]
) -> nn.Module:
    """`build()`, once the network it makes is known (from a meta-device build) to be within the
    parameter bound and to be exactly what the safetensors header holds."""
    shapes = meta_network(build)
    check_network_size(network_size(shapes))
    found = {name: (tuple(entry["shape"]), entry["dtype"]) for name, entry in header.items()}
    _check_entries(found, _expected(shapes), "file")
    return build()


def _load_into(module: nn.Module, path: StrPath) -> None:
    """Load the file's tensors into `module`, whose entries the header is known to match."""
    try:
        tensors = load_file(os.fspath(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ValueError(f"not a valid safetensors file: {exc}") from exc
    module.load_state_dict(tensors, strict=True)


def _save_module(
    path: StrPath,
    module: nn.Module,
    reference: nn.Module,
    architecture: str,
    options: Mapping[str, Any] | None,
    tags: Mapping[str, str],
) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    _check_entries(
        {k: (tuple(v.shape), _dtype_name(v.dtype)) for k, v in state.items()},
        _expected(reference),
        "module",
    )
    metadata = {
        METADATA_ARCHITECTURE: architecture,
        METADATA_OPTIONS: json.dumps(canonical_options(architecture, options), sort_keys=True),
        **tags,
    }
    save_file(state, os.fspath(path), metadata=metadata)


def load_generator_safetensors(
    path: StrPath, architecture: str | None = None, options: Mapping[str, Any] | None = None
) -> tuple[nn.Module, GeneratorSpec]:
    """Generator (eval mode) and spec from a safetensors file.

    `architecture` and `options` default to those in the file's metadata; give both for a file
    written by another tool.
    """
    header, metadata = read_safetensors_header(path)
    if architecture is None:
        architecture = metadata.get(METADATA_ARCHITECTURE)
        if architecture is None:
            raise ValueError(
                "the file does not name its architecture (no 'birthday.architecture' metadata); "
                "give the architecture and its options"
            )
    if options is None and METADATA_OPTIONS in metadata:
        options = _options_from_metadata(metadata[METADATA_OPTIONS])
    spec = generator_spec(architecture, options)
    module = _build_checked(lambda: build_generator(architecture, options)[0], path, header)
    _load_into(module, path)
    return module.eval(), spec


def load_generator_state_dict(
    path: StrPath, architecture: str, options: Mapping[str, Any] | None
) -> tuple[nn.Module, GeneratorSpec]:
    """Generator (eval mode) and spec from a plain state_dict `.pt`, never unpickling objects.

    The file is checked as a zip first: torch.load inflates a compressed record whole in memory
    (510 KB can hold a 512 MB tensor of zeros), and torch.save never compresses, so a compressed
    record, or more bytes than the architecture's weights, is refused before torch.load runs.
    """
    spec = generator_spec(architecture, options)
    shapes = meta_network(lambda: build_generator(architecture, options)[0])
    size = network_size(shapes)
    check_network_size(size)
    check_state_dict_zip(path, size.state_bytes)
    try:
        state = torch.load(os.fspath(path), weights_only=True, map_location="cpu")
    except Exception as exc:  # any failure to parse untrusted bytes is the user's bad input
        raise ValueError(
            f"not a plain state_dict of tensors (loaded with torch.load(weights_only=True)): {exc}"
        ) from exc
    if not isinstance(state, Mapping):
        raise ValueError(f"expected a state_dict (a dict of tensors), got {type(state).__name__}")
    if len(state) > MAX_TENSORS:
        raise ValueError(f"the file holds {len(state)} entries; at most {MAX_TENSORS} allowed")
    bad = sorted(str(k) for k, v in state.items() if not isinstance(k, str) or not _is_tensor(v))
    if bad:
        raise ValueError(f"state_dict entries that are not named tensors: {_some(bad)}")
    found = {k: (tuple(v.shape), _dtype_name(v.dtype)) for k, v in state.items()}
    _check_entries(found, _expected(shapes), "file")
    module, _ = build_generator(architecture, options)
    module.load_state_dict(dict(state), strict=True)
    return module.eval(), spec


def check_state_dict_zip(path: StrPath, weight_bytes: int) -> None:
    """A ValueError unless `path` is a zip as torch.save writes it: few records, none compressed,
    holding not far more than `weight_bytes` (the architecture's state_dict)."""
    if not zipfile.is_zipfile(path):
        raise ValueError(
            "not a state_dict .pt: torch.save has written zip files since PyTorch 1.6, and the "
            "older format is not accepted (load it and torch.save it again)"
        )
    check_zip_directory(path, MAX_STATE_DICT_RECORDS)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"not a readable state_dict .pt: {exc}") from exc
    packed = sorted(i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED)
    if packed:
        raise ValueError(
            f"compressed records in the .pt ({_some(packed)}): torch.save never compresses, and "
            "loading would inflate them whole in memory; save it again with torch.save"
        )
    declared = sum(max(i.file_size, i.compress_size) for i in infos)
    allowed = 2 * weight_bytes + STATE_DICT_SLACK_BYTES
    if declared > allowed:
        raise ValueError(
            f"the .pt holds {declared:,} bytes; this architecture's weights take {weight_bytes:,} "
            f"(at most {allowed:,} accepted): check the architecture and options, and save "
            "the state_dict alone"
        )


def read_safetensors_header(path: StrPath) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The tensor entries and string metadata of a safetensors file, checked against the caps.

    Reads only the 8-byte little-endian header length and then at most MAX_HEADER_BYTES.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError("not a safetensors file: shorter than its 8-byte header length")
        (length,) = struct.unpack("<Q", prefix)
        if 8 + length > size:  # any other file read as one: its first bytes are no length
            raise ValueError(
                f"not a safetensors file: its first 8 bytes give a header of {length:,} bytes, "
                f"longer than the whole file ({size:,} bytes)"
            )
        if length > MAX_HEADER_BYTES:
            raise ValueError(
                f"safetensors header of {length} bytes refused; at most {MAX_HEADER_BYTES} allowed"
            )
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a safetensors file: header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise ValueError("not a safetensors file: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ValueError("safetensors metadata must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise ValueError(f"the file holds {len(header)} tensors; at most {MAX_TENSORS} allowed")
    for name, entry in header.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("dtype"), str)
            and isinstance(entry.get("shape"), list)
            and all(isinstance(d, int) and d >= 0 for d in entry["shape"])
        ):
            raise ValueError(f"malformed safetensors entry for tensor {name!r}")
    return header, metadata


def _options_from_metadata(text: str) -> dict[str, Any]:
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the file's options metadata is not JSON: {exc}") from exc
    if not isinstance(options, dict):
        raise ValueError("the file's options metadata is not a JSON object")
    return options


def _expected(module: nn.Module) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), _dtype_name(v.dtype)) for k, v in module.state_dict().items()}


def _check_entries(
    found: Mapping[str, tuple[tuple[int, ...], str]],
    expected: Mapping[str, tuple[tuple[int, ...], str]],
    what: str,
) -> None:
    """Raise a ValueError naming missing, extra and mismatched tensors, if any."""
    problems = []
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing tensors {_some(missing)}")
    if extra:
        problems.append(f"unexpected tensors {_some(extra)}")
    wrong = [
        f"{name}: {what} has shape {list(found[name][0])} dtype {found[name][1]}, "
        f"architecture needs shape {list(shape)} dtype {dtype}"
        for name, (shape, dtype) in sorted(expected.items())
        if name in found and found[name] != (shape, dtype)
    ]
    if wrong:
        problems.append(f"mismatched tensors ({len(wrong)}): {_some(wrong)}")
    if problems:
        raise ValueError(
            "weights do not match the architecture and options: " + "; ".join(problems)
        )


def _dtype_name(dtype: torch.dtype) -> str:
    return _SAFETENSORS_DTYPES.get(dtype, str(dtype))


def _is_tensor(value: object) -> bool:
    """A dense, unquantized tensor: the only kind our modules hold."""
    return (
        isinstance(value, torch.Tensor) and value.layout == torch.strided and not value.is_quantized
    )


def _some(items: list[str], limit: int = 5) -> str:
    """The first few of a long list, for an error message a user can read."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} (and {len(items) - limit} more)"
