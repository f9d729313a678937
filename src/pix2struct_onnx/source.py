"""Find the Hugging Face checkpoint and the header font that a conversion starts from."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import ConversionError, InputError
from .preprocessing import font_bytes_ok

DEFAULT_MODEL = "google/pix2struct-docvqa-base"
# transformers draws the question with this font, downloaded at run time from the Hub.
FONT_REPO, FONT_FILE = "ybelkada/fonts", "Arial.TTF"
_MODEL_PATTERNS = ["*.json", "*.safetensors", "spiece.model", "*.txt"]


@dataclass(frozen=True)
class Source:
    path: Path        # local folder in Hugging Face format
    model_id: str     # what the user asked for
    revision: str     # Hub commit hash, or "local"


def resolve_model(model: str, revision: str | None = None) -> Source:
    """A local Hugging Face folder, or a Hub id downloaded (or taken from the cache)."""
    local = Path(model).expanduser()
    if local.exists():
        if not local.is_dir() or not (local / "config.json").is_file():
            raise InputError(f"{model} is not a Hugging Face model folder (no config.json)")
        return Source(path=local, model_id=str(local.resolve()), revision="local")
    if model.count("/") != 1 or model.startswith((".", "/")):
        raise InputError(f"model {model!r} is neither a local folder nor a Hub id like {DEFAULT_MODEL}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        path = Path(snapshot_download(model, revision=revision, allow_patterns=_MODEL_PATTERNS))
        if not any(path.glob("*.safetensors")):  # older checkpoints ship PyTorch pickles only
            path = Path(snapshot_download(model, revision=revision, allow_patterns=["*.bin", "*.bin.index.json"]))
    except RepositoryNotFoundError:
        raise ConversionError(f"model {model} was not found on the Hugging Face Hub; check the id") from None
    except LocalEntryNotFoundError:
        raise ConversionError(f"cannot download {model}: no network and no copy in the Hugging Face cache; "
                              "connect to the internet or pass --model LOCAL_FOLDER") from None
    except (HfHubHTTPError, OSError) as exc:
        raise ConversionError(f"cannot download {model} ({exc.__class__.__name__}); check the network "
                              "or pass --model LOCAL_FOLDER") from None
    return Source(path=path, model_id=model, revision=path.name)


def fetch_font(font: str | None, destination: Path) -> str:
    """Copy --font, or the font transformers uses (downloaded or cached), to destination.

    Returns where the font came from, for the manifest.
    """
    if font:
        source = Path(font).expanduser()
        if not source.is_file():
            raise InputError(f"font {font} does not exist; pass a TrueType font file with --font")
        if not font_bytes_ok(source.read_bytes()):
            raise InputError(f"{font} is not a font Pillow can open; pass a TrueType (.ttf) file")
        shutil.copyfile(source, destination)
        return str(source.resolve())
    try:
        from huggingface_hub import hf_hub_download

        downloaded = hf_hub_download(FONT_REPO, FONT_FILE)
    except Exception:  # no network and no cache: several exception types, same remedy
        raise ConversionError(f"cannot get the header font ({FONT_REPO}/{FONT_FILE}) from the Hugging Face Hub "
                              "or its cache; connect to the internet or pass --font PATH.ttf "
                              "(Arial matches the reference pixels)") from None
    shutil.copyfile(downloaded, destination)
    return f"hf://{FONT_REPO}/{FONT_FILE}"
