"""`seed_demo`: demo accounts, generated users and pitches, deterministic and idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pitchey.seed import DEMO_ACCOUNTS, generated_email, seed_demo
from pitchey.settings import Settings
from pitchey.storage import Database
from pitchey.storage.sqlite import SQLiteDatabase
from tests.pitchey.domain.conftest import fast_settings

_CONTENT = (
    "SELECT p.seed_ref, u.email, p.title, p.logline, p.synopsis, p.genre, p.budget_range, "
    "p.status, p.created_at FROM pitches p JOIN users u ON u.id = p.creator_id "
    "ORDER BY p.seed_ref"
)


async def _fresh(tmp_path: Path, name: str) -> tuple[Database, Settings]:
    settings = fast_settings(tmp_path, sqlite_path=str(tmp_path / f"{name}.db"))
    db = SQLiteDatabase(settings.sqlite_path)
    await db.migrate()
    return db, settings


async def _snapshot(db: Database) -> dict[str, Any]:
    users = await db.fetch("SELECT email, name, user_type, company, created_at FROM users "
                           "ORDER BY email")
    ndas = await db.fetch(
        "SELECT p.seed_ref, u.email, r.status FROM info_requests r "
        "JOIN pitches p ON p.id = r.pitch_id JOIN users u ON u.id = r.user_id ORDER BY 1, 2"
    )
    investments = await db.fetch(
        "SELECT u.email, p.seed_ref, i.amount_cents, i.status FROM investments i "
        "JOIN users u ON u.id = i.investor_id JOIN pitches p ON p.id = i.pitch_id ORDER BY 1, 2"
    )
    return {"users": users, "pitches": await db.fetch(_CONTENT), "ndas": ndas,
            "investments": investments}


async def test_same_seed_same_data_and_reruns_add_nothing(tmp_path: Path) -> None:
    first, settings = await _fresh(tmp_path, "a")
    second, _ = await _fresh(tmp_path, "b")
    try:
        report = await seed_demo(first, settings, users=12, pitches=40, seed=3)
        assert report.users_created == 12 + len(DEMO_ACCOUNTS)
        assert report.pitches_created == 40
        await seed_demo(second, settings, users=12, pitches=40, seed=3)
        assert await _snapshot(first) == await _snapshot(second)
        before = await _snapshot(first)
        again = await seed_demo(first, settings, users=12, pitches=40, seed=3)
        assert (again.users_created, again.pitches_created) == (0, 0)
        assert again.users_total == report.users_total
        assert await _snapshot(first) == before
        grown = await seed_demo(first, settings, users=15, pitches=45, seed=3)
        assert (grown.users_created, grown.pitches_created) == (3, 5)
    finally:
        await first.close()
        await second.close()


async def test_another_seed_gives_other_pitches(tmp_path: Path) -> None:
    first, settings = await _fresh(tmp_path, "a")
    second, _ = await _fresh(tmp_path, "b")
    try:
        await seed_demo(first, settings, users=6, pitches=20, seed=1)
        await seed_demo(second, settings, users=6, pitches=20, seed=2)
        titles_a = [row["title"] for row in await first.fetch(_CONTENT)]
        titles_b = [row["title"] for row in await second.fetch(_CONTENT)]
        assert titles_a != titles_b
    finally:
        await first.close()
        await second.close()


async def test_seeded_content_passes_the_api_validation(tmp_path: Path) -> None:
    from pitchey.validation import validate_pitch

    db, settings = await _fresh(tmp_path, "v")
    try:
        await seed_demo(db, settings, users=9, pitches=60, seed=5)
        for row in await db.fetch(_CONTENT):
            validate_pitch({key: row[key] for key in
                            ("title", "logline", "synopsis", "genre", "budget_range", "status")})
        portals = await db.fetch("SELECT user_type, COUNT(*) AS n FROM users GROUP BY user_type")
        assert {row["user_type"]: row["n"] for row in portals} == {
            "creator": 4, "investor": 4, "production": 4}
        emails = {row["email"] for row in await db.fetch("SELECT email FROM users")}
        assert {generated_email("creator", 3), generated_email("production", 1)} <= emails
        statuses = {row["status"] for row in await db.fetch("SELECT status FROM pitches")}
        assert statuses == {"published", "draft", "archived"}
    finally:
        await db.close()
