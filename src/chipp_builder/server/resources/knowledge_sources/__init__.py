"""knowledge sources."""
