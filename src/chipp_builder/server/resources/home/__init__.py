"""The server's root page."""
