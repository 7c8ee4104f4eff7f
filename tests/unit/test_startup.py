"""What a fresh interpreter imports: ``import mailseal`` loads each public name on first use,
and a program that only signs or only encrypts never loads path validation, verification,
PKCS#12 or the email package; the command line loads the library only for the command it runs.

Each test runs a new interpreter and looks at ``sys.modules``; nothing here measures time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import mailseal
from mailseal.pki.testpki import TestPKI, write_identity

from .conftest import Person

SRC = Path(mailseal.__file__).resolve().parents[1]
MESSAGE = b"From: Alice <alice@example.org>\nTo: bob@example.org\nSubject: start-up\n\nhello\n"

#: Not needed to sign or to encrypt (a name stands for the module and its submodules).
NOT_FOR_SIGNING_OR_ENCRYPTING = (
    "pyhanko_certvalidator",
    "asn1crypto",
    "email.message",
    "email.policy",
    "mailseal._open",
    "mailseal._verify",
    "mailseal.cms.inspect",
    "mailseal.keys.pkcs12",
    "mailseal.mime.verify",
    "mailseal.validation.timestamp",
    "mailseal.validation.trust",
    "mailseal.validation.verdict",
)
NOT_FOR_SIGNING_ON_THE_COMMAND_LINE = (
    *NOT_FOR_SIGNING_OR_ENCRYPTING,
    "mailseal._encrypt",
    "mailseal.cms.enveloped",
    "mailseal.mime.envelope",
)
#: the library's signing path needs nothing of validation (the command line offers its
#: --revocation choices from validation.revocation)
NOT_FOR_SIGNING = (*NOT_FOR_SIGNING_ON_THE_COMMAND_LINE, "mailseal.validation")
NOT_FOR_ENCRYPTING = (*NOT_FOR_SIGNING_OR_ENCRYPTING, "mailseal._sign")


def _run(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter that imports mailseal from the sources under test;
    the code prints one JSON object, last."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def _loaded(modules: object, names: tuple[str, ...]) -> list[str]:
    assert isinstance(modules, list)
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, ca: TestPKI, alice: Person) -> Path:
    where = tmp_path_factory.mktemp("startup")
    write_identity(where, "alice", alice.issued)
    (where / "chain.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ca.chain)
    )
    (where / "message.eml").write_bytes(MESSAGE)
    return where


def test_import_mailseal_loads_nothing_else() -> None:
    found = _run(
        "import json, sys\nimport mailseal\nprint(json.dumps({'modules': sorted(sys.modules)}))\n"
    )
    assert _loaded(found["modules"], ("mailseal",)) == ["mailseal"]
    assert _loaded(found["modules"], ("cryptography",)) == []


def test_every_public_name_resolves_in_a_fresh_interpreter() -> None:
    found = _run(
        "import json\n"
        "import mailseal\n"
        "from mailseal import sign, Trust\n"
        "missing = [n for n in mailseal.__all__ if not hasattr(mailseal, n)]\n"
        "try:\n"
        "    mailseal.no_such_name\n"
        "    unknown = 'resolved'\n"
        "except AttributeError as exc:\n"
        "    unknown = str(exc)\n"
        "print(json.dumps({\n"
        "    'missing': missing,\n"
        "    'same': sign is mailseal.sign and Trust is mailseal.Trust,\n"
        "    'dir': sorted(set(mailseal.__all__) - set(dir(mailseal))),\n"
        "    'modules': {n: getattr(mailseal, n).__module__ for n in mailseal.__all__\n"
        "                if n != '__version__'},\n"
        "    'unknown': unknown,\n"
        "}))\n"
    )
    assert found["missing"] == []
    assert found["same"] is True
    assert found["dir"] == []
    assert found["unknown"] == "module 'mailseal' has no attribute 'no_such_name'"
    modules = found["modules"]
    assert isinstance(modules, dict)
    for name, module in modules.items():
        assert getattr(mailseal, name).__module__ == module, name


@pytest.mark.parametrize("opaque", [False, True])
def test_signing_imports_only_what_it_needs(
    files: Path, trust: mailseal.Trust, opaque: bool
) -> None:
    out = files / f"signed-{opaque}.eml"
    found = _run(
        "import json, sys\n"
        "import mailseal\n"
        "from mailseal.cms.signed import PreparedSigner\n"
        f"d = {str(files)!r}\n"
        "certs = mailseal.load_certificates(open(d + '/chain.pem', 'rb').read())\n"
        "ident = mailseal.load_identity(open(d + '/alice.crt', 'rb').read(),\n"
        "                               open(d + '/alice.key', 'rb').read(), chain=certs)\n"
        f"with open(d + '/message.eml', 'rb') as fin, open({str(out)!r}, 'wb') as fout:\n"
        f"    mailseal.sign_stream(fin, fout, PreparedSigner(ident), opaque={opaque})\n"
        "print(json.dumps({'modules': sorted(sys.modules)}))\n"
    )
    assert _loaded(found["modules"], NOT_FOR_SIGNING) == []
    result = mailseal.verify(out.read_bytes(), trust=trust)
    assert result.valid, result
    assert result.content is not None and result.content.endswith(b"hello\r\n")


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "aes-256-cbc"])
def test_encrypting_imports_only_what_it_needs(files: Path, alice: Person, cipher: str) -> None:
    out = files / f"encrypted-{cipher}.eml"
    found = _run(
        "import json, sys\n"
        "import mailseal\n"
        f"d = {str(files)!r}\n"
        "rec = mailseal.load_certificates(open(d + '/alice.crt', 'rb').read())[0]\n"
        f"with open(d + '/message.eml', 'rb') as fin, open({str(out)!r}, 'wb') as fout:\n"
        f"    report = mailseal.encrypt_stream(fin, fout, [rec], cipher={cipher!r})\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'cipher': report.cipher}))\n"
    )
    assert found["cipher"] == cipher
    assert _loaded(found["modules"], NOT_FOR_ENCRYPTING) == []
    opened = mailseal.decrypt(out.read_bytes(), [alice.ident])
    assert opened.content is not None and opened.content.endswith(b"hello\r\n")


def _run_cli(args: list[str]) -> dict[str, object]:
    """Run the command line with ``args`` in a fresh interpreter; the modules it loaded."""
    return _run(
        "import json, sys\n"
        "from mailseal.cli.main import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(json.dumps({'modules': sorted(sys.modules)}))\n"
    )


@pytest.mark.parametrize("args", [["--help"], ["sign", "--help"], ["verify", "--help"]])
def test_command_line_help_loads_no_cryptography(args: list[str]) -> None:
    found = _run_cli(args)
    assert _loaded(found["modules"], ("cryptography", "mailseal.cms", "mailseal.keys")) == []


def test_command_line_signing_imports_only_what_it_needs(
    files: Path, trust: mailseal.Trust
) -> None:
    out = files / "signed-cli.eml"
    args = ["sign", "--cert", str(files / "alice.crt"), "--key", str(files / "alice.key")]
    args += ["--chain", str(files / "chain.pem"), "-i", str(files / "message.eml")]
    args += ["-o", str(out)]
    found = _run_cli(args)
    assert _loaded(found["modules"], NOT_FOR_SIGNING_ON_THE_COMMAND_LINE) == []
    assert mailseal.verify(out.read_bytes(), trust=trust).valid
