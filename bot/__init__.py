"""Keep a private container registry stocked with public images, driven by pull requests."""

__version__ = "0.1.0"
