"""The compiled part of llmrelay: one optional extension. Everything else is in pyproject.toml.

`optional=True`: where it cannot be compiled (no C compiler), llmrelay installs without it and relays every
event on its Python path, which is the reference for the compiled one (llmrelay/relay/_eventscan.c).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("llmrelay.relay._eventscan", ["llmrelay/relay/_eventscan.c"], optional=True)])
