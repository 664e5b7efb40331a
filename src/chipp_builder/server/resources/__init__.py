"""One package per resource (routes.py for HTTP, queries.py for SQL); ROUTERS lists them for the app."""

from chipp_builder.server.resources.analytics.routes import router as analytics_router
from chipp_builder.server.resources.consumers.routes import router as consumers_router
from chipp_builder.server.resources.conversations.routes import router as conversations_router
from chipp_builder.server.resources.events.routes import router as events_router
from chipp_builder.server.resources.feedback.routes import router as feedback_router
from chipp_builder.server.resources.home.routes import router as home_router
from chipp_builder.server.resources.knowledge_sources.routes import router as knowledge_sources_router
from chipp_builder.server.resources.management.routes import router as management_router
from chipp_builder.server.resources.memories.routes import router as memories_router
from chipp_builder.server.resources.sessions.routes import router as sessions_router
from chipp_builder.server.resources.tags.routes import router as tags_router

ROUTERS = [
    sessions_router,
    consumers_router,
    feedback_router,
    tags_router,
    knowledge_sources_router,
    memories_router,
    analytics_router,
    events_router,
    conversations_router,
    management_router,
    home_router,
]
