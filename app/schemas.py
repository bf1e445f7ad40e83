"""Request and response bodies of the public REST surface (names are binding: DESIGN.md)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from app.estimate.stopping import DEFAULT_TARGET
from app.request_body import RequestBody

Label = Literal["duplicate", "distinct", "unsure"]
AuditStatus = Literal["queued", "running", "done", "failed", "cancelled"]

# letters, digits, spaces and . @ - _, with no space at either end ("ada " was another annotator)
ANNOTATOR_NAME = re.compile(r"^[\w.@-]([\w .@-]*[\w.@-])?$")
NAME_RULE = "use letters, digits, spaces and . @ - _ only, with no space at either end"


def plain_annotator_name(name: str | None) -> str | None:
    """Said in words: pydantic's "should match pattern" told nobody what to type."""
    if name is not None and not ANNOTATOR_NAME.match(name):
        raise ValueError(NAME_RULE)
    return name


AnnotatorName = Annotated[
    str,
    Field(min_length=1, max_length=100, json_schema_extra={"pattern": ANNOTATOR_NAME.pattern}),
    AfterValidator(plain_annotator_name),
]


class GeneratorPublic(BaseModel):
    id: int
    name: str
    format: str
    architecture: str | None
    options: dict[str, Any]
    latent_dim: int | None
    image_shape: list[int] | None
    status: str
    error: str | None = None
    samples: int | None = Field(
        default=None,
        description="A sample archive's image count: the largest pool an audit of it can draw "
        "(sample i is its i-th image). null for a generator, which draws any number.",
    )


class SyntheticSpec(RequestBody):
    """A known-support source: K prototypes with uniform or Zipf weights and pixel noise."""

    support: int = Field(ge=1, le=10**9, description="K, the number of distinct prototypes.")
    zipf: float = Field(default=0.0, ge=0, le=10, description="Zipf exponent; 0 = uniform.")
    noise: float = Field(default=0.02, ge=0, le=1, description="Pixel noise std in [-1, 1] units.")
    continuous: float = Field(
        default=0.0, ge=0, lt=1, description="Share of mass on never-repeating samples."
    )
    image_size: int = Field(default=16, ge=4, le=128)
    channels: Literal[1, 3] = 1


TARGET_DESCRIPTION = (
    "Relative half-width of the N_eff interval the review aims for (0.2: +-20%): the stopping "
    "rule stops the review queue there, and labels and samples to go are counted against it."
)


class AuditCreate(RequestBody):
    generator_id: int | None = None
    synthetic: SyntheticSpec | None = None
    n: int = Field(default=2000, ge=2, le=1_000_000, description="Pool size.")
    embedder: Literal["pixels", "clip", "efficientnet", "digits", "discriminator"] = "pixels"
    embedder_options: dict[str, Any] = Field(default_factory=dict)
    miner: Literal["auto", "exact", "hnsw"] = "auto"
    neighbours: int | None = Field(default=None, ge=1, le=100, description="k of the k-NN search.")
    chunk_size: int | None = Field(default=None, ge=10, le=100_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    random_pairs: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="Random non-candidate pairs drawn per pool size: reviewing them bounds the "
        "duplicates the miner missed.",
    )
    target: float = Field(default=DEFAULT_TARGET, gt=0, le=1, description=TARGET_DESCRIPTION)

    @model_validator(mode="after")
    def one_source(self) -> AuditCreate:
        if (self.generator_id is None) == (self.synthetic is None):
            raise ValueError("give exactly one of generator_id or synthetic")
        return self


class AuditUpdate(RequestBody):
    target: float = Field(gt=0, le=1, description=TARGET_DESCRIPTION)


class AuditExtend(RequestBody):
    n_more: int = Field(ge=1, le=1_000_000)


class LabelImportCreate(RequestBody):
    from_audit: int = Field(
        ge=1, description="The audit whose judgements to copy: same source and seed."
    )


class LabelImportPublic(BaseModel):
    judged_pairs: int = Field(description="Pairs of the source audit with a standing judgement.")
    matched_pairs: int = Field(description="Of which this audit holds the same (i, j).")
    copied: int = Field(description="Judgements copied, each under its own annotator.")
    kept: int = Field(
        description="Not copied: that annotator had already judged the pair in this audit."
    )


