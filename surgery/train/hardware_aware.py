"""Hardware-aware training (`noise:` on a finetune stage): every step computes its loss and gradient on the weights as
the crossbars hold them after a fresh programming, and the optimizer updates the clean weights.

This is noise injection as in IBM aihwkit's hardware-aware training, with the device model of `hwmodel.noise` as the
perturbation: each weight `device_noise` would program is quantised to the device's fixed point, split into cells,
programmed with the stage's sigma (and the device's stuck cells), and read back as values (`stored_matrix`). Read noise
and the ADC act on column sums, not weights, so they are not part of it. The draws come from torch's global generator,
which checkpoints save, so a resumed stage draws what the uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain

import torch
from torch import nn

from hwmodel import Device
from hwmodel.analog import MatrixView, crossbar_weights
from hwmodel.noise import program_matrix, stored_matrix


class ProgrammedWeights:
    """Calling it gives a context in which `model`'s crossbar weights hold one programming's values; leaving it
    (after the backward pass) puts the clean values back, so the step's gradient updates them."""

    def __init__(self, model: nn.Module, device: Device, example: torch.Tensor) -> None:
        self.device = device
        was_training = model.training
        views = crossbar_weights(model.eval(), device, example)
        model.train(was_training)
        tensors = dict(chain(model.named_parameters(), model.named_buffers()))
        self.weights: dict[str, tuple[torch.Tensor, MatrixView]] = {name: (tensors[name], view) for name, view in views.items()}
        """Each weight the device programs, by name, with the view of it that is programmed."""

    @contextmanager
    def __call__(self) -> Iterator[None]:
        clean = {}
        try:
            with torch.no_grad():
                for name, (weight, view) in self.weights.items():
                    clean[name] = weight.detach().clone()
                    matrices = weight.as_strided(view.shape, view.stride, weight.storage_offset() + view.offset)
                    matrices.copy_(self._programmed(matrices))
            yield
        finally:
            with torch.no_grad():
                for name, value in clean.items():
                    self.weights[name][0].copy_(value)

    def _programmed(self, matrices: torch.Tensor) -> torch.Tensor:
        """The values `matrices` hold on the crossbars after one programming (drawn on the CPU, as `hwmodel.noise` draws)."""
        programmed = program_matrix(matrices.detach().cpu(), self.device, torch.default_generator)
        return stored_matrix(programmed, matrices.shape[-1]).to(matrices.dtype).to(matrices.device)
