"""Build of geotijian's compiled kernels (``geotijian/_kernels.pyx``); everything else
is declared in ``pyproject.toml``."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "geotijian._kernels",
            ["geotijian/_kernels.pyx"],
            language="c++",
            # no fused multiply-add: the kernels reproduce GEOS/numpy arithmetic bit for bit
            extra_compile_args=["-O2", "-ffp-contract=off"],
        )
    ],
)
