"""posterlite: film posters to multi-label genre predictions on a phone."""

__version__ = "0.1.0"
