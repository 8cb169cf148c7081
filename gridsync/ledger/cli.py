"""``gridsync ledger``: create keys and verify ledger files offline."""

from __future__ import annotations

import json
import sys

import click

DEFAULT_KEY_DIR = "~/.config/gridsync/keys"


@click.group()
def ledger() -> None:
    """Tamper-evident market ledger: hash-chained JSON lines signed with Ed25519.

    \b
    Examples:
      gridsync ledger keygen --key-dir ~/.config/gridsync/keys
      gridsync ledger verify market-ledger.jsonl --public-key ~/.config/gridsync/keys/ledger_ed25519.pub.pem
    """


@ledger.command()
@click.option(
    "--key-dir",
    default=DEFAULT_KEY_DIR,
    show_default=True,
    help="Directory for the key pair (keep it outside any repository).",
)
@click.option("--force", is_flag=True, help="Replace an existing key pair.")
def keygen(key_dir: str, force: bool) -> None:
    """Generate the operator's Ed25519 key pair (private key written with mode 0600)."""
    from gridsync.ledger.keys import fingerprint, generate_keypair, load_public_key

    try:
        priv, pub = generate_keypair(key_dir, overwrite=force)
    except FileExistsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"private key: {priv}\npublic key:  {pub}")
    click.echo(f"fingerprint: {fingerprint(load_public_key(pub))}")


@ledger.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False),
    default=None,
    help="The operator's public key (PEM). Without it the genesis record's key is trusted, "
    "which proves integrity but not who wrote the ledger.",
)
@click.option(
    "--expect-head",
    default=None,
    help="Head hash published earlier: detects truncation of trailing records.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(file: str, public_key: str | None, expect_head: str | None, as_json: bool) -> None:
    """Verify every hash, link and signature of a ledger FILE; exit 1 if it was tampered with.

    Each problem is located: the record position (0-based line) and what broke (content
    altered, chain broken, out of sequence, bad signature, unsealed tail, wrong key).
    """
    from gridsync.ledger.backend import verify_file
    from gridsync.ledger.chain import VerifyIssue
    from gridsync.ledger.keys import load_public_key

    try:
        key = load_public_key(public_key) if public_key else None
        report = verify_file(file, key)
    except (FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    if expect_head and not report.head_hash.startswith(expect_head):
        report.issues.append(
            VerifyIssue(
                report.n_records - 1,
                "head mismatch",
                f"head is {report.head_hash}, expected {expect_head}: records were truncated "
                "or appended since it was published",
            )
        )
    if as_json:
        out = {
            "ok": report.ok,
            "n_records": report.n_records,
            "n_signatures": report.n_signatures,
            "head_hash": report.head_hash,
            "key_fingerprint": report.key_fingerprint,
            "key_trusted": report.key_trusted,
            "issues": [vars(i) for i in report.issues],
        }
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(report.summary())
        for issue in report.issues[:50]:
            click.echo(f"  {issue}")
        if len(report.issues) > 50:
            click.echo(f"  ... and {len(report.issues) - 50} more")
    sys.exit(0 if report.ok else 1)
