"""The `birthday` console script: a headless audit and its estimate, and clear errors."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from app.settings import Settings
from app.store import pairs as pair_store
from app.store.db import Database
from app.store.judgements import post_judgement
from app.store.models import TrainingRun

BIRTHDAY = str(Path(sys.executable).parent / "birthday")


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIRTHDAY, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "BIRTHDAY_MODELS_DIR": str(data_dir / "models")},
    )


def test_audit_then_estimate_then_export(tmp_path: Path) -> None:
    audit = run(
        "audit", "--source", "synthetic", "--support", "5000", "--n", "2000", data_dir=tmp_path
    )
    assert audit.returncode == 0, audit.stderr
    match = re.search(r"audit (\d+): 2000 samples, (\d+) candidate pairs", audit.stdout)
    assert match, audit.stdout
    audit_id, pairs = match.group(1), int(match.group(2))
    assert pairs > 2000  # k = 5 neighbours per sample, de-duplicated

    estimate = run("estimate", audit_id, "--json", data_dir=tmp_path)
    assert estimate.returncode == 0, estimate.stderr
    body = json.loads(estimate.stdout)
    assert body["n"] == 2000 and body["candidate_pairs"] == pairs and body["labelled_pairs"] == 0
    # 50 random pairs are drawn among all pairs; those that are candidates are dropped.
    randoms = body["random_pairs"]
    assert 45 <= randoms <= 50
    assert body["level"] == 0.95 and body["stop"]["target_relative_half_width"] == 0.2
    chosen = run(
        "estimate", audit_id, "--json", "--level", "0.8", "--target", "0.1", data_dir=tmp_path
    )
    assert chosen.returncode == 0, chosen.stderr
    narrow = json.loads(chosen.stdout)
    assert narrow["level"] == 0.8 and narrow["stop"]["target_relative_half_width"] == 0.1
    for flag, value in (("--level", "1"), ("--level", "0.4"), ("--target", "0")):
        refused = run("estimate", audit_id, flag, value, data_dir=tmp_path)
        assert refused.returncode == 2 and flag in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    text = run("estimate", audit_id, data_dir=tmp_path)
    assert "no judgements yet" in text.stdout
    assert f"more labels to go ({pairs} candidate pairs): provisional" in text.stdout

    out = tmp_path / "pairs.csv"
    export = run("export", audit_id, "-o", str(out), data_dir=tmp_path)
    assert export.returncode == 0, export.stderr
    rows = out.read_text().splitlines()
    # The candidates, then the random pairs of the miner check, each ranked by distance.
    assert rows[0] == "rank,i,j,distance,label,origin" and len(rows) == pairs + randoms + 1
    origins = [r.rsplit(",", 1)[1] for r in rows[1:]]
    assert origins == ["candidate"] * pairs + ["random"] * randoms
    assert rows[1].startswith("1,") and rows[pairs + 1].startswith("1,")
    only = run("export", audit_id, "--origin", "random", data_dir=tmp_path)
    assert only.stdout.splitlines()[1:] == rows[pairs + 1 :]
    judged = run("export", audit_id, "--judgements", data_dir=tmp_path)
    assert judged.returncode == 0 and judged.stdout.splitlines()[0].startswith("judgement_id,")
    # An unknown audit is a message, and the file named is left as it was.
    missing = run("export", "999", "-o", str(out), data_dir=tmp_path)
    assert missing.returncode != 0 and "999" in missing.stderr
    assert out.read_text().splitlines() == rows
    # A file that cannot be written (no such folder, a folder) is a message, not a traceback.
    for where in (tmp_path / "no-such-folder" / "x.csv", tmp_path):
        for extra in ((), ("--judgements",)):
            refused = run("export", audit_id, *extra, "-o", str(where), data_dir=tmp_path)
            assert refused.returncode == 2, refused.stderr
            assert "cannot write" in refused.stderr and "Traceback" not in refused.stderr


def test_audit_with_more_neighbours_then_extend(tmp_path: Path) -> None:
    """What the miner warning tells a terminal user to do: mine with a larger k; and grow the
    pool in place."""
    args = ("audit", "--support", "5000", "--n", "300", "--random-pairs", "30")
    narrow = run(*args, "--neighbours", "2", data_dir=tmp_path)
    wide = run(*args, "--neighbours", "8", data_dir=tmp_path)
    assert narrow.returncode == 0 and wide.returncode == 0, narrow.stderr + wide.stderr
    found = [
        re.search(r"audit (\d+): 300 samples, (\d+) candidate pairs", r.stdout)
        for r in (narrow, wide)
    ]
    assert all(found), (narrow.stdout, wide.stdout)
    (first, k2), (_, k8) = ((m.group(1), int(m.group(2))) for m in found if m)
    # Each sample pairs with its k nearest earlier ones (sum of min(k, j) pairs), and earlier
    # samples with the later ones entering their own k nearest: at most 2 k pairs a sample.
    assert 2 * 300 - 3 <= k2 <= 2 * 2 * 300 < 8 * 300 - 36 <= k8

    grown = run("extend", first, "--n-more", "200", data_dir=tmp_path)
    assert grown.returncode == 0, grown.stderr
    assert re.search(rf"audit {first}: 500 samples, \d+ candidate pairs", grown.stdout)
    body = json.loads(run("estimate", first, "--json", data_dir=tmp_path).stdout)
    assert body["n"] == 500 and body["candidate_pairs"] > k2 and body["random_pairs"] > 30
    # A judgement in the k = 2 audit carries over to the k = 8 one (same source and seed).
    from sqlalchemy import select

    from app.cli.common import open_store, settings_for
    from app.store.judgements import post_judgement
    from app.store.models import CandidatePair

    db = open_store(settings_for(tmp_path))
    with db.write() as session:
        pair = session.scalars(
            select(CandidatePair)
            .where(CandidatePair.audit_id == int(first), CandidatePair.j < 300)
            .order_by(CandidatePair.distance)
            .limit(1)
        ).one()
        post_judgement(session, pair.id, "duplicate", "ada", None)
    second = wide.stdout.split(":")[0].split()[-1]
    copied = run("import-labels", second, "--from", first, data_dir=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert "1 judgements copied from audit" in copied.stdout
    body = json.loads(run("estimate", second, "--json", data_dir=tmp_path).stdout)
    assert body["labelled_pairs"] == 1 and body["duplicate_pairs"] == 1
    own = run("import-labels", second, "--from", second, data_dir=tmp_path)
    assert own.returncode == 2 and "cannot import its own labels" in own.stderr
    again = run("extend", "42", "--n-more", "10", data_dir=tmp_path)
    assert again.returncode == 2 and "audit 42 does not exist" in again.stderr
    zero = run("extend", first, "--n-more", "0", data_dir=tmp_path)
    assert zero.returncode == 2 and "Traceback" not in zero.stderr


def test_cli_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    missing = run("estimate", "42", data_dir=tmp_path)
    assert missing.returncode == 2 and "audit 42 does not exist" in missing.stderr
    bad = run("audit", "--support", "0", "--n", "10", data_dir=tmp_path)
    assert bad.returncode == 2 and "error" in bad.stderr and "Traceback" not in bad.stderr
    no_source = run("audit", "--n", "10", data_dir=tmp_path)
    assert no_source.returncode == 2 and "Traceback" not in no_source.stderr
    client = run("serve", "--ray", "ray://head:10001", data_dir=tmp_path)
    assert client.returncode == 2 and "Ray Client" in client.stderr
    assert "Traceback" not in client.stderr


def refused_in_one_line(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit status 2 and one `error:` line on stderr that says `message`: no pydantic dump."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "errors.pydantic.dev" not in result.stderr


def test_an_option_out_of_range_is_named_in_one_line(tmp_path: Path) -> None:
    """The request bodies' bounds, told as the options that broke them (not the REST fields)."""
    train = ["train", "--dataset", "ring8", "--loss", "rsgan"]
    sweep = ["sweep", "--dataset", "ring8", "--loss", "rsgan"]
    for args, message in (
        ([*train, "--steps", "0"], "--steps should be greater than or equal to 1, not 0"),
        ([*train, "--batch-size", "0", "--lr", "3"], "--batch-size should be greater than or equal to 1, not 0; --lr should be less than or equal to 1, not 3"),
        ([*sweep, "--steps", "0"], "--steps should be greater than or equal to 1, not 0"),
        ([*sweep, "--latent-dim", "0"], "--latent-dim should be greater than or equal to 1"),
        (["audit", "--support", "0"], "--support should be greater than or equal to 1, not 0"),
        (["audit", "--support", "9", "--n", "1"], "--n should be greater than or equal to 2"),
        (["audit", "--support", "9", "--miner", "x"], "--miner should be 'auto', 'exact' or 'hnsw', not 'x'"),
        (["audit", "--n", "100"], "give --support K (a synthetic source of K prototypes), or --source generator --generator ID"),
        (["audit", "--source", "generator"], "--source generator needs --generator ID"),
        (["audit", "--generator", "1"], "--generator needs --source generator"),
        (["audit", "--support", "9", "--generator", "1"], "--generator needs --source generator (the source is synthetic by default)"),
        (["audit", "--source", "generator", "--generator", "1", "--support", "9"], "--support is for a synthetic source"),
        (["set-target", "1", "3"], "TARGET should be less than or equal to 1, not 3"),
        (["paper-protocol", "1:0/1"], "1:0/1: SIZE should be greater than or equal to 2, not 1"),
    ):  # fmt: skip
        refused_in_one_line(run(*args, data_dir=tmp_path), message)


