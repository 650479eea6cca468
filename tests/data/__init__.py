"""Tests of the data loaders: embedded digits, synthetic data and image folders."""
