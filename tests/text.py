"""The tiny text encoder and corpus the text tests share: a two-layer BERT of width 32 with MiniLM's tokenizer, and a
topic file laid out like the packaged Wikipedia summaries (title -> {extract, topic}) but written here.

The corpus has three topics, each article drawn from its topic's words, so a linear probe can read the topic and
padding varies from article to article (lengths 4 to 23 words).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

TOPICS: dict[str, tuple[str, ...]] = {
    "Music": ("melody", "symphony", "guitar", "rhythm", "chord", "orchestra", "song", "tempo", "piano", "choir"),
    "Astronomy": ("galaxy", "planet", "orbit", "telescope", "comet", "star", "nebula", "moon", "eclipse", "asteroid"),
    "Cooking": ("recipe", "oven", "butter", "flour", "simmer", "spice", "garlic", "bread", "sauce", "kitchen"),
}


def write_corpus(root: Path, per_topic: int = 16, seed: int = 0) -> Path:
    """A JSON corpus of `per_topic` articles per topic, plus two without a topic (which the data kind leaves out)."""
    generator = np.random.default_rng(seed)
    entries: dict[str, Any] = {}
    for topic, words in TOPICS.items():
        for index in range(per_topic):
            text = " ".join(generator.choice(words, size=int(generator.integers(4, 24))))
            entries[f"{topic} {index}"] = {"title": f"{topic} {index}", "extract": f"The {text}.", "topic": topic}
    entries["Untitled a"] = {"extract": "nothing to see", "topic": "Uncategorized"}
    entries["Untitled b"] = {"extract": "no topic at all"}
    path = root / "corpus.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def write_tiny_bert(root: Path) -> Path:
    """A random two-layer BERT (4 heads of 8, 64 positions) saved with MiniLM's tokenizer, as a user's own model folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from surgery.models import MINILM, text_model_path

    path = root / "tiny-bert"
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(text_model_path(MINILM)).save_pretrained(path)
    return path


def write_bert_far_recipe(root: Path, tokens: int, **config: int) -> Path:
    """A recipe that rewrites every self-attention of a random BERT of `config` (saved under `root`) to a BiLSTM, read
    at `tokens` tokens."""
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(**config)).save_pretrained(root / "bert")
    path = root / "bert.yaml"
    path.write_text(
        f"name: bert_far\nmodel:\n  name: {root / 'bert'}\n  source: transformers\n  input_size: [{tokens}]\n"
        "rewrites:\n  - select:\n      path: encoder.layer.*.attention.self\n    substitute: bilstm\n"
    )
    return path


def text_recipe(model: Path, corpus: Path, **data: Any) -> dict[str, Any]:
    """Every self-attention of the tiny BERT to a BiLSTM; distil, finetune, prune, finetune, each an epoch, evaluated twice.

    The hidden units of these BiLSTMs start with group norms about 2 (their input weights come from the attention),
    so a threshold of 2.05 removes some of them after one epoch, not all.
    """
    train = {"lr": 3.0e-3, "warmup_epochs": 0, "batch_size": 8}
    evaluate = {"kind": "evaluate", "latency_lengths": [16, 32]}
    return {
        "name": "tiny_text",
        "seed": 0,
        "model": {"name": str(model), "source": "transformers", "pretrained": True, "input_size": [24]},
        "rewrites": [{"select": {"path": "encoder.layer.*.attention.self"}, "substitute": "bilstm", "params": {"init": "attention"}}],
        "data": {"kind": "wiki", "file": str(corpus), "val_fraction": 0.25, **data},
        "stages": [
            {"kind": "distill", "epochs": 1, "mode": "teacher_forced", **train},
            {"kind": "finetune", "epochs": 1, **train},
            evaluate,
            {"kind": "prune", "epochs": 1, "hoyer_weight": 1.0e-2, "threshold": 2.05, **train},
            {"kind": "finetune", "name": "finetune_pruned", "epochs": 1, **train},
            evaluate,
        ],
    }
