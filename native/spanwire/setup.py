"""Build of the compiled OTLP span reader (``meterline_spanwire``); ``make install`` and the Dockerfile run it."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "meterline_spanwire",
            sources=["module.c", "messages.c", "values.c", "records.c"],
            depends=["spanwire.h"],
            extra_compile_args=["-O2", "-Wall", "-fvisibility=hidden"],  # only PyInit_ is exported
        )
    ],
    py_modules=[],
)
