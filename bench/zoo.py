"""Mode collapse of the built-in GANs on data with known modes, at CPU scale.

Four tables, each a mean ± sd over seeds (every run is deterministic given its seed):
1. modes captured and the high-quality fraction on the 2D ring of 8 and grid of 25 for every
   built-in loss (SGAN both ways, LSGAN, WGAN-GP, hinge, the relativistic RSGAN, RaSGAN, RaLSGAN,
   RaHingeGAN, RSGAN-GP, RaSGAN-GP) and joint model (VEEGAN, BiGAN, ALI), all with one shared
   loop, plus WGAN-GP with its paper's loop and the penalised losses at the gradient penalty's
   lambda 0.1 of WGAN-GP's toy code (10 elsewhere); beside the figures of VEEGAN's Table 1 (Srivastava
   et al. 2017; there the networks trained far longer, on a GPU);
2. the latent size (1, 2, 3, 10) of an SGAN on the ring and on the spiral (a 1-D curve, cut into
   20 equally likely segments);
3. stacked digits (1,000 modes) against the discriminator's width (d_width 0.25, 0.5, 1): modes
   captured, KL to uniform and the confident fraction, from our digit classifier, and the
   birthday test's figure, N_eff = 1 / sum_c p_c^2 (inverse Simpson, Hill number of order 2),
   three ways: from the classifier's mode histogram of 26,000 samples (the reference), from
   audits run the way a user runs one (with the pixels embedder and with the digits embedder),
   and from each audit pool's histogram (the oracle); then the exponent b of N_eff ~ width^b
   from the reference and from each embedder's audits, fitted as a sweep's support figure fits
   it (app/estimate/across_runs.py);
4. ("models") SGAN, VEEGAN, BiGAN and ALI on the same stacked data with DCGAN networks at width
   1 (the joint models with a convolutional encoder and ALI's joint discriminator; ALI's encoder
   a Gaussian), beside VEEGAN's Table 2 (stacked MNIST).
Measurements are the ones a training run reports (app/jobs/train.py): `generated_modes` with its
count from the data's known modes (app/gan/evaluation.py: 2,500 samples on 2D data, VEEGAN's
count; 26,000 on stacked digits, PacGAN's; 10,000 here before) and the run's seed, with the
generators in eval mode, as an audit samples them. Nothing is asserted: this prints.

The audit (`AuditApp`) goes through the app's REST API in-process (FastAPI's TestClient
over `create_app(settings)` in a scratch directory), with only the binding endpoints: upload
the trained generator as safetensors (`POST /api/generators`), `POST /api/audits` (pixels or
digits embedder), poll `GET /api/audits/{id}`, read the pool's PNGs (`GET .../samples/{i}.png`), answer
`GET .../next-pair?annotator=oracle` until 204 with `POST /api/pairs/{id}/judgements`, read
`GET .../estimate`. The annotator is an oracle: a pair is a duplicate iff the digit classifier
reads the same class triple in both PNGs (its argmax per channel, with no confidence cut: the
papers' and the table's "modes captured" convention; only ~5% of these 8x8 samples have all
three digits at p >= 0.9, so a cut would call nearly every pair distinct). The oracle N_eff is
C(n, 2) / D with D = sum_c C(n_c, 2) over the same pool's histogram (Simpson's unbiased q_hat):
the best any labelling of that pool could do.

Pixel distance says little about the class triple: two 7-3-1 samples in different handwriting
are far apart (measured once on the seed-0 generators of d_width 0.25 and 1, pools of 1,000:
the 5 nearest neighbours, 0.7% of the pairs, hold 7-8% of the same-triple pairs; the 100
nearest, 13% of the pairs, 48-50%). So the pixels pool is kept small enough that the miner's
k = 100 neighbours propose nearly every pair: n = 120 gives C(120, 2) / N_eff ~ 20-40 duplicate
pairs at the N_eff of these generators (n ~ sqrt(2 m N_eff) for m duplicate pairs); --audit-n
and --audit-neighbours change it.

The digits embedder (`app/embed/digits.py`) embeds a sample as the same classifier's class
probabilities per channel, so same-triple pairs are near (measured once, not by this bench: same
generators, pools of 1,000, the 10 nearest neighbours propose 73-90% of the same-triple pairs,
the closest 1% of all pairs hold 91-98% of them). Its pool is larger, n = 300 with k = 10 (~110-230 duplicate pairs at N_eff
200-400); --digits-n and --digits-neighbours change it, --embedder picks one embedder. The
embedder is the oracle's own classifier, so this is the best case for an audit: it shows what
the review design does when the embedding ranks the duplicates first, not how well a generic
embedder would find stacked-digit modes.

    python bench/zoo.py --quick          # ~3 minutes on 2 cores
    python bench/zoo.py                  # ~14 minutes on 2 cores
    python bench/zoo.py --only stacked --classifier /tmp/digits.safetensors
    python bench/zoo.py --only stacked --stacked-data stacked_mnist --quick   # MNIST at 32x32
"""