CREATED_BY_DESCRIPTION = (
    "Who started it: an annotator's name; null for the local user (a server without tokens) "
    "and for work started before starters were recorded. Only they or an admin may stop or "
    "change it."
)


class Progress(BaseModel):
    samples_done: int
    n: int
    candidate_pairs: int


class AuditPublic(BaseModel):
    id: int
    status: AuditStatus
    progress: Progress
    generator_id: int | None
    generator_name: str | None = Field(default=None, description="The audited generator's name.")
    synthetic: dict[str, Any] | None
    n: int
    seed: int
    embedder: str
    embedder_options: dict[str, Any]
    miner: str
    neighbours: int
    image_shape: list[int] | None
    target: float = Field(default=DEFAULT_TARGET, description=TARGET_DESCRIPTION)
    job_id: int | None
    error: str | None
    created_by: str | None = Field(default=None, description=CREATED_BY_DESCRIPTION)


class PairPublic(BaseModel):
    id: int
    audit_id: int
    i: int
    j: int
    distance: float
    rank: int | None = Field(
        description="1 = the closest pair of its origin; null for a random pair handed out by "
        "the review queue."
    )
    label: Label | None
    image_urls: list[str]
    origin: Literal["candidate", "random"] = Field(
        default="candidate",
        description="candidate: proposed by the miner; random: a uniform sample of the pairs it "
        "did not propose, reviewed to bound what it missed.",
    )


class NextPairs(BaseModel):
    items: list[PairPublic] = Field(description="Pairs in the order the review design wants them.")
    stop: bool = Field(description="The stopping rule says no more labels are needed.")


class PairPage(BaseModel):
    items: list[PairPublic]
    next_cursor: str | None


class SecondLookItem(BaseModel):
    pair: PairPublic = Field(description="The pair, with its standing (consensus) label.")
    looks: int = Field(
        description="Judgements made on the pair and not undone, any annotator, rulings left out: "
        "1 = nobody looked twice. An annotator's relabel is a look too, though the consensus "
        "counts only their latest label."
    )
    prior_of_other_answer: float = Field(
        description="P(the answer not given) before this label: the calibration curve "
        "P(duplicate | distance) at a candidate pair's distance (cross-fitted), the duplicate "
        "rate of its generation's other judged random pairs for a random pair; kept within "
        "[0.01, 0.99]."
    )
    slip_probability: float = Field(
        description="P(the standing label is a slip) for a reviewer who presses the wrong key "
        "with probability slip_rate, given prior_of_other_answer (Bayes)."
    )
    d_hat_if_flipped: float = Field(description="D-hat with this one label the other way round.")
    n_eff_if_flipped: float | None
    n_eff_low_if_flipped: float
    n_eff_high_if_flipped: float | None


class SecondLookPublic(BaseModel):
    """The judgements whose slip would move N_eff most, most first: each one's |change of
    D-hat| if flipped, weighed by the chance it is a slip. One wrong key on a random pair, a
    bridge between two halves of a mode, or a "not duplicate" between two clusters can move
    N_eff far outside its interval, which assumes every label right."""

    d_hat: float | None
    n_eff: float | None
    n_eff_low: float
    n_eff_high: float | None
    slip_rate: float
    items: list[SecondLookItem]


class JudgementCreate(RequestBody):
    label: Label
    annotator: AnnotatorName | None = Field(
        default=None,
        description="Who judged; required without auth, taken from the token with auth on.",
    )


class JudgementPublic(BaseModel):
    id: int
    pair_id: int
    label: Label
    annotator: str


class JobPublic(BaseModel):
    id: int
    kind: str
    status: str
    audit_id: int | None
    training_run_id: int | None = None
    progress: dict[str, Any]
    error: str | None
    cancel_requested: bool
    created_by: str | None = Field(
        default=None,
        description="Who queued it (an annotator's name; null: the local user, or before "
        "starters were recorded). They, whoever started its audit or training run, and admins "
        "may cancel it.",
    )


class WorkersPublic(BaseModel):
    """Where this server runs its jobs."""

    executor: Literal["in-process", "ray"] = Field(description="in-process worker or Ray tasks")
    description: str = Field(description="e.g. 'Ray (auto)'")
    concurrent_jobs: int = Field(description="jobs run at once (0 before the worker has started)")


