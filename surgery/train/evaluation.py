"""Evaluation: top-1 accuracy, per-block cosine fidelity of student to teacher, and a text encoder's sentence embeddings.

A sentence embedding is judged against the teacher's three ways: its cosine to the
teacher's embedding of the same article, how well a linear probe (one fixed recipe
for every model) reads the topic from it, and how many of each article's 10 nearest
neighbours it shares with the teacher's retrieval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.utils.data import DataLoader

from surgery.rewrite.halting import following, halting_of
from surgery.train.batches import Inputs, predict, to_device, token_mask
from surgery.train.capture import capture_masks, capture_outputs, shared_tokens
from surgery.train.distributed import DistContext, gather_rows, reduce_sum

NEIGHBOURS = 10


def top1(model: nn.Module, loader: DataLoader, ctx: DistContext) -> float:
    """Top-1 accuracy in percent over the whole validation set."""
    return _top1(lambda inputs: predict(model.eval(), inputs), loader, ctx)


@torch.no_grad()
def _top1(logits_of: Callable[[Inputs], torch.Tensor], loader: DataLoader, ctx: DistContext) -> float:
    totals = torch.zeros(2, dtype=torch.float64)
    for inputs, labels in loader:
        logits = logits_of(to_device(inputs, ctx.device))
        totals += torch.tensor([(logits.argmax(-1).cpu() == labels).sum().item(), labels.numel()], dtype=torch.float64)
    correct, seen = reduce_sum(totals, ctx).tolist()
    return 100.0 * correct / max(seen, 1)


@torch.no_grad()
def block_fidelity(teacher: nn.Module, student: nn.Module, blocks: Sequence[str], loader: DataLoader, ctx: DistContext) -> dict[str, float]:
    """Mean cosine similarity between teacher and student outputs of each block, per token both run (padding, and tokens
    a halting model stopped, left out)."""
    teacher.eval()
    student.eval()
    totals = torch.zeros(len(blocks), 2, dtype=torch.float64)  # per block: summed cosines, tokens counted
    for inputs, _ in loader:
        inputs = to_device(inputs, ctx.device)
        with capture_blocks(teacher, blocks) as wanted:
            predict(teacher, inputs)
        with capture_blocks(student, blocks) as got:
            predict(student, inputs)
        totals += block_cosines(got, wanted, token_mask(inputs))
    sums, tokens = reduce_sum(totals, ctx).unbind(-1)
    return {block: value / max(count, 1) for block, value, count in zip(blocks, sums.tolist(), tokens.tolist())}


@contextmanager
def capture_blocks(model: nn.Module, blocks: Sequence[str]) -> Iterator[Blocks]:
    """Yields the outputs of `blocks` and the tokens each ran (a halting model's), filled by the forward passes inside."""
    with capture_outputs(model, blocks) as outputs, capture_masks(model, blocks) as masks:
        yield Blocks(blocks, outputs, masks)


@dataclass(frozen=True)
class Blocks:
    paths: Sequence[str]
    outputs: dict[str, object]
    masks: dict[str, torch.Tensor]


def block_cosines(got: Blocks, wanted: Blocks, padding: torch.Tensor | None) -> torch.Tensor:
    """(blocks, 2) float64: per block, the summed cosine of `got`'s outputs to `wanted`'s over the tokens both ran (and
    that are not padding), and how many tokens that is."""
    totals = torch.zeros(len(got.paths), 2, dtype=torch.float64)
    for row, block in enumerate(got.paths):
        cosine = F.cosine_similarity(first_tensor(got.outputs[block]), first_tensor(wanted.outputs[block]), dim=-1)
        mask = shared_tokens(block, padding, wanted.masks, got.masks)
        weights = mask.to(cosine.dtype) if mask is not None and cosine.shape == mask.shape else torch.ones_like(cosine)
        totals[row] = torch.tensor([(cosine * weights).sum().item(), weights.sum().item()], dtype=torch.float64)
    return totals


def top1_following(student: nn.Module, teacher: nn.Module, loader: DataLoader, ctx: DistContext) -> float:
    """Top-1 (percent) of a halting student that runs exactly the tokens its halting teacher runs on each image:
    how well it computes the teacher's sparse function, apart from where its own gate would stop tokens."""
    student.eval()
    teacher.eval()

    def logits_of(inputs: Inputs) -> torch.Tensor:
        predict(teacher, inputs)
        with following(student, teacher):
            return predict(student, inputs)

    return _top1(logits_of, loader, ctx)


@torch.no_grad()
def tokens_run(model: nn.Module, loader: DataLoader, ctx: DistContext) -> float | None:
    """Share of (patch token, block) pairs a halting model runs over the validation set; None for a model that does not halt."""
    halting = halting_of(model)
    if halting is None:
        return None
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64)
    for inputs, _ in loader:
        predict(model, to_device(inputs, ctx.device))
        assert halting.trace is not None, "a halting forward leaves its trace"
        ran = halting.trace.tokens_run
        totals += torch.tensor([ran.sum().item(), ran.numel()], dtype=torch.float64)
    share, images = reduce_sum(totals, ctx).tolist()
    return share / max(images, 1)


