"""What pyproject.toml cannot say: the configs (``conf/``) and named sweeps (``sweeps/``) keep their
homes at the top of the repository and ship inside the package as ``freezeout/conf`` and
``freezeout/sweeps``, where :func:`freezeout.config.config_root` finds them once installed."""
from setuptools import find_namespace_packages, setup

#: Package name in the installed tree -> its folder in the repository.
SHIPPED = {"freezeout.conf": "conf", "freezeout.sweeps": "sweeps"}
#: Every config folder, as a package of yaml files (conf/model -> freezeout.conf.model).
DATA = [f"{name}.{sub}" if sub else name for name, folder in SHIPPED.items()
        for sub in ["", *find_namespace_packages(where=folder)]]

setup(
    packages=find_namespace_packages(include=["freezeout*", "analysis*", "hydra_plugins*"],
                                     exclude=["*__pycache__*"]) + DATA,
    package_dir=SHIPPED,
    package_data={name: ["*.yaml"] for name in DATA},
)
