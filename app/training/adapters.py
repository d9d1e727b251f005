"""What a LoRA run keeps apart from its export: the adapter file (the trained weights only), a merged
copy of the model to export, and a backup that survives a resume.

The adapter holds every trainable weight of the model (the LoRA factors and the new head) by its Keras
path, with the LoRA settings, in one HDF5 file: a few hundred KB where the export is tens of MB.
"""

from __future__ import annotations

import json
import resource
import tempfile
from pathlib import Path

import h5py
import keras
import numpy as np

from models.lora import lora_layers, sublayers

ADAPTER_FILE = "adapter.lora.h5"


def parameter_counts(model: keras.Model) -> tuple[int, int]:
    """(trainable, total) parameters of ``model``, LoRA factors included."""
    count = lambda weights: int(sum(np.prod(weight.shape) for weight in weights))  # noqa: E731
    return count(model.trainable_weights), count(model.weights)


def peak_rss_mb() -> float:
    """The most memory this process has held so far: Linux's VmHWM (``ru_maxrss`` elsewhere, which on
    Linux a started process inherits from its parent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def save_adapter(model: keras.Model, path: Path, settings: dict) -> int:
    """Write ``model``'s trainable weights and ``settings`` to ``path``; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.staging")
    with h5py.File(staging, "w") as file:
        file.attrs["settings"] = json.dumps(settings)
        for weight in model.trainable_weights:
            file[weight.path] = keras.ops.convert_to_numpy(weight)
    staging.replace(path)
    return path.stat().st_size


def adapter_settings(path: Path) -> dict:
    with h5py.File(path, "r") as file:
        return json.loads(file.attrs["settings"])


def load_adapter(model: keras.Model, path: Path) -> None:
    """Set ``model``'s trainable weights from an adapter file; ValueError if it was made for another shape."""
    weights = {weight.path: weight for weight in model.trainable_weights}
    with h5py.File(path, "r") as file:
        saved = {}
        file.visititems(lambda name, item: saved.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    if set(saved) != set(weights):
        missing, extra = sorted(set(weights) - set(saved)), sorted(set(saved) - set(weights))
        raise ValueError(f"adapter {path} was made for another model: it lacks {missing[:3]} and has {extra[:3]}")
    for name, value in saved.items():
        if tuple(value.shape) != tuple(weights[name].shape):
            raise ValueError(
                f"adapter {path} was made for another model: {name} is {tuple(value.shape)} there, {tuple(weights[name].shape)} here"
            )
        weights[name].assign(value)


def merged_copy(model: keras.Model) -> keras.Model:
    """The same model without LoRA: each update merged into its kernel (Keras merges when it saves
    weights), so serving runs one matrix product per layer and holds no LoRA variables."""
    copy = type(model).from_config(model.get_config())  # the same layers, new weights (clone_model would also compile it)
    for layer, copied in zip(sublayers(model), sublayers(copy)):  # an int8 base stays int8 (QLoRA)
        if getattr(layer, "quantization_mode", None) and not copied.quantization_mode:
            copied.quantize(layer.quantization_mode)
    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / "merged.weights.h5"
        model.save_weights(weights)
        copy.load_weights(weights)
    if lora_layers(copy):
        raise RuntimeError("the merged copy still has LoRA layers")
    return copy


class LoraBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` for a model with LoRA layers. Keras saves such a layer merged (base + update)
    and zeroes its factors when it loads it, so a resumed run could no longer train them (with both
    factors zero, both gradients are zero). This one keeps the factors beside the backup and, after a
    resume, puts back the base kernels and the factors."""

    def __init__(self, backup_dir: str, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.factors_path = Path(backup_dir) / "lora_factors.h5"

    def on_train_begin(self, logs=None):
        base_kernels = {id(layer): keras.ops.convert_to_numpy(layer._kernel) for layer in lora_layers(self.model)}
        super().on_train_begin(logs)
        if self.factors_path.is_file():
            with h5py.File(self.factors_path, "r") as file:
                for index, layer in enumerate(lora_layers(self.model)):
                    layer._kernel.assign(base_kernels[id(layer)])
                    layer.lora_kernel_a.assign(file[f"{index}/a"][()])
                    layer.lora_kernel_b.assign(file[f"{index}/b"][()])

    def _save_model(self):
        Path(self.backup_dir).mkdir(parents=True, exist_ok=True)
        staging = self.factors_path.with_name(".lora_factors.staging")
        with h5py.File(staging, "w") as file:
            for index, layer in enumerate(lora_layers(self.model)):
                file[f"{index}/a"] = keras.ops.convert_to_numpy(layer.lora_kernel_a)
                file[f"{index}/b"] = keras.ops.convert_to_numpy(layer.lora_kernel_b)
        staging.replace(self.factors_path)
        super()._save_model()
