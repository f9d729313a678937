"""One error type per kind of user-facing failure; the CLIs print them as one line."""

from __future__ import annotations


class UserError(Exception):
    """A failure the user can fix; printed without a traceback. exit_code follows the CLI contract."""

    exit_code = 1


class InputError(UserError):
    """Bad arguments or input files (images, questions): exit code 2."""

    exit_code = 2


class ModelFolderError(UserError):
    """A model folder that is missing, incomplete, damaged or from another format version."""

    exit_code = 1


class ConversionError(UserError):
    """Conversion could not finish (no model, no font, fidelity check failed)."""

    exit_code = 1
