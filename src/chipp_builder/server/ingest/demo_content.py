"""The demo's vocabulary: sources, models, tags, tools, topics and their lines, with their weights."""

from __future__ import annotations

SOURCES = (
    ("WIDGET", 30),
    ("APP", 24),
    ("API", 14),
    ("SLACK", 9),
    ("WHATSAPP", 9),
    ("EMAIL", 6),
    ("VOICE", 5),
    ("ACP", 3),
)
# (model, base latency ms, ms per output token, weight)
MODELS = (
    ("gpt-4.1", 450, 9.0, 32),
    ("claude-sonnet-4", 600, 11.0, 28),
    ("gemini-2.5-pro", 700, 8.0, 16),
    ("gpt-4.1-mini", 250, 4.0, 14),
    ("o3", 1800, 14.0, 6),
    ("claude-3-5-haiku", 300, 5.0, 4),
)
TAGS = (
    ("bug", "#ef4444"),
    ("billing", "#f59e0b"),
    ("feature-request", "#3b82f6"),
    ("urgent", "#dc2626"),
    ("positive", "#22c55e"),
    ("onboarding", "#8b5cf6"),
    ("escalated", "#ec4899"),
    ("Rückfrage", "#14b8a6"),
)
TOOLS = (
    "search_knowledge_base",
    "lookup_order",
    "create_ticket",
    "check_subscription",
    "send_email",
    "calendar_lookup",
    "get_weather",
    "translate_text",
)
KNOWLEDGE_TYPES = (
    ("file", 30),
    ("url", 18),
    ("google_drive", 10),
    ("notion", 10),
    ("text", 8),
    ("qa", 8),
    ("sitemap", 7),
    ("youtube", 5),
    ("confluence", 4),
)
KNOWLEDGE_STATUSES = (("completed", 70), ("failed", 10), ("processing", 8), ("pending", 7), ("deleting", 5))
KNOWLEDGE_ERRORS = (
    "Could not parse the PDF: the file is encrypted",
    "The URL returned HTTP 404",
    "Timed out after 120 seconds while crawling",
    "Unsupported file type",
    "Access to the drive folder was revoked",
)
MEMORY_LINES = {
    "preference": ("Prefers answers in {lang}", "Likes short, bulleted answers", "Wants invoices by email"),
    "background": ("Works as a {job} at {company}", "Lives in {city}", "Has been a customer since {year}"),
    "fact": ("Has order #{order} in progress", "Is on the {plan} plan", "Uses {product} daily"),
    "insight": (
        "Gets frustrated by slow shipping",
        "Responds well to step-by-step guides",
        "Often asks follow-up questions about pricing",
    ),
    "topic": (
        "Interested in {product}",
        "Researching integrations with {company}",
        "Planning a trip to {city}",
    ),
    "query": (
        "Asked how to export data to CSV",
        "Asked about refund timelines",
        "Asked about the {plan} plan",
    ),
}
PRODUCTS = (
    "Chipp Pro",
    "Smart Thermostat X2",
    "Aurora Headphones",
    "Nimbus Backup",
    "Pulse Fitness Band",
    "Atlas Router",
    "Café Grinder 3000",
    "Zephyr E-Bike",
)
PLANS = ("Free", "Starter", "Pro", "Business", "Enterprise")
LANGS = ("German", "French", "Spanish", "English", "Portuguese", "Italian")

