"""Pix2Struct document question answering with ONNX Runtime, without PyTorch at inference."""

__version__ = "0.1.0"
