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
def short_rec():
    """Six seconds of a simulated patient, 4 channels at 4 kHz."""
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    return simulate_recording(SimulatorConfig(minutes=0.1, n_channels=4, fs_hz=4000.0, seed=2))


@pytest.fixture(scope="session")
def adapted_bundle(tmp_path_factory, short_rec):
    """An untrained, state-carrying bundle for ``short_rec`` behind a feature adaptation that moves within seconds."""
    from neurohand.decoder.adaptation import AdaptationConfig
    from neurohand.decoder.bundle import Bundle
    from tests.test_export_engines import small_bundle

    return Bundle(small_bundle(str(tmp_path_factory.mktemp("adapted")), short_rec, hidden=16,
                               adapt=AdaptationConfig(prior_s=0.5, horizon_s=1.0)))


@pytest.fixture
def rec(short_rec):
    """``short_rec`` under the name the runtime's tests use (a module may define its own)."""
    return short_rec


@pytest.fixture
def bundle(adapted_bundle):
    """``adapted_bundle`` under the name the runtime's tests use (a module may define its own)."""
    return adapted_bundle


@pytest.fixture(scope="session")
def small_sim():
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    return simulate_recording(SimulatorConfig(minutes=0.5, n_channels=8, fs_hz=5000.0, seed=3))


@pytest.fixture(scope="session")
def c_hand_unbuildable():
    """Why the reference firmware's pseudo-terminal hand cannot be built here ('' once it is built)."""
    from tests.c_hand import build_c_hand

    return build_c_hand()


@pytest.fixture(params=["sim_hand.py", "C firmware"])
def Hand(request, c_hand_unbuildable):  # noqa: N802 - a class, as SimHand is
    """The hand the runtime's integration and safety tests drive: the Python simulator, then the reference firmware
    in C (firmware_bridge/firmware) on its own pseudo-terminal; both must pass the same tests."""
    if request.param == "sim_hand.py":
        from neurohand.firmware_bridge.sim_hand import SimHand

        return SimHand
    if c_hand_unbuildable:
        pytest.skip(c_hand_unbuildable)
    from tests.c_hand import CHand

    return CHand
