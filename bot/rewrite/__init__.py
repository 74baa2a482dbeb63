"""Point workloads at the mirror: find image references in manifests and decide what each becomes.

- :mod:`bot.rewrite.policy` decides, for one image string, whether it is rewritten and why not (pure).
- :mod:`bot.rewrite.sites` finds image fields in parsed documents: Kubernetes workloads, Helm values,
  docker compose files and ECS task definitions (pure, plain dicts and lists).
- :mod:`bot.rewrite.source` parses YAML and JSON keeping where every string was written, and splices new
  values into the original text so that nothing else changes.
- :mod:`bot.rewrite.files` ties them together for one file.
"""
