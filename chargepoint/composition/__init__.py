"""The composition root: the one place that reads the config and builds devices, store, services and adapters.

Everything else receives what it needs, built, through its constructor: the runtime never imports a protocol
adapter, an adapter never imports the runtime, and only this package (with the demo, the CLI's ``sim``
commands and the tests) knows that simulators exist.
"""
