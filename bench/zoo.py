"""Mode collapse of the built-in GANs on data with known modes, at CPU scale.

Three tables, each a mean ± sd over seeds (every run is deterministic given its seed):
1. modes captured and the high-quality fraction on the 2D ring of 8 and grid of 25 for SGAN,
   RSGAN, RaSGAN, VEEGAN and BiGAN/ALI, beside the figures of VEEGAN's Table 1 (Srivastava et al.
   2017; there the networks trained far longer, on a GPU);
2. the latent size (1, 2, 3, 10) of an SGAN on the ring and on the spiral (a 1-D curve, cut into
   20 equally likely segments);
3. stacked digits (1,000 modes) against the discriminator's width (d_width 0.25, 0.5, 1): modes
   captured, KL to uniform and the confident fraction, from our digit classifier.
Measurements use 2,500 samples on 2D data (VEEGAN's count) and 10,000 on stacked digits, with
the generators in eval mode, as an audit samples them. Nothing is asserted: this prints.

    python bench/zoo.py --quick          # ~5 minutes on 2 cores
    python bench/zoo.py                  # ~20-30 minutes on 2 cores
    python bench/zoo.py --only stacked --classifier /tmp/digits.safetensors
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from app.gan.datasets import make_dataset
from app.gan.digit_classifier import load_or_train_digit_classifier
from app.gan.evaluation import ModeReport, generate, measure_modes
from app.gan.metrics import CurveCoverage, DigitModeCoverage, ModeCoverage
from app.gan.training import TrainConfig, TrainFinished, train

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
METHODS = {  # our loss name -> (label, the row of VEEGAN's table it corresponds to)
    "sgan_nonsaturating": ("SGAN", "GAN"),
    "rsgan": ("RSGAN", None),
    "rasgan": ("RaSGAN", None),
    "veegan": ("VEEGAN", "VEEGAN"),
    "bigan": ("BiGAN/ALI", "ALI"),
}


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


def toy_config(dataset: str, loss: str, latent_dim: int, steps: int, seed: int) -> TrainConfig:
    """MLPs of 2 x 128 units; Adam at 1e-3 with batches of 128 to get far in few CPU steps."""
    return TrainConfig(
        dataset=dataset,
        loss=loss,
        latent_dim=latent_dim,
        steps=steps,
        seed=seed,
        lr=1e-3,
        batch_size=128,
        architecture_options={"hidden": 128, "depth": 2},
        sample_every=0,
    )


def stacked_config(d_width: float, steps: int, seed: int) -> TrainConfig:
    """DCGAN at 8x8 (one stride-2 stage each way), base width 64, DCGAN's Adam settings."""
    return TrainConfig(
        dataset="stacked_digits",
        architecture="dcgan",
        loss="sgan_nonsaturating",
        latent_dim=100,
        d_width=d_width,
        architecture_options={"base_width": 64},
        steps=steps,
        seed=seed,
        lr=2e-4,
        batch_size=64,
        sample_every=0,
    )


def trained_report(config: TrainConfig, n: int, classifier: torch.nn.Module | None) -> ModeReport:
    done = next(e for e in train(config) if isinstance(e, TrainFinished))
    samples = generate(done.generator, done.options["latent_dim"], n, seed=10_000 + config.seed)
    dataset = make_dataset(config.dataset, **config.dataset_options)
    return measure_modes(dataset, samples, classifier)


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
    configs: Sequence[TrainConfig], n: int, classifier: torch.nn.Module | None = None
) -> list[ModeReport]:
    return [trained_report(c, n, classifier) for c in configs]


def toy_table(scale: Scale) -> str:
    rows = []
    for dataset in ("ring8", "grid25"):
        n_modes = make_dataset(dataset).n_modes
        for loss, (label, theirs) in METHODS.items():
            reports = runs(
                [toy_config(dataset, loss, 2, scale.toy_steps, s) for s in scale.seeds],
                2500,
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


def latent_table(scale: Scale) -> str:
    rows = []
    for latent in (1, 2, 3, 10):
        cells = [str(latent)]
        for dataset in ("ring8", "spiral"):
            reports = runs(
                [
                    toy_config(dataset, "sgan_nonsaturating", latent, scale.latent_steps, s)
                    for s in scale.latent_seeds
                ],
                2500,
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


def stacked_table(scale: Scale, classifier_path: Path) -> str:
    trained = load_or_train_digit_classifier(classifier_path)
    print(f"  digit classifier: held-out accuracy {trained.held_out_accuracy:.3f}", flush=True)
    dataset = make_dataset("stacked_digits")
    real, _ = dataset.sample(10_000, torch.Generator().manual_seed(0))
    reference = measure_modes(dataset, real, trained.model)
    assert isinstance(reference, DigitModeCoverage)
    rows = [
        [
            "real data",
            "",
            str(reference.modes_captured),
            f"{reference.kl_to_uniform:.3f}",
            f"{100 * reference.confident_fraction:.1f}",
        ]
    ]
    for d_width in (0.25, 0.5, 1.0):
        reports = [
            r
            for r in runs(
                [stacked_config(d_width, scale.stacked_steps, s) for s in scale.stacked_seeds],
                10_000,
                trained.model,
            )
            if isinstance(r, DigitModeCoverage)
        ]
        modes = [float(r.modes_captured) for r in reports]
        kl = [r.kl_to_uniform for r in reports]
        confident = [100 * r.confident_fraction for r in reports]
        ndf = round(64 * d_width)
        rows.append(
            [f"d_width {d_width:g}", str(ndf), mean_sd(modes), mean_sd(kl, 3), mean_sd(confident)]
        )
        print(
            f"  d_width {d_width}: modes {modes}, KL {[round(k, 3) for k in kl]}, confident % {[round(c, 1) for c in confident]}",
            flush=True,
        )
    header = ["generator", "D channels", "modes captured (of 1000)", "KL to uniform", "confident %"]
    return table(header, rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer seeds and steps (~5 minutes)")
    parser.add_argument(
        "--only",
        choices=["toy", "latent", "stacked"],
        action="append",
        help="run only these tables",
    )
    parser.add_argument(
        "--classifier", type=Path, help="digit-classifier cache (default: a temporary file)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (tiny networks: 1 is fastest)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = QUICK if args.quick else FULL
    sections = args.only or ["toy", "latent", "stacked"]
    with tempfile.TemporaryDirectory() as scratch:
        classifier_path = args.classifier or Path(scratch) / "digits.safetensors"
        tables: dict[str, Callable[[], str]] = {
            "toy": lambda: toy_table(scale),
            "latent": lambda: latent_table(scale),
            "stacked": lambda: stacked_table(scale, classifier_path),
        }
        titles = {
            "toy": f"2D mixtures: {len(scale.seeds)} seeds x {scale.toy_steps} steps, latent 2",
            "latent": f"latent size, SGAN: {len(scale.latent_seeds)} seeds x {scale.latent_steps} steps",
            "stacked": f"stacked digits vs discriminator width, DCGAN 8x8: {len(scale.stacked_seeds)} seeds x {scale.stacked_steps} steps",
        }
        for name in sections:
            start = time.perf_counter()
            print(f"## {titles[name]}", flush=True)
            text = tables[name]()
            print(f"\n{text}\n({time.perf_counter() - start:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
