"""Packaging for obscura-ref, the reference for Obscura's peer-to-peer connection management."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="obscura-ref",
    version="0.1.0",
    description="Normative reference implementation and conformance suite for Obscura's "
    "peer-to-peer connection management",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["obscura_ref", "obscura_ref.*"]),
    package_data={"obscura_ref": ["py.typed"], "obscura_ref.conformance": ["profile.toml"]},
    install_requires=["cryptography>=42", "pymonocypher>=4"],
    extras_require={
        "dev": [
            "pytest>=8",
            "hypothesis>=6.100",
            "jsonschema>=4.20",
            "matplotlib>=3.8",
            "mypy>=1.10",
            "noiseprotocol>=0.3.1",
            "ruff>=0.5",
            "types-jsonschema",
        ],
        "fuzz": ["atheris>=2.3"],  # the campaign of fuzz/README.md, not the test suite
    },
    entry_points={"console_scripts": ["obscura-ref=obscura_ref.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Typing :: Typed",
    ],
)
