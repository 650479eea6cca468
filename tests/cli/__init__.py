"""Golden tests of the `surgery` command line, and the runner they share (`cli_helpers`)."""
