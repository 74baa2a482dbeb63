"""Registry access, layered like go-containerregistry: transport -> client -> copy engine.

- :mod:`bot.registry.auth`: credentials (docker config.json, environment, added at run time) and tokens
- :mod:`bot.registry.transport`: endpoints, auth challenge, retries, redirects, structured errors
- :mod:`bot.registry.client`: manifests, tags, blobs, uploads and mounts
- :mod:`bot.registry.copy`: the copy engine and :func:`~bot.registry.copy.inspect`
- :mod:`bot.registry.factory`: a client for a run, built from the config (the rules are the allow-list)

Import from the module that holds a name; this package imports nothing, so a command that never talks to a
registry does not load ``requests``.
"""
