"""``meterline keys create``: a new API key and the keys-file line that admits it.

The key is printed once and stored nowhere; only its digest goes to the keys file (or to
``METERLINE_API_KEYS``), so losing it means creating another."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from meterline.api.keys import digest, entry_line, new_key

__all__ = ["keys_app"]

keys_app = typer.Typer(help="API keys of the worker's HTTP API.", no_args_is_help=True)


@keys_app.command("create")
def create(
    customer: Annotated[
        str | None, typer.Option(help="Scope the key to this customer's data only.")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="A key that reads everything.")] = False,
    append: Annotated[
        Path | None,
        typer.Option(help="Append the entry to this keys file (METERLINE_API_KEYS_FILE)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print key and entry as JSON.")] = False,
) -> None:
    """Print a new key (shown once) and the line to add to the keys file."""
    if admin == (customer is not None):
        raise typer.BadParameter("give exactly one of --admin or --customer ID")
    if customer is not None and (not customer.strip() or "\n" in customer or " #" in customer):
        raise typer.BadParameter("--customer: a customer id, on one line, without ' #'")
    key = new_key()
    line = entry_line(key, None if admin else customer)
    if append is not None:
        # 0600: digests are not secrets, but who may read the file need not know the scopes.
        fd = os.open(append, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    if as_json:
        scope = "admin" if admin else f"customer:{customer}"
        typer.echo(json.dumps({"key": key, "digest": digest(key), "scope": scope, "entry": line}))
        return
    typer.echo(f"key (shown once; send it as 'Authorization: Bearer <key>'):\n{key}")
    if append is not None:
        typer.echo(f"added to {append}:\n{line}")
    else:
        typer.echo(f"add this line to the keys file (METERLINE_API_KEYS_FILE):\n{line}")
