"""What pyproject.toml cannot say: the Alembic migrations, kept at the repository's top level
(migrations/), ship inside the package as `bot.store.migrations`, so an installed bot (wheel,
sdist, Docker) finds its migrations where it finds its code. Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["core", "core.*", "bot", "bot.*"], exclude=["*.__pycache__"])
    + ["bot.store.migrations"],
    package_dir={"bot.store.migrations": "migrations"},
    # Run-time files that are not Python modules (tests/test_install.py checks the wheel has them).
    package_data={
        "core": ["natural_spectrum.npz", "models/imagenet_classes.txt"],
        "bot": ["web/templates/*.html", "web/static/*.css"],
        "bot.store.migrations": ["script.py.mako", "versions/*.py"],
    },
)
