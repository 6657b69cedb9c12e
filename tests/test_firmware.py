"""The reference hand firmware in C (firmware_bridge/firmware): its host tests and fuzz run, and the same tests on an
emulated Cortex-M3. (Its pseudo-terminal build is the hand in the runtime's tests: the ``Hand`` fixture.)"""

import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware_bridge", "firmware")
ARM_TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")


def make(*targets, timeout=600):
    return subprocess.run(["make", "-C", FIRMWARE] + list(targets), capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="no C compiler or make here")
def test_host_build_passes_the_vectors_the_behaviour_tests_and_a_sanitized_fuzz_run():
    r = make("test")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = re.search(r"^(\d+) checks, 0 failed$", r.stdout, re.M)
    assert m and int(m.group(1)) > 400, r.stdout
    runs = re.findall(r"^(\d+) streams, (\d+) frames decoded, (\d+) dropped, \d+ bytes sent, 0 allocations", r.stdout,
                      re.M)
    assert len(runs) == 2 and all(int(ok) > 100000 and int(bad) > 100000 for _, ok, bad in runs), r.stdout


@pytest.mark.slow
@pytest.mark.skipif(any(shutil.which(t) is None for t in ARM_TOOLS), reason="the Cortex-M tools are not installed: "
                    "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
def test_the_same_tests_pass_on_an_emulated_cortex_m3_and_the_firmware_is_small():
    r = make("cortex-m")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert re.search(r"^(\d+) checks, 0 failed$", r.stdout, re.M), r.stdout
    total = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+[0-9a-f]+\s+\(TOTALS\)$", r.stdout, re.M)
    text, data, bss = (int(v) for v in total.groups())
    state = int(re.search(r"whole state \(NH_MAX_PACKET=64\): (\d+) bytes of RAM", r.stdout).group(1))
    # docs/firmware.md quotes these: a few kilobytes of flash, under a kilobyte of RAM
    assert text + data < 4096 and data + bss + state < 1024, (text, data, bss, state)
