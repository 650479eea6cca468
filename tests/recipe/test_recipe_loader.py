"""Reading recipe files: positions kept, `extends` merged, every problem located and explained."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from surgery.errors import Location, RecipeError
from surgery.recipe import DistillStage, load_recipe
from surgery.recipe.loader import MAX_DEPTH

MINIMAL = """\
name: tiny
model:
  name: deit_tiny_patch16_224
rewrites:
  - params: {heads: 3}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, overrides)
    return [str(problem) for problem in caught.value.problems]


def test_minimal_recipe_loads_with_locations(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", MINIMAL)
    recipe = load_recipe(path)
    assert recipe.rewrites[0].params == {"heads": 3}
    assert recipe.location_of(("model", "name")) == Location(str(path), 3, 3)
    assert recipe.location_of(("rewrites", 0, "params", "heads")) == Location(str(path), 5, 14)


def test_exponent_floats_without_a_dot_are_floats(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", MINIMAL + "stages:\n  - {kind: distill, epochs: 1, lr: 3e-4, warmup_lr: 1E6}\n")
    stage = load_recipe(path).stages[0]
    assert isinstance(stage, DistillStage)
    assert (stage.lr, stage.warmup_lr) == (3e-4, 1e6)


def test_unknown_nested_key_is_located_with_suggestion(tmp_path: Path) -> None:
    stages = "stages:\n  - kind: distill\n    epochs: 1\n    lr: 0.1\n    simlarity: cosine\n"
    path = write(tmp_path, "r.yaml", MINIMAL + stages)
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:10:5: stages.0.simlarity: unknown key 'simlarity'")
    assert "did you mean 'similarity'" in problem and "allowed: " in problem and "ce_weight" in problem


def test_unknown_top_level_key_lists_allowed_keys(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "r.yaml", MINIMAL + "stagez: []\n"))
    assert ":6:1: stagez: unknown key 'stagez' (did you mean 'stages'?)" in problem
    assert "allowed: data, export, extends, hardware, model, name, rewrites, search, seed, stages" in problem


def test_wrong_type_is_located_at_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", MINIMAL + "seed: many\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:6:1: seed: expected a valid integer")
    assert problem.endswith("got 'many'")


def test_a_base_batch_under_one_is_located_at_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", MINIMAL + "stages:\n  - {kind: finetune, epochs: 1, lr: 5e-5, lr_base_batch: 0}\n")
    [problem] = problems_of(path)
    assert problem == f"{path}:7:43: stages.0.lr_base_batch: expected greater than or equal to 1, got 0"


def test_bad_stage_kind_names_allowed_kinds(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "r.yaml", MINIMAL + "stages:\n  - kind: distil\n    epochs: 1\n"))
    assert ":7:5: stages.0.kind: unknown kind 'distil' (did you mean 'distill'?)" in problem
    assert "allowed: fit, halt, distill, finetune, prune, evaluate" in problem


def test_bad_literal_suggests_nearest_value(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", MINIMAL + "hardware: {policy: writ}\n")
    [problem] = problems_of(path)
    assert problem == f"{path}:6:12: hardware.policy: expected 'write' or 'digital', got 'writ' (did you mean 'write'?)"


def test_missing_stage_kind_lists_the_kinds(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "r.yaml", MINIMAL + "stages:\n  - {epochs: 1}\n"))
    assert problem.endswith(
        ":7:5: stages.0: missing key 'kind'; allowed kinds: fit, halt, distill, finetune, prune, evaluate"
    )


def test_missing_key_points_at_its_parent(tmp_path: Path) -> None:
    text = MINIMAL.replace("  name: deit_tiny_patch16_224\n", "  pretrained: true\n")
    [problem] = problems_of(write(tmp_path, "r.yaml", text))
    assert problem.endswith(":2:1: model.name: missing required key")


def test_union_alternatives_share_one_line(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "r.yaml", MINIMAL + "  - select: {layers: 2.5}\n"))
    assert problem.endswith(":6:14: rewrites.1.select.layers: expected a valid string or a valid list, got 2.5")


def test_every_problem_is_reported_in_file_order(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, "r.yaml", MINIMAL + "seed: x\nexport: {opset: 3}\n"))
    assert [problem.split(": ")[1] for problem in problems] == ["seed", "export.opset"]


