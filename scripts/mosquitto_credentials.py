"""Generate Mosquitto credentials for GridSync devices and the bridge (see deploy/mosquitto/).

    python scripts/mosquitto_credentials.py --out DIR gridsync-bridge meter-gw-1 meter-gw-2

writes ``DIR/passwd`` (hashed by ``mosquitto_passwd -U``: what the broker reads) and
``DIR/credentials.toml`` (mode 0600: the plain passwords, one ``[[device]]`` entry per user,
to provision devices with). ``--append`` adds users to existing files. Passwords never appear
on a command line (no ``mosquitto_passwd -b``) and nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # a telemetry source id


def generate(out: Path, users: list[str], append: bool = False) -> dict[str, str]:
    """Create (or extend) ``out/passwd`` and ``out/credentials.toml``; returns the new
    ``{user: password}``. Raises ValueError naming a bad or repeated user name."""
    for u in users:
        if not USER_RE.fullmatch(u):
            msg = f"user {u!r}: expected a source id matching {USER_RE.pattern}"
            raise ValueError(msg)
    if len(set(users)) != len(users):
        raise ValueError(f"users: repeated names in {users}")
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        raise FileNotFoundError("mosquitto_passwd not found (install the mosquitto package)")
    out.mkdir(parents=True, exist_ok=True)
    passwd, creds = out / "passwd", out / "credentials.toml"
    if not append and (passwd.exists() or creds.exists()):
        msg = f"{out} already holds passwd/credentials.toml; use --append to add users"
        raise FileExistsError(msg)
    new = {u: secrets.token_urlsafe(24) for u in users}
    # plain "user:password" lines in a private temp file, hashed in place, then appended
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".passwd-")
    try:
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{u}:{p}\n" for u, p in new.items())
        subprocess.run([tool, "-U", tmp], check=True, capture_output=True, timeout=60)
        hashed = Path(tmp).read_text()
    finally:
        os.unlink(tmp)
    with open(passwd, "a") as f:
        f.write(hashed)
    os.chmod(passwd, 0o640)
    old = creds.read_text() if creds.exists() else ""
    fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            old + "".join(f'[[device]]\nuser = "{u}"\npassword = "{p}"\n\n' for u, p in new.items())
        )
    return new


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("users", nargs="+", help="user names: the bridge and device source ids")
    ap.add_argument("--out", required=True, type=Path, help="directory for passwd/credentials")
    ap.add_argument("--append", action="store_true", help="add users to existing files")
    args = ap.parse_args(argv)
    try:
        new = generate(args.out, args.users, args.append)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{len(new)} user(s) written to {args.out}/passwd; passwords in {args.out}/credentials.toml"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
