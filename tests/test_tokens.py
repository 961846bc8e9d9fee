"""Access tokens: their form, how they are checked (a hash in constant time), and `spendscope tokens
create | list | revoke` on a real store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner, Result

from spendscope.cli import app
from spendscope.store import Store
from spendscope.store import tokens as t
from spendscope.store.errors import ReportError


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_a_token_is_its_id_and_256_random_bits() -> None:
    token_id, token = t.new_token()
    assert token.startswith(f"sst_{token_id}_") and len(token) == len("sst_") + 8 + 1 + 43
    assert t.new_token()[1] != token


def test_only_the_token_itself_passes(store: Store) -> None:
    row, token = t.create(store, kind=t.TENANT, tenant="acme", note="finance")
    table = t.TokenTable.of(t.list_tokens(store))
    assert table.verify(token) == row
    wrong_secret = token[:-1] + ("A" if token[-1] != "A" else "B")
    unknown_id = "sst_ffffffff" + token[len("sst_ffffffff") :]
    for bad in (wrong_secret, unknown_id, "", "sst_", token + "x", token.upper(), f"Bearer {token}"):
        assert table.verify(bad) is None, bad
    t.revoke(store, row.token_id)
    assert t.TokenTable.of(t.list_tokens(store)).verify(token) is None


@pytest.mark.parametrize(
    ("kind", "tenant", "message"),
    [
        ("tenant", "", "needs a tenant"),
        ("admin", "acme", "give no tenant"),
        ("root", "", "unknown token kind"),
    ],
)
def test_a_token_must_say_what_it_sees(store: Store, kind: str, tenant: str, message: str) -> None:
    with pytest.raises(ReportError, match=message):
        t.create(store, kind=kind, tenant=tenant)


def test_the_tokens_commands(store: Store, store_dsn: str) -> None:
    created = cli("tokens", "create", "--tenant", "acme", "--note", "acme finance", "--store", store_dsn)
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("sst_") and "not shown again" in created.stderr
    assert (
        "OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer" in created.stderr
    )  # the first token says what it changes
    second = cli("tokens", "create", "--admin", "--store", store_dsn)
    assert second.exit_code == 0 and "the first token" not in second.stderr
    assert cli("tokens", "create", "--store", store_dsn).exit_code == 1  # neither --tenant nor --admin
    listed = json.loads(cli("tokens", "list", "--format", "json", "--store", store_dsn).stdout)
    assert [(r["kind"], r["tenant"], r["note"], r["revoked_at"]) for r in listed] == [
        ("tenant", "acme", "acme finance", None),
        ("admin", "", "", None),
    ]
    assert token not in json.dumps(listed) and t.digest(token) not in json.dumps(listed)
    revoked = cli("tokens", "revoke", token, "--store", store_dsn)  # the token itself names it too
    assert revoked.exit_code == 0 and revoked.stdout == f"token {listed[0]['id']} revoked\n"
    after = json.loads(cli("tokens", "list", "--format", "json", "--store", store_dsn).stdout)
    assert after[0]["revoked_at"] is not None and after[1]["revoked_at"] is None
    missing = cli("tokens", "revoke", "00000000", "--store", store_dsn)
    assert missing.exit_code == 1 and "no token '00000000'" in missing.stderr