def test_pretrained_with_checkpoint_is_refused_at_model(tmp_path: Path) -> None:
    text = MINIMAL.replace("model:\n", "model:\n  pretrained: true\n  checkpoint: w.pt\n")
    [problem] = problems_of(write(tmp_path, "r.yaml", text))
    assert ":2:1: model: pretrained and checkpoint are mutually exclusive" in problem


def test_extends_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", MINIMAL + "seed: 7\nexport: {opset: 13, atol: 0.01}\n")
    (tmp_path / "runs").mkdir()
    text = "extends: ../base.yaml\nname: child\nexport: {opset: 18}\nrewrites:\n  - substitute: other\n"
    child = write(tmp_path / "runs", "child.yaml", text)
    recipe = load_recipe(child)
    assert (recipe.name, recipe.seed, recipe.export.opset, recipe.export.atol) == ("child", 7, 18, 0.01)
    assert [rewrite.substitute for rewrite in recipe.rewrites] == ["other"] and recipe.rewrites[0].params == {}
    assert recipe.extends is None
    assert recipe.location_of(("seed",)) == Location(str(base), 6, 1)
    assert recipe.location_of(("export", "atol")) == Location(str(base), 7, 21)
    assert recipe.location_of(("export", "opset")) == Location(str(child), 3, 10)


def test_extends_chains(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", MINIMAL)
    write(tmp_path, "b.yaml", "extends: a.yaml\nseed: 1\n")
    c = write(tmp_path, "c.yaml", "extends: b.yaml\nname: c\n")
    assert (load_recipe(c).name, load_recipe(c).seed) == ("c", 1)


def test_extends_cycle_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    b = write(tmp_path, "b.yaml", "extends: a.yaml\n")
    [problem] = problems_of(b)
    assert problem.startswith(f"{tmp_path / 'a.yaml'}:1:1: extends cycle: ")
    assert problem.endswith("b.yaml")


def test_extends_missing_base_is_located(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "r.yaml", "name: x\nextends: nowhere.yaml\n"))
    assert ":2:1: extends: no recipe file at " in problem


def test_errors_from_a_base_point_into_the_base(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", MINIMAL + "seed: x\n")
    [problem] = problems_of(write(tmp_path, "child.yaml", "extends: base.yaml\nname: child\n"))
    assert problem.startswith(f"{base}:6:1: seed:")


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "name: x\nmodel: {name: a\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:3:1: invalid YAML")


def test_duplicate_key_is_located_at_the_second(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", MINIMAL + "model: {name: vit_tiny_patch16_224}\n")
    assert problems_of(path) == [f"{path}:6:1: duplicate key 'model'; each key may appear once per mapping"]


@pytest.mark.parametrize(("text", "got"), [("- a\n", "a list"), ("", "an empty file"), ("3\n", "a int")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str) -> None:
    path = write(tmp_path, "r.yaml", text)
    assert problems_of(path) == [f"{path}:1:1: expected a mapping of recipe keys, got {got}"]


def test_missing_file_is_a_recipe_error(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "absent.yaml")
    assert "cannot read recipe" in problem and "absent.yaml" in problem


def test_unsafe_tags_are_refused(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, "r.yaml", "name: !!python/object:os.system x\n"))
    assert ":1:7: invalid YAML" in problem


def test_a_control_character_is_located_at_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", MINIMAL.replace("deit_tiny", "deit\x07tiny"))
    assert problems_of(path) == [f"{path}:3:13: invalid YAML: control character U+0007 is not allowed"]


def test_bytes_that_are_not_utf8_are_located_at_their_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes(MINIMAL.encode().replace(b"rewrites", b"re\xffwrites"))
    assert problems_of(path) == [f"{path}:4:3: not UTF-8: byte 0xff cannot be decoded"]


@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ("{a: ", "}")])
def test_nesting_that_would_exhaust_the_parser_is_refused_at_the_bracket_past_the_limit(tmp_path: Path, opening: str, closing: str) -> None:
    path = write(tmp_path, "r.yaml", MINIMAL + "x: " + opening * 5000 + "1" + closing * 5000 + "\n")
    [problem] = problems_of(path)
    line = MINIMAL.count("\n") + 1
    column = len("x: ") + (MAX_DEPTH - 1) * len(opening) + 1  # the top-level mapping is the first level
    assert problem == f"{path}:{line}:{column}: nesting deeper than {MAX_DEPTH} levels; a recipe needs a handful"
