"""Target registry kinds: how each logs in, names repositories and prepares them."""
