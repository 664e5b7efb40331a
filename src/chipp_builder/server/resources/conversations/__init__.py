"""POST /conversations/log: chat turns pushed by automation tools."""
