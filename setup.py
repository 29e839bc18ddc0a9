"""Packaging for destination-iterable (an Airbyte destination for Iterable static lists)."""

from setuptools import setup

VERSION = "0.1.0"

MAIN_REQUIREMENTS = [
    "airbyte-cdk>=7.28,<8",
    "requests>=2.31,<3",
    "jsonschema>=4.17,<5",
    "orjson>=3.9,<4",
    "numpy>=1.26,<3",
]

TEST_REQUIREMENTS = [
    "pytest>=7,<10",
    "pytest-timeout>=2.2,<3",
    "ruff>=0.6,<1",
]

BENCH_REQUIREMENTS = [
    "matplotlib>=3.7,<4",
    "psutil>=5.9,<8",
]

setup(
    name="airbyte-destination-iterable",
    version=VERSION,
    description="Airbyte destination that keeps Iterable static lists in sync with audience segments.",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10,<3.14",
    packages=["destination_iterable"],
    package_data={"destination_iterable": ["spec.json", "data/*.txt"]},
    include_package_data=True,
    install_requires=MAIN_REQUIREMENTS,
    extras_require={"tests": TEST_REQUIREMENTS, "bench": BENCH_REQUIREMENTS},
    entry_points={"console_scripts": ["destination-iterable=destination_iterable.run:run"]},
)
