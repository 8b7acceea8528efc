"""Build of the compiled OTLP span reader (``meterline_spanwire``); ``make install`` and the Dockerfile run it."""

from setuptools import Extension, setup

setup(
    ext_modules=[Extension("meterline_spanwire", sources=["spanwire.c"], extra_compile_args=["-O2", "-Wall"])],
    py_modules=[],
)
