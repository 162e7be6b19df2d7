"""Demo data: three demo accounts (the creator's is the one "Cloudflare Deployment Guide for
Pitchey Platform", § Testing Procedures › 2. Authentication Test, signs in with; the investor
and production accounts follow its pattern) plus generated users and pitches.

Deterministic: the same `seed` produces the same users, pitches, NDA requests and
investments (names, texts, genres, timestamps); only password salts differ. Idempotent:
users are keyed by email, pitches by `seed_ref` ("seed:<seed>:pitch:<n>"), NDA requests by
(pitch, user), investments by (investor, pitch), all inserted with ON CONFLICT DO NOTHING,
so a rerun adds nothing and a larger rerun adds only what is new.

Generated users are `<portal><n>@seed.pitchey.test` (creator1, investor1, production1,
creator2, ...), all with the demo password, so load tests can sign in as many distinct users.
Hashing one password per user at production cost would take minutes, so one argon2id hash
of the demo password is shared by every generated account (fine for demo data only).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from pitchey.auth import hash_password, make_hasher
from pitchey.settings import Settings
from pitchey.storage import Database
from pitchey.validation import BUDGET_RANGES, GENRES, PORTALS

__all__ = ["DEMO_ACCOUNTS", "DEMO_PASSWORD", "SEED_EMAIL_DOMAIN", "SeedReport", "seed_demo",
           "generated_email"]

DEMO_PASSWORD = "Demo123"
SEED_EMAIL_DOMAIN = "seed.pitchey.test"
# email, name, portal, company
DEMO_ACCOUNTS = (
    ("alex.creator@demo.com", "Alex Rivera", "creator", "Rivera Films"),
    ("sarah.investor@demo.com", "Sarah Chen", "investor", "Chen Capital"),
    ("stellar.production@demo.com", "Stellar Productions", "production", "Stellar Productions"),
)
_EPOCH = 1_735_689_600.0  # 2025-01-01T00:00:00Z: seeded timestamps do not depend on today
_SPAN_S = 300 * 86400.0

_FIRST = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Femi", "Grace", "Hiro", "Isla", "Jon", "Kai",
          "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara")
_LAST = ("Adams", "Baker", "Cruz", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
         "Jensen", "Khan", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Silva")
_ADJECTIVES = ("Silent", "Broken", "Golden", "Last", "Hidden", "Crimson", "Electric", "Lost",
               "Midnight", "Frozen", "Burning", "Distant", "Hollow", "Wild", "Quiet")
_NOUNS = ("Harbor", "Signal", "Orchard", "Frontier", "Echo", "Kingdom", "Voyage", "Circuit",
          "Garden", "Empire", "Witness", "Horizon", "Tide", "Lantern", "Protocol")
_HEROES = ("a retired detective", "two estranged sisters", "a rookie astronaut",
           "a small-town baker", "an exiled hacker", "a grieving composer",
           "a stubborn park ranger", "a teenage inventor")
_GOALS = ("must solve one last case", "must stop a city-wide blackout",
          "must find a forgotten treasure", "must save the family farm",
          "must expose a corporate conspiracy", "must survive a night no one else remembers",
          "must win a contest that could change everything")
_SETTINGS = ("in a city that never sleeps", "on a generation ship", "across a flooded coast",
             "in a snowed-in mountain town", "during the final week of a war",
             "inside a luxury hotel with no exits")


def generated_email(portal: str, number: int) -> str:
    return f"{portal}{number}@{SEED_EMAIL_DOMAIN}"


@dataclass(frozen=True)
class SeedReport:
    seed: int
    users_created: int
    users_total: int
    pitches_created: int
    pitches_total: int
    demo_accounts: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"seed {self.seed}: {self.users_created} users created ({self.users_total} in total), "
            f"{self.pitches_created} pitches created ({self.pitches_total} in total); "
            f"demo accounts {', '.join(self.demo_accounts)} / {DEMO_PASSWORD}; generated users "
            f"<portal><n>@{SEED_EMAIL_DOMAIN} / {DEMO_PASSWORD}"
        )


def _user_rows(rng: random.Random, users: int, password_hash: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = [
        (email, password_hash, name, portal, company, _EPOCH)
        for email, name, portal, company in DEMO_ACCOUNTS
    ]
    for index in range(users):
        portal = PORTALS[index % len(PORTALS)]
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        company = f"{rng.choice(_LAST)} {'Studios' if portal != 'investor' else 'Partners'}"
        created = _EPOCH + rng.uniform(0, _SPAN_S)
        rows.append((generated_email(portal, index // 3 + 1), password_hash, name, portal,
                     company, created))
    return rows


def _pitch_text(rng: random.Random, number: int) -> dict[str, Any]:
    title = f"The {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}"
    if number >= 10:
        title = f"{title} {number}"
    hero, goal, place = rng.choice(_HEROES), rng.choice(_GOALS), rng.choice(_SETTINGS)
    logline = f"{hero.capitalize()} {goal} {place}."
    synopsis = (
        f"{logline} What begins as an ordinary week turns when {hero} finds a clue nobody was "
        f"meant to see. Allies become suspects, the clock runs down, and the only way out is "
        f"through the one place {hero} swore never to return to."
    )
    roll = rng.random()
    status = "published" if roll < 0.8 else ("draft" if roll < 0.9 else "archived")
    return {
        "title": title, "logline": logline, "synopsis": synopsis,
        "genre": rng.choice(GENRES), "budget_range": rng.choice(BUDGET_RANGES),
        "status": status, "budget_details": f"Estimated {rng.randint(1, 90)} shooting days.",
        "created_at": _EPOCH + rng.uniform(0, _SPAN_S),
    }


async def _ids_by_email(db: Database, emails: list[str]) -> dict[str, int]:
    rows = await db.fetch("SELECT id, email FROM users")
    wanted = set(emails)
    return {row["email"]: int(row["id"]) for row in rows if row["email"] in wanted}


async def seed_demo(
    db: Database, settings: Settings, *, users: int, pitches: int, seed: int
) -> SeedReport:
    """Create the demo accounts, `users` generated users and `pitches` pitches (see module)."""
    rng = random.Random(seed)
    users_before = int(await db.fetchval("SELECT COUNT(*) FROM users") or 0)
    pitches_before = int(await db.fetchval("SELECT COUNT(*) FROM pitches") or 0)
    password_hash = await hash_password(make_hasher(settings), DEMO_PASSWORD)
    user_rows = _user_rows(rng, users, password_hash)
    await db.executemany(
        "INSERT INTO users (email, password_hash, name, user_type, company, created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
        user_rows,
    )
    ids = await _ids_by_email(db, [row[0] for row in user_rows])
    creators = [ids[row[0]] for row in user_rows if row[3] == "creator"]
    investors = [ids[row[0]] for row in user_rows if row[3] == "investor"]
    alex, sarah, stellar = (ids[email] for email, *_ in DEMO_ACCOUNTS)
    plan = []
    for number in range(pitches):
        creator = alex if number % 10 == 0 or len(creators) == 1 else rng.choice(creators[1:])
        text = _pitch_text(rng, number)
        if number == 0:
            text["status"] = "published"  # the NDA demo below needs it visible
        plan.append((f"seed:{seed}:pitch:{number}", creator, text))
    await db.executemany(
        "INSERT INTO pitches (seed_ref, creator_id, title, logline, synopsis, genre, "
        "budget_range, status, budget_details, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT (seed_ref) DO NOTHING",
        [(ref, creator, t["title"], t["logline"], t["synopsis"], t["genre"], t["budget_range"],
          t["status"], t["budget_details"], t["created_at"]) for ref, creator, t in plan],
    )
    await _seed_relations(db, rng, seed, plan, (alex, sarah, stellar), investors)
    users_after = int(await db.fetchval("SELECT COUNT(*) FROM users") or 0)
    pitches_after = int(await db.fetchval("SELECT COUNT(*) FROM pitches") or 0)
    return SeedReport(
        seed, users_after - users_before, users_after, pitches_after - pitches_before,
        pitches_after, tuple(email for email, *_ in DEMO_ACCOUNTS),
    )


async def _seed_relations(
    db: Database, rng: random.Random, seed: int, plan: list[tuple[str, int, dict[str, Any]]],
    demo: tuple[int, int, int], investors: list[int],
) -> None:
    """NDA requests and investments on published pitches, chosen by plan position."""
    if not plan:
        return
    alex, sarah, stellar = demo
    rows = await db.fetch(
        "SELECT id, seed_ref FROM pitches WHERE seed_ref LIKE $1", f"seed:{seed}:pitch:%"
    )
    pitch_ids = {row["seed_ref"]: int(row["id"]) for row in rows}
    published = [pitch_ids[ref] for ref, _, text in plan if text["status"] == "published"]
    alex_published = [pitch_ids[ref] for ref, creator, text in plan
                      if text["status"] == "published" and creator == alex]
    requests: list[tuple[Any, ...]] = []
    for position, pitch_id in enumerate(alex_published[:2]):
        status = "approved" if position == 0 else "pending"
        decided = _EPOCH + _SPAN_S if status == "approved" else None
        requests.append((pitch_id, sarah, status, "Keen to read the full treatment.",
                         _EPOCH + _SPAN_S, decided))
    requests.append((alex_published[0], stellar, "pending", None, _EPOCH + _SPAN_S, None))
    await db.executemany(
        "INSERT INTO info_requests (pitch_id, user_id, status, message, created_at, decided_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (pitch_id, user_id) DO NOTHING",
        requests,
    )
    positions: list[tuple[Any, ...]] = []
    for investor in investors:
        picks = rng.sample(published, k=min(len(published), 3 if investor == sarah else 2))
        for pitch_id in picks:
            status = rng.choice(("pending", "committed", "committed", "withdrawn"))
            amount = rng.randint(10, 500) * 100_000
            positions.append((investor, pitch_id, amount, status, _EPOCH + rng.uniform(0, _SPAN_S)))
    if positions:
        await db.executemany(
            "INSERT INTO investments (investor_id, pitch_id, amount_cents, status, created_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (investor_id, pitch_id) DO NOTHING",
            positions,
        )