# Conversation topics: titles, what users say, what the assistant answers. Some titles are not ASCII so that
# searches (casefolded: ß finds ss, ü finds Ü) have something to find.
TOPICS: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "titles": (
            "Refund for order #{order}",
            "Rückerstattung für Bestellung #{order}",
            "Where is my order #{order}?",
        ),
        "user": (
            "Hi, I ordered {product} last week and it still hasn't arrived. Order #{order}.",
            "Can I get a refund instead?",
            "It says delivered but I never got it.",
            "Thanks, how long will the refund take?",
        ),
        "assistant": (
            "I'm sorry about the delay. I checked order #{order}: it left our warehouse on {date} and is "
            "with the carrier now.",
            "Yes, I can start a refund for #{order}. It usually takes 5-7 "
            "business days to reach your account.",
            "I've opened a ticket with the carrier and will email you as soon as they reply.",
        ),
    },
    {
        "titles": (
            "Can't log in to {product}",
            "Problème de connexion à {product}",
            "Password reset not working",
        ),
        "user": (
            "I can't log in, it keeps saying my password is wrong.",
            "I didn't get the reset email.",
            "Still nothing, I checked spam too.",
            "Ok that worked, thanks!",
        ),
        "assistant": (
            "Let's fix that. I just sent a password reset link to the email on your account.",
            "Reset emails can take a few minutes. Could you check the spam folder as well?",
            "I've verified your account and resent the link from a different mail server.",
        ),
    },
    {
        "titles": (
            "Upgrade to the {plan} plan",
            "Billing question about the {plan} plan",
            "Invoice for {date}",
        ),
        "user": (
            "What's the difference between Starter and {plan}?",
            "Can I pay yearly?",
            "I was charged twice this month.",
            "Please send me the invoice as a PDF.",
        ),
        "assistant": (
            "The {plan} plan adds unlimited projects, priority support and SSO. You can switch at any "
            "time and we prorate the difference.",
            "Yes, yearly billing saves about 17%.",
            "I see two charges on {date}; one is a pending authorisation that will drop off in 3 days.",
        ),
    },
    {
        "titles": ("Setting up {product}", "Einrichtung von {product}", "{product} won't connect to Wi-Fi"),
        "user": (
            "How do I set up {product}?",
            "The app doesn't find the device.",
            "It's blinking orange now.",
            "Connected! What's next?",
        ),
        "assistant": (
            "First, hold the power button for 5 seconds until the light blinks blue, then open the app "
            "and tap Add device.",
            "Orange blinking means it can't reach the network. Is your router on 2.4 GHz?",
            "Great! Next, choose a room and name the device so you can find it later.",
        ),
    },
    {
        "titles": ("Résumé feedback for a {job} role", "Cover letter for {company}", "Interview prep: {job}"),
        "user": (
            "Can you review my résumé for a {job} position?",
            "How should I describe my last job?",
            "Is one page enough?",
            "Can you write a short cover letter for {company}?",
        ),
        "assistant": (
            "Sure. Lead with measurable results: numbers make achievements concrete.",
            "Use action verbs and keep each bullet under two lines.",
            "For most roles one page is ideal; two pages are fine beyond ten years of experience.",
        ),
    },
    {
        "titles": (
            "Weekend trip to {city}",
            "Café recommendations in {city}",
            "Straßenbahn tickets in {city}",
        ),
        "user": (
            "I'm visiting {city} this weekend, what should I see?",
            "Any good cafés near the center?",
            "How do I get around without a car?",
            "What will the weather be like?",
        ),
        "assistant": (
            "In {city} I'd start with the old town, then the museum district in the afternoon.",
            "Public transport is easy: a day ticket covers trams, buses and the metro.",
            "The forecast shows mild temperatures with some rain on Sunday; bring a jacket.",
        ),
    },
    {
        "titles": ("API rate limits", "Webhook signature verification", "Exporting data to CSV"),
        "user": (
            "What are the API rate limits?",
            "How do I verify webhook signatures?",
            "Can I export all conversations to CSV?",
            "Is there a Python SDK?",
        ),
        "assistant": (
            "Each API key gets 120 requests per minute; the response headers tell you how many remain.",
            "Compute an HMAC-SHA256 of the raw body with your signing secret and compare it in constant "
            "time.",
            "Yes, use the export command or page through the sessions endpoint.",
        ),
    },
    {
        "titles": (
            "Übersetzung der AGB",
            "Translate the return policy to {lang}",
            "Größentabelle für Schuhe",
        ),
        "user": (
            "Can you translate our return policy to {lang}?",
            "Make it a bit more formal please.",
            "What size is a 42 in US sizes?",
            "Perfect, thank you.",
        ),
        "assistant": (
            "Here's the translation. I kept the legal terms precise and the tone friendly.",
            "I've made it more formal and used the polite form of address throughout.",
            "An EU 42 is roughly a US men's 8.5 or women's 10.",
        ),
    },
    {
        "titles": ("Meal plan for the week", "Recipe ideas with leftovers", "Naïve question about sourdough"),
        "user": (
            "Can you make me a vegetarian meal plan for the week?",
            "I don't like mushrooms.",
            "Something quick for Wednesday?",
            "How long should sourdough proof?",
        ),
        "assistant": (
            "Here's a plan with five dinners, each under 40 minutes, plus a shopping list.",
            "No problem, I've swapped the mushroom risotto for a lemon pea risotto.",
            "A bulk ferment of 4-6 hours at room temperature is typical, then overnight in the fridge.",
        ),
    },
    {
        "titles": (
            "Bug: export button does nothing",
            "Crash when uploading a file",
            "Dark mode text unreadable",
        ),
        "user": (
            "The export button doesn't do anything.",
            "I'm on Chrome, latest version.",
            "Here's what the console says: TypeError: undefined.",
            "Any workaround for now?",
        ),
        "assistant": (
            "Thanks for the report. I could reproduce it and filed a ticket with our engineers.",
            "As a workaround, the export also works from Settings → Data → Export.",
            "The fix is scheduled for the next release; I'll let you know when it ships.",
        ),
    },
)
SYSTEM_PROMPT = "You are the helpful assistant of {company}. Answer concisely and cite the knowledge base."
