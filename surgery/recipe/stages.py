"""The stages of a recipe: what to train, how, and in which order (a union on `kind`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from surgery.recipe.strict import StrictModel


class TrainingStage(StrictModel):
    """Optimiser, schedule and batch settings shared by every stage that trains."""

    name: str | None = None
    """Label of the stage in logs and checkpoints; defaults to its kind and position."""
    epochs: float = Field(gt=0)
    """Length of the stage in epochs (fractions allowed)."""
    optimizer: str = "adamw"
    """timm optimizer name (timm.optim.create_optimizer_v2)."""
    lr: float = Field(gt=0)
    """Peak learning rate, reached after warm-up; per lr_base_batch images when that is set."""
    lr_base_batch: int | None = Field(None, ge=1)
    """Batch size lr is given for: the peak becomes lr × batch_size / lr_base_batch (DeiT's linear scaling rule; warmup_lr
    and min_lr are taken as written); none uses lr as it is."""
    weight_decay: float = Field(0.05, ge=0)
    """Decoupled weight decay."""
    warmup_epochs: float = Field(5, ge=0)
    """Epochs of linear warm-up from warmup_lr to lr."""
    warmup_lr: float = Field(1e-6, ge=0)
    """Learning rate at the start of warm-up."""
    min_lr: float = Field(1e-5, ge=0)
    """Floor of the decay schedule."""
    scheduler: Literal["cosine", "step", "none"] = "cosine"
    """Learning-rate decay after warm-up, per optimizer step: cosine to min_lr, step (x0.1 at each third), or none."""
    batch_size: int = Field(256, ge=1)
    """Global batch size, summed over devices and accumulation steps."""
    grad_accum_steps: int = Field(1, ge=1)
    """Micro-batches accumulated before each optimiser step."""
    clip_grad: float | None = Field(None, gt=0)
    """Maximum global gradient norm; none clips nothing."""
    amp: Literal["none", "bf16", "fp16"] = "none"
    """Mixed-precision autocast dtype."""
    drop_path_rate: float | None = Field(None, ge=0, le=1)
    """Stochastic-depth rate set on the model for this stage; none keeps the model's."""
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    """Label smoothing of the cross-entropy term."""

    @property
    def peak_lr(self) -> float:
        """The learning rate the schedule reaches after warm-up: lr scaled to the global batch where lr_base_batch says."""
        return self.lr if self.lr_base_batch is None else self.lr * self.batch_size / self.lr_base_batch


class FitStage(TrainingStage):
    """Train the teacher itself from scratch (when no pretrained weights exist)."""

    kind: Literal["fit"] = "fit"
    """Stage type."""


class HaltingGate(StrictModel):
    """When a token stops (A-ViT): its halting scores σ(gate_scale · x₀ − gate_center), one per block, sum to 1 − eps."""

    gate_scale: float = Field(10.0, gt=0)
    """γ of the halting score, read off each token's first channel after every block."""
    gate_center: float = 30.0
    """β of the halting score."""
    eps: float = Field(0.01, gt=0, lt=1)
    """A token stops once its halting scores sum to 1 − eps."""


class HaltStage(TrainingStage, HaltingGate):
    """Teach the teacher to stop tokens early (AViT-style token retention), for a sparser function to distil.

    Every teacher parameter trains on the task loss plus A-ViT's ponder cost and distributional prior
    (`surgery.rewrite.halting`); the teacher keeps halting in every later stage, and its student inherits it.
    Comes after any fit stage and before the first student stage.
    """

    kind: Literal["halt"] = "halt"
    """Stage type."""
    ponder_weight: float = Field(5e-4, ge=0)
    """Weight of the ponder cost: the mean over tokens of blocks run plus remainder (A-ViT's default)."""
    prior_weight: float = Field(1e-3, ge=0)
    """Weight of the KL divergence from the Gaussian prior over halting blocks to the tokens' mean halting distribution."""
    target_depth: float = Field(gt=0)
    """Block (1-based) the prior centres halting on; below the model's depth pulls tokens to stop earlier."""
    prior_std: float = Field(1.0, gt=0)
    """Width of the prior, in blocks."""


