"""The model folder: what convert.py writes and every runtime reads.

model/
  encoder.onnx      vision encoder + cross-attention K/V (see docs/DESIGN.md)
  decoder.onnx      one decoding step with explicit KV cache
  tokenizer.json    Hugging Face tokenizers file (decoding ids to text)
  font.ttf          the font the question header is drawn with
  config.json       preprocessing, generation, graph dimensions and input/output names
  manifest.json     provenance, library versions, each file's size and SHA-256, fidelity figures

Only the standard library here: inference must not import torch or transformers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import ModelFolderError

FORMAT_VERSION = 1
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
FONT_FILE = "font.ttf"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"

# Hard cap on decoding steps, whatever the caller asks: no loop runs forever.
MAX_NEW_TOKENS_CAP = 1024


@dataclass(frozen=True)
class GraphNames:
    """Input and output names shared by the exporter and the runtimes."""

    num_layers: int
    encoder_hidden_states: str = "encoder_hidden_states"

    def cross_names(self) -> list[str]:
        return [f"cross_{kind}_{i}" for i in range(self.num_layers) for kind in ("key", "value")]

    def past_names(self) -> list[str]:
        return [f"past_{kind}_{i}" for i in range(self.num_layers) for kind in ("key", "value")]

    def present_names(self) -> list[str]:
        return [f"present_{kind}_{i}" for i in range(self.num_layers) for kind in ("key", "value")]


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of Pix2StructImageProcessor that the pipeline reproduces."""

    max_patches: int = 2048
    patch_height: int = 16
    patch_width: int = 16
    is_vqa: bool = True
    text_size: int = 36
    header_wrap_width: int = 80
    header_padding: int = 5
    # Images above this many pixels are refused (decompression-bomb guard); 0 disables.
    max_image_pixels: int = 100_000_000


@dataclass(frozen=True)
class GenerationConfig:
    decoder_start_token_id: int = 0
    eos_token_id: int = 1
    pad_token_id: int = 0
    max_new_tokens: int = 19
    clean_up_tokenization_spaces: bool = False
    default_question: str = "What is the title of this document?"


@dataclass(frozen=True)
class ModelConfig:
    """Everything inference needs besides the graphs, tokenizer and font."""

    num_layers: int
    num_heads: int
    d_kv: int
    vocab_size: int
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    encoder_file: str = ENCODER_FILE
    decoder_file: str = DECODER_FILE
    format_version: int = FORMAT_VERSION

    @property
    def names(self) -> GraphNames:
        return GraphNames(self.num_layers)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        data["preprocess"] = PreprocessConfig(**data.get("preprocess", {}))
        data["generation"] = GenerationConfig(**data.get("generation", {}))
        return cls(**data)


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_files(folder: Path) -> dict[str, dict]:
    """Size and SHA-256 of every file in the folder except the manifest itself."""
    return {p.name: {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST_FILE}


@dataclass(frozen=True)
class ModelFolder:
    """A checked model folder: paths plus the parsed config."""

    path: Path
    config: ModelConfig
    manifest: dict

    @property
    def encoder_path(self) -> Path:
        return self.path / self.config.encoder_file

    @property
    def decoder_path(self) -> Path:
        return self.path / self.config.decoder_file

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    @property
    def font_path(self) -> Path:
        return self.path / FONT_FILE


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{what} {path} is unreadable ({exc.__class__.__name__}); "
                               "re-run convert.py to rebuild the folder") from None
    if not isinstance(data, dict):
        raise ModelFolderError(f"{what} {path} is not a JSON object; re-run convert.py")
    return data


def open_model_folder(path: str | Path, verify_checksums: bool = False) -> ModelFolder:
    """Check a model folder against its manifest and return it.

    Sizes of all files are always checked; SHA-256 of the small files always, and of the ONNX
    graphs (about 1.1 GB for the base model) only with verify_checksums, since hashing them would
    add about a second to every start.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} does not exist; create it with "
                               f"'python convert.py --output {folder}'")
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ModelFolderError(f"{folder} has no {MANIFEST_FILE}: not a model folder written by convert.py; "
                               "re-run convert.py")
    manifest = _read_json(manifest_path, "manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelFolderError(f"{manifest_path} lists no files; re-run convert.py")
    for name, entry in files.items():
        if not isinstance(entry, dict) or Path(name).name != name or name in (".", ".."):
            raise ModelFolderError(f"{manifest_path} has an invalid entry {name!r}; re-run convert.py")
        file_path = folder / name
        if not file_path.is_file():
            raise ModelFolderError(f"{file_path} is missing from the model folder; re-run convert.py")
        if file_path.stat().st_size != entry.get("bytes"):
            raise ModelFolderError(f"{file_path} has {file_path.stat().st_size} bytes but the manifest says "
                                   f"{entry.get('bytes')}: the file is damaged; re-run convert.py")
        is_graph = name.endswith(".onnx") or name.endswith(".onnx.data")
        if (verify_checksums or not is_graph) and sha256_of(file_path) != entry.get("sha256"):
            raise ModelFolderError(f"{file_path} does not match the SHA-256 in the manifest: the file is "
                                   "damaged or was edited; re-run convert.py")
    config_data = _read_json(folder / CONFIG_FILE, "config") if (folder / CONFIG_FILE).is_file() else None
    if config_data is None:
        raise ModelFolderError(f"{folder} has no {CONFIG_FILE}; re-run convert.py")
    if config_data.get("format_version") != FORMAT_VERSION:
        raise ModelFolderError(f"{folder} uses model folder format {config_data.get('format_version')!r}, "
                               f"this version reads format {FORMAT_VERSION}; re-run convert.py")
    try:
        config = ModelConfig.from_dict(config_data)
    except TypeError as exc:
        raise ModelFolderError(f"{folder / CONFIG_FILE} does not match the expected settings ({exc}); "
                               "re-run convert.py") from None

    for required in (config.encoder_file, config.decoder_file, TOKENIZER_FILE, FONT_FILE, CONFIG_FILE):
        if required not in files:
            raise ModelFolderError(f"manifest of {folder} does not list {required}; re-run convert.py")
    return ModelFolder(path=folder, config=config, manifest=manifest)
