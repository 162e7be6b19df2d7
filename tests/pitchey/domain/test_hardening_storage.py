"""Issue 13, storage hardening: pitch ids are never given out twice, a delete forgets every
cached access decision about the pitch, PUT/DELETE check and write in one statement (no 500
when they race, one 204 per pitch), and `ETag`/`If-Match` stop lost updates.

Each test runs on SQLite (in-process cache) and on PostgreSQL + Redis through the real app;
the migration tests build a SQLite file as it was before migration 4 and upgrade it."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pitchey.storage import Database
from pitchey.storage.migrations import MIGRATIONS, render
from pitchey.storage.sqlite import SQLiteDatabase
from tests.pitchey.domain.conftest import Api, valid_pitch

OTHER_CREATOR = "creator2@seed.pitchey.test"
REBUILT = ("pitches", "info_requests", "messages")


async def _create(api: Api, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = await api.client.post("/api/pitches", json=valid_pitch(**overrides),
                                      headers=headers)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def _bearer(api: Api, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await api.login('creator', email=email)}"}


async def _grant_nda(api: Api, pitch_id: int) -> None:
    """The investor asks for the pitch's details and its creator approves."""
    asked = await api.client.post("/api/info-requests", json={"pitch_id": pitch_id},
                                  headers=await api.headers("investor"))
    assert asked.status == 201, await asked.text()
    request_id = (await asked.json())["id"]
    approved = await api.client.post(f"/api/info-requests/{request_id}/approve",
                                     headers=await api.headers("creator"))
    assert approved.status == 200, await approved.text()


async def _investor_view(api: Api, pitch_id: int) -> dict[str, Any]:
    response = await api.client.get(f"/api/pitches/{pitch_id}",
                                    headers=await api.headers("investor"))
    assert response.status == 200, await response.text()
    return dict(await response.json())


# -- ids and cached access decisions ----------------------------------------------------------


async def test_a_deleted_pitchs_id_is_never_given_to_a_new_pitch(api: Api) -> None:
    """The reported leak: NDA on the newest pitch, deleted, another creator's next pitch got
    the same id on SQLite and the investor read it with "access":"nda"."""
    creator = await api.headers("creator")
    first = await _create(api, creator, budget_details="Alex's budget")
    await _grant_nda(api, first["id"])
    seen = await _investor_view(api, first["id"])
    assert seen["access"] == "nda" and seen["budget_details"] == "Alex's budget"
    deleted = await api.client.delete(f"/api/pitches/{first['id']}", headers=creator)
    assert deleted.status == 204
    other = await _create(api, await _bearer(api, OTHER_CREATOR),
                          budget_details="Someone else's budget")
    assert other["id"] != first["id"]
    assert other["id"] > first["id"]
    view = await _investor_view(api, other["id"])
    assert view["access"] == "public"
    assert "budget_details" not in view


async def test_a_delete_forgets_every_nda_holders_cached_access(api: Api) -> None:
    """Even if an id did come back (a restore, a hand-written row), nothing cached about the
    deleted pitch may grant access to it: not the owner's access set, nor the NDA holders'."""
    creator = await api.headers("creator")
    first = await _create(api, creator, budget_details="Alex's budget")
    await _grant_nda(api, first["id"])
    assert (await _investor_view(api, first["id"]))["access"] == "nda"  # now cached
    dashboard = await api.client.get("/api/dashboard/investor/metrics",
                                     headers=await api.headers("investor"))
    assert (await dashboard.json())["info_requests"].get("approved", 0) >= 1
    approved_before = (await dashboard.json())["info_requests"]["approved"]
    assert (await api.client.delete(f"/api/pitches/{first['id']}", headers=creator)).status == 204
    other_id = await api.db.fetchval("SELECT id FROM users WHERE email = $1", OTHER_CREATOR)
    await api.db.execute(  # the same id, given to another creator's published pitch
        "INSERT INTO pitches (id, creator_id, title, logline, synopsis, genre, budget_range, "
        "status, budget_details, created_at, updated_at) VALUES ($1, $2, 'Reused', "
        "'A logline long enough to pass.', 'Synopsis.', 'Drama', 'low', 'published', "
        "'Someone else''s budget', 1, 1)",
        first["id"], other_id,
    )
    view = await _investor_view(api, first["id"])
    assert view["access"] == "public"
    assert "budget_details" not in view
    dashboard = await api.client.get("/api/dashboard/investor/metrics",
                                     headers=await api.headers("investor"))
    assert (await dashboard.json())["info_requests"].get("approved", 0) == approved_before - 1


