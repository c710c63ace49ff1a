"""A local certificate authority for the broker's TLS listener (``firewatch broker certs``).

Development and small deployments have no PKI of their own, so Firewatch makes one: a CA
(``ca.crt``, ``ca.key``) and a broker certificate signed by it (``server.crt``,
``server.key``) whose subject alternative names are ``localhost``, ``127.0.0.1`` and every
host name or address the broker is reached by (``--host mosquitto`` inside compose, the
public name devices use). Devices and Firewatch's own clients trust ``ca.crt``
(``FIREWATCH_MQTT_CA_FILE``) and connect to ``mqtts://NAME:8883``.

Contract of :func:`make_certs`:

- **The CA is kept.** An existing ``ca.crt`` + ``ca.key`` pair is reused, so devices that
  were given ``ca.crt`` keep trusting the broker after its certificate is renewed or gets a
  new name. ``force=True`` makes a new CA (every device must then be given the new
  ``ca.crt``). A CA that is half there, does not match its key, is not a CA or has expired
  is refused (:class:`CertError`) rather than silently replaced.
- **The server certificate is issued anew on every run** (new key, the names given now):
  the broker reads it at start, so restart it afterwards.
- **Files are replaced atomically** (temporary file, then rename) and private keys are never
  readable by others than intended, even for a moment: the temporary file gets its final
  mode and group before a byte is written.

Keys are RSA 2048: some device TLS stacks (older mbedTLS and wolfSSL builds) are compiled
without ECDSA, and vendors' devices must be able to connect.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
#: Always in the server certificate: clients on the broker's own machine (tests, `firewatch up`,
#: health checks) connect by these.
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
#: The CA outlives many server certificates: devices keep ``ca.crt`` for years.
CA_DAYS = 3650
#: The server certificate's default lifetime (the common cap for TLS server certificates).
DEFAULT_SERVER_DAYS = 825
#: The broker's group in the eclipse-mosquitto image (user and group ``mosquitto``, 1883).
MOSQUITTO_GID = 1883

#: Only the operator reads the CA's key: whoever has it can impersonate the broker.
CA_KEY_MODE = 0o600
#: The broker must read its key. Mosquitto 2.0 loads certificates *after* dropping root
#: privileges, and in the eclipse-mosquitto container it runs as uid/gid 1883 while the file
#: belongs to the host user who made it; so the key is group-readable and its group is set to
#: the broker's (``broker_gid``). Not 0644: any local user could then impersonate the broker.
SERVER_KEY_MODE = 0o640
CERT_MODE = 0o644
_KEY_SIZE = 2048
# Backdated a little, so that a device whose clock lags does not see "not yet valid".
_BACKDATE = dt.timedelta(hours=1)
# A DNS name as certificates carry it: ASCII labels (IDNs in their xn-- form), no wildcard.
_DNS_NAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")

#: A CA key this module can sign with: its own (RSA), or an operator's EC CA put in place.
CaKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CertError(Exception):
    """The certificate directory cannot be used as it is (a user-facing error)."""


@dataclass(frozen=True)
class CertsResult:
    """What :func:`make_certs` did and where the files are."""

    out: Path
    ca_created: bool
    ca_fingerprint: str  # SHA-256 of ca.crt's DER, hex with colons (what `openssl x509` shows)
    hosts: tuple[str, ...]  # the server certificate's subject alternative names, in order
    not_after: dt.datetime  # the server certificate's expiry (UTC)
    #: None, or why ``server.key``'s group could not be set to the broker's (the command
    #: prints it with the fix).
    key_group_warning: str | None = None

    @property
    def ca_cert(self) -> Path:
        return self.out / CA_CERT

    @property
    def ca_key(self) -> Path:
        return self.out / CA_KEY

    @property
    def server_cert(self) -> Path:
        return self.out / SERVER_CERT

    @property
    def server_key(self) -> Path:
        return self.out / SERVER_KEY


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of a certificate, ``AB:CD:…`` as OpenSSL prints it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def san_hosts(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses of a certificate's subject alternative names."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [
        *san.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    ]


def make_certs(
    out: Path,
    hosts: list[str] | tuple[str, ...] = (),
    *,
    days: int = DEFAULT_SERVER_DAYS,
    force: bool = False,
    broker_gid: int | None = MOSQUITTO_GID,
    now: dt.datetime | None = None,
) -> CertsResult:
    """Make (or reuse, see the module docstring) the CA in ``out`` and issue a server
    certificate for :data:`DEFAULT_HOSTS` plus ``hosts`` (names or IP addresses, duplicates
    dropped), valid ``days`` days. ``broker_gid``: the group ``server.key`` is given so the
    broker can read it (None: leave the creator's group; a failure to set it is reported in
    the result, not raised, since the embedded broker runs as the creator anyway).

    Raises :class:`CertError` for an unusable CA or bad arguments.
    """
    if days < 1:
        raise CertError("--days must be at least 1")
    names = _hosts(hosts)
    now = now or dt.datetime.now(dt.UTC)
    out.mkdir(parents=True, exist_ok=True)
    reuse = not force and ((out / CA_CERT).exists() or (out / CA_KEY).exists())
    if reuse:
        ca_cert, ca_key = _load_ca(out, now)
    else:
        ca_cert, ca_key = _new_ca(now)
    # The server certificate must not outlive its issuer (clients would refuse it then).
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    server_cert = _server_cert(names, server_key, ca_cert, ca_key, now, not_after)

    if not reuse:
        # The key first: a crash in between leaves a key without a certificate, which the
        # next run refuses loudly, never a certificate whose key is lost.
        _write(out / CA_KEY, _key_pem(ca_key), CA_KEY_MODE)
        _write(out / CA_CERT, ca_cert.public_bytes(serialization.Encoding.PEM), CERT_MODE)
    _write(out / SERVER_KEY, _key_pem(server_key), SERVER_KEY_MODE, gid=broker_gid)
    _write(out / SERVER_CERT, server_cert.public_bytes(serialization.Encoding.PEM), CERT_MODE)
    warning = None
    if broker_gid is not None and (out / SERVER_KEY).stat().st_gid != broker_gid:
        warning = (
            f"{out / SERVER_KEY} could not be given group {broker_gid} (the broker in the "
            "eclipse-mosquitto container): run `sudo chgrp "
            f"{broker_gid} {out / SERVER_KEY}` or the containerised broker cannot read it"
        )
    return CertsResult(
        out=out,
        ca_created=not reuse,
        ca_fingerprint=fingerprint(ca_cert),
        hosts=tuple(names),
        not_after=not_after,
        key_group_warning=warning,
    )


# --- the pieces ----------------------------------------------------------------------------
def _hosts(extra: list[str] | tuple[str, ...]) -> list[str]:
    """The default hosts, then ``extra``, normalised (lower case, canonical addresses) and
    without duplicates; :class:`CertError` for anything that is neither a DNS name nor an
    IP address (a URL, a port, a wildcard)."""
    names: list[str] = []
    for raw in (*DEFAULT_HOSTS, *extra):
        name = raw.strip().lower().rstrip(".")
        if _is_ip(name):
            name = str(ipaddress.ip_address(name))
        elif not _DNS_NAME.match(name) or len(name) > 253:
            raise CertError(f"not a host name or IP address: {raw!r}")
        if name not in names:
            names.append(name)
    return names


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _general_name(name: str) -> x509.GeneralName:
    # An address must be an iPAddress entry: clients never match an IP against a DNS name.
    if _is_ip(name):
        return x509.IPAddress(ipaddress.ip_address(name))
    return x509.DNSName(name)


def _new_ca(now: dt.datetime) -> tuple[x509.Certificate, CaKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    tag = secrets.token_hex(4)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Firewatch"),
            # Unique per CA (two CAs with one name confuse chain building and people alike).
            x509.NameAttribute(NameOID.COMMON_NAME, f"Firewatch local CA {now:%Y-%m-%d} {tag}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        # path_length 0: this CA signs end-entity certificates only.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _server_cert(
    names: list[str],
    key: rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    ca_key: CaKey,
    now: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:  # an operator's CA without one
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    # Cosmetic (clients match the SANs): the first name asked for, else "localhost".
    common_name = names[len(DEFAULT_HOSTS)] if len(names) > len(DEFAULT_HOSTS) else names[0]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,  # RSA key exchange (TLS 1.2 clients that still use it)
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # Clients match the host they dialled against these, never against the common name.
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(aki, critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _load_ca(out: Path, now: dt.datetime) -> tuple[x509.Certificate, CaKey]:
    cert_path, key_path = out / CA_CERT, out / CA_KEY
    for path in (cert_path, key_path):
        if not path.exists():
            raise CertError(
                f"{path} is missing but its pair is there: restore it, or make a new CA "
                "with --force (every device must then get the new ca.crt)"
            )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as err:
        raise CertError(f"cannot read the CA in {out}: {err}") from err
    if not isinstance(key, CaKey):
        raise CertError(f"{key_path}: an RSA or EC key is needed, not {type(key).__name__}")
    if key.public_key() != cert.public_key():
        raise CertError(f"{key_path} is not the key of {cert_path}")
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        cert.verify_directly_issued_by(cert)  # self-signed: a root clients can trust
    except (x509.ExtensionNotFound, InvalidSignature, ValueError, TypeError) as err:
        raise CertError(f"{cert_path} is not a root CA certificate: {err}") from err
    if not basic.ca:
        raise CertError(f"{cert_path} is not a CA certificate (basicConstraints CA:FALSE)")
    if cert.not_valid_after_utc <= now:
        raise CertError(
            f"the CA in {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}: make a "
            "new one with --force and give every device the new ca.crt"
        )
    return cert, key


def _key_pem(key: CaKey) -> bytes:
    # Unencrypted: the broker reads it unattended at start (Mosquitto asks for a passphrase
    # on the terminal otherwise); the file mode is the protection.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int, *, gid: int | None = None) -> None:
    """Atomically replace ``path`` with ``data``, readable only as ``mode`` allows from the
    first byte on (and, best effort, owned by group ``gid``)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            if gid is not None:
                # Not root and not in that group: left as it is, and make_certs reports it.
                with contextlib.suppress(OSError):
                    os.fchown(fh.fileno(), -1, gid)
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
