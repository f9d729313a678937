"""Dynamic int8 quantization of a model folder's graphs with ONNX Runtime's quantizer.

Weights of every MatMul (projections, feed-forward, lm_head) become int8 per output channel, and the
token, row and column embedding tables (Gather) int8 too, which is what brings the base model under
300 MB. Activations are quantized on the fly per tensor (MatMulInteger / DynamicQuantizeLinear), so
no calibration data is needed. Runs on ONNX Runtime's CPU provider (VNNI kernels where available).
"""

from __future__ import annotations

import logging
from pathlib import Path

from .export import EXTERNAL_DATA_THRESHOLD


def quantize_graph(source: Path, target: Path) -> None:
    """Write an int8 copy of one graph; weights are stored per channel for accuracy."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs a "pre-process first" hint at WARNING
    large = source.stat().st_size > EXTERNAL_DATA_THRESHOLD or source.with_name(source.name + ".data").exists()
    quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gather"], use_external_data_format=large,
                     extra_options={"MatMulConstBOnly": True})
