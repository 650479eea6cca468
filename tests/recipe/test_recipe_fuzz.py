"""200 mutated recipes through `surgery validate` and `surgery plan --device meta`: exit 0 or 2, every refusal located.

The same fuzzer runs at any size as `python benchmarks/fuzz_recipes.py --cases N`.
"""

from __future__ import annotations

from benchmarks.fuzz_recipes import MUTATIONS, fuzz


def test_two_hundred_mutated_recipes_end_in_exit_0_or_2_with_located_refusals():
    outcomes = fuzz(200, seed=0)
    failures = [f"{o.index} {o.recipe} {o.mutation}: {o.problem}" for o in outcomes if o.problem]
    assert failures == []
    assert {o.mutation for o in outcomes} == {mutation.__name__ for mutation in MUTATIONS}
    assert {o.validate for o in outcomes} == {0, 2} and 0 in {o.plan for o in outcomes}
