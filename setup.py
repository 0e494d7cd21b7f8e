"""The optional C parts (perview/_levels.c, perview/history/_terms.c, perview/_epoll.c);
everything else is in pyproject.toml.

`optional=True`: without a compiler the build goes on without them, and Perview classifies with
the regexes of perview/classify.py and summarizes blocks with numpy (perview/history/terms.py),
which give the same results more slowly; its event loop is then asyncio's own (perview/loop.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "perview._levels",
            ["perview/_levels.c"],
            optional=True,
            extra_compile_args=["-Wall", "-Wextra"],
        ),
        Extension(
            "perview.history._terms",
            ["perview/history/_terms.c"],
            optional=True,
            extra_compile_args=["-Wall", "-Wextra"],
        ),
        Extension(
            "perview._epoll",
            ["perview/_epoll.c"],
            optional=True,
            extra_compile_args=["-Wall", "-Wextra"],
        ),
    ]
)
