"""GitHub adapters: pull-request reading, commit-back, and the Actions runtime (workflow commands)."""