def first_tensor(output: object) -> torch.Tensor:
    """A block's output tensor; blocks returning a tuple (Hugging Face attention: output, weights) give their first."""
    return next(leaf for leaf in tree_leaves(output) if isinstance(leaf, torch.Tensor))


@torch.no_grad()
def embeddings(model: nn.Module, loader: DataLoader, ctx: DistContext) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, D) float32 sentence embeddings of every example the loader yields, and their (n,) labels, gathered over ranks."""
    model.eval()
    rows, labels = [], []
    for inputs, batch_labels in loader:
        rows.append(predict(model, to_device(inputs, ctx.device)).float().cpu())
        labels.append(batch_labels)
    return gather_rows(torch.cat(rows), ctx), gather_rows(torch.cat(labels), ctx)


def embedding_report(model: nn.Module, teacher: nn.Module, val: DataLoader, train: DataLoader, ctx: DistContext) -> dict[str, float]:
    """A text encoder judged against `teacher` on `val`: embedding cosine, linear-probe top-1 (the probe fit on `train`,
    a fixed-order loader of the training split), and top-10 neighbour overlap."""
    reference, _ = embeddings(teacher, val, ctx)
    held_out = embeddings(model, val, ctx)
    return {
        "embedding_cosine": embedding_cosine(held_out[0], reference),
        "probe_top1": probe_accuracy(embeddings(model, train, ctx), held_out),
        f"neighbour_overlap@{NEIGHBOURS}": neighbour_overlap(held_out[0], reference),
    }


def embedding_cosine(embedded: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean cosine of each row to the reference's row for the same example."""
    return F.cosine_similarity(embedded, reference, dim=-1).mean().item()


def neighbour_overlap(embedded: torch.Tensor, reference: torch.Tensor, k: int = NEIGHBOURS) -> float:
    """Share of each example's k nearest neighbours (cosine, itself excluded) that the reference retrieves too.

    Example:
        >>> points = torch.randn(20, 8)
        >>> neighbour_overlap(points, points, k=3)
        1.0
    """
    found, wanted = _neighbours(embedded, k), _neighbours(reference, k)
    shared = (found.unsqueeze(-1) == wanted.unsqueeze(-2)).any(-1).sum(-1)
    return (shared.float() / k).mean().item()


def _neighbours(points: torch.Tensor, k: int) -> torch.Tensor:
    unit = F.normalize(points, dim=-1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(float("-inf"))
    return similarity.topk(min(k, len(points) - 1), dim=-1).indices


def probe_accuracy(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Top-1 (percent) on `val` of a linear probe fit on `train` (embeddings, labels): standardised features,
    multinomial logistic regression, the same recipe for every model compared."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn loads in seconds: only where a probe is fit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(train[0].numpy(), train[1].numpy())
    return 100.0 * float(probe.score(val[0].numpy(), val[1].numpy()))
