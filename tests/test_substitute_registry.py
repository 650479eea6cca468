"""The substitute registry: duplicates refused, misses explained, third-party plug-ins by entry point."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import timm
import torch

import far_modules.substitutes as substitutes_module
from far_modules import (
    SUBSTITUTES,
    MultiHeadBiLSTM,
    Registry,
    SiteSpec,
    UnknownNameError,
    build_substitute,
    get_substitute,
    register_substitute,
    substitute_names,
    substitute_options,
)
from surgery import Recipe, build_student, plan

PLUGIN = "surgery_toy_plugin"

PLUGIN_SOURCE = '''
from torch import nn


class ToyMixer(nn.Module):
    """Scales a linear map of the tokens: (B, N, C) -> (B, N, C)."""

    def __init__(self, dim, scale):
        super().__init__()
        self.linear, self.scale = nn.Linear(dim, dim), scale

    @classmethod
    def from_site(cls, spec, *, source=None, scale=1.0):
        return cls(spec.dim, scale)

    def forward(self, x):
        return self.linear(x) * self.scale
'''


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A private copy of the global registry and a fresh entry-point scan, both undone afterwards."""
    monkeypatch.setattr(SUBSTITUTES, "_items", dict(SUBSTITUTES._items))
    substitutes_module._plugins.cache_clear()
    yield
    substitutes_module._plugins.cache_clear()


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None) -> Iterator[str]:
    """An installed-looking package whose dist-info declares `toy_mixer` in group `surgery.substitutes`."""
    (tmp_path / PLUGIN).mkdir()
    (tmp_path / PLUGIN / "__init__.py").write_text(PLUGIN_SOURCE)
    info = tmp_path / f"{PLUGIN}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[surgery.substitutes]\ntoy_mixer = {PLUGIN}:ToyMixer\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "toy_mixer"
    sys.modules.pop(PLUGIN, None)


def test_registry_get_and_names() -> None:
    registry: Registry[object] = Registry("shape")
    square, circle = object(), object()
    registry.add("square", square)
    registry.register("circle")(circle)
    assert registry.get("square") is square and registry.get("circle") is circle
    assert registry.names() == ["circle", "square"] == list(registry)
    assert "square" in registry and "triangle" not in registry


def test_registering_the_same_object_twice_is_harmless() -> None:
    registry: Registry[object] = Registry("shape")
    square = object()
    registry.add("square", square)
    registry.add("square", square)
    assert registry.names() == ["square"]


def test_registering_a_different_object_under_a_taken_name_is_refused() -> None:
    registry: Registry[object] = Registry("shape")
    first = object()
    registry.add("square", first)
    with pytest.raises(ValueError, match="shape 'square' is already registered"):
        registry.add("square", object())
    assert registry.get("square") is first


def test_a_miss_suggests_close_names_and_lists_the_known_ones() -> None:
    registry: Registry[object] = Registry("substitute")
    for name in ("bilstm", "bigru", "mamba"):
        registry.add(name, object())
    with pytest.raises(UnknownNameError) as caught:
        registry.get("bilstn")
    error = caught.value
    assert isinstance(error, LookupError)
    assert (error.kind, error.name, error.known) == ("substitute", "bilstn", ["bigru", "bilstm", "mamba"])
    assert error.suggestions[0] == "bilstm" and "mamba" not in error.suggestions
    assert "did you mean 'bilstm'" in str(error) and "known: bigru, bilstm, mamba" in str(error)


def test_a_miss_with_nothing_close_gives_no_suggestion() -> None:
    registry: Registry[object] = Registry("stage")
    registry.add("distill", object())
    with pytest.raises(UnknownNameError) as caught:
        registry.get("xyz")
    assert caught.value.suggestions == [] and "did you mean" not in str(caught.value)


def test_bilstm_is_built_in() -> None:
    assert get_substitute("bilstm") is MultiHeadBiLSTM
    assert "bilstm" in substitute_names()
    assert set(substitute_options("bilstm")) == {"heads", "hidden_size", "init", "bias"}


def test_an_unknown_substitute_suggests_bilstm() -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_substitute("bilstn")
    assert "bilstm" in caught.value.suggestions


def test_register_substitute_decorator(isolated_registry: None) -> None:
    @register_substitute("identity_mixer")
    class IdentityMixer(torch.nn.Identity):
        @classmethod
        def from_site(cls, spec: SiteSpec, *, source: object = None) -> IdentityMixer:
            return cls()

    assert get_substitute("identity_mixer") is IdentityMixer
    assert isinstance(build_substitute("identity_mixer", SiteSpec(8, 2, 4)), IdentityMixer)
    with pytest.raises(ValueError):
        register_substitute("bilstm")(IdentityMixer)


def test_isolated_registrations_do_not_leak() -> None:
    assert "identity_mixer" not in SUBSTITUTES and "toy_mixer" not in SUBSTITUTES


def test_entry_point_plugin_is_found_by_name(plugin: str) -> None:
    mixer = get_substitute(plugin)
    assert mixer.__name__ == "ToyMixer" and mixer.__module__ == PLUGIN
    assert plugin in substitute_names()
    options = substitute_options(plugin)
    assert list(options) == ["scale"] and options["scale"].default == 1.0


def test_entry_point_plugin_builds_with_its_options(plugin: str) -> None:
    module = build_substitute(plugin, SiteSpec(dim=8, num_heads=2, head_dim=4), scale=0.0)
    assert torch.equal(module(torch.randn(1, 3, 8)), torch.zeros(1, 3, 8))


def test_entry_point_plugin_replaces_sites_end_to_end(plugin: str) -> None:
    model = timm.create_model("vit_tiny_patch16_224", img_size=16, patch_size=8, embed_dim=16, depth=2, num_heads=2).eval()
    recipe = Recipe.model_validate(
        {"name": "toy", "model": {"name": "vit_tiny_patch16_224"}, "rewrites": [{"substitute": plugin, "params": {"scale": 0.5}}]}
    )
    student = build_student(model, plan(recipe, model))
    mixers = [m for m in student.modules() if type(m).__name__ == "ToyMixer"]
    assert len(mixers) == 2 and all(m.scale == 0.5 for m in mixers)
    assert student(torch.randn(2, 3, 16, 16)).shape == (2, 1000)


def test_the_plugin_is_gone_after_its_test(isolated_registry: None) -> None:
    assert "toy_mixer" not in SUBSTITUTES and PLUGIN not in sys.modules
    with pytest.raises(UnknownNameError):
        get_substitute("toy_mixer")  # a fresh entry-point scan no longer sees the package


def _outcome(name: str) -> str:
    try:
        return f"found {get_substitute(name).__name__}"
    except Exception as error:  # noqa: BLE001 - the outcome itself is under test
        return f"{type(error).__name__}: {error}"


def test_a_broken_plugin_fails_every_lookup_the_same_way(plugin: str, tmp_path: Path) -> None:
    info = tmp_path / "a_broken_plugin-0.1.dist-info"  # sorts before the good plug-in
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: a_broken_plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[surgery.substitutes]\nbroken_mixer = no_such_module_anywhere:Mixer\n")
    first, second = _outcome(plugin), _outcome(plugin)
    assert first == second
    assert first == "found ToyMixer" or "broken_mixer" in first