class DistillStage(TrainingStage):
    """Block-wise distillation: only substitutes train, matching the teacher's block outputs (paper eq. 4).

    With a hoyer_weight it also prunes (paper §3.3, "jointly with block-level distillation"): the Group-HS
    penalty joins the loss and the units under threshold are removed at the end, as a prune stage removes them.
    """

    kind: Literal["distill"] = "distill"
    """Stage type."""
    similarity: Literal["mse", "cosine"] = "mse"
    """Distance between teacher and student outputs."""
    similarity_axis: Literal["channel", "token", "flat"] = "channel"
    """Axis along which the cosine similarity is taken."""
    at: Literal["block", "site"] = "block"
    """Compare whole block outputs (the paper) or the replaced sites' outputs."""
    reduce: Literal["sum", "mean"] = "sum"
    """How the per-block losses combine."""
    weight: float = Field(1.0, ge=0)
    """λ, the weight of the block loss."""
    ce_weight: float = Field(1.0, ge=0)
    """Weight of the task loss: cross-entropy on the labels; for a text encoder, 1 - cosine of its sentence embedding to the teacher's."""
    mode: Literal["free_running", "teacher_forced"] = "free_running"
    """Feed each student block its own previous output, or the teacher's."""
    hoyer_weight: float = Field(0.0, ge=0)
    """Coefficient of the Group-HS penalty (as in prune) added to the distillation loss; 0 distills without pruning."""
    threshold: float | None = Field(None, ge=0)
    """Group norm under which a hidden unit is removed at the end of the stage; given exactly when hoyer_weight is."""
    halting: Literal["own", "teacher"] = "own"
    """A halting student's stopping decisions while it distils: its own gate's, or its teacher's (it runs exactly the
    tokens the teacher runs, so it learns the sparse function on them); after the stage it halts on its own gate."""


class KDSpec(StrictModel):
    """Soft-label knowledge distillation from the teacher's logits."""

    weight: float = Field(1.0, ge=0)
    """Weight of the KL term beside the cross-entropy."""
    temperature: float = Field(1.0, gt=0)
    """Softmax temperature of both logits."""


class TrainingNoise(StrictModel):
    """Hardware-aware training: each step runs on the weights as the `hardware` section's crossbars hold them after a
    fresh programming with this sigma (fixed point, cells, the device's stuck cells), and updates the clean weights."""

    sigma: float = Field(gt=0, le=1)
    """Programming sigma relative to each cell's conductance (0.05: 5 %), drawn afresh at every step."""


class FinetuneStage(TrainingStage):
    """Train the student on the task loss, optionally with soft-label KD; a text encoder's task loss is the
    cosine of its sentence embedding to the teacher's."""

    kind: Literal["finetune"] = "finetune"
    """Stage type."""
    trainable: Literal["all", "substitutes"] | list[str] = "all"
    """Which parameters train: all, only substitutes, or globs on parameter names."""
    kd: KDSpec | None = None
    """Soft-label KD from the teacher; none trains on labels alone."""
    noise: TrainingNoise | None = None
    """Hardware-aware finetuning on the recipe's crossbar device (`surgery robustness` measures its effect); none trains
    on the clean weights."""


class PruneStage(TrainingStage):
    """Train with the DeepHoyer Group-HS penalty (paper eq. 5), then remove weak hidden units."""

    kind: Literal["prune"] = "prune"
    """Stage type."""
    hoyer_weight: float = Field(gt=0)
    """Coefficient of the Group-HS regulariser added to the task loss (CE; a text encoder's embedding cosine)."""
    threshold: float = Field(ge=0)
    """Group norm under which a hidden unit is removed."""
    regularizer: Literal["group_hs"] = "group_hs"
    """Sparsity regulariser."""


class EvaluateStage(StrictModel):
    """Measure the current student without training it."""

    kind: Literal["evaluate"] = "evaluate"
    """Stage type."""
    name: str | None = None
    """Label of the stage in logs and reports."""
    metrics: list[Literal["top1", "embedding", "fidelity", "params", "macs", "latency"]] | None = None
    """What to measure; none measures everything the model's kind has (images: top1, fidelity, params, macs; a text
    encoder: embedding, fidelity, params, macs, latency). embedding: cosine of the sentence embedding to the teacher's,
    linear-probe top-1 on the labels, top-10 neighbour overlap; latency: ONNX Runtime, batch 1, one thread."""
    latency_lengths: list[Annotated[int, Field(ge=2)]] = Field([128, 256, 512], min_length=1)
    """Sequence lengths a text encoder's latency is measured at."""


TEACHER_STAGES = frozenset({"fit", "halt"})
"""Stage kinds that train the teacher: they come first, and the rewrite follows them."""

Stage = Annotated[
    FitStage | HaltStage | DistillStage | FinetuneStage | PruneStage | EvaluateStage,
    Field(discriminator="kind"),
]
