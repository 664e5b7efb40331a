"""The demo app and its fixed cast, drawn once per app: its id, Fakers, companies, cities and jobs, its tags,
consumers and knowledge sources, and the start of every session (demo_sessions.py makes the sessions)."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from faker import Faker

from chipp_builder.server.ingest.demo_content import (
    KNOWLEDGE_ERRORS,
    KNOWLEDGE_STATUSES,
    KNOWLEDGE_TYPES,
    PRODUCTS,
    TAGS,
)
from chipp_builder.server.ingest.demo_draws import new_uuid, time_uuid, weighted

WINDOW = timedelta(days=90)  # the demo's sessions start in the 90 days before `now`


@dataclass(slots=True)
class DemoConsumer:
    """A consumer sessions can name: who, since when, in which locale, and whether it has a name."""

    id: UUID
    created_at: datetime
    locale: str
    named: bool


def _ascii(text: str) -> str:
    """Lower-case ASCII of a name, for the e-mail addresses and domains made from it."""
    text = text.replace("ß", "ss")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


class DemoApp:
    """Draws every value from one seeded random.Random (and Fakers seeded from it), in a fixed order."""

    def __init__(self, rng: random.Random, now: datetime, sessions: int) -> None:
        self.rng = rng
        self.now = now
        self.app_id = new_uuid(rng)
        self.fakers = {}
        for locale in ("en_US", "de_DE", "fr_FR"):
            faker = Faker(locale)
            faker.seed_instance(rng.getrandbits(64))
            self.fakers[locale] = faker
        en = self.fakers["en_US"]
        self.companies = [en.company() for _ in range(40)]
        self.cities = [self.fakers[loc].city() for loc in ("en_US", "de_DE", "fr_FR") for _ in range(15)]
        self.jobs = [en.job() for _ in range(30)]
        self.company = rng.choice(self.companies)
        self.tag_ids = [new_uuid(rng) for _ in TAGS]
        self.tag_usage = [0] * len(TAGS)
        self.consumers: list[DemoConsumer] = []
        self.consumer_times: list[float] = []  # created_at of self.consumers, ascending, for bisect
        self.n_consumers = max(1, round(sessions / 5))
        self.n_knowledge = min(400, max(8, sessions // 25))
        # Every session's start, drawn up front and sorted: sessions (and their ids) are made in time order.
        first, last = (now - WINDOW).timestamp(), (now - timedelta(hours=2)).timestamp()
        # To the microsecond, as every other time of the demo is (a real clock's times have fractions).
        self.starts = sorted(round(rng.uniform(first, last), 6) for _ in range(sessions))

    def app_row(self, name: str) -> dict[str, Any]:
        """The app row, created 30 days before the window opens."""
        return {"id": self.app_id, "name": name, "created_at": self.now - WINDOW - timedelta(days=30)}

    def tag_rows(self) -> list[dict[str, Any]]:
        """The app's tags, with usage_count 0 until the sessions are written."""
        start = self.now - WINDOW - timedelta(days=29)
        return [
            {
                "id": tag_id,
                "app_id": self.app_id,
                "name": name,
                "color": color,
                "usage_count": 0,
                "created_at": start + timedelta(minutes=3 * i, seconds=self.rng.uniform(0, 60)),
            }
            for i, (tag_id, (name, color)) in enumerate(zip(self.tag_ids, TAGS, strict=True))
        ]

    def consumer_rows(self) -> list[dict[str, Any]]:
        """The app's consumers in creation order; each is remembered for the sessions that name it."""
        rng, rows = self.rng, []
        earliest = (self.now - WINDOW - timedelta(days=30)).timestamp()
        latest = (self.now - timedelta(hours=3)).timestamp()
        times = sorted(round(rng.uniform(earliest, latest), 6) for _ in range(self.n_consumers))
        for stamp in times:
            created_at = datetime.fromtimestamp(stamp, UTC)
            cid = time_uuid(rng, created_at)
            anonymous = rng.random() < 0.3
            locale = rng.choices(("en_US", "de_DE", "fr_FR"), weights=(60, 22, 18))[0]
            if anonymous:
                name = email = picture = None
                identifier = f"anon_{rng.getrandbits(64):016x}"
            else:
                faker = self.fakers[locale]
                first, last = faker.first_name(), faker.last_name()
                name = f"{first} {last}"
                domain = rng.choice(
                    ("gmail.com", "outlook.com", "proton.me", "gmx.de", "orange.fr", "icloud.com")
                )
                email = f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 999)}@{domain}".replace(" ", "")
                identifier = email
                picture = f"https://i.pravatar.cc/150?u={cid.hex}" if rng.random() < 0.4 else None
            updated_at = created_at + timedelta(seconds=rng.randint(0, 86400 * 20))
            rows.append(
                {
                    "id": cid,
                    "app_id": self.app_id,
                    "identifier": identifier,
                    "email": email,
                    "name": name,
                    "picture_url": picture,
                    "email_verified": email is not None and rng.random() < 0.75,
                    "credits": 0 if anonymous else rng.choice((0, 0, 10, 50, 100, rng.randint(1, 5000))),
                    "subscription_active": not anonymous and rng.random() < 0.2,
                    "mode": rng.choices(("default", "research", "support"), weights=(88, 7, 5))[0],
                    "is_anonymous": anonymous,
                    "created_at": created_at,
                    "updated_at": min(updated_at, self.now),
                    "search_folded": "\x1f".join(
                        (part or "").casefold() for part in (name, email, identifier)
                    ),
                }
            )
            self.consumers.append(DemoConsumer(cid, created_at, locale, not anonymous))
            self.consumer_times.append(stamp)
        return rows

    def knowledge_rows(self) -> list[dict[str, Any]]:
        """The app's knowledge sources, of every type and status."""
        rng, rows = self.rng, []
        domain = _ascii(self.company.split()[0]).strip(",.") + ".com"
        for i in range(self.n_knowledge):
            kind = weighted(rng, KNOWLEDGE_TYPES)[0]
            status = weighted(rng, KNOWLEDGE_STATUSES)[0]
            product = rng.choice(PRODUCTS)
            name, url, size = {
                "file": (
                    f"{product} user guide v{rng.randint(1, 9)}.pdf",
                    None,
                    rng.randint(20_000, 25_000_000),
                ),
                "url": (f"Pricing page {i}", f"https://www.{domain}/pricing/{i}", None),
                "google_drive": (
                    "Support macros (Drive)",
                    f"https://drive.google.com/drive/folders/{i:08x}",
                    None,
                ),
                "notion": (
                    "Team wiki – Notion",
                    f"https://www.notion.so/{domain.split('.')[0]}/wiki-{i}",
                    None,
                ),
                "text": ("Rückgabebedingungen (Text)", None, None),
                "qa": (f"FAQ pairs – {product}", None, None),
                "sitemap": ("Docs sitemap", f"https://docs.{domain}/sitemap.xml", None),
                "youtube": (
                    f"{product} demo video",
                    f"https://www.youtube.com/watch?v={rng.getrandbits(40):010x}",
                    None,
                ),
                "confluence": (
                    "Engineering runbooks",
                    f"https://{domain.split('.')[0]}.atlassian.net/wiki/{i}",
                    None,
                ),
            }[kind]
            created_at = self.now - timedelta(seconds=rng.uniform(86400, 86400 * 150))
            updated_at = created_at + timedelta(seconds=rng.uniform(60, 86400 * 3))
            refreshed = kind in ("url", "sitemap", "notion", "confluence") and rng.random() < 0.6
            rows.append(
                {
                    "app_id": self.app_id,
                    "id": str(new_uuid(rng)),
                    "name": name,
                    "type": kind,
                    "status": status,
                    "url": url,
                    "error_message": rng.choice(KNOWLEDGE_ERRORS[kind]) if status == "failed" else None,
                    "chunk_count": {
                        "completed": rng.randint(3, 2400),
                        "processing": rng.randint(0, 300),
                        "deleting": rng.randint(1, 500),
                    }.get(status, 0),
                    "file_size_bytes": size,
                    "refresh_interval_hours": rng.choice((24, 72, 168)) if refreshed else None,
                    "last_refreshed_at": min(updated_at + timedelta(days=rng.randint(0, 30)), self.now)
                    if refreshed and status == "completed"
                    else None,
                    "created_at": created_at,
                    "updated_at": min(updated_at, self.now),
                }
            )
        return rows
