"""train() called from a script: a missing ``if __name__ == "__main__":`` guard never hangs it."""

import os
import subprocess
import sys
import textwrap

import pytest

from neurohand.training.parallel_refit import usable_cores

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_two_cores = pytest.mark.skipif(usable_cores() < 2, reason="the parallel refit needs two cores")

TRAIN_SCRIPT = """
import sys

from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from neurohand.training.config import ArchitectureConfig, BatchConfig, ScheduleConfig, TrainConfig
from neurohand.training.train import train
{patch}
rec = simulate_recording(SimulatorConfig(minutes=1.6, n_channels=6, fs_hz=4000.0, seed=7))
config = TrainConfig(model=ArchitectureConfig(hidden=8, layers=1), batches=BatchConfig(seq_len=40, batch_size=8),
                     schedule=ScheduleConfig(epochs=2, min_epochs=1, max_steps_per_epoch=2), device="cpu")
result = train([rec], sys.argv[1], config=config, progress=False, fit_classic=False)
print("refit epochs", result.refit_epochs)
"""


def _run_script(tmp_path, text):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(text))
    return subprocess.run([sys.executable, str(script), str(tmp_path / "model")], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=240)


@pytest.mark.slow
@needs_two_cores
def test_a_script_without_a_main_guard_refits_after_the_first_phase(tmp_path):
    r = _run_script(tmp_path, TRAIN_SCRIPT.format(patch=""))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the refit runs after the first phase, not beside it: the script calling train() has no 'if __name__ == " \
           "\"__main__\":' block" in r.stdout
    assert "refit epochs 0" not in r.stdout and "refit epochs" in r.stdout
    assert os.path.isfile(tmp_path / "model" / "model.json")


@pytest.mark.slow
@needs_two_cores
def test_a_refit_process_that_dies_while_starting_falls_back_to_the_refit_after_the_first_phase(tmp_path):
    # as if the script's guard could not be checked: the spawned process runs the script again and dies starting
    patch = "import neurohand.training.train as tt\ntt.spawn_reruns_caller = lambda: False\n"
    r = _run_script(tmp_path, TRAIN_SCRIPT.format(patch=patch))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the refit process ended while starting (exit code 1): refitting after the first phase instead" in r.stdout
    assert "refit epochs 0" not in r.stdout and "refit epochs" in r.stdout


def test_spawn_reruns_caller_reads_the_main_guard(tmp_path):
    script = tmp_path / "guards.py"
    script.write_text(textwrap.dedent("""
        from neurohand.training.parallel_refit import spawn_reruns_caller

        print("top level", spawn_reruns_caller())


        def main():
            print("in main()", spawn_reruns_caller())


        if __name__ == "__main__":
            main()
            print("guarded", spawn_reruns_caller())
        else:
            print("not main", spawn_reruns_caller())
    """))
    r = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["top level True", "in main() False", "guarded False"]
    code = "from neurohand.training.parallel_refit import spawn_reruns_caller; print(spawn_reruns_caller())"
    r = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr  # python -c: nothing to import again
