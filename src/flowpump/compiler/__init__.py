"""The compiler: plans, fusion and explain."""

from ._explain import explain
from ._plan import Plan, PlanStage, plan

__all__ = ["Plan", "PlanStage", "explain", "plan"]
