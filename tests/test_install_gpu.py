"""scripts/install_gpu.sh picks the PyTorch CUDA index from the driver version nvidia-smi reports (a fake
nvidia-smi here), and environment-gpu.yml gives pip its index on a line of its own."""
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install_gpu.sh"


def _run(tmp_path, smi_body: str):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + smi_body)
    smi.chmod(0o755)
    return subprocess.run(["bash", str(SCRIPT), "--print"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "NVIDIA_SMI": str(smi), "PY": "python3"})


@pytest.mark.parametrize("driver, index", [("580.65.06", "cu130"), ("590.44.01", "cu130"), ("575.51.03", "cu128"),
                                           ("570.86.10", "cu128"), ("565.57.01", "cu126"), ("535.104.05", "cu126"),
                                           ("525.60.13", "cu126")])
def test_driver_picks_the_newest_index_it_runs(tmp_path, driver, index):
    res = _run(tmp_path, f"echo {driver}\necho {driver}\n")              # two GPUs: one line each
    assert res.returncode == 0, res.stderr
    torch_pin = re.search(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f"driver {driver} -> {index} (https://download.pytorch.org/whl/{index}), {torch_pin}" in res.stdout
    assert f"pip install {torch_pin} --index-url https://download.pytorch.org/whl/{index}" in res.stdout


@pytest.mark.parametrize("driver", ["525.53", "470.82.01", "garbage"])
def test_too_old_driver_is_refused(tmp_path, driver):
    res = _run(tmp_path, f"echo {driver}\n")
    assert res.returncode == 3 and f"driver '{driver}' is older than 525.60" in res.stderr
    assert "pip install" not in res.stdout


def test_no_driver_is_refused(tmp_path):
    res = _run(tmp_path, 'echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver"\nexit 9\n')
    assert res.returncode == 3 and "no NVIDIA driver on this node?" in res.stderr and "communicate" in res.stderr


def test_environment_gpu_yml_puts_the_index_on_its_own_line():
    env = yaml.safe_load((ROOT / "environment-gpu.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    for entry in pip:                                  # an option after a requirement is not read as an index
        assert entry.startswith("-") or " --" not in entry, entry
    index = next(e.split()[1] for e in pip if e.startswith("--extra-index-url") or e.startswith("--index-url"))
    torch = next(e for e in pip if e.startswith("torch=="))
    assert torch.endswith("+" + index.rstrip("/").rsplit("/", 1)[1])        # the build of that index
    pinned = next(line for line in (ROOT / "pyproject.toml").read_text().splitlines() if '"torch==' in line)
    assert torch.split("+")[0] in pinned                                     # the project's pin, not another
