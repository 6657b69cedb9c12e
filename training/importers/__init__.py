"""Importers that turn real recordings (NinaPro DB1, 3DC, CSV, NPZ) into neurohand session files."""

from .generic import import_csv, import_npy, import_npz
from .ninapro import GLOVE_FINGER_SENSORS, glove_to_positions, import_ninapro
from .threedc import import_3dc

__all__ = ["GLOVE_FINGER_SENSORS", "glove_to_positions", "import_3dc", "import_csv", "import_ninapro", "import_npy",
           "import_npz"]
