"""A private SoftHSM2 for one test module: found on the machine (skipped when it is missing,
failed when MAILSEAL_REQUIRE_PEERS=1), configured under a temporary directory (nothing touches
/var/lib/softhsm) and with its tokens initialised by ``softhsm2-util``."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def missing(what: str) -> NoReturn:
    msg = f"SoftHSM2 not installed ({what}; Debian: apt-get install softhsm2)"
    if os.environ.get("MAILSEAL_REQUIRE_PEERS") == "1":
        pytest.fail(msg + " and MAILSEAL_REQUIRE_PEERS=1", pytrace=False)
    pytest.skip(msg)


@dataclass(frozen=True)
class SoftHsm:
    module: Path
    conf: Path


def private_softhsm(base: Path, labels: Sequence[str], *, pin: str, so_pin: str) -> SoftHsm:
    """SoftHSM2 configured under ``base`` with one initialised token per label (user PIN
    ``pin``). The module reads ``SOFTHSM2_CONF`` when it initialises: point the environment of
    whatever loads it at :attr:`SoftHsm.conf`."""
    util = shutil.which("softhsm2-util")
    if util is None:
        missing("softhsm2-util not found")
    module = next((Path(m) for m in MODULE_CANDIDATES if Path(m).is_file()), None)
    if module is None:
        missing("libsofthsm2.so not found")
    pytest.importorskip("pkcs11", reason="python-pkcs11 (mailseal[hsm]) not installed")
    tokens = base / "tokens"
    tokens.mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for label in labels:
        subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
            env=env,
            check=True,
            capture_output=True,
        )
    return SoftHsm(module=module, conf=conf)
