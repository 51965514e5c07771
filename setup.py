"""What pyproject.toml cannot say: the configs (``conf/``) and named sweeps (``sweeps/``) keep their
homes at the top of the repository and ship inside the package as ``freezeout/conf`` and
``freezeout/sweeps``, where :func:`freezeout.config.config_root` finds them once installed."""
from setuptools import find_namespace_packages, setup

#: Package name in the installed tree -> its folder in the repository.
SHIPPED = {"freezeout.conf": "conf", "freezeout.sweeps": "sweeps"}

setup(
    packages=find_namespace_packages(include=["freezeout*", "analysis*", "hydra_plugins*"],
                                     exclude=["*__pycache__*"]) + list(SHIPPED),
    package_dir=SHIPPED,
    package_data={"freezeout.conf": ["**/*.yaml"], "freezeout.sweeps": ["*.yaml"]},
)
