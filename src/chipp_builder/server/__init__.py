"""The Builder API server (needs the `server` extra)."""
