"""Rewrite rules on resolved plans, one per module (file name = function name).

Each rule is a pure ``ResolvedPlan -> ResolvedPlan`` function whose docstring states the
equivalence it relies on and its preconditions. ``ci_engine.plan.RULES`` runs them in order;
``plan(..., rules=())`` gives the unoptimised reference plan that the soundness tests compare
against.
"""
