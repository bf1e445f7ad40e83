"""ONNX uploads: any architecture, no code; checked without a runtime, run only in a child process."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data

from app.main import create_app
from app.settings import Settings
from app.sources.base import sample_rng
from app.sources.isolated import IsolatedSource
from tests.conftest import assert_problem, wait_for_audit

LATENT, CHANNELS, SIZE = 4, 1, 8
WEIGHTS = (
    np.random.default_rng(0).normal(0, 0.7, (LATENT, CHANNELS * SIZE * SIZE)).astype(np.float32)
)


def generator_model(
    *, latent: int | str = LATENT, flat_output: bool = False, log: bool = False, raw: bool = False
) -> onnx.ModelProto:
    """image = tanh(z @ W) as (B, 1, 8, 8); a flat (B, 64) output, a log (NaN) or no tanh (values
    beyond [-1, 1]) on request."""
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", latent])
    out_shape = (
        ["batch", CHANNELS * SIZE * SIZE] if flat_output else ["batch", CHANNELS, SIZE, SIZE]
    )
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, out_shape)
    shape = [-1, CHANNELS * SIZE * SIZE] if flat_output else [-1, CHANNELS, SIZE, SIZE]
    nodes = [
        helper.make_node("MatMul", ["z", "W"], ["h"]),
        helper.make_node("Log" if log else "Identity" if raw else "Tanh", ["h"], ["t"]),
        helper.make_node("Reshape", ["t", "shape"], ["image"]),
    ]
    initializers = [
        numpy_helper.from_array(WEIGHTS, "W"),
        numpy_helper.from_array(np.asarray(shape, dtype=np.int64), "shape"),
    ]
    graph = helper.make_graph(nodes, "generator", [z], [image], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def upload(client: TestClient, content: bytes, latent_dim: str | None = None) -> object:
    data = {"name": "onnx", "format": "onnx"}
    if latent_dim is not None:
        data["latent_dim"] = latent_dim
    return client.post("/api/generators", data=data, files={"file": ("g.onnx", content)})


def test_onnx_is_probed_and_audited_outside_the_api_process(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the API process ran the ONNX graph")

    def unparsed(*_: object, **__: object) -> None:
        raise AssertionError("the API process parsed the ONNX file")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    monkeypatch.setattr(onnx, "load", unparsed)
    monkeypatch.setattr(onnx, "load_model", unparsed)
    response = upload(client, generator_model().SerializeToString())
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    generator = response.json()  # type: ignore[attr-defined]
    assert generator["format"] == "onnx"
    assert generator["image_shape"] == [CHANNELS, SIZE, SIZE] and generator["latent_dim"] == LATENT
    audit = client.post("/api/audits", json={"generator_id": generator["id"], "n": 120}).json()
    audit = wait_for_audit(client, audit["id"])
    assert audit["status"] == "done", audit
    assert audit["progress"]["candidate_pairs"] > 0


def test_sample_i_is_the_graph_applied_to_the_seeded_latent(tmp_path: Path) -> None:
    path = tmp_path / "g.onnx"
    path.write_bytes(generator_model().SerializeToString())
    source = IsolatedSource(path, "onnx", LATENT, (CHANNELS, SIZE, SIZE), seed=3)
    try:
        got = source.generate(np.array([7, 0, 7], dtype=np.int64)).images.numpy()
    finally:
        source._process.close()
    for row, i in zip(got, (7, 0, 7), strict=True):
        z = sample_rng(3, 3, i).standard_normal(LATENT).astype(np.float32)
        want = np.tanh(z @ WEIGHTS).reshape(CHANNELS, SIZE, SIZE)
        np.testing.assert_allclose(row, want, atol=1e-5)
    np.testing.assert_array_equal(got[0], got[2])


def test_shared_servers_accept_onnx(settings: Settings) -> None:
    settings.allow_code_uploads = False
    with TestClient(create_app(settings)) as client:
        response = upload(client, generator_model().SerializeToString())
        assert response.status_code == 201, response.text  # type: ignore[attr-defined]


def test_an_open_latent_size_needs_latent_dim_and_must_match(client: TestClient) -> None:
    open_latent = generator_model(latent="latent").SerializeToString()
    body = assert_problem(upload(client, open_latent), 422)  # type: ignore[arg-type]
    assert "give latent_dim" in body["detail"]
    response = upload(client, open_latent, latent_dim="4")
    assert response.status_code == 201, response.text  # type: ignore[attr-defined]
    assert response.json()["latent_dim"] == 4  # type: ignore[attr-defined]
    static = generator_model().SerializeToString()
    body = assert_problem(upload(client, static, latent_dim="7"), 422)  # type: ignore[arg-type]
    assert "latent size is 4" in body["detail"]


def test_bad_onnx_files_are_refused_clearly(client: TestClient, settings: Settings) -> None:
    cases: list[tuple[bytes, str]] = [
        (b"not a protobuf at all \xff\xfe", "not an ONNX model"),
        (generator_model(flat_output=True).SerializeToString(), "images (B, C, H, W)"),
        (generator_model(log=True).SerializeToString(), "NaN"),
        (generator_model(raw=True).SerializeToString(), "end the generator with tanh"),
    ]
    external = generator_model()
    convert_model_to_external_data(external, location="weights.bin", size_threshold=0)
    cases.append((external.SerializeToString(), "external data"))
    two_inputs = generator_model()
    two_inputs.graph.input.append(
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", LATENT])
    )
    cases.append((two_inputs.SerializeToString(), "one input"))
    for content, message in cases:
        body = assert_problem(upload(client, content), 422)  # type: ignore[arg-type]
        assert message in body["detail"], body["detail"]
    assert not list((settings.models_dir / "uploads").glob("*"))  # refused files are removed


def endless_model() -> onnx.ModelProto:
    """A generator whose graph first runs a Loop of 10^15 identity steps on z."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", ["v_in"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None),
        ],
    )
    model = generator_model()
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.asarray(10**15, dtype=np.int64), "trips"),
            numpy_helper.from_array(np.asarray(True), "go"),
        ]
    )
    graph.node.insert(0, helper.make_node("Loop", ["trips", "go", "z"], ["z_looped"], body=body))
    graph.node[1].input[0] = "z_looped"  # MatMul now reads the looped z
    return model


