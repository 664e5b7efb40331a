"""Apps and their API keys: the management functions the CLI and the management endpoints share."""
