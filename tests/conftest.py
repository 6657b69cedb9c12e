import os

import numpy as np
import pytest

from tests.fakes.harness import fake_cudart_path, use_fakes  # noqa: F401 - fixtures: the GPU-less fakes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
NINAPRO_FILE = os.path.join(SHARED_DATA, "ninapro_db1_s2_e1", "S2_A1_E1.mat")
THREEDC_DIR = os.path.join(SHARED_DATA, "3dc_p1-5")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def ninapro_file():
    if not os.path.exists(NINAPRO_FILE):
        pytest.skip("NinaPro DB1 recording not found at {} (../shared/data is absent outside this setup)".format(
            NINAPRO_FILE))
    return NINAPRO_FILE


@pytest.fixture(scope="session")
def threedc_dir():
    if not os.path.isdir(THREEDC_DIR):
        pytest.skip("3DC recordings not found at {} (../shared/data is absent outside this setup)".format(
            THREEDC_DIR))
    return THREEDC_DIR


@pytest.fixture(scope="session")
def small_sim():
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    return simulate_recording(SimulatorConfig(minutes=0.5, n_channels=8, fs_hz=5000.0, seed=3))
