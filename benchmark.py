"""Entry point: see README.md, or run `python benchmark.py --help`."""

import sys
from pathlib import Path

# Run from a checkout without installing: the package lives in src/.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from pix2struct_onnx.benchmark import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
