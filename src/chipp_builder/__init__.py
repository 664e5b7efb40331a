"""chipp-builder: a self-hosted Builder API server, its Python SDK and its command line."""

__version__ = "0.1.0"
