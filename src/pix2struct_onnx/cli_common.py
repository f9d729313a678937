"""What both command-line tools share: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from .errors import UserError

DEBUG_ENV = "PIX2STRUCT_ONNX_DEBUG"


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a model folder or a benchmark depends on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "onnx", "onnxruntime", "tokenizers", "numpy", "pillow"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr and exits with 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None, prog: str) -> int:
    """Run a CLI body, turning every failure into one line on stderr and an exit code."""
    try:
        return main(argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{prog}: error: out of memory; lower --batch-size or use a machine with more memory",
              file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: never a traceback unless asked for
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"{prog}: internal error: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              f"(set {DEBUG_ENV}=1 for a traceback)", file=sys.stderr)
        return 1
