"""The catalogue of hostile and odd list files (see catalogue.py)."""
