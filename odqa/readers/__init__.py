"""Readers: turn a question and retrieved passages into ranked answers."""
