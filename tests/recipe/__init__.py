"""Tests of recipes: schema, loader, overrides, checks and the hardware section."""
