"""The event feed (SPEC section 11): GET /events and GET /events/latest."""
