"""The test suite, a package so that tests import its shared helpers as `tests.<module>` (tiny, strategies, ...)."""
