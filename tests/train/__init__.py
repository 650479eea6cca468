"""Tests of training: the engine and its objectives."""
