"""The package version, in one place (nothing needs to import the package face for it)."""

__version__ = "0.1.0"
