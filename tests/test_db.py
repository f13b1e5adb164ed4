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
        load_migrations([tmp_path])


def test_two_features_with_one_version_is_an_error(tmp_path):
    import pytest
    for feature in ("a", "b"):
        (tmp_path / feature).mkdir()
        (tmp_path / feature / "007_things.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="share version 7"):
        load_migrations([tmp_path / "a", tmp_path / "b"])


def test_every_feature_migration_is_found_in_version_order():
    found = load_migrations()
    assert [m.name for m in found][:2] == ["calls", "knowledge"]
    assert [m.version for m in found] == sorted(m.version for m in found)
