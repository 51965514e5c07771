"""What pyproject.toml cannot say: the configs (``conf/``), the named sweeps (``sweeps/``) and the
analysis (``analysis/``) keep their homes at the top of the repository and install inside the
package as ``freezeout/conf``, ``freezeout/sweeps`` and ``freezeout.analysis``, so that nothing but
``freezeout`` (and Hydra's plugin namespace) is installed at top level: a user's own
``analysis.py`` or ``conf/`` in the launch folder cannot shadow them."""
from setuptools import find_namespace_packages, setup

#: Package name in the installed tree -> its folder in the repository.
SHIPPED = {"freezeout.conf": "conf", "freezeout.sweeps": "sweeps"}
#: Every config folder, as a package of yaml files (conf/model -> freezeout.conf.model).
DATA = [f"{name}.{sub}" if sub else name for name, folder in SHIPPED.items()
        for sub in ["", *find_namespace_packages(where=folder)]]
#: The analysis's Python packages (analysis/plots -> freezeout.analysis.plots).
ANALYSIS = ["freezeout.analysis", *(f"freezeout.analysis.{sub}" for sub in
                                    find_namespace_packages(where="analysis", exclude=["*__pycache__*"]))]

setup(
    packages=find_namespace_packages(include=["freezeout*", "hydra_plugins*"],
                                     exclude=["*__pycache__*"]) + ANALYSIS + DATA,
    package_dir={**SHIPPED, "freezeout.analysis": "analysis"},
    package_data={name: ["*.yaml"] for name in DATA},
)
