"""Everything that writes domain data: conversations/log, the JSON Lines import, the demo generator."""