# -- migration 4 on SQLite --------------------------------------------------------------------


async def _schema(db: Database, kind: str) -> dict[str, str]:
    rows = await db.fetch(
        "SELECT name, sql FROM sqlite_master WHERE type = $1 AND sql IS NOT NULL", kind
    )
    return {str(row["name"]): str(row["sql"]) for row in rows}


async def _database_at_version_3(path: Path) -> SQLiteDatabase:
    """A SQLite file exactly as the service left it before migration 4, with data."""
    db = SQLiteDatabase(str(path), readers=1)
    async with db.transaction() as tx:
        await tx.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at DOUBLE PRECISION NOT NULL)"
        )
        for migration in MIGRATIONS:
            if migration.version <= 3:
                for statement in migration.statements:
                    await tx.execute(render(statement, "sqlite"))
                await tx.execute("INSERT INTO schema_migrations VALUES ($1, $2, 0)",
                                 migration.version, migration.name)
        for user_id, kind in ((1, "creator"), (2, "investor")):
            await tx.execute(
                "INSERT INTO users (id, email, password_hash, name, user_type, created_at) "
                "VALUES ($1, $2, 'h', $3, $4, 0)", user_id, f"u{user_id}@x.test", f"U{user_id}",
                kind,
            )
        for pitch_id in (1, 2, 3):
            await tx.execute(
                "INSERT INTO pitches (id, creator_id, title, logline, synopsis, genre, "
                "budget_range, status, budget_details, seed_ref, created_at, updated_at) "
                "VALUES ($1, 1, $2, 'l', 's', 'Drama', 'low', 'published', $3, $4, $5, $5)",
                pitch_id, f"P{pitch_id}", f"budget {pitch_id}", f"ref{pitch_id}", pitch_id,
            )
            await tx.execute(
                "INSERT INTO info_requests (id, pitch_id, user_id, status, created_at) "
                "VALUES ($1, $1, 2, 'approved', 0)", pitch_id,
            )
            await tx.execute(
                "INSERT INTO messages (id, conversation_id, sender_id, recipient_id, pitch_id, "
                "body, created_at) VALUES ($1, '1:2', 2, 1, $1, 'hi', 0)", pitch_id,
            )
            await tx.execute(
                "INSERT INTO investments (investor_id, pitch_id, amount_cents, status, "
                "created_at) VALUES (2, $1, 100, 'pending', 0)", pitch_id,
            )
    return db