class EstimateParts(BaseModel):
    """D_hat = confirmed + unreviewed + missed."""

    confirmed: int = Field(description="Duplicate pairs implied by confirmed judgements (closure).")
    direct: int = Field(description="Pairs a human confirmed directly.")
    implied: int = Field(description="Pairs only the closure over confirmed pairs asserts.")
    unreviewed: float | None = Field(
        description="Estimated duplicates among candidate pairs no judgement settles (stratified "
        "model-assisted difference estimate from the design's sample)."
    )
    missed: float | None = Field(
        description="Estimated duplicates the miner did not propose (Horvitz-Thompson from the "
        "random non-candidate pairs); null before any were drawn."
    )
    unreviewed_ucb: float | None = Field(
        default=None, description="One-sided upper confidence bound on the unreviewed part."
    )
    missed_ucb: float | None = Field(
        default=None,
        description="Model-free one-sided upper bound (Clopper-Pearson) on the missed part.",
    )


class StopRule(BaseModel):
    reached: bool = Field(description="The target is met: the interval is narrow enough.")
    labels_to_go: int = Field(
        description="Projected labels until more would barely help. It can stay above 0 while "
        "`reached` is true: the target was met sooner, and the review queue stops at `reached`."
    )
    samples_to_go: int | None = Field(
        description="More samples the pool needs for the target width (extend the audit); null "
        "when unknown, or when no pool size reaches it: limited_by 'miner' where the miner's "
        "check alone is wider than the target, else the target is too narrow for any pool at "
        "this level."
    )
    target_relative_half_width: float
    limited_by: Literal["labels", "samples", "miner"] | None = Field(
        default=None,
        description="What keeps the target out of reach now: 'labels' (labels to go narrow it), "
        "'samples' (only a larger pool does: extend the audit), 'miner' (the random check found "
        "duplicates the miner missed, and their count's noise alone is wider than the target at "
        "any pool size: audit the same source and seed with more neighbours per sample and "
        "import this audit's labels into it, or use a better embedder); null when the target "
        "is met.",
    )
    miner_relative_half_width: float | None = Field(
        default=None,
        description="The relative half-width the random check of the miner alone leaves (0 "
        "while it has found no missed duplicate): a floor more samples cannot lower.",
    )
    labels_done: bool = Field(
        default=False,
        description="More labels would barely narrow the interval: only more samples can.",
    )
    relative_half_width: float | None = Field(
        default=None, description="(n_eff_high - n_eff_low) / (2 n_eff) now."
    )
    unreviewed_share_ucb: float | None = Field(
        default=None, description="Upper bound on the share of D_hat that nobody reviewed."
    )