from __future__ import annotations

import argparse
import io
import math
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.estimate.across_runs import PoolCount, cell_means, width_trend
from app.estimate.simpson import SupportEstimate, estimate_support
from app.gan.checkpoint import save_generator
from app.gan.datasets import make_dataset
from app.gan.digit_classifier import (
    DATASET_DIGITS,
    DIGIT_SETS,
    digit_probabilities,
    load_or_train_digit_classifier,
)
from app.gan.evaluation import ModeReport, generated_modes, measure_modes, mode_samples
from app.gan.metrics import CurveCoverage, DigitModeCoverage, ModeCoverage
from app.gan.training import TrainConfig, TrainFinished, paper_loop, train
from app.main import create_app
from app.settings import Settings

# VEEGAN's Table 1: modes captured (high-quality %) with 2,500 samples
VEEGAN_TABLE = {
    "ring8": {
        "GAN": (1.0, 99.3),
        "ALI": (2.8, 0.13),
        "Unrolled GAN": (7.6, 35.6),
        "VEEGAN": (8.0, 52.9),
    },
    "grid25": {
        "GAN": (3.3, 0.5),
        "ALI": (15.8, 1.6),
        "Unrolled GAN": (23.6, 16.0),
        "VEEGAN": (24.6, 40.0),
    },
}
# VEEGAN's Table 2 (stacked MNIST, 1,000 modes; their DCGAN-style networks with the smaller
# discriminator of the Unrolled GAN paper's setup): modes captured, KL to uniform. Quoted as read
# in the paper; the text is not on this machine to check against.
VEEGAN_TABLE_2 = {
    "GAN": (99.0, 3.4),
    "ALI": (16.0, 5.4),
    "Unrolled GAN": (48.7, 4.32),
    "VEEGAN": (150.0, 2.95),
}
METHODS = {  # our loss name -> (label, the row of VEEGAN's table it corresponds to)
    "sgan_nonsaturating": ("SGAN", "GAN"),
    "sgan_saturating": ("SGAN, saturating G loss", None),
    "lsgan": ("LSGAN", None),
    "wgan_gp": ("WGAN-GP", None),
    "hinge": ("hinge", None),
    "rsgan": ("RSGAN", None),
    "rasgan": ("RaSGAN", None),
    "ralsgan": ("RaLSGAN", None),
    "rahingegan": ("RaHingeGAN", None),
    "rsgan_gp": ("RSGAN-GP", None),
    "rasgan_gp": ("RaSGAN-GP", None),
    "veegan": ("VEEGAN", "VEEGAN"),
    "bigan": ("BiGAN", None),  # a deterministic encoder
    "ali": ("ALI", "ALI"),  # BiGAN with ALI's Gaussian encoder
}


@dataclass(frozen=True)
class ToyMethod:
    """A row of the 2D table: a loss, trained with the table's shared loop unless `loop` says
    otherwise (WGAN-GP also with its paper's: 5 critic steps, Adam 1e-4, betas (0, 0.9))."""

    key: str
    loss: str
    label: str
    theirs: str | None
    loop: tuple[tuple[str, object], ...] = ()


TOY_METHODS = [
    *(ToyMethod(loss, loss, label, theirs) for loss, (label, theirs) in METHODS.items()),
    ToyMethod(
        "wgan_gp_paper",
        "wgan_gp",
        "WGAN-GP, its paper's loop",
        None,
        tuple(paper_loop("wgan_gp").items()),  # 5 critic steps, Adam 1e-4, betas (0, 0.9)
    ),
    # lambda 0.1, as WGAN-GP's own toy code (gan_toy.py: "smaller lambda seems to help for toy
    # tasks specifically"), with that code's loop: 5 critic steps, Adam 1e-4, betas (0.5, 0.9)
    ToyMethod(
        "wgan_gp_toy",
        "wgan_gp",
        "WGAN-GP, its toy code's loop, λ 0.1",
        None,
        (("d_steps", 5), ("lr", 1e-4), ("betas", (0.5, 0.9)), ("gp_weight", 0.1)),
    ),
    *(
        ToyMethod(f"{loss}_l01", loss, f"{label}, λ 0.1", None, (("gp_weight", 0.1),))
        for loss, label in (
            ("wgan_gp", "WGAN-GP"),
            ("rsgan_gp", "RSGAN-GP"),
            ("rasgan_gp", "RaSGAN-GP"),
        )
    ),
]