def test_train_prints_an_auditable_generator(tmp_path: Path) -> None:
    result = run(
        "train", "--dataset", "ring8", "--loss", "rsgan", "--steps", "30", data_dir=tmp_path
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"training run (\d+): generator (\d+)", result.stdout)
    assert match, result.stdout
    assert '"n_modes": 8' in result.stdout
    assert '"counts"' not in result.stdout and "samples per mode: GET /api/training-runs/" in (
        result.stdout
    )
    bad = run("train", "--dataset", "nope", "--loss", "rsgan", data_dir=tmp_path)
    assert bad.returncode == 2 and "unknown dataset" in bad.stderr


def test_train_takes_dataset_options_and_refuses_bad_ones(tmp_path: Path) -> None:
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, size=(20, 16, 16, 1), dtype=np.uint8)
    np.savez(datasets / "tiny.npz", images=pixels)
    common = ["train", "--loss", "lsgan", "--architecture", "dcgan", "--steps", "2"]
    result = run(
        *common, "--dataset", "npz", "--dataset-options", '{"path": "tiny.npz"}', data_dir=tmp_path
    )
    assert result.returncode == 0, result.stderr
    with Database(Settings(data_dir=tmp_path).resolved_database_url()).read() as session:
        run_row = session.scalars(select(TrainingRun)).one()
        assert run_row.config["dataset_options"]["path"] == str((datasets / "tiny.npz").resolve())
    for args, message in (
        (["--dataset-options", "nope"], "--dataset-options is not JSON"),
        (["--dataset-options", '{"image_size": 32}', "--image-size", "64"], "disagree"),
        (["--dataset-options", '{"path": "../tiny.npz"}'], "inside the datasets directory"),
    ):
        bad = run(*common, "--dataset", "mnist", *args, data_dir=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_train_and_sweep_take_the_optimiser_and_network_sizes(tmp_path: Path) -> None:
    knobs = [
        *("--batch-size", "16", "--lr", "1e-4", "--betas", "0,0.9", "--d-steps", "2"),
        *("--architecture-options", '{"hidden": 16}', "--gp-weight", "0.1"),
    ]
    common = ["--dataset", "ring8", "--loss", "wgan_gp", "--steps", "2", *knobs]
    assert run("train", *common, data_dir=tmp_path).returncode == 0
    swept = run("sweep", *common, "--seed", "0,1", "--json", data_dir=tmp_path)
    assert swept.returncode == 0, swept.stderr
    with Database(Settings(data_dir=tmp_path).resolved_database_url()).read() as session:
        configs = [r.config for r in session.scalars(select(TrainingRun))]
    assert len(configs) == 3
    for config in configs:
        assert (config["batch_size"], config["lr"], config["betas"], config["d_steps"]) == (
            16,
            1e-4,
            [0.0, 0.9],
            2,
        )
        assert config["architecture_options"] == {"hidden": 16}
        assert config["gp_weight"] == 0.1
    # What is left out follows the loss's paper: WGAN-GP's betas and 5 critic steps.
    own = tmp_path / "own"
    trained = run(
        "train",
        "--dataset",
        "ring8",
        "--loss",
        "wgan_gp",
        "--steps",
        "2",
        "--lr",
        "3e-4",
        data_dir=own,
    )
    assert trained.returncode == 0, trained.stderr
    with Database(Settings(data_dir=own).resolved_database_url()).read() as session:
        config = session.scalars(select(TrainingRun)).one().config
    assert (config["lr"], config["betas"], config["d_steps"]) == (3e-4, [0.0, 0.9], 5)
    for args, message in (
        (["--betas", "0.5"], "--betas: two numbers"),
        (["--betas", "a,b"], "--betas: two numbers"),
        (["--architecture-options", "[1]"], "must be a JSON object"),
        (["--architecture-options", '{"base_width": 8}'], "base_width"),
        (["--lr", "2"], "lr"),
    ):
        bad = run("train", *common, *args, data_dir=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_digit_classifier_learns_from_a_digits_file_and_names_its_weights(
    tmp_path: Path,
) -> None:
    from app.gan.digit_classifier import source_digest, split_digits
    from app.gan.mnist import mnist_digits

    datasets = tmp_path / "datasets"
    datasets.mkdir()
    pixels, classes = mnist_digits()
    chosen = np.arange(120) * 41  # spread over the packaged digits, which are sorted by class
    np.savez(
        datasets / "mnist.npz", x_train=pixels[chosen], y_train=classes[chosen].astype(np.uint8)
    )
    result = run("digit-classifier", "--data", "mnist.npz", "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    digest = source_digest(datasets / "mnist.npz")
    weights = f"builtin/mnist_classifier.{digest}.pt"
    trained = len(split_digits(digits="mnist", source=datasets / "mnist.npz")[0])
    assert body["source"] == digest and body["train_digits"] == trained > 80
    assert body["embedder_options"] == {"classifier": "mnist", "weights": weights}
    assert (tmp_path / "models" / weights).is_file()
    text = run("digit-classifier", "--data", "mnist.npz", data_dir=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"held-out accuracy ({trained} training digits)" in text.stdout
    assert f'"weights": "{weights}"' in text.stdout
    for args, message in (
        (["--data", "../mnist.npz"], "inside the datasets directory"),
        (["--data", "gone.npz"], "cannot read it"),
        (["--digits", "emnist"], "unknown digit set"),
        (["--digits", "sklearn", "--data", "mnist.npz"], "sklearn's digits only"),
    ):
        bad = run("digit-classifier", *args, data_dir=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_sweep_prints_its_cells_and_agrees_with_the_api(tmp_path: Path) -> None:
    result = run(
        "sweep", "--dataset", "ring8", "--loss", "rsgan,rasgan", "--d-width", "0.5",
        "--d-width", "1", "--steps", "20", "--json", data_dir=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    sweep = json.loads(result.stdout)
    assert [r["status"] for r in sweep["runs"]] == ["done"] * 4
    assert [(c["loss"], c["d_width"], c["runs"]) for c in sweep["cells"]] == [
        ("rsgan", 0.5, 1), ("rsgan", 1.0, 1), ("rasgan", 0.5, 1), ("rasgan", 1.0, 1),
    ]  # fmt: skip
    for cell, run_ in zip(sweep["cells"], sweep["runs"], strict=True):
        assert cell["run_ids"] == [run_["id"]]
        assert cell["modes_captured"]["mean"] == run_["modes"]["modes_captured"]
    table = run("sweep", "--dataset", "ring8", "--loss", "rsgan", "--seed", "0,1", "--steps", "10",
                data_dir=tmp_path)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert re.search(r"rsgan\s+default\s+1\s+2 / 2\s+\d\.\d(±\d\.\d)? / 8", table.stdout), (
        table.stdout
    )
    bad = run("sweep", "--dataset", "ring8", "--loss", "rsgan", "--seed", "a", data_dir=tmp_path)
    assert bad.returncode == 2 and "--seed: numbers" in bad.stderr
    big = run("sweep", "--dataset", "ring8", "--loss", "rsgan", "--seed", ",".join(map(str, range(11))),
              data_dir=tmp_path)  # fmt: skip
    assert big.returncode == 2 and "--seed: at most 10 values, not 11" in big.stderr
    assert "Traceback" not in big.stderr


def test_a_sweep_audited_and_compared_from_the_terminal(tmp_path: Path) -> None:
    trained = run(
        "sweep", "--dataset", "digits", "--architecture", "dcgan", "--image-size", "16",
        "--loss", "sgan_nonsaturating", "--d-width", "0.25,0.5", "--g-width", "0.25",
        "--latent-dim", "8", "--steps", "3", data_dir=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    audited = run("audit", "--sweep", "1", "--n", "60", "--embedder", "discriminator",
                  data_dir=tmp_path)  # fmt: skip
    assert audited.returncode == 0, audited.stderr
    assert re.findall(r"audit (\d+): 60 samples", audited.stdout) == ["1", "2"]
    assert "birthday compare 1,2" in audited.stdout and "birthday sweep-support 1" in audited.stdout
    table = run("compare", "1,2", data_dir=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "D x0.25" in table.stdout and "D x0.5" in table.stdout
    as_json = run("compare", "2", "1", "--json", data_dir=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    items = json.loads(as_json.stdout)
    assert [item["audit"]["id"] for item in items] == [2, 1]
    assert all(item["audit"]["embedder"] == "discriminator" for item in items)
    estimate = json.loads(run("estimate", "2", "--json", data_dir=tmp_path).stdout)
    assert items[0]["estimate"] == estimate
    missing = run("compare", "1,9", data_dir=tmp_path)
    assert missing.returncode == 2 and "9" in missing.stderr and "Traceback" not in missing.stderr
    none = run("compare", "", data_dir=tmp_path)
    assert none.returncode == 2 and "name the audits" in none.stderr, none.stderr
    both = run("audit", "--sweep", "1", "--support", "50", data_dir=tmp_path)
    assert both.returncode == 2 and "leave out" in both.stderr
    # Support across the sweep: nothing reviewed yet, and each run says what it waits for.
    support = run("sweep-support", "1", data_dir=tmp_path)
    assert support.returncode == 0, support.stderr
    assert "no generator's audit is reviewed yet" in support.stdout
    assert "run 1 (audit 1): its review has not explored" in support.stdout
    body = json.loads(
        run("sweep-support", "1", "--json", "--level", "0.9", data_dir=tmp_path).stdout
    )
    assert [r["audit_id"] for r in body["runs"]] == [1, 2] and body["level"] == 0.9
    unknown = run("sweep-support", "7", data_dir=tmp_path)
    assert unknown.returncode == 2 and "sweep 7" in unknown.stderr
    assert "next: review audit 1 (run 1" in support.stdout
    nothing = run("sweep-extend", "1", data_dir=tmp_path)
    assert nothing.returncode == 2 and "none lacks duplicates" in nothing.stderr
    bad = run("sweep-extend", "1", "--n-more", "0", data_dir=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    # Every pair judged distinct: no duplicate in either pool, so both wait for larger ones.
    db = Database(Settings(data_dir=tmp_path).resolved_database_url())
    for audit_id in (1, 2):
        for origin in pair_store.ORIGINS:
            with db.read() as session:
                ids = pair_store.pair_rows(session, audit_id, origin).ids.tolist()
            with db.write() as session:
                for pair_id in ids:
                    post_judgement(session, pair_id, "distinct", "ada", None)
    waiting = run("sweep-support", "1", data_dir=tmp_path)
    assert "sweep 1: no cell has a pool with a duplicate yet" in waiting.stdout
    assert (
        "No pool of cell (" in waiting.stdout and "run 1 (audit 1): no duplicate" in waiting.stdout
    )
    assert "grow the pools with no duplicate: birthday sweep-extend 1" in waiting.stdout
    grown = run("sweep-extend", "1", "--n-more", "20", data_dir=tmp_path)
    assert grown.returncode == 0, grown.stderr
    assert re.findall(r"audit (\d+): 80 samples", grown.stdout) == ["1", "2"]


def test_a_trained_discriminator_embeds_an_audit_from_the_terminal(tmp_path: Path) -> None:
    trained = run(
        "train", "--dataset", "digits", "--architecture", "dcgan", "--image-size", "16",
        "--loss", "sgan_nonsaturating", "--steps", "3", "--d-width", "0.25", "--g-width", "0.25",
        data_dir=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    generator = re.search(r"generator (\d+)", trained.stdout)
    hint = re.search(r"--embedder-options '(\{.*\})'", trained.stdout)
    assert generator and hint, trained.stdout
    assert json.loads(hint.group(1)) == {"weights": "trained/run_1.discriminator.safetensors"}
    audit = run(
        "audit", "--source", "generator", "--generator", generator.group(1), "--n", "120",
        "--embedder", "discriminator", "--embedder-options", hint.group(1), data_dir=tmp_path,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    not_json = run(
        "audit", "--support", "50", "--n", "10", "--embedder-options", "{weights", data_dir=tmp_path
    )
    assert not_json.returncode == 2 and "--embedder-options is not JSON" in not_json.stderr
    assert "Traceback" not in not_json.stderr
    missing = run(
        "audit", "--source", "generator", "--generator", generator.group(1), "--n", "10",
        "--embedder", "discriminator", data_dir=tmp_path,
    )  # fmt: skip
    assert missing.returncode == 2 and "'weights' is required" in missing.stderr


def test_upload_an_onnx_generator_then_audit_it(tmp_path: Path) -> None:
    from tests.test_onnx import generator_model

    graph = tmp_path / "mine.onnx"
    graph.write_bytes(generator_model().SerializeToString())
    result = run("upload", str(graph), "--format", "onnx", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    match = re.search(r"generator (\d+): onnx, images 1x8x8, latent size 4", result.stdout)
    assert match, result.stdout
    audit = run(
        "audit", "--source", "generator", "--generator", match.group(1), "--n", "150",
        data_dir=tmp_path,
    )  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    assert re.search(r"audit \d+: 150 samples, \d+ candidate pairs", audit.stdout), audit.stdout
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 not a graph")
    bad = run("upload", str(junk), "--format", "onnx", data_dir=tmp_path)
    assert bad.returncode == 2 and "not an ONNX model" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = run("upload", str(tmp_path / "nope.onnx"), "--format", "onnx", data_dir=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_upload_a_folder_of_pngs_as_a_sample_pool(tmp_path: Path) -> None:
    """Sample i is the i-th PNG by name; other files are not samples; an empty folder is refused."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "pool"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8) for _ in range(12)]
    for k, image in enumerate(images):
        Image.fromarray(image).save(folder / f"sample_{k:03d}.png")
    (folder / "README.txt").write_text("not a sample")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run(
        [BIRTHDAY, "upload", str(folder), "--format", "samples", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "BIRTHDAY_MODELS_DIR": str(tmp_path / "models"),
             "TMPDIR": str(scratch)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not list(scratch.iterdir())  # the folder's temporary zip is gone
    match = re.search(r"generator (\d+): samples, images 3x8x8", result.stdout)
    assert match, result.stdout
    db = Database(Settings(data_dir=tmp_path).resolved_database_url())
    with db.read() as session:
        from app.store.models import Generator

        stored = session.get(Generator, int(match.group(1)))
        assert stored is not None and stored.name == "pool"
        path = tmp_path / "models" / stored.path
    db.dispose()
    from app.sources.zip_archive import ZipSource

    source = ZipSource(path)
    assert source.max_samples == 12
    got = source.generate(np.array([0, 11], dtype=np.int64)).images
    for row, k in enumerate((0, 11)):
        expected = np.transpose(images[k].astype(np.float32), (2, 0, 1)) / 127.5 - 1
        np.testing.assert_allclose(got[row].numpy(), expected)
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = run("upload", str(empty), "--format", "samples", data_dir=tmp_path)
    assert refused.returncode == 2 and "holds no .png files" in " ".join(refused.stderr.split())


def png_folder(folder: Path, count: int) -> Path:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(count):
        pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"sample_{k:03d}.png")
    return folder


def test_a_folder_uploads_only_as_samples(tmp_path: Path) -> None:
    folder = png_folder(tmp_path / "pool", 3)
    refused = run("upload", str(folder), "--format", "onnx", data_dir=tmp_path)
    refused_in_one_line(
        refused, "is a folder: a folder is uploaded only as a sample archive, with --format samples"
    )


def test_an_archive_too_small_and_a_failed_job_are_one_line_each(tmp_path: Path) -> None:
    """A pool larger than its archive is refused before an audit exists; a job that fails as the
    command waits for it is told by its error, without the traceback the runner logs."""
    import zipfile

    from app.store.models import Audit, Generator

    uploaded = run(
        "upload", str(png_folder(tmp_path / "pool", 12)), "--format", "samples", data_dir=tmp_path
    )
    match = re.search(r"generator (\d+): samples", uploaded.stdout)
    assert uploaded.returncode == 0 and match, uploaded.stderr
    generator = match.group(1)
    too_many = run(
        "audit", "--source", "generator", "--generator", generator, "--n", "20", data_dir=tmp_path
    )
    refused_in_one_line(
        too_many, f"generator {generator} is an archive of 12 samples; the pool asks for 20"
    )
    db = Database(Settings(data_dir=tmp_path).resolved_database_url())
    with db.read() as session:
        assert session.scalars(select(Audit)).all() == []
        stored = session.get(Generator, int(generator))
        assert stored is not None and stored.path is not None
        archive = tmp_path / "models" / stored.path
    db.dispose()
    # The same member names, so the archive's size still passes, but no PNG in them.
    names = zipfile.ZipFile(archive).namelist()
    with zipfile.ZipFile(archive, "w") as rewritten:
        for name in names:
            rewritten.writestr(name, b"not a png")
    failed = run(
        "audit", "--source", "generator", "--generator", generator, "--n", "10", data_dir=tmp_path
    )
    refused_in_one_line(
        failed, "error: audit 1 failed: ValueError: member 'sample_000.png' is not a readable PNG"
    )


def test_job_logs_are_lines_and_leave_a_failure_to_the_outcome(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from app.cli.common import job_logs

    with job_logs():
        logging.getLogger("app.jobs.train").warning("state not used", exc_info=OSError("gone"))
        logging.getLogger("app.jobs.runner").error("job 1 failed", exc_info=ValueError("boom"))
    logging.getLogger("app.jobs.train").warning("after the job")
    assert capsys.readouterr().err == "warning: state not used: gone\n"


def test_estimate_watch_prints_each_change_until_ctrl_c(tmp_path: Path) -> None:
    """Labels written by another process (here the test, as the server would) show up."""
    made = run("audit", "--support", "300", "--n", "200", data_dir=tmp_path)
    match = re.search(r"audit (\d+): 200 samples", made.stdout)
    assert made.returncode == 0 and match, made.stderr
    audit_id = int(match.group(1))
    watcher = subprocess.Popen(
        [BIRTHDAY, "estimate", str(audit_id), "--watch", "--json", "--every", "0.1"]
        + ["--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "BIRTHDAY_MODELS_DIR": str(tmp_path / "models")},
    )
    # A line that never comes fails the test instead of hanging it: the pipe closes.
    watchdog = threading.Timer(120, watcher.kill)
    watchdog.start()
    try:
        assert watcher.stdout is not None
        assert json.loads(watcher.stdout.readline())["labelled_pairs"] == 0
        db = Database(Settings(data_dir=tmp_path).resolved_database_url())
        with db.read() as session:
            closest = pair_store.list_pairs(session, audit_id, "unlabelled", 2, None)[0]
        for k, ranked in enumerate(closest, 1):
            with db.write() as session:
                post_judgement(session, ranked.pair.id, "duplicate", "elsewhere", None)
            assert json.loads(watcher.stdout.readline())["labelled_pairs"] == k
        db.dispose()
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=60) == 0
        assert "Traceback" not in (watcher.stderr.read() if watcher.stderr else "")
    finally:
        watchdog.cancel()
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()


def test_second_look_names_a_slipped_random_duplicate(tmp_path: Path) -> None:
    made = run("audit", "--support", "2000", "--n", "300", data_dir=tmp_path)
    match = re.search(r"audit (\d+): 300 samples", made.stdout)
    assert made.returncode == 0 and match, made.stderr
    audit_id = match.group(1)
    nothing = run("second-look", audit_id, data_dir=tmp_path)
    assert nothing.returncode == 0 and "nothing judged yet" in nothing.stdout
    db = Database(Settings(data_dir=tmp_path).resolved_database_url())
    with db.write() as session:
        closest = pair_store.list_pairs(session, int(audit_id), None, 1, None)[0][0].pair
        post_judgement(session, closest.id, "distinct", "ada", None)
        # The whole miner check judged "distinct" but for one slipped key: that random pair
        # stands for every unproposed pair (~900 of them).
        check = pair_store.list_pairs(session, int(audit_id), None, 100, None, origin="random")[0]
        for k, ranked in enumerate(check):
            post_judgement(session, ranked.pair.id, "distinct" if k else "duplicate", "ada", None)
        slipped = check[0].pair.id
    db.dispose()
    listed = run("second-look", audit_id, "--limit", "3", data_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines() if " random " in line]
    assert rows and rows[0][:2] == [str(slipped), "random"], listed.stdout
    assert rows[0][5:7] == ["duplicate", "1"]  # the label, one look so far
    assert "P(slip)" in listed.stdout
    assert run("second-look", "999", data_dir=tmp_path).returncode == 2


def test_a_bad_environment_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    bad = subprocess.run(
        [BIRTHDAY, "estimate", "1", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "BIRTHDAY_CHUNK_SIZE": "1"},
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: BIRTHDAY_CHUNK_SIZE: Input should be greater than or equal to 10"
    )


def test_a_sweep_with_a_failed_run_exits_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The results table shows a failed run; the exit status says so too, for scripts."""
    from typer.testing import CliRunner

    import app.jobs.train as train_job
    from app.cli import cli
    from app.gan.training import TrainingDiverged

    def diverges(*_: object, **__: object) -> object:
        raise TrainingDiverged("discriminator not finite by step 1; try a lower lr or another loss")

    monkeypatch.setattr(train_job, "train", diverges)
    args = ["sweep", "--dataset", "ring8", "--loss", "rsgan", "--seed", "0,1", "--steps", "2"]
    result = CliRunner().invoke(cli, [*args, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "2 of 2 runs of sweep 1 failed (run 1: TrainingDiverged: discriminator not finite" in (
        result.output
    )
