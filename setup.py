"""The compiled part of llmrelay: two optional extensions. Everything else is in pyproject.toml.

`optional=True`: where they cannot be compiled (no C compiler), llmrelay installs without them and relays every
event on its Python path, which is the reference for the compiled one: the relay's event scan
(llmrelay/relay/_eventscan.c) and the upstream connection's chunk reader (llmrelay/providers/_chunkreader.c).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("llmrelay.relay._eventscan", ["llmrelay/relay/_eventscan.c"], optional=True),
        Extension("llmrelay.providers._chunkreader", ["llmrelay/providers/_chunkreader.c"], optional=True),
    ]
)