@dataclass(frozen=True)
class Scale:
    seeds: tuple[int, ...]
    toy_steps: int
    latent_seeds: tuple[int, ...]
    latent_steps: int
    stacked_seeds: tuple[int, ...]
    stacked_steps: int


QUICK = Scale((0, 1), 1500, (0,), 1500, (0,), 1000)
FULL = Scale((0, 1, 2), 5000, (0, 1, 2), 3000, (0, 1, 2), 3000)
AUDIT_N = 120  # pixels audit pool: ~20-40 duplicate pairs at these generators' N_eff (~150-400)
AUDIT_NEIGHBOURS = 100  # the API's largest k: with n = 120 the miner proposes ~every pair
DIGITS_N = 300
DIGITS_NEIGHBOURS = 10
AUDIT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class AuditPlan:
    embedder: str = "pixels"  # "pixels" or "digits" (the digit classifier's probabilities)
    n: int = AUDIT_N
    neighbours: int = AUDIT_NEIGHBOURS


def toy_config(
    dataset: str, loss: str, latent_dim: int, steps: int, seed: int, **loop: Any
) -> TrainConfig:
    """MLPs of 2 x 128 units; Adam at 1e-3 with batches of 128 to get far in few CPU steps."""
    settings: dict[str, Any] = {
        "lr": 1e-3,
        "batch_size": 128,
        "architecture_options": {"hidden": 128, "depth": 2},
        "sample_every": 0,
    }
    return TrainConfig(
        dataset=dataset,
        loss=loss,
        latent_dim=latent_dim,
        steps=steps,
        seed=seed,
        **(settings | loop),
    )


def stacked_config(
    d_width: float,
    steps: int,
    seed: int,
    dataset: str = "stacked_digits",
    loss: str = "sgan_nonsaturating",
) -> TrainConfig:
    """DCGAN at the dataset's side (8x8 stacked digits: one stride-2 stage each way; 32x32
    stacked MNIST: three), base width 64, DCGAN's Adam settings; VEEGAN, BiGAN and ALI add a
    convolutional encoder and a joint discriminator (app/gan/joint.py)."""
    return TrainConfig(
        dataset=dataset,
        architecture="dcgan",
        loss=loss,
        latent_dim=100,
        d_width=d_width,
        architecture_options={"base_width": 64},
        steps=steps,
        seed=seed,
        lr=2e-4,
        batch_size=64,
        sample_every=0,
    )


def trained(config: TrainConfig) -> TrainFinished:
    return next(e for e in train(config) if isinstance(e, TrainFinished))


def measured(
    config: TrainConfig, done: TrainFinished, classifier: torch.nn.Module | None
) -> ModeReport:
    """The mode metrics a training run of `config` reports (app/jobs/train.py): the product's
    sample count for the data's known modes (`mode_samples`) and the run's seed."""
    dataset = make_dataset(config.dataset, **config.dataset_options)
    latent_dim = done.options["latent_dim"]
    return generated_modes(dataset, done.generator, latent_dim, config.seed, classifier)


def trained_report(config: TrainConfig, classifier: torch.nn.Module | None) -> ModeReport:
    return measured(config, trained(config), classifier)


def thousands(n: int) -> str:
    """26000 -> "26k", for the tables' headers."""
    return f"{n / 1000:g}k"


