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
# Why a source of each type failed: an error only that kind of source can have.
KNOWLEDGE_ERRORS: dict[str, tuple[str, ...]] = {
    "file": ("Could not parse the PDF: the file is encrypted", "Unsupported file type", "The file is empty"),
    "url": ("The URL returned HTTP 404", "The page took more than 30 seconds to load"),
    "google_drive": ("Access to the drive folder was revoked", "The folder no longer exists"),
    "notion": ("The Notion integration lost access to this page", "The Notion page was deleted"),
    "text": ("The text is empty",),
    "qa": ("No question and answer pairs were found",),
    "sitemap": ("Timed out after 120 seconds while crawling", "The sitemap is not valid XML"),
    "youtube": ("The video is private", "The video has no captions to read"),
    "confluence": ("The Confluence token has expired", "The space was archived"),
}
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

# Conversation topics: titles, then what the user says and what the assistant answers, each in the order of a
# conversation. Every title of a topic fits every line of it, and a session walks the lines in order, so a
# title matches its conversation and no answer comes twice. Some titles are not ASCII so that searches
# (casefolded: ß finds ss, ü finds Ü) have something to find.
TOPICS: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "titles": (
            "Refund for order #{order}",
            "Rückerstattung für Bestellung #{order}",
            "Where is my order #{order}?",
        ),
        "user": (
            "Hi, I ordered {product} last week and it still hasn't arrived. Order #{order}.",
            "The tracking page says delivered, but I never got it.",
            "Can I get a refund instead?",
            "Thanks, how long will the refund take?",
        ),
        "assistant": (
            "I'm sorry about the delay. I checked order #{order}: it left our warehouse on {date} and is "
            "with the carrier now.",
            "I've opened a claim with the carrier for #{order}; they usually answer within two days.",
            "Yes, I can start a refund for #{order} right away, so you don't have to wait for the claim.",
            "The refund usually takes 5-7 business days to reach your account.",
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
            "I asked for a reset but I didn't get the email.",
            "Still nothing, I checked spam too.",
            "Ok that worked, thanks!",
        ),
        "assistant": (
            "Let's fix that. I just sent a password reset link to the email on your account.",
            "Reset emails can take a few minutes. Could you check the spam folder as well?",
            "I've verified your account and resent the link from a different mail server.",
            "Glad you're back in. You can turn on two-factor sign-in under Settings → Security.",
        ),
    },
    {
        "titles": (
            "Upgrade to the {plan} plan",
            "Question about the {plan} plan",
            "Yearly billing for the {plan} plan",
        ),
        "user": (
            "What's the difference between Starter and {plan}?",
            "Can I pay yearly?",
            "What happens to my current month if I switch today?",
            "Ok, please upgrade me to {plan}.",
        ),
        "assistant": (
            "The {plan} plan adds unlimited projects, priority support and SSO.",
            "Yes, yearly billing saves about 17% compared with paying monthly.",
            "We prorate the difference: you pay only for the days left in this month.",
            "Done: your account is on the {plan} plan now, and the invoice is on its way to your email.",
        ),
    },
    {
        "titles": ("Setting up {product}", "Einrichtung von {product}", "{product} won't connect to Wi-Fi"),
        "user": (
            "How do I set up {product}? The app doesn't find it on my Wi-Fi.",
            "It's blinking orange now.",
            "It's on 2.4 GHz. Oh wait, it just turned blue!",
            "Connected! What's next?",
        ),
        "assistant": (
            "First, hold the power button for 5 seconds until the light blinks blue, then open the app "
            "and tap Add device.",
            "Orange blinking means it can't reach the network. Is your router on 2.4 GHz?",
            "Blue means it's connected. The app should show it in a moment.",
            "Great! Next, choose a room and name the device so you can find it later.",
        ),
    },
    {
        "titles": ("Résumé feedback for a {job} role", "Applying as a {job} at {company}", "Interview prep: {job}"),
        "user": (
            "Can you review my résumé? I'm applying as a {job} at {company}.",
            "How should I describe my last job?",
            "Is one page enough?",
            "Any tips for the interview?",
        ),
        "assistant": (
            "Sure. Lead with measurable results: numbers make achievements concrete.",
            "Use action verbs and keep each bullet under two lines.",
            "For most roles one page is ideal; two pages are fine beyond ten years of experience.",
            "Prepare two short stories about problems you solved, and a question about the team for them.",
        ),
    },
    {
        "titles": (
            "Weekend trip to {city}",
            "What to see in {city}",
            "Getting around {city}",
        ),
        "user": (
            "I'm visiting {city} this weekend, what should I see?",
            "Any good cafés near the center?",
            "How do I get around without a car?",
            "What will the weather be like?",
        ),
        "assistant": (
            "In {city} I'd start with the old town, then the museum district in the afternoon.",
            "The streets around the main square have several small cafés; most open at 8.",
            "Public transport is easy: a day ticket covers trams, buses and the metro.",
            "The forecast shows mild temperatures with some rain on Sunday; bring a jacket.",
        ),
    },
    {
        "titles": ("API rate limits", "Using the API from Python", "Exporting conversations through the API"),
        "user": (
            "I want to export our conversations through the API. What are the rate limits?",
            "Is there a Python SDK?",
            "Can I export everything to CSV?",
            "How do I know how many requests I have left?",
        ),
        "assistant": (
            "Each API key gets 120 requests per minute.",
            "Yes: the SDK pages through lists for you and retries when the limit is reached.",
            "Yes, the export command writes CSV, JSON Lines or Parquet.",
            "Every response carries X-RateLimit-Remaining and X-RateLimit-Reset headers.",
        ),
    },
    {
        "titles": (
            "Übersetzung der Rückgabebedingungen",
            "Translate the return policy to {lang}",
            "Return policy in {lang}",
        ),
        "user": (
            "Can you translate our return policy to {lang}?",
            "Make it a bit more formal please.",
            "Can you shorten the part about damaged items?",
            "Perfect, thank you.",
        ),
        "assistant": (
            "Here's the translation. I kept the legal terms precise and the tone friendly.",
            "I've made it more formal and used the polite form of address throughout.",
            "I've cut that part to two sentences and kept the 30-day deadline.",
            "You're welcome! Send it over again whenever the policy changes.",
        ),
    },
    {
        "titles": ("Meal plan for the week", "Vegetarian dinners for the week", "Naïve questions about meal prep"),
        "user": (
            "Can you make me a vegetarian meal plan for the week?",
            "I don't like mushrooms.",
            "Something quick for Wednesday?",
            "Can I cook some of it ahead on Sunday?",
        ),
        "assistant": (
            "Here's a plan with five dinners, each under 40 minutes, plus a shopping list.",
            "No problem, I've swapped the mushroom risotto for a lemon pea risotto.",
            "For Wednesday: a chickpea curry that takes 20 minutes.",
            "Yes: the curry, the soup and the grains keep three days in the fridge.",
        ),
    },
    {
        "titles": (
            "Bug: export button does nothing",
            "Export button not working",
            "Can't export my data",
        ),
        "user": (
            "The export button doesn't do anything.",
            "I'm on Chrome, latest version.",
            "Here's what the console says: TypeError: undefined.",
            "Any workaround for now?",
        ),
        "assistant": (
            "Thanks for the report. Which browser are you using?",
            "Thanks. I could reproduce it in Chrome and filed a ticket with our engineers.",
            "That matches what we see; the fix is scheduled for the next release.",
            "As a workaround, the export also works from Settings → Data → Export.",
        ),
    },
)
# When a conversation outlasts its topic's lines: follow-ups that fit any topic, each used once per session.
FOLLOW_UPS: tuple[tuple[str, str], ...] = (
    ("Can you send me a summary of this by email?", "Of course, I've emailed you a summary of our conversation."),
    ("Could you put that in a short list?", "Sure, here are the main points as a short list."),
    ("Sorry, could you say that more simply?", "Of course, here it is again in plain words, step by step."),
    ("Where can I find this later?", "Everything stays in your conversation history, and I've bookmarked this chat."),
    ("Can my colleague see this too?", "Yes, anyone on your team can open this conversation from the shared inbox."),
    ("Is there anything else I should know?", "Nothing else for now; ask me here any time if something comes up."),
    ("Can you give me a source for that?", "Yes, it's in our help center; I've sent you the link."),
    ("Can we pick this up again tomorrow?", "Of course, just reply in this chat and I'll still have the context."),
    ("Can I talk to a person about this?", "Sure, I've asked a colleague to join; they usually reply within an hour."),
    ("Does this cost anything extra?", "No, there's no extra charge for this."),
)


class Script:
    """The lines of one session: its topic's user and assistant lines in order, then follow-ups, none twice."""

    def __init__(self, topic: dict[str, tuple[str, ...]], order: list[int]) -> None:
        # `order`: the follow-ups' order for this session (a permutation of their indexes, drawn by the caller).
        self.user_lines = [*topic["user"], *(FOLLOW_UPS[i][0] for i in order)]
        self.assistant_lines = [*topic["assistant"], *(FOLLOW_UPS[i][1] for i in order)]
        self.users = self.assistants = 0

    def user(self) -> str:
        """The next thing the user says."""
        line = self.user_lines[self.users % len(self.user_lines)]
        self.users += 1
        return line

    def assistant(self) -> str:
        """The next answer."""
        line = self.assistant_lines[self.assistants % len(self.assistant_lines)]
        self.assistants += 1
        return line


SYSTEM_PROMPT = "You are the helpful assistant of {company}. Answer concisely and cite the knowledge base."
