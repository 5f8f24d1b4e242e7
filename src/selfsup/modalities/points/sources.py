"""The `meshes:` source: a folder of meshes or point-cloud files (.ply, .off, .obj, .stl), read by trimesh (the
'points' extra), each turned into a cloud of P points; sub-folders are labels.

A mesh with faces is sampled on its surface, uniformly by area (trimesh.sample.sample_surface: ModelNet's usual
preparation), a point-cloud file (vertices only) by drawing P of its points (with repetition only when it holds
fewer); draw i uses seed i, so reading again gives the same clouds. Scenes of several meshes are merged first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...data import Dataset, SourceRequest, encode_labels, labelled_files, sources
from ...errors import ConfigError, DataError
from ..base import get_modality

MESH_SUFFIXES = frozenset({".ply", ".off", ".obj", ".stl"})
DEFAULT_POINTS = 1024


def cloud_of(path: Path, points: int, seed: int) -> np.ndarray:
    """One file as float32 [points, 3]; a one-line DataError naming it when it cannot give a cloud."""
    try:
        import trimesh
    except ImportError:
        raise ConfigError("meshes: needs trimesh: pip install 'selfsup[points]'") from None
    try:
        loaded = trimesh.load(path, force=None)
        if isinstance(loaded, trimesh.Scene):
            loaded = loaded.to_mesh()
    except Exception as exc:  # trimesh's readers raise whatever their parser hits
        raise DataError(f"{path}: cannot read a mesh or point cloud ({exc.__class__.__name__}: {exc})") from None
    faces = getattr(loaded, "faces", None)
    if faces is not None and len(faces) and float(loaded.area) > 0:
        cloud, _ = trimesh.sample.sample_surface(loaded, points, seed=seed)
    else:
        vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))))
        if len(vertices) == 0:
            raise DataError(f"{path}: no points and no surface")
        pick = np.random.default_rng(seed).choice(len(vertices), points, replace=len(vertices) < points)
        cloud = vertices[pick]
    cloud = np.asarray(cloud, dtype=np.float32)
    if not np.isfinite(cloud).all():
        raise DataError(f"{path}: NaN or infinite coordinates")
    return cloud


def read_clouds(path_text: str, points: int) -> tuple[np.ndarray, list[str] | None]:
    files, labels = labelled_files(path_text, MESH_SUFFIXES, "mesh or point-cloud files")
    return np.stack([cloud_of(f, points, seed) for seed, f in enumerate(files)]), labels


@sources.register("meshes", "a folder of meshes or point clouds (.ply/.off/.obj/.stl, read by trimesh; sub-folders "
                  "are labels), each sampled to P points: meshes:FOLDER[?points=1024&test=FOLDER2]",
                  modality="points")
def load_meshes(req: SourceRequest) -> Dataset:
    req.check_options({"points", "test"})
    if not req.path:
        raise ConfigError("meshes: needs a folder, e.g. meshes:shapes/?points=1024")
    points = req.whole("points", DEFAULT_POINTS, 16, 1_000_000)
    x, labels = read_clouds(req.path, points)
    x_test, test_labels = read_clouds(req.options["test"], points) if "test" in req.options else (None, None)
    if "test" in req.options and (labels is None) != (test_labels is None):
        raise DataError(f"--data {req.uri}: one of the folders has label sub-folders and the other not")
    info: dict[str, Any] = {}
    if labels is not None:
        (y, y_test), info["classes"] = encode_labels(np.asarray(labels),
                                                     None if test_labels is None else np.asarray(test_labels))
    else:
        y = y_test = None
    name = req.path.rstrip("/").split("/")[-1] or req.path
    return get_modality("points").dataset_from_arrays(x, y, name, x_test, y_test, **info)
