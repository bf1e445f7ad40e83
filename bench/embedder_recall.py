"""Which embedder ranks a GAN's duplicates first: pixels or the GAN's own discriminator?

The estimate leans on the miner proposing the duplicate pairs (what it misses is only seen
through a few random pairs, bench/README.md "zoo"). On stacked digits (1,000 known modes, 8x8x3)
pixel distance says little about the class triple, so this bench trains the zoo's DCGANs
(bench/zoo.py's stacked_config, d_width 0.25 / 0.5 / 1), samples a pool from each, and measures
for three embeddings how well an exact k-NN miner finds the pool's duplicate pairs (same class
triple, read by the project's digit classifier: the zoo's oracle):

* `pixels`: flattened pixels (the paper's own near-duplicate search);
* `disc`: the trained discriminator's last hidden layer, L2-normalised
  (app.embed.discriminator, loaded from the file a training run saves);
* `disc-init`: the same architecture with its initial weights: is it the training or the
  architecture's inductive bias that ranks the duplicates?

Per embedding: the precision of the pairs the k nearest neighbours of every sample propose
(k = 5, 10, 50: the share of them that are duplicates), of the closest 1% of all pairs, and the
recall at k = 50 (the share of all duplicate pairs proposed). `base` is the share of all pairs
that are duplicates: the precision of a miner that proposes pairs at random. A collapsed
generator holds more duplicate pairs than n k, so recall is capped there; precision is the
figure that compares embedders. Nothing is asserted.

    python bench/embedder_recall.py --quick   # ~9 minutes on 2 cores (3,000 steps, 1 seed)
    python bench/embedder_recall.py           # ~25 minutes (3 seeds)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.embed.discriminator import DiscriminatorEmbedder  # noqa: E402
from app.gan.checkpoint import save_discriminator  # noqa: E402
from app.gan.digit_classifier import (  # noqa: E402
    digit_probabilities,
    load_or_train_digit_classifier,
)
from app.gan.evaluation import generate  # noqa: E402
from app.gan.registry import build_discriminator  # noqa: E402
from app.gan.training import TrainFinished  # noqa: E402
from bench.zoo import stacked_config, trained  # noqa: E402

KS = (5, 10, 50)
CLOSEST_SHARE = 0.01


def class_triples(classifier: torch.nn.Module, images: torch.Tensor) -> NDArray[np.int64]:
    """The zoo oracle's mode of each sample: argmax class per channel, read as a number."""
    probabilities = digit_probabilities(classifier, images)
    weights = torch.tensor([100, 10, 1])
    return (probabilities.argmax(dim=2) * weights).sum(dim=1).numpy().astype(np.int64)


def squared_distances(rows: NDArray[np.float32]) -> NDArray[np.float64]:
    x = rows.astype(np.float64)
    norms = np.einsum("ij,ij->i", x, x)
    out = norms[:, None] + norms[None, :] - 2 * x @ x.T
    np.fill_diagonal(out, np.inf)
    return np.maximum(out, 0.0)


def ranking(rows: NDArray[np.float32], modes: NDArray[np.int64]) -> list[float]:
    """Precision of the pairs the k nearest neighbours propose (each k), of the closest 1% of all
    pairs, and the recall of the largest k: see the module docstring."""
    n = modes.size
    dist = squared_distances(rows)
    same = modes[:, None] == modes[None, :]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    duplicates = same & upper
    order = np.argsort(dist, axis=1, kind="stable")
    precision, recall = [], 0.0
    for k in KS:
        proposed = np.zeros((n, n), dtype=bool)
        proposed[np.repeat(np.arange(n), k), order[:, :k].ravel()] = True
        proposed = (proposed | proposed.T) & upper  # a pair i < j, found from either side
        hits = int((proposed & duplicates).sum())
        precision.append(hits / int(proposed.sum()))
        recall = hits / int(duplicates.sum())
    flat = dist[upper]
    closest = flat <= np.quantile(flat, CLOSEST_SHARE)
    precision.append(float(same[upper][closest].mean()))
    return [*precision, recall]


def embedders(
    done: TrainFinished, scratch: Path, seed: int
) -> dict[str, Callable[[torch.Tensor], NDArray[np.float32]]]:
    assert done.discriminator is not None
    shape = (done.options["channels"], done.options["image_size"], done.options["image_size"])
    trained_file = scratch / f"disc_{seed}.safetensors"
    save_discriminator(trained_file, done.discriminator, "dcgan", done.options)
    torch.manual_seed(seed)  # the run's own init draws come from a forked RNG; any seed will do
    initial_file = scratch / f"init_{seed}.safetensors"
    save_discriminator(
        initial_file, build_discriminator("dcgan", done.options), "dcgan", done.options
    )
    return {
        "pixels": lambda x: x.reshape(x.shape[0], -1).numpy().astype(np.float32),
        "disc": DiscriminatorEmbedder(trained_file, shape, device="cpu").embed,
        "disc-init": DiscriminatorEmbedder(initial_file, shape, device="cpu").embed,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed instead of 3 (~9 minutes)")
    parser.add_argument("--n", type=int, default=1000, help="pool size per generator")
    parser.add_argument(
        "--classifier", type=Path, help="digit-classifier cache (default: a temporary file)"
    )
    args = parser.parse_args(argv)
    steps, seeds = 3000, ((0,) if args.quick else (0, 1, 2))
    started = time.time()
    header = " ".join(f"p@{k:<3d}" for k in KS) + f" p@{100 * CLOSEST_SHARE:g}%  r@{KS[-1]}"
    print(
        f"# stacked digits, DCGAN 8x8, {steps} steps, pools of {args.n}; duplicates: same class triple"
    )
    print(f"{'d_width':>7s} {'seed':>4s} {'base':>6s} {'embedder':>10s} {header}")
    summary: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.classifier or Path(tmp) / "digits.safetensors"
        classifier = load_or_train_digit_classifier(cache).model
        for d_width in (0.25, 0.5, 1.0):
            for seed in seeds:
                done = trained(stacked_config(d_width, steps, seed))
                pool = generate(
                    done.generator, done.options["latent_dim"], args.n, seed=30_000 + seed
                )
                modes = class_triples(classifier, pool)
                counts = np.bincount(modes)
                base = float((counts * (counts - 1)).sum()) / (args.n * (args.n - 1))
                for name, embed in embedders(done, Path(tmp), seed).items():
                    figures = ranking(embed(pool), modes)
                    summary.setdefault(name, []).append(figures)
                    cells = " ".join(f"{f:5.3f}" for f in figures)
                    print(f"{d_width:7g} {seed:4d} {base:6.3f} {name:>10s} {cells}", flush=True)
    print("# mean over generators")
    for name, rows in summary.items():
        cells = " ".join(f"{f:5.3f}" for f in np.mean(rows, axis=0))
        print(f"{'':7s} {'':4s} {'':6s} {name:>10s} {cells}")
    print(f"# {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
