"""What people read: the PR comment, the job summary, and the markdown escaping both rely on."""
