"""Hydra imports every module under ``hydra_plugins/`` when any Hydra app starts, so installing
freezeout beside another Hydra app must not make that app import torch."""
from __future__ import annotations

import subprocess
import sys

BARE_APP = '''import sys
import hydra


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg) -> None:
    import hydra_plugins.freezeout_launch  # ours is on the path: Hydra scanned it at start
    print("torch imported:", "torch" in sys.modules)


main()
'''


def test_a_bare_hydra_app_beside_freezeout_starts_without_torch(tmp_path):
    (tmp_path / "app.py").write_text(BARE_APP)
    proc = subprocess.run([sys.executable, "app.py", f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "torch imported: False", proc.stdout


def test_the_plugins_are_scanned_by_that_app(tmp_path):
    """The test above means something only if Hydra really imported our plugin modules."""
    app = BARE_APP.replace('print("torch imported:", "torch" in sys.modules)',
                           'print(sorted(m for m in sys.modules if m.startswith("hydra_plugins.freezeout_launch.")))')
    (tmp_path / "app.py").write_text(app)
    proc = subprocess.run([sys.executable, "app.py", f"hydra.run.dir={tmp_path / 'out'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "hydra_plugins.freezeout_launch.turns_launcher" in proc.stdout, proc.stdout
