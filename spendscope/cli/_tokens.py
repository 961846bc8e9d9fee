"""`spendscope tokens create | list | revoke`: the access tokens of the reports API and the portal
(spendscope/store/tokens.py). Stored hashed in the store; a token is shown once, when created."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from spendscope.cli._app import StoreOption, app, domain_errors, fail, open_store_for

tokens_app = typer.Typer(
    help="Access tokens for the reports API and the portal: admin, or one tenant's.", no_args_is_help=True
)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("create")
def create(
    tenant: Annotated[str | None, typer.Option(help="a token that sees this tenant only")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="a token that sees everything")] = False,
    note: Annotated[str, typer.Option(help="what the token is for (shown by `tokens list`)")] = "",
    store: StoreOption = None,
) -> None:
    """Create a token and print it (once: the store keeps its hash only). Once a token exists, every
    route of the collector requires one."""
    from spendscope.store import tokens

    if admin == (tenant is not None):
        fail("give --tenant NAME or --admin")
    with domain_errors(), open_store_for(store, "tokens create", create=True) as opened:
        first = not any(t.active for t in tokens.list_tokens(opened))
        row, token = tokens.create(
            opened, kind=tokens.ADMIN if admin else tokens.TENANT, tenant=tenant or "", note=note
        )
    typer.echo(token)
    who = "every tenant" if admin else f"tenant {tenant}"
    typer.echo(f"token {row.token_id} for {who}: keep it now, it is not shown again", err=True)
    if first:  # from now on an app exporting without a token is refused (401): say so where it is done
        typer.echo(
            "the first token: from now on every collector route requires one, OTLP ingest an admin token "
            "(apps: OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<admin token>)",
            err=True,
        )


@tokens_app.command("list")
def list_(
    store: StoreOption = None,
    output: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """The tokens, active and revoked (never the tokens themselves)."""
    from spendscope.store import tokens

    with domain_errors(), open_store_for(store, "tokens list") as opened:
        rows = [t.describe() for t in tokens.list_tokens(opened)]
    if output == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        who = row["tenant"] if row["kind"] == tokens.TENANT else "(admin)"
        typer.echo(
            f"{row['id']}  {row['kind']:<6}  {who:<20}  {state:<40}  {row['created_at']}  {row['note']}"
        )


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="the token's id (tokens list), or the token")],
    store: StoreOption = None,
) -> None:
    """Revoke a token: it stops working within seconds on every collector, and so do the sign-ins made
    with it."""
    from spendscope.store import tokens

    with domain_errors(), open_store_for(store, "tokens revoke") as opened:
        row = tokens.revoke(opened, token_id)
    typer.echo(f"token {row.token_id} revoked")