async def test_migration_4_rebuilds_sqlite_tables_without_losing_rows_links_or_indexes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v3.db"
    db = await _database_at_version_3(path)
    try:
        tables = {name: await db.fetch(f"SELECT * FROM {name} ORDER BY 1")  # noqa: S608
                  for name in ("pitches", "info_requests", "messages", "investments")}
        indexes = await _schema(db, "index")
        assert await db.migrate() == len(MIGRATIONS) - 3
        schema = await _schema(db, "table")
        for name in REBUILT:
            assert "AUTOINCREMENT" in schema[name].upper(), schema[name]
        after_indexes = await _schema(db, "index")  # later migrations may add more
        assert {name: after_indexes.get(name) for name in indexes} == indexes
        for name, rows in tables.items():  # every row kept: the drops cascaded nowhere
            after = await db.fetch(f"SELECT * FROM {name} ORDER BY 1")  # noqa: S608
            if name == "pitches":
                assert {row["version"] for row in after} == {1}
                after = [{k: v for k, v in row.items() if k != "version"} for row in after]
            assert after == rows, name
        assert await db.fetch("PRAGMA foreign_key_check") == []
        assert await db.fetchval("PRAGMA foreign_keys") == 1  # back on for the service
        assert await db.migrate() == 0
        # foreign keys still act on the rebuilt tables
        await db.execute("DELETE FROM pitches WHERE id = 3")
        assert await db.fetchval("SELECT COUNT(*) FROM info_requests WHERE pitch_id = 3") == 0
        assert await db.fetchval("SELECT pitch_id FROM messages WHERE id = 3") is None
        # and the id of the deleted newest pitch (and request, and message) is not reused
        new_pitch = await db.fetchval(
            "INSERT INTO pitches (creator_id, title, logline, synopsis, genre, budget_range, "
            "status, created_at, updated_at) VALUES (1, 'N', 'l', 's', 'Drama', 'low', "
            "'published', 9, 9) RETURNING id"
        )
        assert new_pitch == 4
        await db.execute("DELETE FROM info_requests WHERE id = 2")
        await db.execute("DELETE FROM messages WHERE id = 3")
        assert await db.fetchval(
            "INSERT INTO info_requests (pitch_id, user_id, status, created_at) "
            "VALUES (4, 2, 'pending', 0) RETURNING id"
        ) == 4
        assert await db.fetchval(
            "INSERT INTO messages (conversation_id, sender_id, recipient_id, body, created_at) "
            "VALUES ('1:2', 1, 2, 'x', 0) RETURNING id"
        ) == 4
    finally:
        await db.close()


async def test_a_fresh_sqlite_database_never_reuses_ids(tmp_path: Path) -> None:
    db = SQLiteDatabase(str(tmp_path / "fresh.db"), readers=1)
    try:
        await db.migrate()
        await db.execute("INSERT INTO users (id, email, password_hash, name, user_type, "
                         "created_at) VALUES (1, 'a@x.test', 'h', 'A', 'creator', 0)")
        insert = ("INSERT INTO pitches (creator_id, title, logline, synopsis, genre, "
                  "budget_range, status, created_at, updated_at) VALUES (1, 'T', 'l', 's', "
                  "'Drama', 'low', 'published', 0, 0) RETURNING id")
        first = await db.fetchval(insert)
        await db.execute("DELETE FROM pitches WHERE id = $1", first)
        assert await db.fetchval(insert) == first + 1
    finally:
        await db.close()


# -- PUT and DELETE racing --------------------------------------------------------------------


async def test_put_racing_delete_is_200_or_404_and_one_delete_wins(api: Api) -> None:
    owner = await api.headers("creator")
    for round_number in range(3):
        pitch = await _create(api, owner)
        path = f"/api/pitches/{pitch['id']}"
        puts = [api.client.put(path, json={"title": f"Round {round_number} edit {n}"},
                               headers=owner) for n in range(30)]
        deletes = [api.client.delete(path, headers=owner) for _ in range(6)]
        calls = [*puts[:15], *deletes, *puts[15:]]
        responses = await asyncio.gather(*calls)
        statuses = [response.status for response in responses]
        for response in responses:
            if response.status >= 400:
                assert (await response.json())["error"]["code"] == "not_found"
        put_statuses = Counter(statuses[:15] + statuses[21:])
        delete_statuses = Counter(statuses[15:21])
        assert set(put_statuses) <= {200, 404}, put_statuses
        assert delete_statuses == Counter({204: 1, 404: 5}), delete_statuses
        assert (await api.client.get(path, headers=owner)).status == 404


async def test_concurrent_deletes_of_one_pitch_answer_one_204(api: Api) -> None:
    owner = await api.headers("creator")
    pitch = await _create(api, owner)
    path = f"/api/pitches/{pitch['id']}"
    responses = await asyncio.gather(*(api.client.delete(path, headers=owner)
                                       for _ in range(12)))
    assert Counter(response.status for response in responses) == Counter({204: 1, 404: 11})


# -- ETag and If-Match ------------------------------------------------------------------------


