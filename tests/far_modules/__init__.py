"""Tests of the substitute modules' pruning."""
