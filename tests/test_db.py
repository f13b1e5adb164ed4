from hotline.db import load_migrations, migrate


async def test_migrations_apply_once_and_record_versions(db):
    async with db.acquire() as conn:
        assert await migrate(conn) == []  # the template already holds them
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in load_migrations()]


async def test_badly_named_migration_is_an_error(tmp_path, db):
    (tmp_path / "1_oops.sql").write_text("SELECT 1")
    import pytest
    with pytest.raises(ValueError, match="NNN_name.sql"):
        load_migrations(tmp_path)
