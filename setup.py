"""The compiled part of llmrelay: three optional extensions. Everything else is in pyproject.toml.

`optional=True`: where they cannot be compiled (no C compiler), llmrelay installs without them and relays every
event on its Python path, which is the reference for the compiled one: the relay's event scan
(llmrelay/relay/_eventscan.c), the upstream connection's chunk reader (llmrelay/providers/_chunkreader.c) and the
client's body writes (llmrelay/_bodywrites.c, whose reference is llmrelay/body_writes.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("llmrelay.relay._eventscan", ["llmrelay/relay/_eventscan.c"], optional=True),
        Extension("llmrelay.providers._chunkreader", ["llmrelay/providers/_chunkreader.c"], optional=True),
        Extension("llmrelay._bodywrites", ["llmrelay/_bodywrites.c"], optional=True),
    ]
)
