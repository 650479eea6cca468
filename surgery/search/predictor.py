"""The quality predictor: each option distilled at each site alone for a few steps, then scored there.

Every block of a uniform student (every searched site takes one option) is fed the teacher's input to that block
(teacher forcing), so no block's loss reaches another's substitute: one short run per option trains all its sites
at once, each as if it stood alone in the teacher. Each site is then scored two ways on validation data:

- `output_kl`: the teacher with that site alone swapped for its distilled substitute, against the teacher, at the
  output: KL(teacher ‖ swapped) of the class distributions (1 - cosine of a text encoder's sentence embedding).
  It counts how much of a block's error the blocks after it pass on (Puzzle's replace-one-block score).
- `block_error`: the relative squared error of the site's block output under teacher forcing, ‖Ŷ − Y‖² / ‖Y‖².

A mix's predicted loss is the sum over its sites (keep costs 0).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from torch import nn
from torch.utils.data import DataLoader

from surgery.recipe import PredictorSpec
from surgery.rewrite.student import substitute_paths
from surgery.train.batches import Inputs, is_text, predict, to_device, token_mask
from surgery.train.capture import capture_inputs, capture_outputs, force_inputs
from surgery.train.evaluation import first_tensor

Losses = dict[str, dict[str, float]]
"""Site path -> option label -> predicted loss."""
SCORES = ("output_kl", "block_error")


def predict_losses(teacher: nn.Module, students: Mapping[str, nn.Module], blocks: Mapping[str, str], train: DataLoader, val: DataLoader,
                   spec: PredictorSpec, seed: int) -> dict[str, Losses]:
    """Every score (`SCORES`) of every option at every site: `students` maps option labels to uniform students (keep
    left out: it costs nothing), `blocks` each site path to the block holding it.

    Each student's substitutes are trained `spec.steps` steps (AdamW, constant `spec.lr`) to match the teacher's block
    outputs under teacher forcing, from the same seed and the same batches, then scored on `spec.eval_batches` of `val`.
    """
    scores: dict[str, Losses] = {score: {path: {"keep": 0.0} for path in blocks} for score in SCORES}
    teacher.eval()
    device = next(teacher.parameters()).device
    batches = [to_device(inputs, device) for inputs, _ in itertools.islice(val, spec.eval_batches)]
    with torch.no_grad():
        wanted = [predict(teacher, inputs) for inputs in batches]
    for label, student in students.items():
        torch.manual_seed(seed)
        _distill(teacher, student, list(blocks.values()), _cycle(train, spec.steps), spec.lr)
        errors = block_errors(teacher, student, list(blocks.values()), batches)
        for path, block in blocks.items():
            scores["block_error"][path][label] = errors[block]
            scores["output_kl"][path][label] = swap_divergence(teacher, path, student.get_submodule(path), batches, wanted)
    return scores


@torch.no_grad()
def swap_divergence(teacher: nn.Module, path: str, module: nn.Module, batches: Sequence[Inputs], wanted: Sequence[torch.Tensor]) -> float:
    """Mean divergence of `teacher` with `module` at `path` from the teacher's own outputs `wanted` on `batches`."""
    total, count = 0.0, 0
    with _swapped(teacher, path, module):
        for inputs, target in zip(batches, wanted):
            got = predict(teacher, inputs)
            if is_text(inputs):
                divergence = 1 - F.cosine_similarity(got, target, dim=-1)
            else:
                divergence = F.kl_div(F.log_softmax(got, -1), F.log_softmax(target, -1), log_target=True, reduction="none").sum(-1)
            total, count = total + divergence.sum().item(), count + len(divergence)
    return total / max(count, 1)


@contextmanager
def _swapped(model: nn.Module, path: str, module: nn.Module) -> Iterator[None]:
    original = model.get_submodule(path)
    model.set_submodule(path, module)
    try:
        yield
    finally:
        model.set_submodule(path, original)


def _distill(teacher: nn.Module, student: nn.Module, blocks: Sequence[str], batches: Iterator[Inputs], lr: float) -> None:
    params = [p for path in substitute_paths(student) for p in student.get_submodule(path).parameters()]
    if not params:  # dropping attention: nothing to learn, its error is what it is
        return
    student.requires_grad_(False)
    for parameter in params:
        parameter.requires_grad_(True)
    optimizer = create_optimizer_v2(params, opt="adamw", lr=lr, weight_decay=0.0)
    student.train()
    device = next(student.parameters()).device
    for inputs in batches:
        inputs = to_device(inputs, device)
        wanted, fed = _teacher_blocks(teacher, blocks, inputs)
        with force_inputs(student, fed), capture_outputs(student, blocks) as got:
            predict(student, inputs)
        mask = token_mask(inputs)
        loss = torch.stack([_squared_error(first_tensor(got[b]), first_tensor(wanted[b]), mask)[0] / _numel(wanted[b], mask) for b in blocks]).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    student.eval()


@torch.no_grad()
def block_errors(teacher: nn.Module, student: nn.Module, blocks: Sequence[str], batches: Sequence[Inputs]) -> dict[str, float]:
    """‖Ŷ − Y‖² / ‖Y‖² of each block's output over `batches`, every student block fed the teacher's input to it."""
    student.eval()
    sums = torch.zeros(len(blocks), 2, dtype=torch.float64)
    for inputs in batches:
        wanted, fed = _teacher_blocks(teacher, blocks, inputs)
        with force_inputs(student, fed), capture_outputs(student, blocks) as got:
            predict(student, inputs)
        mask = token_mask(inputs)
        for row, block in enumerate(blocks):
            sums[row] += torch.stack(_squared_error(first_tensor(got[block]), first_tensor(wanted[block]), mask)).double().cpu()
    return {block: (error / reference).item() for block, (error, reference) in zip(blocks, sums)}


def _teacher_blocks(teacher: nn.Module, blocks: Sequence[str], inputs: Inputs) -> tuple[dict[str, object], dict[str, torch.Tensor]]:
    with torch.no_grad(), capture_outputs(teacher, blocks) as wanted, capture_inputs(teacher, blocks) as fed:
        predict(teacher, inputs)
    return wanted, fed


def _squared_error(got: torch.Tensor, wanted: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ (Ŷ − Y)² and Σ Y² over the real tokens (`mask` (B, N) of padded text; None: all)."""
    keep = mask.unsqueeze(-1).to(got.dtype) if mask is not None and got.dim() == 3 and got.shape[:2] == mask.shape else 1.0
    return ((got - wanted) ** 2 * keep).sum(), (wanted**2 * keep).sum()


def _numel(output: object, mask: torch.Tensor | None) -> float:
    tensor = first_tensor(output)
    return float(mask.sum().item() * tensor.shape[-1]) if mask is not None and tensor.dim() == 3 else float(tensor.numel())


def _cycle(loader: DataLoader, steps: int) -> Iterator[Inputs]:
    """`steps` training inputs, going round the loader as often as it takes."""
    batches = itertools.chain.from_iterable(iter(loader) for _ in itertools.count())
    return (inputs for inputs, _ in itertools.islice(batches, steps))
