"""Build hook for the optional compiled part of mailseal (the metadata is in pyproject.toml).

``mailseal.mime._speedups`` is marked optional: without a C compiler the build goes on and
mailseal uses the pure-Python code that gives the same results, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "mailseal.mime._speedups",
            sources=["src/mailseal/mime/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
