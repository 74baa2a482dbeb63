"""Test harness: real registries, a token server, an image pusher and a counting proxy, all on loopback.

- ``tests.harness.registry``: ``start_registry``, ``RegistryServer``, ``RegistryFactory``
- ``tests.harness.tokenserver``: ``TokenServer`` (Bearer auth)
- ``tests.harness.images``: ``push_image`` and assertion helpers
- ``tests.harness.proxy``: ``CountingProxy`` (request/byte counts, fault injection)
"""
