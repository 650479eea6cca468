"""`surgery robustness` on the tiny digits run: the ideal device's clean top-1, the JSON shape, spread under noise, refusals."""

from __future__ import annotations

import json
import shutil

import pytest

from surgery.runs import load_evaluated, load_run
from surgery.runs.evaluate import validation_loader
from surgery.train.distributed import init_distributed
from surgery.train.evaluation import block_fidelity, top1
from tests.cli.cli_helpers import invoke
from tests.strategies import single_thread  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("single_thread")
IMAGES = 40


@pytest.fixture(scope="module")
def swept(finished_run, tmp_path_factory):
    """Ideal device, σ = 0 % and 10 % under `write`, 3 seeds, on the first 40 validation images, with a plot."""
    plot = tmp_path_factory.mktemp("robustness") / "robustness.png"
    result = invoke(
        "robustness", finished_run.run.root, "--sigma", "0,10", "--policy", "write", "--seeds", "3", "--images", str(IMAGES), "--json", "--plot", plot
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr, plot


@pytest.mark.slow
def test_the_json_holds_settings_and_one_aligned_list_per_model_the_run_has(swept):
    report, _, _ = swept
    assert list(report) == ["settings", "teacher", "student", "pruned"]  # each report row's student is kept in evaluated/
    assert [(s["ideal"], s["policy"], s["programming_sigma"]) for s in report["settings"]] == [(True, None, 0.0), (False, "write", 0.0), (False, "write", 0.1)]
    for name in ("teacher", "student", "pruned"):
        assert len(report[name]) == 3 and all(set(row) == {"top1_mean", "top1_std", "fidelity_mean", "fidelity_std"} for row in report[name])


@pytest.mark.slow
def test_the_ideal_device_gives_the_clean_top1_and_fidelity_on_every_seed(swept, finished_run):
    report, _, _ = swept
    root, ctx = finished_run.run.root, init_distributed("cpu")
    teacher = load_run(root, "teacher")
    loader = validation_loader(finished_run.run, teacher, 256, IMAGES)
    blocks = [f"blocks.{i}" for i in range(len(teacher.blocks))]
    for name, model in (("teacher", teacher), ("student", load_evaluated(root, "student")), ("pruned", load_run(root))):
        clean = top1(model, loader, ctx)
        fidelity = block_fidelity(teacher, model, blocks, loader, ctx)
        assert report[name][0] == pytest.approx({"top1_mean": clean, "top1_std": 0.0, "fidelity_mean": sum(fidelity.values()) / len(blocks), "fidelity_std": 0.0})


@pytest.mark.slow
def test_the_kept_student_is_the_one_its_report_row_measured(finished_run):
    report = json.loads(finished_run.run.report_json.read_text())
    student = load_evaluated(finished_run.run.root, "student")
    loader = validation_loader(finished_run.run, student, 256)
    assert top1(student, loader, init_distributed("cpu")) == report["student"]["top1"]


@pytest.mark.slow
def test_models_measures_only_the_ones_named(finished_run):
    result = invoke("robustness", finished_run.run.root, "--sigma", "0", "--seeds", "1", "--images", "8", "--models", "pruned,student", "--json")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)) == ["settings", "student", "pruned"] and "no teacher" not in result.stderr


@pytest.mark.slow
def test_a_run_from_before_rows_were_kept_reports_why_its_student_is_missing(run_copy):
    shutil.rmtree(run_copy.root / "evaluated")
    result = invoke("robustness", run_copy.root, "--sigma", "0", "--seeds", "1", "--images", "8", "--json")
    assert result.exit_code == 0, result.output
    assert list(json.loads(result.stdout)) == ["settings", "teacher", "pruned"]
    assert "no student: the run kept no weights for it" in result.stderr
    refused = invoke("robustness", run_copy.root, "--seeds", "1", "--models", "student")
    assert refused.exit_code == 2 and "no student to measure: the run kept no weights for it" in refused.stderr


@pytest.mark.slow
def test_programming_noise_spreads_fidelity_over_seeds_and_a_plot_is_written(swept):
    report, _, plot = swept
    assert all(report[name][2]["fidelity_std"] > 0 for name in ("teacher", "student", "pruned"))  # top-1 on 40 images may tie
    assert plot.stat().st_size > 0 and not list(plot.parent.glob(".*"))  # written whole, no staging file left


@pytest.mark.slow
def test_one_seed_gives_no_spread_and_the_table_has_a_row_per_setting(finished_run):
    result = invoke("robustness", finished_run.run.root, "--sigma", "5", "--policy", "both", "--seeds", "1", "--images", str(IMAGES))
    assert result.exit_code == 0, result.output
    assert f"on the first {IMAGES} validation images" in result.stdout and "ideal device" in result.stdout and "write, σ=5%" in result.stdout and "digital, σ=5%" in result.stdout
    assert result.stdout.count("±") == 1  # the title's "mean ± std": no std from one seed
    assert "student fidelity" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--sigma", "abc"], "--sigma 'abc': not a number"),
        (["--sigma", "-1"], "from 0 to 100"),
        (["--sigma", "150"], "from 0 to 100"),
        (["--sigma", "1,,2"], "an empty item"),
        (["--drift-time", "1 fortnight"], "not a duration"),
        (["--drift-time", "1h"], "does not drift"),
        (["--models", "studnt"], "'studnt': no such model; the models are teacher, student, pruned (did you mean 'student'?)"),
    ],
)
def test_bad_settings_are_refused_with_exit_code_2(args, expected):
    result = invoke("robustness", "recipes/quickstart.yaml", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr


def test_a_recipe_without_a_finished_run_is_refused(tmp_path):
    result = invoke("robustness", "recipes/quickstart.yaml", "--set", f"name=absent_{tmp_path.name}")
    assert result.exit_code == 2, result.output
    assert "no finished run at runs/absent_" in result.stderr
