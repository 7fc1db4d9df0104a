"""Inputs at the edge: line reading, corpora, queries, evaluation sets and their formats."""
