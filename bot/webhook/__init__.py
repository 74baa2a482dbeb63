"""The mutating admission webhook that points pod images at the mirror.

- :mod:`bot.webhook.patch` turns an AdmissionReview into a response with a JSONPatch (pure).
- :mod:`bot.webhook.reload` loads the rules, the mirrored list and the TLS certificate, and reloads them
  when their files change, off the request path.
- :mod:`bot.webhook.server` serves HTTPS: ``/mutate``, ``/healthz`` and ``/readyz``.
"""
