"""The optional C scanner (perview/_levels.c); everything else is in pyproject.toml.

`optional=True`: without a compiler the build goes on without it, and Perview classifies with
the regexes of perview/classify.py, which give the same levels more slowly."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "perview._levels",
            ["perview/_levels.c"],
            optional=True,
            extra_compile_args=["-Wall", "-Wextra"],
        )
    ]
)
