"""Retrievers: sparse (BM25), dense (FAISS) and hybrid fusion."""
