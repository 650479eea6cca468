"""`surgery schema`: the recipe JSON Schema, for editors' YAML language servers."""

from __future__ import annotations

from surgery.cli.common import stdout


def schema() -> None:
    """Print the recipe JSON Schema (the same text as recipes/recipe.schema.json)."""
    from surgery.recipe import recipe_json_schema_text

    stdout.out(recipe_json_schema_text(), end="", highlight=False)
