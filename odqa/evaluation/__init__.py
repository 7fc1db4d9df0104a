"""Evaluation runs: answer or retrieve for every question of a dataset, time it, score it."""

from odqa.evaluation.results import SystemResult
from odqa.evaluation.run import EvalRun, run_evaluation

__all__ = ["EvalRun", "SystemResult", "run_evaluation"]
