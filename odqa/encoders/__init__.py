"""Text encoders for dense retrieval: sentence-transformers folders, DPR pairs, plain HF models.

Only plain ``transformers`` models are run (no sentence-transformers dependency); the pooling and
normalisation a sentence-transformers model asks for are read from its configuration files.
"""

from __future__ import annotations

from odqa.encoders.dual import DualEncoder
from odqa.encoders.spec import EncoderSpec, inspect_encoder
from odqa.encoders.text_encoder import TextEncoder

__all__ = ["DualEncoder", "EncoderSpec", "TextEncoder", "inspect_encoder"]
