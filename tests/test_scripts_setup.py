"""scripts/setup_env.sh's extensions decision (SETUP_DRY_RUN=1: nothing is installed) and
scripts/run_tests.sh's REQUIRE_EXTENSIONS guard, with a fake nvidia-smi on PATH."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")


def _fake_bin(tmp_path, nvidia_smi=None):
    """A PATH folder with the basic tools and, optionally, a fake nvidia-smi script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "grep", "env", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    if nvidia_smi is not None:
        script = bin_dir / "nvidia-smi"
        script.write_text(f"#!{BASH}\n{nvidia_smi}\n")
        script.chmod(0o755)
    return bin_dir


def _setup(tmp_path, nvidia_smi=None, **env):
    bin_dir = _fake_bin(tmp_path, nvidia_smi)
    full = {"PATH": str(bin_dir), "SETUP_DRY_RUN": "1", "HOME": str(tmp_path),
            "VENV": str(tmp_path / "venv"), **env}
    return subprocess.run([BASH, str(REPO / "scripts" / "setup_env.sh")], env=full,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("nvidia_smi, env, expect", [
    (None, {}, "WITH_EXTENSIONS=0"),                                              # no driver
    ("exit 9", {}, "WITH_EXTENSIONS=0"),                                          # driver, no GPU
    ("echo 'No devices were found'", {}, "WITH_EXTENSIONS=0"),
    ("echo 'GPU 0: NVIDIA H100 (UUID: GPU-1)'", {}, "WITH_EXTENSIONS=1"),        # a CUDA GPU
    ("echo 'GPU 0: NVIDIA H100 (UUID: GPU-1)'", {"WITH_EXTENSIONS": "0"}, "WITH_EXTENSIONS=0"),
    ("echo 'GPU 0: NVIDIA H100 (UUID: GPU-1)'", {"NO_EXTENSIONS": "1"}, "WITH_EXTENSIONS=0"),
    (None, {"WITH_EXTENSIONS": "1"}, "WITH_EXTENSIONS=1"),                        # asked for
])
def test_extensions_decision(tmp_path, nvidia_smi, env, expect):
    proc = _setup(tmp_path, nvidia_smi, **env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"setup_env: dry run: {expect}"
    assert not (tmp_path / "venv").exists()                  # nothing created


def test_bad_choice_is_an_error(tmp_path):
    proc = _setup(tmp_path, WITH_EXTENSIONS="yes")
    assert proc.returncode == 2 and "WITH_EXTENSIONS must be auto, 0 or 1" in proc.stderr


def test_run_tests_requires_extensions_when_asked(tmp_path):
    """REQUIRE_EXTENSIONS=1 with a Python that cannot import them stops before any test runs."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "python"
    # a "python" that has no torch_scatter: every import check fails, pytest must not start
    fake.write_text(f"#!{BASH}\nif [ \"$1\" = -c ]; then exit 1; fi\necho PYTEST-STARTED\n")
    fake.chmod(0o755)
    env = {**os.environ, "VENV": str(venv), "REQUIRE_EXTENSIONS": "1"}
    proc = subprocess.run([BASH, str(REPO / "scripts" / "run_tests.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "REQUIRE_EXTENSIONS=1" in proc.stderr
    assert "PYTEST-STARTED" not in proc.stdout
    env.pop("REQUIRE_EXTENSIONS")
    proc = subprocess.run([BASH, str(REPO / "scripts" / "run_tests.sh")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "NOT installed" in proc.stdout
    assert proc.stdout.count("PYTEST-STARTED") == 2        # both runs start
