"""Running models without PyTorch: ONNX exports, the Rust tokenizer, and what the CPU offers.

Everything here imports only numpy at module level; ``onnxruntime`` and ``tokenizers`` load on
first use, and ``torch`` only when a model has to be exported.
"""
