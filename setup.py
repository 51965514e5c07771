"""What pyproject.toml cannot say: the configs (``conf/``), the named sweeps (``sweeps/``), the
examples (``examples/``) and the analysis (``analysis/``) keep their homes at the top of the
repository and install inside the package as ``freezeout/conf``, ``freezeout/sweeps``,
``freezeout/examples`` and ``freezeout.analysis``, so that nothing but
``freezeout`` (and Hydra's plugin namespace) is installed at top level: a user's own
``analysis.py`` or ``conf/`` in the launch folder cannot shadow them."""
import hashlib
import tempfile
from pathlib import Path

from setuptools import find_namespace_packages, setup

#: setuptools' scratch (``build/``, ``freezeout.egg-info``) goes to a folder of the temp dir, one
#: per source tree, so that ``pip install CHECKOUT`` leaves the checkout's ``git status`` clean.
HERE = Path(__file__).resolve().parent
SCRATCH = Path(tempfile.gettempdir()) / f"freezeout-build-{hashlib.sha1(str(HERE).encode()).hexdigest()[:12]}"
SCRATCH.mkdir(parents=True, exist_ok=True)

#: Package name in the installed tree -> its folder in the repository.
SHIPPED = {"freezeout.conf": "conf", "freezeout.sweeps": "sweeps"}
#: The examples, as scripts to copy (``freezeout config cp examples/plain_pytorch DEST``).
EXAMPLES = {"freezeout.examples": "examples"}
#: Every config folder, as a package of yaml files (conf/model -> freezeout.conf.model).
DATA = [f"{name}.{sub}" if sub else name for name, folder in SHIPPED.items()
        for sub in ["", *find_namespace_packages(where=folder)]]
#: The analysis's Python packages (analysis/plots -> freezeout.analysis.plots).
ANALYSIS = ["freezeout.analysis", *(f"freezeout.analysis.{sub}" for sub in
                                    find_namespace_packages(where="analysis", exclude=["*__pycache__*"]))]

setup(
    packages=find_namespace_packages(include=["freezeout*", "hydra_plugins*"],
                                     exclude=["*__pycache__*"]) + ANALYSIS + DATA + list(EXAMPLES),
    package_dir={**SHIPPED, **EXAMPLES, "freezeout.analysis": "analysis"},
    package_data={name: ["*.yaml"] for name in DATA},
    options={"build": {"build_base": str(SCRATCH / "build")}, "egg_info": {"egg_base": str(SCRATCH)}},
)
