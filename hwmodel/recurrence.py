"""LSTM and GRU layers step by step in plain torch, every weight product through a caller's `linear`.

`torch.lstm` / `torch.gru` run the whole recurrence in one fused kernel, so
their weight products cannot be swapped for the crossbar's; this is the same
computation (gate order i, f, g, o and r, z, n, as torch lays out its
weights) with `linear(weight, x)` for x @ weight.T. Biases and gates are
digital. Padded-batch calls only, without projections.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Linear = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(weight (N, K), x (..., K)) -> x @ weight.T."""


def run_recurrent(
    cell: str,
    x: torch.Tensor,
    hx: torch.Tensor | Sequence[torch.Tensor],
    params: Sequence[torch.Tensor],
    *,
    has_biases: bool,
    num_layers: int,
    bidirectional: bool,
    batch_first: bool,
    linear: Linear,
) -> tuple[torch.Tensor, ...]:
    """What `torch.lstm` (cell "lstm") or `torch.gru` ("gru") returns for the same arguments, in eval mode.

    `hx` is (h0, c0) for an LSTM and h0 for a GRU, each (layers x directions, B, H).
    Returns (output, h_n, c_n) for an LSTM and (output, h_n) for a GRU.
    """
    directions = 2 if bidirectional else 1
    per_direction = 4 if has_biases else 2
    if len(params) != num_layers * directions * per_direction:
        raise NotImplementedError("a recurrent layer with projections (proj_size > 0) is not simulated")
    states = list(hx) if cell == "lstm" else [hx]
    out = x.transpose(0, 1) if batch_first else x  # (T, B, input)
    finals: list[list[torch.Tensor]] = [[] for _ in states]
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            weights = params[index * per_direction : (index + 1) * per_direction]
            start = [s[index] for s in states]
            sequence, last = _direction(cell, out.flip(0) if direction else out, start, weights, linear)
            outputs.append(sequence.flip(0) if direction else sequence)
            for kept, value in zip(finals, last):
                kept.append(value)
        out = torch.cat(outputs, dim=-1)  # (T, B, directions * H)
    out = out.transpose(0, 1) if batch_first else out
    return (out, *(torch.stack(kept) for kept in finals))


def _direction(
    cell: str, x: torch.Tensor, start: list[torch.Tensor], weights: Sequence[torch.Tensor], linear: Linear
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One direction of one layer over x (T, B, input) in reading order: (outputs (T, B, H), final states)."""
    w_ih, w_hh, *biases = weights
    b_ih, b_hh = biases if biases else (0.0, 0.0)
    inputs = linear(w_ih, x) + b_ih  # (T, B, gates * H): every step's input products at once
    step = _lstm_step if cell == "lstm" else _gru_step
    state, outputs = start, []
    for t in range(x.shape[0]):
        state = step(inputs[t], linear(w_hh, state[0]) + b_hh, state)
        outputs.append(state[0])
    return torch.stack(outputs), state


def _lstm_step(gi: torch.Tensor, gh: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
    i, f, g, o = (gi + gh).chunk(4, dim=-1)
    c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
    return [torch.sigmoid(o) * torch.tanh(c), c]


def _gru_step(gi: torch.Tensor, gh: torch.Tensor, state: list[torch.Tensor]) -> list[torch.Tensor]:
    ir, iz, in_ = gi.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    return [(1 - z) * n + z * state[0]]