def simpson_n_eff(counts: Sequence[int]) -> float:
    """C(n, 2) / sum_c C(n_c, 2): 1 / Simpson's unbiased q_hat; inf when no two samples share a mode."""
    n = sum(counts)
    duplicates = sum(c * (c - 1) // 2 for c in counts)
    return math.inf if duplicates == 0 else n * (n - 1) / 2 / duplicates


@dataclass(frozen=True)
class AuditResult:
    """What an audit of one generator said, beside what the oracle knows about the same pool."""

    n_eff: float | None  # the audit's estimate; None while no duplicate is confirmed
    low: float | None  # its 95% interval
    high: float | None  # None: no upper bound
    labels: int  # judgements the review queue asked for before it said stop (204)
    duplicates: int  # pairs confirmed duplicate (closure included), as the estimate reports
    candidates: int  # candidate pairs the miner proposed, of C(n, 2)
    oracle_n_eff: float  # C(n, 2) / D from the classifier's modes of the whole pool
    oracle_duplicates: int  # D: same-mode pairs in the pool


class AuditApp:
    """The app in-process over a scratch directory, driven only through its REST API."""

    def __init__(
        self,
        scratch: Path,
        classifier: torch.nn.Module,
        classifier_path: Path | None = None,
        digits: str = "sklearn",
    ) -> None:
        self.scratch = scratch
        self.classifier = classifier
        self.digits = digits
        settings = Settings(
            data_dir=scratch / "data", models_dir=scratch / "models", resume_jobs=False
        )
        if classifier_path is not None:
            # the digits embedder loads the classifier from here; a copy saves training it again
            cached = settings.models_dir / DIGIT_SETS[digits].cache_file
            cached.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(classifier_path, cached)
        # a loopback name: a server without tokens answers to no other Host
        self.client = TestClient(create_app(settings), base_url="http://127.0.0.1")

    def __enter__(self) -> AuditApp:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    def _ok(self, response: Any, status: int) -> Any:
        if response.status_code != status:
            raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def upload(self, name: str, done: TrainFinished) -> int:
        """Save the generator as a user would (safetensors with its architecture) and upload it."""
        path = self.scratch / f"{name}.safetensors"
        save_generator(path, done.generator.cpu(), done.architecture, done.options)
        with path.open("rb") as file:
            response = self.client.post(
                "/api/generators",
                data={"name": name, "format": "safetensors"},
                files={"file": (path.name, file, "application/octet-stream")},
            )
        return int(self._ok(response, 201)["id"])

    def modes(self, audit_id: int, n: int) -> np.ndarray:
        """The classifier's class triple (0-999) of each pool sample, read from its PNG."""
        images = []
        for i in range(n):
            response = self.client.get(f"/api/audits/{audit_id}/samples/{i}.png")
            if response.status_code != 200:
                raise RuntimeError(
                    f"sample {i} of audit {audit_id} has no stored PNG ({response.status_code}): "
                    "the pool is too large for the miner to propose a pair with every sample"
                )
            pixels = np.asarray(Image.open(io.BytesIO(response.content)), dtype=np.float32)
            images.append(torch.from_numpy(pixels).permute(2, 0, 1) / 127.5 - 1)
        probabilities = digit_probabilities(self.classifier, torch.stack(images))
        weights = torch.tensor([100, 10, 1])
        return (probabilities.argmax(dim=2) * weights).sum(dim=1).numpy()

    def audit(self, generator_id: int, plan: AuditPlan, seed: int) -> AuditResult:
        n = plan.n
        body = {
            "generator_id": generator_id,
            "n": n,
            "embedder": plan.embedder,
            "neighbours": plan.neighbours,
            "seed": seed,
        }
        if plan.embedder == "digits":  # an uploaded generator: its training data is not known
            body["embedder_options"] = {"classifier": self.digits}
        audit_id = int(self._ok(self.client.post("/api/audits", json=body), 202)["id"])
        deadline = time.monotonic() + AUDIT_TIMEOUT_S
        while (audit := self._ok(self.client.get(f"/api/audits/{audit_id}"), 200))["status"] in (
            "queued",
            "running",
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"audit {audit_id} still {audit['status']} after the timeout")
            time.sleep(0.1)
        if audit["status"] != "done":
            raise RuntimeError(f"audit {audit_id} {audit['status']}: {audit.get('error')}")
        modes = self.modes(audit_id, n)
        labels = 0
        while True:
            response = self.client.get(
                f"/api/audits/{audit_id}/next-pair", params={"annotator": "oracle"}
            )
            if response.status_code == 204:
                break
            pair = self._ok(response, 200)
            label = "duplicate" if modes[pair["i"]] == modes[pair["j"]] else "distinct"
            self._ok(
                self.client.post(
                    f"/api/pairs/{pair['id']}/judgements",
                    json={"label": label, "annotator": "oracle"},
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                ),
                201,
            )
            labels += 1
        estimate = self._ok(self.client.get(f"/api/audits/{audit_id}/estimate"), 200)
        counts = np.bincount(modes, minlength=1000).tolist()
        return AuditResult(
            n_eff=estimate["n_eff"],
            low=estimate["n_eff_low"],
            high=estimate["n_eff_high"],
            labels=labels,
            duplicates=estimate["duplicate_pairs"],
            candidates=estimate["candidate_pairs"],
            oracle_n_eff=simpson_n_eff(counts),
            oracle_duplicates=sum(c * (c - 1) // 2 for c in counts),
        )


def figure(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.0f}"


def audited_cell(result: AuditResult) -> str:
    """The audit's N_eff, or its lower bound when it confirmed no duplicate."""
    return figure(result.n_eff) if result.n_eff is not None else f">= {figure(result.low)}"


def covers(result: AuditResult, truth: float) -> bool:
    return (
        result.low is not None
        and result.low <= truth
        and (result.high is None or truth <= result.high)
    )


def paper_cell(model: str, figures: tuple[float, float]) -> str:
    return f"{model}: {figures[0]:g} ({figures[1]:g}%)"


def mean_sd(values: Sequence[float], digits: int = 1) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def runs(
    configs: Sequence[TrainConfig], classifier: torch.nn.Module | None = None
) -> list[ModeReport]:
    return [trained_report(c, classifier) for c in configs]


def toy_table(scale: Scale, only: Sequence[str] | None = None) -> str:
    """Every loss on both mixtures with one shared loop (`only`: these rows' keys alone)."""
    methods = [m for m in TOY_METHODS if only is None or m.key in only]
    rows = []
    for dataset in ("ring8", "grid25"):
        n_modes = make_dataset(dataset).n_modes
        for method in methods:
            label, theirs = method.label, method.theirs
            reports = runs(
                [
                    toy_config(dataset, method.loss, 2, scale.toy_steps, s, **dict(method.loop))
                    for s in scale.seeds
                ]
            )
            modes = [r.modes_captured for r in reports if isinstance(r, ModeCoverage)]
            quality = [
                100 * r.high_quality_fraction for r in reports if isinstance(r, ModeCoverage)
            ]
            paper = VEEGAN_TABLE[dataset].get(theirs or "", None)
            rows.append(
                [
                    f"{dataset} ({n_modes})",
                    label,
                    mean_sd(modes),
                    mean_sd(quality),
                    "" if paper is None or theirs is None else paper_cell(theirs, paper),
                ]
            )
            print(
                f"  {dataset} {label}: modes {modes}, high quality % {[round(q, 1) for q in quality]}",
                flush=True,
            )
        rows.append(
            [
                f"{dataset} ({n_modes})",
                "Unrolled GAN (not run)",
                "",
                "",
                paper_cell("Unrolled GAN", VEEGAN_TABLE[dataset]["Unrolled GAN"]),
            ]
        )
    header = ["data", "model", "modes captured", "high quality %", "VEEGAN's Table 1"]
    return table(header, rows)


def models_table(scale: Scale, classifier_path: Path, data: str = "stacked_digits") -> str:
    """SGAN, VEEGAN, BiGAN and ALI on stacked digits with DCGAN networks at width 1: modes
    captured, KL to uniform, the confident fraction and N_eff from the product's count of
    classified samples (26,000 for 1,000 modes)."""
    classifier = load_or_train_digit_classifier(classifier_path, digits=DATASET_DIGITS[data])
    count = thousands(mode_samples(make_dataset(data).n_modes))
    rows = []
    for loss in ("sgan_nonsaturating", "veegan", "bigan", "ali"):
        label, theirs = METHODS[loss]
        modes, kl, confident, n_eff = [], [], [], []
        for seed in scale.stacked_seeds:
            config = stacked_config(1.0, scale.stacked_steps, seed, data, loss)
            report = trained_report(config, classifier.model)
            assert isinstance(report, DigitModeCoverage)
            modes.append(float(report.modes_captured))
            kl.append(report.kl_to_uniform)
            confident.append(100 * report.confident_fraction)
            n_eff.append(simpson_n_eff(report.counts))
            print(
                f"  {label} seed {seed}: modes {report.modes_captured}, KL "
                f"{report.kl_to_uniform:.3f}, N_eff({count}) {n_eff[-1]:.0f}",
                flush=True,
            )
        paper = VEEGAN_TABLE_2.get(theirs or "")
        rows.append(
            [
                label,
                mean_sd(modes),
                mean_sd(kl, 3),
                mean_sd(confident),
                mean_sd(n_eff, 0),
                "" if paper is None else f"{theirs}: {paper[0]:g} modes, KL {paper[1]:g}",
            ]
        )
    rows.append(["Unrolled GAN (not run)", "", "", "", "", "Unrolled GAN: 48.7 modes, KL 4.32"])
    header = [
        "model (DCGAN networks, D width 1)",
        "modes captured (of 1000)",
        "KL to uniform",
        "confident %",
        f"N_eff, {count} samples",
        "VEEGAN's Table 2 (stacked MNIST)",
    ]
    return table(header, rows)


def latent_table(scale: Scale) -> str:
    rows = []
    for latent in (1, 2, 3, 10):
        cells = [str(latent)]
        for dataset in ("ring8", "spiral"):
            reports = runs(
                [
                    toy_config(dataset, "sgan_nonsaturating", latent, scale.latent_steps, s)
                    for s in scale.latent_seeds
                ]
            )
            if dataset == "ring8":
                covered = [float(r.modes_captured) for r in reports if isinstance(r, ModeCoverage)]
            else:
                covered = [
                    float(r.segments_captured) for r in reports if isinstance(r, CurveCoverage)
                ]
            quality = [
                100 * r.high_quality_fraction
                for r in reports
                if not isinstance(r, DigitModeCoverage)
            ]
            cells += [mean_sd(covered), mean_sd(quality)]
            print(
                f"  latent {latent} {dataset}: covered {covered}, high quality % {[round(q, 1) for q in quality]}",
                flush=True,
            )
        rows.append(cells)
    header = [
        "latent",
        "ring: modes of 8",
        "ring: high quality %",
        "spiral: segments of 20",
        "spiral: high quality %",
    ]
    return table(header, rows)


def covers_cell(results: Sequence[AuditResult], truths: Sequence[float]) -> str:
    hits = sum(covers(r, t) for r, t in zip(results, truths, strict=True))
    return f"{hits} / {len(results)}"


def stacked_table(
    scale: Scale,
    classifier_path: Path,
    scratch: Path,
    plans: Sequence[AuditPlan],
    data: str = "stacked_digits",
) -> str:
    digits = DATASET_DIGITS[data]
    classifier = load_or_train_digit_classifier(classifier_path, digits=digits)
    print(
        f"  {digits} digit classifier: held-out accuracy {classifier.held_out_accuracy:.3f}",
        flush=True,
    )
    dataset = make_dataset(data)
    n = mode_samples(dataset.n_modes)  # the product's count: 26,000 for 1,000 modes
    count = thousands(n)
    reference_name = f"N_eff, {count} samples"
    real, _ = dataset.sample(n, torch.Generator().manual_seed(0))
    reference = measure_modes(dataset, real, classifier.model)
    assert isinstance(reference, DigitModeCoverage)
    summary = [
        [
            "real data",
            "",
            str(reference.modes_captured),
            f"{reference.kl_to_uniform:.3f}",
            f"{100 * reference.confident_fraction:.1f}",
            figure(simpson_n_eff(reference.counts)),
            *[""] * (2 * len(plans)),
        ]
    ]
    per_run = []
    # log N_eff per run, for N_eff ~ width^b: the reference's, and each audit plan's.
    points: dict[str, list[PoolCount]] = {reference_name: []}
    points.update({plan_name(plan): [] for plan in plans})
    with AuditApp(scratch / "app", classifier.model, classifier_path, digits) as app:
        for d_width in (0.25, 0.5, 1.0):
            modes, kl, confident, n_eff = [], [], [], []
            results: dict[AuditPlan, list[AuditResult]] = {plan: [] for plan in plans}
            for seed in scale.stacked_seeds:
                config = stacked_config(d_width, scale.stacked_steps, seed, data)
                done = trained(config)
                report = measured(config, done, classifier.model)
                assert isinstance(report, DigitModeCoverage)
                modes.append(float(report.modes_captured))
                kl.append(report.kl_to_uniform)
                confident.append(100 * report.confident_fraction)
                n_eff.append(simpson_n_eff(report.counts))
                points[reference_name].append(
                    log_point(d_width, estimate_support(n, [c for c in report.counts if c]))
                )
                print(
                    f"  d_width {d_width} seed {seed}: modes {report.modes_captured}, KL "
                    f"{report.kl_to_uniform:.3f}, N_eff({count}) {n_eff[-1]:.0f}",
                    flush=True,
                )
                generator_id = app.upload(f"{data}_dw{d_width:g}_seed{seed}", done)
                for plan in plans:
                    # the same pool seed: the pixels pool is the first samples of the digits pool
                    result = app.audit(generator_id, plan, seed=20_000 + seed)
                    results[plan].append(result)
                    if result.n_eff is not None and result.low and result.high is not None:
                        points[plan_name(plan)].append(
                            PoolCount.from_interval(
                                d_width, d_width, result.n_eff, result.low, result.high, 0.95
                            )
                        )
                    elif result.n_eff is None and result.low:  # no duplicate: a count of 0
                        points[plan_name(plan)].append(
                            PoolCount.from_empty_pool(d_width, d_width, result.low, 0.95)
                        )
                    interval = f"[{figure(result.low)}, {figure(result.high)}]"
                    per_run.append(
                        [
                            f"d_width {d_width:g}",
                            str(seed),
                            figure(n_eff[-1]),
                            f"{plan.embedder}, n={plan.n}, k={plan.neighbours}",
                            f"{audited_cell(result)} {interval}",
                            "yes" if covers(result, n_eff[-1]) else "no",
                            figure(result.oracle_n_eff),
                            "yes" if covers(result, result.oracle_n_eff) else "no",
                            f"{result.duplicates} / {result.oracle_duplicates}",
                            str(result.labels),
                            f"{result.candidates} / {plan.n * (plan.n - 1) // 2}",
                        ]
                    )
                    print(
                        f"    {plan.embedder} audit n={plan.n} k={plan.neighbours}: N_eff "
                        f"{audited_cell(result)} {interval} from {result.labels} labels, "
                        f"{result.duplicates} duplicate pairs; oracle N_eff "
                        f"{figure(result.oracle_n_eff)} (D = {result.oracle_duplicates})",
                        flush=True,
                    )
            audit_cells = []
            for plan in plans:
                done_audits = results[plan]
                oracles = [r.oracle_n_eff for r in done_audits]
                audit_cells += [
                    "; ".join(audited_cell(r) for r in done_audits),
                    f"{covers_cell(done_audits, n_eff)}; {covers_cell(done_audits, oracles)}",
                ]
            summary.append(
                [
                    f"d_width {d_width:g}",
                    str(round(64 * d_width)),
                    mean_sd(modes),
                    mean_sd(kl, 3),
                    mean_sd(confident),
                    mean_sd(n_eff, 0),
                    *audit_cells,
                ]
            )
    header = [
        "generator",
        "D channels",
        "modes captured (of 1000)",
        "KL to uniform",
        "confident %",
        reference_name,
    ]
    for plan in plans:
        header += [
            f"{plan.embedder} audit, n={plan.n}: N_eff per seed",
            f"{plan.embedder}: 95% covers {count}; oracle",
        ]
    runs_header = [
        "generator",
        "seed",
        reference_name,
        "audit",
        "audited N_eff [95%]",
        f"covers {count}",
        "oracle, same pool",
        "covers oracle",
        "duplicate pairs: audit / oracle",
        "labels",
        "candidate pairs",
    ]
    runs_total = len(scale.stacked_seeds) * 3
    return (
        table(header, summary)
        + "\n\n"
        + table(runs_header, per_run)
        + "\n\n"
        + width_table(points, runs_total)
    )


def plan_name(plan: AuditPlan) -> str:
    return f"{plan.embedder} audits, n={plan.n}"


def log_point(d_width: float, estimate: SupportEstimate) -> PoolCount:
    assert estimate.n_eff is not None and estimate.n_eff_high is not None
    return PoolCount.from_interval(
        d_width, d_width, estimate.n_eff, estimate.n_eff_low, estimate.n_eff_high, estimate.level
    )


def width_table(points: dict[str, list[PoolCount]], runs_total: int) -> str:
    """The paper's question as a fitted exponent, the way a sweep's support figure fits it
    (app/services/sweep_support.py): a Poisson-lognormal fit of each audit's duplicate count
    with log N_eff linear in log width, each cell a geometric mean over its seeds with the
    between-seed variance; a pool with no duplicate enters as a count of 0."""
    rows = []
    for name, runs in points.items():
        widths = sorted({r.width for r in runs if r.has_duplicates})
        pinned = {r.cell for r in runs if r.has_duplicates}
        with_duplicates = [r for r in runs if r.cell in pinned]
        cells = {c.cell: c for c in cell_means(with_duplicates).cells} if with_duplicates else {}
        by_width = [
            (
                f"{support_figure(cells[w].n_eff)} [{support_figure(cells[w].n_eff_low)}, "
                f"{support_figure(cells[w].n_eff_high)}]"
                if w in cells
                else "-"
            )
            for w in (0.25, 0.5, 1.0)
        ]
        if len(widths) >= 2 and len(runs) >= 3:
            t = width_trend(runs)
            trend = [f"{t.exponent:.2f} [{t.low:.2f}, {t.high:.2f}]", f"{t.p_value:.2g}"]
            trend.append(f"{t.tau:.2f}")
        else:
            trend = ["- (needs 3 runs, duplicates at 2 widths)", "", ""]
        rows.append([name, f"{len(runs)} / {runs_total}", *by_width, *trend])
    header = [
        "figure",
        "runs in the figure",
        "d_width 0.25: N_eff [95%]",
        "d_width 0.5",
        "d_width 1",
        "b in N_eff ~ width^b [95%]",
        "p (b = 0)",
        "between-seed sd of log N_eff",
    ]
    return table(header, rows)


def support_figure(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer seeds and steps (~3 minutes)")
    parser.add_argument(
        "--only",
        choices=["toy", "latent", "stacked", "models"],
        action="append",
        help="run only these tables",
    )
    parser.add_argument(
        "--toy-methods",
        type=lambda v: [k.strip() for k in v.split(",") if k.strip()],
        help="the 2D table's rows to run, comma-separated keys (default: all: "
        + ", ".join(m.key for m in TOY_METHODS)
        + ")",
    )
    parser.add_argument(
        "--classifier", type=Path, help="digit-classifier cache (default: a temporary file)"
    )
    parser.add_argument(
        "--stacked-data",
        choices=["stacked_digits", "stacked_mnist"],
        default="stacked_digits",
        help="the stacked table's data: sklearn digits at 8x8 (default) or MNIST at 32x32",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (tiny networks: 1 is fastest)"
    )
    parser.add_argument(
        "--embedder",
        choices=["pixels", "digits"],
        action="append",
        help="audit stacked digits with only these embedders (default: both)",
    )
    parser.add_argument(
        "--audit-n", type=int, default=AUDIT_N, help="pool size of each pixels audit"
    )
    parser.add_argument(
        "--audit-neighbours",
        type=int,
        default=AUDIT_NEIGHBOURS,
        help="k of the pixels audit's k-NN candidate search (the API allows up to 100)",
    )
    parser.add_argument(
        "--digits-n", type=int, default=DIGITS_N, help="pool size of each digits audit"
    )
    parser.add_argument(
        "--digits-neighbours",
        type=int,
        default=DIGITS_NEIGHBOURS,
        help="k of the digits audit's k-NN candidate search",
    )
    args = parser.parse_args(argv)
    unknown = set(args.toy_methods or []) - {m.key for m in TOY_METHODS}
    if unknown:
        parser.error(f"unknown --toy-methods: {', '.join(sorted(unknown))}")
    sizes = {
        "pixels": (args.audit_n, args.audit_neighbours),
        "digits": (args.digits_n, args.digits_neighbours),
    }
    plans = [AuditPlan(e, *sizes[e]) for e in args.embedder or ["pixels", "digits"]]
    torch.set_num_threads(args.threads)
    scale = QUICK if args.quick else FULL
    sections = args.only or ["toy", "latent", "stacked", "models"]
    side = (
        make_dataset(args.stacked_data).sample_shape[-1]
        if {"stacked", "models"} & set(sections)
        else 0
    )
    with tempfile.TemporaryDirectory() as scratch:
        classifier_path = args.classifier or Path(scratch) / "digits.safetensors"
        tables: dict[str, Callable[[], str]] = {
            "toy": lambda: toy_table(scale, args.toy_methods),
            "latent": lambda: latent_table(scale),
            "stacked": lambda: stacked_table(
                scale, classifier_path, Path(scratch), plans, args.stacked_data
            ),
            "models": lambda: models_table(scale, classifier_path, args.stacked_data),
        }
        titles = {
            "toy": f"2D mixtures: {len(scale.seeds)} seeds x {scale.toy_steps} steps, latent 2",
            "latent": f"latent size, SGAN: {len(scale.latent_seeds)} seeds x {scale.latent_steps} steps",
            "stacked": f"{args.stacked_data} vs discriminator width, DCGAN {side}x{side}: {len(scale.stacked_seeds)} seeds x {scale.stacked_steps} steps; audits: "
            + "; ".join(f"{p.embedder} n={p.n}, k={p.neighbours}" for p in plans),
            "models": f"{args.stacked_data}, SGAN / VEEGAN / BiGAN / ALI with DCGAN {side}x{side} networks: {len(scale.stacked_seeds)} seeds x {scale.stacked_steps} steps",
        }
        for name in sections:
            start = time.perf_counter()
            print(f"## {titles[name]}", flush=True)
            text = tables[name]()
            print(f"\n{text}\n({time.perf_counter() - start:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
