"""Checkpoint round trips and the refusals that keep hostile files harmless."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from app.gan.checkpoint import (
    MAX_HEADER_BYTES,
    MAX_TENSORS,
    load_generator_safetensors,
    load_generator_state_dict,
    save_generator,
)
from app.gan.registry import GeneratorSpec, build_generator

OPTIONS = {"image_size": 8, "channels": 1, "latent_dim": 4, "g_width": 0.125}


def trained_like_generator() -> torch.nn.Module:
    """A generator whose weights and BatchNorm statistics differ from a fresh init."""
    torch.manual_seed(1)
    generator, _ = build_generator("dcgan", OPTIONS)
    generator.train()
    generator(torch.randn(16, 4))  # moves running_mean/var and num_batches_tracked
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(torch.randn_like(p))
    return generator


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_safetensors_round_trip_reads_architecture_from_metadata(tmp_path: Path) -> None:
    generator = trained_like_generator()
    path = tmp_path / "g.safetensors"
    save_generator(path, generator, "dcgan", OPTIONS)

    loaded, spec = load_generator_safetensors(path)

    assert spec == GeneratorSpec(4, (1, 8, 8))
    assert not loaded.training
    assert_same_weights(generator, loaded)
    z = torch.randn(5, 4)
    with torch.no_grad():
        assert torch.equal(generator.eval()(z), loaded(z))


def test_safetensors_explicit_architecture_for_foreign_file(tmp_path: Path) -> None:
    generator = trained_like_generator()
    path = tmp_path / "foreign.safetensors"
    save_file({k: v.contiguous() for k, v in generator.state_dict().items()}, path)

    with pytest.raises(ValueError, match="does not name its architecture"):
        load_generator_safetensors(path)
    loaded, _ = load_generator_safetensors(path, "dcgan", OPTIONS)
    assert_same_weights(generator, loaded)


def test_safetensors_wrong_options_named_in_error(tmp_path: Path) -> None:
    path = tmp_path / "g.safetensors"
    save_generator(path, trained_like_generator(), "dcgan", OPTIONS)
    with pytest.raises(
        ValueError,
        match=r"main\.0\.weight: file has shape \[4, 8, 4, 4\] dtype F32, "
        r"architecture needs shape \[4, 16, 4, 4\]",
    ):
        load_generator_safetensors(path, "dcgan", {**OPTIONS, "g_width": 0.25})


def test_save_refuses_module_of_another_architecture(tmp_path: Path) -> None:
    other, _ = build_generator("dcgan", {**OPTIONS, "channels": 3})
    with pytest.raises(ValueError, match="mismatched tensors"):
        save_generator(tmp_path / "g.safetensors", other, "dcgan", OPTIONS)
    assert not (tmp_path / "g.safetensors").exists()


def test_state_dict_round_trip(tmp_path: Path) -> None:
    generator = trained_like_generator()
    path = tmp_path / "g.pt"
    torch.save(generator.state_dict(), path)

    loaded, spec = load_generator_state_dict(path, "dcgan", OPTIONS)

    assert spec.output_shape == (1, 8, 8)
    assert not loaded.training
    assert_same_weights(generator, loaded)


def test_state_dict_missing_extra_and_dtype_errors(tmp_path: Path) -> None:
    state = trained_like_generator().state_dict()
    path = tmp_path / "g.pt"

    missing = {k: v for k, v in state.items() if k != "main.1.running_var"}
    torch.save(missing, path)
    with pytest.raises(ValueError, match=r"missing tensors main\.1\.running_var"):
        load_generator_state_dict(path, "dcgan", OPTIONS)

    torch.save({**state, "main.9.weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"unexpected tensors main\.9\.weight"):
        load_generator_state_dict(path, "dcgan", OPTIONS)

    torch.save({**state, "main.0.weight": state["main.0.weight"].half()}, path)
    with pytest.raises(
        ValueError,
        match=r"main\.0\.weight: file has shape \[4, 8, 4, 4\] dtype F16, "
        r"architecture needs shape \[4, 8, 4, 4\] dtype F32",
    ):
        load_generator_state_dict(path, "dcgan", OPTIONS)

    torch.save([state["main.0.weight"]], path)
    with pytest.raises(ValueError, match="expected a state_dict"):
        load_generator_state_dict(path, "dcgan", OPTIONS)

    torch.save({**state, "note": "hello"}, path)
    with pytest.raises(ValueError, match="not named tensors: note"):
        load_generator_state_dict(path, "dcgan", OPTIONS)


class _Payload:
    """Unpickling this would create a file: proof that code in the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_state_dict_loader_refuses_malicious_pickle_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    state = trained_like_generator().state_dict()
    torch.save({**state, "main.0.weight": _Payload(marker)}, path)

    with pytest.raises(ValueError, match="weights_only=True"):
        load_generator_state_dict(path, "dcgan", OPTIONS)
    assert not marker.exists()

    # control: the payload is live, so the assertion above could have failed
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_oversize_safetensors_header_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    # claims a header one byte over the cap, and the file is that long: refused unread
    with path.open("wb") as f:
        f.write(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}")
        f.truncate(8 + MAX_HEADER_BYTES + 1)  # sparse: no disk written
    with pytest.raises(ValueError, match=f"header of {MAX_HEADER_BYTES + 1} bytes refused"):
        load_generator_safetensors(path, "dcgan", OPTIONS)
    # a shorter file with that claim is no safetensors file at all
    path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}")
    with pytest.raises(ValueError, match="not a safetensors file: its first 8 bytes give"):
        load_generator_safetensors(path, "dcgan", OPTIONS)


def write_raw_safetensors(path: Path, header: dict[str, object], data: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_too_many_tensors_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.safetensors"
    entry = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    write_raw_safetensors(path, {f"t{i}": entry for i in range(MAX_TENSORS + 1)})
    with pytest.raises(ValueError, match=f"at most {MAX_TENSORS} allowed"):
        load_generator_safetensors(path, "dcgan", OPTIONS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x00", "shorter than its 8-byte header length"),
        (struct.pack("<Q", 100) + b"{}", "header of 100 bytes, longer than the whole file"),
        (struct.pack("<Q", 3) + b"\xff\xfe{", "header is not JSON"),
        (struct.pack("<Q", 2) + b"[]", "header is not a JSON object"),
    ],
)
def test_malformed_safetensors_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_generator_safetensors(path, "dcgan", OPTIONS)


def test_safetensors_data_offsets_checked_by_library(tmp_path: Path) -> None:
    """Right names and shapes but truncated data: the library's own check becomes a ValueError."""
    generator = trained_like_generator()
    path = tmp_path / "g.safetensors"
    save_generator(path, generator, "dcgan", OPTIONS)
    path.write_bytes(path.read_bytes()[:-16])
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load_generator_safetensors(path)
