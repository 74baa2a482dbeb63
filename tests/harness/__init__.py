"""Test harness: real registries, a token server, an image pusher and a counting proxy, all on loopback.

- ``tests.harness.registry``: ``start_registry``, ``RegistryServer``, ``RegistryFactory``
- ``tests.harness.tokenserver``: ``TokenServer`` (Bearer auth)
- ``tests.harness.images``: ``push_image`` and assertion helpers
- ``tests.harness.proxy``: ``CountingProxy`` (request/byte counts, fault injection)
- ``tests.harness.fault_schedule``: ``FaultSchedule`` (seeded random faults for ``CountingProxy``),
  ``push_catalogue``, ``missing_at_target``
- ``tests.harness.target_check``: ``check_target``, ``check_image``, ``check_mirrored_list``
  (walk a target down to its blobs)
- ``tests.harness.bot_process``: run ``python -m bot`` as a child process in a checkout
- ``tests.harness.figures``: ``count`` (the reliability figures printed at the end of the session)
- ``tests.harness.ecr_standin``: ``EcrStandIn`` (moto and a registry behind proxies that answer as ECR does:
  quotas, NAME_UNKNOWN, expired tokens, S3 redirects, mounts, IMMUTABLE tags; fixture ``ecr_standin``)
- ``tests.harness.fault_proxy``: ``FaultProxy`` (429/503 answers, blob redirects, relative locations, paginated tags)
- ``tests.harness.github_fake``: ``GitHubFake`` and ``CommitFake`` (the GitHub REST API for PyGithub)
- ``tests.harness.mirror_repo``: ``setup_repo``, ``mirrored_lines`` (the ``mirror/`` folder of a checkout)
- ``tests.harness.fake_upstream``: ``RecordingUpstream``, ``facts`` (validate-pr without a registry)
- ``tests.harness.rewrite_policy``: ``MIRRORED``, ``policy`` (a rewrite policy over a sample mirrored list)
"""