def test_a_graph_that_never_answers_is_refused_not_waited_for(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.sources.isolated as isolated

    monkeypatch.setattr(isolated, "PROBE_TIMEOUT_S", 3.0)
    body = assert_problem(upload(client, endless_model().SerializeToString()), 422)  # type: ignore[arg-type]
    assert "no answer within 3 s" in body["detail"]


def test_a_torch_export_of_a_dcgan_samples_as_the_module_does(tmp_path: Path) -> None:
    """The user's path: torch.onnx.export of their generator; sample i matches the module run
    on the latent a built-in checkpoint with the same seed would get."""
    import torch

    from app.gan.registry import build_generator
    from app.sources.onnx_graph import inspect_onnx

    module, _ = build_generator(
        "dcgan", {"image_size": 16, "channels": 3, "latent_dim": 8, "g_width": 0.25}
    )
    module.eval()
    path = tmp_path / "dcgan.onnx"
    with warnings.catch_warnings():  # the TorchScript-based exporter needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (torch.randn(2, 8),),
            str(path),
            input_names=["z"],
            output_names=["image"],
            dynamic_axes={"z": {0: "batch"}, "image": {0: "batch"}},
            dynamo=False,
        )
    assert inspect_onnx(path, None) == 8
    source = IsolatedSource(path, "onnx", 8, (3, 16, 16), seed=11)
    try:
        got = source.generate(np.arange(5, dtype=np.int64)).images
    finally:
        source._process.close()
    z = np.stack([sample_rng(11, 3, i).standard_normal(8) for i in range(5)]).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(z)).clamp(-1, 1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_the_files_reader_dying_or_hanging_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    from app.sources import onnx_graph

    path = tmp_path / "g.onnx"
    path.write_bytes(generator_model().SerializeToString())
    assert onnx_graph.inspect_onnx_isolated(path, None) == LATENT
    with pytest.raises(ValueError, match="longer than 0.001 s"):
        onnx_graph.inspect_onnx_isolated(path, None, timeout=0.001)

    def killed(command: list[str], **_: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(command, -11, stdout=b"", stderr=b"")

    monkeypatch.setattr(subprocess, "run", killed)
    with pytest.raises(ValueError, match="stopped its reader"):
        onnx_graph.inspect_onnx_isolated(path, None)
