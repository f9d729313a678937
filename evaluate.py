"""Entry point: see README.md, or run `python evaluate.py --help`."""

import sys
from pathlib import Path

# Run from a checkout without installing: the package lives in src/.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from pix2struct_onnx.evaluate_cli import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
