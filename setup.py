"""Packaging for destination-iterable (an Airbyte destination for Iterable static lists)."""

import re
from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    """The one version number: `__version__` in destination_iterable/__init__.py."""
    text = (HERE / "destination_iterable" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    if not match:
        raise RuntimeError("__version__ not found in destination_iterable/__init__.py")
    return match.group(1)


def read_readme() -> str:
    """README.md as the long description (absent in trimmed build contexts)."""
    readme = HERE / "README.md"
    return readme.read_text(encoding="utf-8") if readme.exists() else ""


VERSION = read_version()

MAIN_REQUIREMENTS = [
    "airbyte-cdk>=7.28,<8",
    "requests>=2.31,<3",
    "jsonschema>=4.17,<5",
    "orjson>=3.9,<4",
    "numpy>=1.26,<3",
    "boto3>=1.44,<2",
]

TEST_REQUIREMENTS = [
    "pytest>=7,<10",
    "pytest-timeout>=2.2,<3",
    "ruff>=0.6,<1",
    "moto[server]>=5.2,<6",
]

BENCH_REQUIREMENTS = [
    "matplotlib>=3.7,<4",
    "pyinstrument>=4.6,<6",
    "py-spy>=0.3.14,<1",
]

setup(
    name="airbyte-destination-iterable",
    version=VERSION,
    description="Airbyte destination that keeps Iterable static lists in sync with audience segments.",
    long_description=read_readme(),
    long_description_content_type="text/markdown",
    license="MIT",
    url="https://docs.airbyte.com/integrations/destinations/iterable",
    keywords=["airbyte", "destination", "iterable", "reverse-etl", "audience", "static list"],
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Software Development :: Libraries",
    ],
    python_requires=">=3.10,<3.14",
    # Every subpackage, and data folders such as members/data (no __init__.py) as packages of their own.
    packages=find_namespace_packages(include=["destination_iterable", "destination_iterable.*"],
                                     exclude=["*.__pycache__"]),
    package_data={"destination_iterable": ["spec.json"], "destination_iterable.members.data": ["*.txt"]},
    include_package_data=True,
    install_requires=MAIN_REQUIREMENTS,
    extras_require={"tests": TEST_REQUIREMENTS, "bench": BENCH_REQUIREMENTS},
    entry_points={"console_scripts": ["destination-iterable=destination_iterable.run:run"]},
)