async def test_pitch_reads_and_writes_carry_an_etag_that_if_match_checks(api: Api) -> None:
    owner = await api.headers("creator")
    created = await api.client.post("/api/pitches", json=valid_pitch(), headers=owner)
    path = f"/api/pitches/{(await created.json())['id']}"
    read = await api.client.get(path, headers=owner)
    etag = read.headers["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag)
    assert created.headers["ETag"] == etag
    assert (await api.client.get(path, headers=owner)).headers["ETag"] == etag  # cached
    public = (await api.client.get(path)).headers["ETag"]
    assert public != etag  # another representation, another strong validator

    updated = await api.client.put(path, json={"title": "One"},
                                   headers={**owner, "If-Match": etag})
    assert updated.status == 200
    new_etag = updated.headers["ETag"]
    assert new_etag != etag
    assert (await api.client.get(path, headers=owner)).headers["ETag"] == new_etag

    for stale in (etag, f"W/{new_etag}", public, '"nonsense"', f"{etag}, {public}"):
        refused = await api.client.put(path, json={"title": "Lost"},
                                       headers={**owner, "If-Match": stale})
        assert refused.status == 412, stale
        error = (await refused.json())["error"]
        assert error["status"] == 412 and error["code"] == "precondition_failed"
        assert refused.headers["Content-Type"].startswith("application/json")
        assert (await api.client.delete(path, headers={**owner, "If-Match": stale})).status == 412
    assert (await (await api.client.get(path, headers=owner)).json())["title"] == "One"

    listed = await api.client.put(path, json={"title": "Two"},
                                  headers={**owner, "If-Match": f'"x", {new_etag}'})
    assert listed.status == 200
    star = await api.client.put(path, json={"title": "Three"}, headers={**owner, "If-Match": "*"})
    assert star.status == 200
    unconditional = await api.client.put(path, json={"title": "Four"}, headers=owner)
    assert unconditional.status == 200  # no If-Match: today's behaviour
    # preconditions never turn a 403 or 404 into a 412
    other = await _bearer(api, OTHER_CREATOR)
    assert (await api.client.put(path, json={"title": "x"},
                                 headers={**other, "If-Match": '"1"'})).status == 403
    current = unconditional.headers["ETag"]
    assert (await api.client.delete(path, headers={**owner, "If-Match": current})).status == 204
    for headers in ({**owner, "If-Match": "*"}, {**owner, "If-Match": current}):
        assert (await api.client.put(path, json={"title": "x"}, headers=headers)).status == 404
        assert (await api.client.delete(path, headers=headers)).status == 404


async def test_parallel_read_modify_write_cycles_lose_no_update(api: Api) -> None:
    """50 clients each add one to a counter kept in the title: read it with its ETag, write
    it back with If-Match, and start over on 412. Every increment must survive."""
    owner = await api.headers("creator")
    pitch = await _create(api, owner, title="count 0")
    path = f"/api/pitches/{pitch['id']}"
    refusals = 0

    async def increment() -> None:
        nonlocal refusals
        while True:
            read = await api.client.get(path, headers=owner)
            assert read.status == 200
            count = int((await read.json())["title"].split()[1])
            write = await api.client.put(
                path, json={"title": f"count {count + 1}"},
                headers={**owner, "If-Match": read.headers["ETag"]},
            )
            if write.status == 200:
                return
            assert write.status == 412, await write.text()
            refusals += 1

    await asyncio.wait_for(asyncio.gather(*(increment() for _ in range(50))), 120)
    final = await (await api.client.get(path, headers=owner)).json()
    assert final["title"] == "count 50"
    assert refusals > 0  # the cycles did overlap


# -- the document -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite-memory"])
async def test_openapi_documents_etag_if_match_and_412(api: Api) -> None:
    document = await (await api.client.get("/openapi.json")).json()
    item = document["paths"]["/api/pitches/{id}"]
    assert "ETag" in item["get"]["responses"]["200"]["headers"]
    assert "ETag" in item["put"]["responses"]["200"]["headers"]
    assert "ETag" in document["paths"]["/api/pitches"]["post"]["responses"]["201"]["headers"]
    for method in ("put", "delete"):
        assert "412" in item[method]["responses"]
        names = {(p["name"], p["in"]) for p in item[method]["parameters"]}
        assert ("If-Match", "header") in names
