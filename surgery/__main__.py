"""`python -m surgery ...` is the `surgery` command (useful under torchrun: `torchrun -m surgery apply ...`)."""

from surgery.cli import main

main()
