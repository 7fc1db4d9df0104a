"""Answering modes: open-book (retrieve then read) and closed-book (generate)."""