class EstimatePublic(BaseModel):
    """N_eff is the inverse Simpson index (Hill number of order 2): a lower bound on support size that
    equals it for a uniform distribution."""

    n: int
    candidate_pairs: int
    labelled_pairs: int = Field(
        description="Pairs with a consensus label (unsure included), candidates and random."
    )
    duplicate_pairs: int
    q: float
    n_eff: float | None = Field(description="Inverse Simpson 1/q_hat; null when no duplicate yet.")
    n_eff_low: float | None
    n_eff_high: float | None = Field(
        description="Null when the interval has no upper bound yet. A pool that is one cluster "
        "gets the exact bound ((1 - level) / 2)^(-2/n). Until the review has explored what it "
        "must (explored), the interval allows what no sample has ruled out yet: a distance band "
        "with no sampled pair anything from no duplicate to all, the miner's misses up to "
        "missed_ucb."
    )
    level: float
    parts: EstimateParts
    s50: int | None = Field(description="Smallest batch size with P(duplicate) >= 1/2.")
    paper_support: int | None = Field(description="The paper's 'support ~ s50^2'.")
    stop: StopRule
    complete: bool = Field(
        description="The pool is finished and a judgement settles every candidate pair."
    )
    d_hat: float | None = Field(
        default=None, description="Estimated duplicate pairs in the pool: the sum of the parts."
    )
    sampled_pairs: int | None = Field(
        default=None, description="Candidate pairs in the review design's sample."
    )
    random_pairs: int | None = Field(
        default=None, description="Random non-candidate pairs drawn to check the miner."
    )
    random_labelled: int | None = Field(default=None, description="Of which judged.")
    explored: bool | None = Field(
        default=None,
        description="Every distance stratum has its exploration sample and the random-pair "
        "check of the miner is done; until then the estimate leans on the fitted P(duplicate | "
        "distance) where nobody looked, and is provisional.",
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What the judgements say about the assumptions the estimate leans on (the "
        "embedder ranks duplicates first; the miner proposes them).",
    )
    jackknife_n_eff_low: float | None = Field(
        default=None,
        description="Lower bound from the delete-one-sample jackknife variance: a conservative "
        "check on n_eff_low.",
    )


class AnnotatorCreate(RequestBody):
    name: AnnotatorName
    role: Literal["annotator", "admin"] = "annotator"


class AnnotatorPublic(BaseModel):
    name: str
    role: str
    has_token: bool
    judgements: int = Field(default=0, description="Standing judgements (not undone), all audits.")


class AnnotatorCreated(AnnotatorPublic):
    token: str = Field(description="Shown once; only its hash is stored.")


class Me(BaseModel):
    name: str | None
    role: str
    authenticated: bool
    auth_required: bool


class AnnotatorPairAgreement(BaseModel):
    a: str
    b: str
    shared: int = Field(description="Pairs both annotators judged.")
    agreement: float | None = Field(description="Share of shared pairs with equal labels.")
    kappa: float | None = Field(description="Cohen's kappa; null when undefined.")


class AgreementPublic(BaseModel):
    judgements: dict[str, int] = Field(description="Standing judgements per annotator.")
    pairs: list[AnnotatorPairAgreement]


class Disagreement(BaseModel):
    pair: PairPublic
    votes: dict[str, Label]


class AdjudicationCreate(RequestBody):
    label: Label


# The training loop's knobs, the same for a run and for every run of a sweep.
BatchSize = Annotated[int, Field(ge=1, le=8192, description="Samples per batch, real and fake.")]
LearningRate = Annotated[float, Field(gt=0, le=1)]
LR_DOC = (
    "Adam's, every network; left out or null: the loss's paper's (wgan_gp 1e-4), DCGAN's 2e-4 "
    "for the others."
)
AdamBeta = Annotated[float, Field(ge=0, lt=1)]
AdamBetas = tuple[AdamBeta, AdamBeta]
BETAS_DOC = (
    "Adam's (beta1, beta2); left out or null: the loss's paper's (wgan_gp (0, 0.9)), DCGAN's "
    "(0.5, 0.999) for the others."
)
DSteps = Annotated[int, Field(ge=1, le=100)]
D_STEPS_DOC = (
    "Discriminator updates per generator update; left out or null: the loss's paper's (wgan_gp "
    "5), 1 for the others; 1 for veegan, bigan and ali, which update their networks together."
)
GpWeight = Annotated[
    float | None,
    Field(
        ge=0,
        le=10_000,
        description="Lambda of the gradient penalty of wgan_gp, rsgan_gp and rasgan_gp; null: the "
        "papers' 10. WGAN-GP's own code uses 0.1 on toy 2-D data, where 10 keeps the samples off "
        "the modes (bench/README.md, 2D mixtures).",
    ),
]
ArchitectureOptions = Annotated[
    dict[str, Any],
    Field(
        description="The networks' sizes beyond the widths: `hidden` (units per layer, default "
        "128) and `depth` (hidden layers, default 2) for mlp; `base_width` (channels at the highest "
        "resolution at width 1, DCGAN's ngf and ndf, default 64) and `d_norm` (the "
        "discriminator's normalisation: `batch`, DCGAN's, by default; `layer` or `none`; a loss "
        "with a gradient penalty takes `layer` by default and refuses `batch`, since the penalty "
        "is per sample) for dcgan."
    ),
]
LatentDim = Annotated[int, Field(ge=1, le=512)]
NetworkWidth = Annotated[float, Field(gt=0, le=16)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class TrainingRunCreate(RequestBody):
    """A GAN to train; the binding fields first, then optional knobs of the training loop."""

    dataset: str = Field(
        description="ring8, grid25, spiral, normal, digits, stacked_digits, mnist, stacked_mnist, ..."
    )
    loss: str = Field(
        description="sgan_saturating, sgan_nonsaturating, lsgan, wgan_gp, hinge, rsgan, rasgan, "
        "ralsgan, rahingegan, rsgan_gp, rasgan_gp (the relativistic losses with WGAN-GP's "
        "gradient penalty), veegan, bigan or ali (BiGAN with ALI's Gaussian encoder)"
    )
    architecture: Literal["mlp", "dcgan"] = "mlp"
    latent_dim: LatentDim | None = None
    d_width: NetworkWidth = 1.0
    g_width: NetworkWidth = 1.0
    steps: int = Field(default=2000, ge=1, le=1_000_000)
    seed: Seed = 0
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    batch_size: BatchSize = 64
    # null: the loss's paper's (app.gan.training.loop_defaults); the stored run has the values
    lr: LearningRate | None = Field(default=None, description=LR_DOC)
    betas: AdamBetas | None = Field(default=None, description=BETAS_DOC)
    d_steps: DSteps | None = Field(default=None, description=D_STEPS_DOC)
    gp_weight: GpWeight = None
    architecture_options: ArchitectureOptions = Field(default_factory=dict)
    log_every: int = Field(default=50, ge=1)
    sample_every: int = Field(default=500, ge=0)


class DatasetChoice(BaseModel):
    name: str
    path: Literal["required", "optional", "none"] = Field(
        description="Whether dataset_options.path names a file or folder under data/datasets/: "
        "required (npz, folder), optional (mnist, stacked_mnist: a keras-style mnist.npz, all "
        "60,000 digits, instead of the 5,000 packaged ones) or not taken."
    )


class DatasetFile(BaseModel):
    path: str = Field(description="Relative to data/datasets/: what dataset_options.path takes.")
    kind: Literal["npz", "folder"]


class DatasetsPublic(BaseModel):
    datasets: list[DatasetChoice]
    files: list[DatasetFile] = Field(
        description="The .npz files and folders directly under data/datasets/, by name (the "
        "first 500); deeper paths are taken too."
    )


class EmbedderChoice(BaseModel):
    name: str
    options: list[str] = Field(description="The keys its embedder_options take.")
    weights: Literal["required", "optional", "none"] = Field(
        description="Whether its `weights` option names a file under the models directory."
    )
    file_kind: str | None = Field(description="The kind of file in `files` its weights are.")


class WeightsFile(BaseModel):
    path: str = Field(description="Relative to the models directory: what `weights` takes.")
    kind: Literal["weights", "discriminator", "digit_classifier"] = Field(
        description="discriminator: a training run's (trained/run_N.discriminator.safetensors); "
        "digit_classifier: one the project trained (builtin/*classifier*.pt); weights: any "
        "other checkpoint you put there (open_clip, EfficientNet)."
    )


class EmbeddersPublic(BaseModel):
    embedders: list[EmbedderChoice]
    files: list[WeightsFile] = Field(
        description="Checkpoints under the models directory, by path (the first 500 among "
        "the first 20,000 entries walked); generators (uploads, trained and built-in ones) "
        "and training state left out."
    )


class TrainingProgress(BaseModel):
    step: int
    steps: int


class TrainingRunPublic(BaseModel):
    id: int
    status: str
    progress: TrainingProgress
    generator_id: int | None
    config: dict[str, Any]
    modes: dict[str, Any] | None = Field(description="Mode metrics on data with known modes.")
    sweep_id: int | None
    job_id: int | None
    error: str | None
    discriminator: str | None = Field(
        default=None,
        description="The trained discriminator of a finished image GAN, relative to the models "
        "directory: audit with embedder 'discriminator' and embedder_options {'weights': this} "
        "to rank pairs by its features.",
    )
    auditable: bool = Field(
        default=False,
        description="Its generator is registered and draws images (a toy 2-D run draws points: "
        "its mode metrics are its coverage figure).",
    )
    created_by: str | None = Field(default=None, description=CREATED_BY_DESCRIPTION)


class LossPoint(BaseModel):
    step: int
    losses: dict[str, float | None]


class SweepCreate(RequestBody):
    """A grid of training runs: every combination of losses x latent sizes x widths x seeds."""

    dataset: str
    architecture: Literal["mlp", "dcgan"] = "mlp"
    losses: list[str] = Field(min_length=1, max_length=12)
    # each value checked here as a run checks it: refused with its place in the list, before
    # any run is built (a bad width was a pydantic dump of the run it made)
    latent_dims: list[LatentDim | None] = Field(
        default=[None],
        min_length=1,
        max_length=8,
        description="null: the architecture's default (mlp 2, dcgan 100), as a single run has it.",
    )
    d_widths: list[NetworkWidth] = Field(default=[1.0], min_length=1, max_length=8)
    seeds: list[Seed] = Field(default=[0], min_length=1, max_length=10)
    steps: int = Field(default=2000, ge=1, le=1_000_000)
    g_width: NetworkWidth = Field(default=1.0, description="The same for every run.")
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    # the same for every run
    batch_size: BatchSize = 64
    # null: each run its loss's paper's, so a grid of losses compares each as its paper trained it
    lr: LearningRate | None = Field(default=None, description=LR_DOC)
    betas: AdamBetas | None = Field(default=None, description=BETAS_DOC)
    d_steps: DSteps | None = Field(default=None, description=D_STEPS_DOC)
    gp_weight: GpWeight = None
    architecture_options: ArchitectureOptions = Field(default_factory=dict)

    @field_validator("losses", "latent_dims", "d_widths", "seeds")
    @classmethod
    def _each_once(cls, values: list[Any]) -> list[Any]:
        """A value given twice would train the same run twice and count it as two seeds."""
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"give each value once: {', '.join(repeated)} repeated")
        return values


class SupportRatio(BaseModel):
    """This audit's N_eff over another's, with the interval of the ratio (independent pools)."""

    baseline_audit_id: int
    value: float
    low: float
    high: float


class CompareItem(BaseModel):
    audit: AuditPublic
    estimate: EstimatePublic | None = Field(
        description="null while the pool has fewer than 2 samples."
    )
    known_n_eff: int | None = Field(
        description="The true N_eff of a uniform synthetic source (its K); null otherwise."
    )
    ratio_to_first: SupportRatio | None = Field(
        default=None,
        description="N_eff over the first compared audit's, with its interval at the same "
        "level: an interval that excludes 1 tells the two apart (overlapping intervals of the "
        "two need not). null for the first audit, while either review is provisional "
        "(`explored` false) or has no finite interval, and when the two pools share samples "
        "(same source and seed): not independent.",
    )


class MetricSummary(BaseModel):
    """One mode metric over a cell's finished runs (its seeds)."""

    runs: int
    mean: float | None = Field(description="null when a value is infinite.")
    sd: float | None = Field(
        description="Sample standard deviation; null for a single run or an infinite value."
    )
    min: float | None = Field(description="null when infinite (JSON has no infinity).")
    max: float | None = Field(description="null when infinite: a run with no good sample's KL.")


class SweepCell(BaseModel):
    """A cell of the grid: the runs of one loss, latent size and discriminator width."""

    loss: str
    latent_dim: int | None = Field(description="null: the architecture's default.")
    d_width: float
    runs: int
    done: int
    run_ids: list[int]
    n_modes: int | None = Field(description="Modes (or curve segments) of the data.")
    modes_captured: MetricSummary | None = Field(
        description="Modes (segments) with at least one good sample."
    )
    quality: MetricSummary | None = Field(
        description="Share of good samples: near a mode (toy 2-D data) or read confidently by "
        "the digit classifier (digits)."
    )
    kl_to_uniform: MetricSummary | None = Field(description="KL(mode histogram || uniform), nats.")


class SweepPublic(BaseModel):
    id: int
    grid: dict[str, Any]
    created_by: str | None = Field(default=None, description=CREATED_BY_DESCRIPTION)
    runs: list[TrainingRunPublic]
    cells: list[SweepCell] = Field(
        default_factory=list, description="The runs summarised per cell over seeds."
    )
    audits: list[int] = Field(
        default_factory=list,
        description="Audits of this sweep's generators, oldest first (compare them side by "
        "side: /compare?ids=...).",
    )


WaitingFor = Literal["run", "images", "audit", "review", "samples"]


class SweepSupportRun(BaseModel):
    """One run of a sweep and the audit its support figure comes from."""

    run_id: int
    loss: str
    latent_dim: int | None
    d_width: float
    seed: int | None
    generator_id: int | None
    audit_id: int | None = Field(description="The newest finished audit of its generator.")
    n: int | None = Field(description="That audit's pool size.")
    n_eff: float | None
    n_eff_low: float | None
    n_eff_high: float | None = Field(description="null: no upper bound yet.")
    used: bool = Field(description="It enters its cell's mean or its loss's trend.")
    waiting_for: WaitingFor | None = Field(
        default=None,
        description="What keeps it out or holds it back: 'run' (not finished), 'images' (it "
        "draws 2-D points), 'audit' (no finished audit), 'review' (labels: its review has not "
        "explored what it must, or its interval is open), 'samples' (no duplicate in its pool: "
        "it enters as a lower bound on N_eff, a count of 0; extending the pool sharpens it).",
    )
    reason: str | None = Field(description="What keeps it out or holds it back, and the fix.")
    stop_reached: bool | None = Field(
        default=None,
        description="Its audit's review is done: the stopping rule is met, or more labels would "
        "barely help (its review queue answers 204); then `reason` says when only a larger pool "
        "would reach the target (null: no audit).",
    )
    labels_to_go: int | None = Field(
        default=None, description="Its audit's projected labels to go (0 once the rule is met)."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Its audit's estimate's warnings about the assumptions it leans on.",
    )


class SweepNextReview(BaseModel):
    """The audit to label next for the sweep's figure: the first, in grid order, of those kept
    out of the figure by an unfinished review, else of those whose stopping rule is not met."""

    run_id: int
    audit_id: int
    labels_to_go: int


class SweepSupportCell(BaseModel):
    """A cell's N_eff over its seeds: a random-effects mean of log N_eff (a geometric mean),
    from a Poisson-lognormal model of each audit's duplicate count."""

    loss: str
    latent_dim: int | None
    d_width: float
    runs: int = Field(description="Runs whose audits enter the figure.")
    empty_pools: int = Field(
        default=0, description="Of those, runs whose pool held no duplicate (a count of 0)."
    )
    n_eff: float
    n_eff_low: float
    n_eff_high: float


class SweepTrend(BaseModel):
    """N_eff ~ width^exponent over the runs of one loss and latent size."""

    loss: str
    latent_dim: int | None
    exponent: float = Field(
        description="b in N_eff ~ d_width^b: 0 means no change with width, 1 proportional "
        "(the paper found near-linear growth with discriminator size)."
    )
    exponent_low: float
    exponent_high: float
    p_value: float = Field(description="Two-sided test of exponent = 0.")
    n_eff_at_width_1: float = Field(description="The fitted line's N_eff at width 1.")
    tau: float = Field(description="Between-run standard deviation of log N_eff about the line.")
    df: int = Field(description="Residual degrees of freedom of the fit (runs - 2).")
    runs: int
    widths: int
    empty_pools: int = Field(
        default=0,
        description="Runs in the fit whose pool held no duplicate: each says N_eff is large "
        "(a Poisson count of 0) rather than being left out, which would bias the exponent low.",
    )


class SweepSupport(BaseModel):
    """The birthday test's answer across a sweep: N_eff per cell and its trend over width."""

    level: float
    embedder: str | None = Field(description="Only audits with this embedder, when named.")
    embedders: list[str] = Field(
        default_factory=list,
        description="The embedders of the sweep's finished audits (what `embedder` may name).",
    )
    runs: list[SweepSupportRun]
    cells: list[SweepSupportCell]
    trends: list[SweepTrend]
    next_review: SweepNextReview | None = Field(
        default=None, description="null when every audit's stopping rule is met (or none exists)."
    )
    tau: float | None = Field(
        description="Between-seed standard deviation of log N_eff within a cell, pooled over "
        "cells; null when no cell has two runs in the figure (then a cell's interval holds its "
        "one generator's sampling noise only, not training's)."
    )
    notes: list[str] = Field(default_factory=list)


class SweepExtend(RequestBody):
    """Grow the pools of a sweep's audits that hold no duplicate (waiting_for 'samples')."""

    n_more: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Samples to add to each; by default each pool's own size (doubling it, "
        "about four times the pairs).",
    )
    embedder: str | None = Field(
        default=None, max_length=40, description="As for the support figure: its audits only."
    )


class SweepAuditsCreate(RequestBody):
    """One audit per finished run that draws images, all with the same settings."""

    n: int = Field(default=2000, ge=2, le=1_000_000, description="Pool size.")
    embedder: Literal["pixels", "clip", "efficientnet", "digits", "discriminator"] = "pixels"
    embedder_options: dict[str, Any] = Field(
        default_factory=dict,
        description="For 'discriminator' without 'weights', each run's own discriminator.",
    )
    miner: Literal["auto", "exact", "hnsw"] = "auto"
    neighbours: int | None = Field(default=None, ge=1, le=100)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    random_pairs: int = Field(default=50, ge=0, le=10_000)
    target: float = Field(default=DEFAULT_TARGET, gt=0, le=1, description=TARGET_DESCRIPTION)
