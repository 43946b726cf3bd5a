"""``--log-format phone``: a boot rendered as the phone's console log, in the seed's shape.

Owns the line layout (``NNNN LVL Mon dd HH:MM:SS.ffffff PROCESS-text``, e.g. ``3233 NOT Nov 29
06:33:59.033132 dgetfile(870)-GETXXTP [GT870][src=CTLSEPB000B4BA0AEE.tlv][dest=/tmp/CTLFile.tlv]
...``) and the wording of the ``dgetfile`` and ``SECUREAPP-`` lines, copied from the seed's 8861
trace where the seed shows them and written in the same style where it does not. Byte dumps
follow their ``byte dump ====, len = N`` line 16 bytes a row, so ``tvs.hexdump`` reads them
back. Rendering only: the events come from a :class:`~phone_emu.phone.boot.BootResult`.
"""

from __future__ import annotations

import datetime as _dt

from tvs.certs import Certificate

from .boot import Attempt, BootResult, Outcome, Step
from .identity import PhoneIdentity

__all__ = ["FIRST_LINE_NUMBER", "console_lines", "format_line", "openssl_name"]

FIRST_LINE_NUMBER = 3232
_FIRST_PID = 870
_DEST = {"ctl": "/tmp/CTLFile.tlv", "itl": "/tmp/ITLFile.tlv"}


def format_line(number: int, level: str, when: float, text: str) -> str:
    """One console line: ``3233 NOT Nov 29 06:33:59.033132 dgetfile(870)-GETXXTP ...``."""
    stamp = _dt.datetime.fromtimestamp(when, _dt.UTC).strftime("%b %d %H:%M:%S.%f")
    return f"{number:04d} {level} {stamp} {text}"


def openssl_name(cert: Certificate, *, issuer: bool = False) -> str:
    """The ``/C=AU/O=.../CN=...`` one-line form the phone prints (certificate order)."""
    cucm = cert.issuer if issuer else cert.subject
    return "/" + "/".join(reversed(cucm.split(";")))


class _Writer:
    def __init__(self, start: int) -> None:
        self.number = start
        self.lines: list[str] = []

    def __call__(self, level: str, when: float, text: str) -> None:
        self.lines.append(format_line(self.number, level, when, text))
        self.number += 1

    def dump(self, when: float, label: str, data: bytes | None, length: int) -> None:
        self("DEB", when, f"SECUREAPP-==== {label} byte dump ====, len = {length}")
        for i in range(0, len(data or b""), 16):
            row = " ".join(f"{b:02x}" for b in (data or b"")[i : i + 16])
            self("DEB", when, f"SECUREAPP-{row}")


def _fetch_lines(w: _Writer, step: Step, pid: int, server: str) -> None:
    dest = _DEST.get(step.name)
    for i, name in enumerate(step.files):
        when = step.started
        target = dest or f"/tmp/{name.removesuffix('.sgn')}"
        w(
            "NOT",
            when,
            f"dgetfile({pid})-GETXXTP [GT{pid}][src={name}][dest={target}]"
            f"[serv={server}][serv6=][sec=0]",
        )
        w("NOT", when, f"dgetfile({pid})-In normal mode, call - > makeXXTPrequest (V6...)")
        last = i == len(step.files) - 1
        if last and step.fetched_at is not None:
            w("NOT", step.fetched_at, f"dgetfile({pid})-XXTP complete - status = 100")
            w("NOT", step.fetched_at, f"dgetfile({pid})-XXTP actualserver [{server}]")
        elif last and step.reason.endswith(".fetch-failed"):
            w("ERR", step.finished, f"dgetfile({pid})-XXTP failed - [{step.detail}]")
        else:
            w("WRN", when, f"dgetfile({pid})-XXTP complete - status = 404 [{name}: file not found]")


def _tls_lines(w: _Writer, a: Attempt, identity: PhoneIdentity, service: str, role: int) -> bool:
    """Connect and handshake lines; False when the attempt ended before the handshake passed."""
    host, _, port = a.target.rpartition(":")
    t = a.started
    w("INF", t, f"SECUREAPP-Attempting connect to {service} server addr [{host}], mode [IPv4]")
    if a.reason.endswith(("connect-failed", "timeout")):
        w("ERR", a.finished, f"SECUREAPP-TCP connect() failed, [{host}] [{port}]: {a.detail}")
        return False
    w("INF", t, f"SECUREAPP-TCP connect() successful, [{host}] [11]")
    w("DEB", t, f"SECUREAPP-BIO created with: addr:{host}, port:{port}, mode:IPv4")
    w("INF", t, f"SECUREAPP-Sec SSL Connection - {service}.")
    if identity.lsc is not None:
        w("INF", t, "SECUREAPP-SSL session setup - Get Active cert ok")
        w("DEB", t, f"SECUREAPP-SSL session setup - cert len={len(identity.lsc.der)}, type=LSC")
        w("DEB", t, f"SECUREAPP-Certificate subject name = {openssl_name(identity.lsc)}")
        w(
            "DEB",
            t,
            "SECUREAPP-SSL session setup - Certificate issuer name = "
            f"{openssl_name(identity.lsc, issuer=True)}",
        )
    w("DEB", t, "SECUREAPP-Sec SSL Connection - check status & perform handshake.")
    w("DEB", a.finished, f"SECUREAPP-SSL session setup Cert Verification - Role is = {role}")
    if a.reason.endswith("handshake-failed"):
        w(
            "ERR",
            a.finished,
            f"SECUREAPP-SSL session setup Cert Verification - Certificate is invalid: {a.detail}",
        )
        w("ERR", a.finished, "SECUREAPP-Sec SSL Connection - Handshake failed.")
        return False
    w("INF", a.finished, "SECUREAPP-SSL session setup Cert Verification - Certificate is valid.")
    w("NOT", a.finished, "SECUREAPP-Sec SSL Connection - Handshake successful.")
    w("INF", a.finished, "SECUREAPP-Sec SSL Connection - caching disabled, session not saved")
    return True


def _tvs_lines(w: _Writer, step: Step, identity: PhoneIdentity) -> None:
    for a in step.attempts:
        if not _tls_lines(w, a, identity, "TVS", 21):
            continue
        t = a.finished
        w("DEB", t, "SECUREAPP-Connection to server succeeded")
        w("DEB", t, "SECUREAPP-TVS process request - processing TVS Query Certificate request.")
        w(
            "NOT",
            t,
            "SECUREAPP-TVS process request - Successfully sent the TVS request to TVS "
            f"server, bytes written : {a.request_len}",
        )
        w.dump(t, "TVS process request - request", a.request, a.request_len)
        if a.reason == "tvs.protocol-error" and not a.response_len:
            w("ERR", t, f"SECUREAPP-TVS process response - bad response: {a.detail}")
            continue
        w("DEB", t, f"SECUREAPP-TVS Service receives {a.response_len} bytes of data")
        w.dump(t, "TVS process response - response", a.response, a.response_len)
        w("DEB", t, "SECUREAPP-Found the work order from pending req list element at index 0")
        if a.reason == "tvs.valid":
            hours = (a.ttl or 0) // 3600
            w("INF", t, f"SECUREAPP-TVS added cert to TVS cache - expires in {hours} hours")
        else:
            w("ERR", t, f"SECUREAPP-TVS process response - {a.reason}: {a.detail}")


def _verdict_lines(w: _Writer, step: Step) -> None:
    t = step.finished
    tl = step.name in ("ctl", "itl")
    what = "TL" if tl else "SGN"
    if step.source == "tvs-cache":
        w("INF", t, "SECUREAPP-TVS cache hit - signer certificate found in TVS cache")
    if step.source == "unchanged":
        w("INF", t, f"SECUREAPP-{what} file unchanged (hash match), not updated.")
        return
    if step.outcome is Outcome.OK:
        if step.source == "first-use":
            w("NOT", t, "SECUREAPP-No trust list installed - accepting file on first use")
        else:
            w("NOT", t, "SECUREAPP-Hashes match... authentication successful.")
        if tl:
            w("NOT", t, "SECUREAPP-updateFromFile: TL parse to table: CTL_SUCCESS")
            w("NOT", t, "SECUREAPP-updateFromFile: Updating master TL table")
            w("DEB", t, "SECUREAPP-TL file verified successfully.")
            w("INF", t, "SECUREAPP-TL file updated.")
        else:
            w("DEB", t, "SECUREAPP-SGN file verified successfully.")
            if any(f.endswith(".enc.sgn") for f in step.files):
                w("NOT", t, "SECUREAPP-Encrypted config: certHash matches, file decrypted.")
            w("INF", t, "SECUREAPP-Configuration file applied.")
        return
    if step.outcome is Outcome.REJECTED:
        if step.reason.endswith("signature-bad"):
            w("ERR", t, "SECUREAPP-Hashes do not match... authentication failed.")
        w("ERR", t, f"SECUREAPP-{what} file verification failed [{step.reason}]: {step.detail}")
    elif step.outcome is Outcome.ERROR and step.fetched_at is not None:
        w("ERR", t, f"SECUREAPP-{what} file not verified [{step.reason}]: {step.detail}")


def _register_lines(w: _Writer, step: Step) -> None:
    """SIP lines use their own wording (``SIPCC-``), never the TVS connection phrases."""
    if step.outcome is Outcome.SKIPPED or not step.attempts:
        w("NOT", step.finished, f"SIPCC-Secure registration not attempted [{step.reason}]")
        return
    for a in step.attempts:
        plain = a.detail == "TCP" or a.detail.startswith("TCP; ")  # security mode 1
        kind = "TCP" if plain else "TLS"
        w("INF", a.started, f"SIPCC-Opening {kind} connection to CallManager {a.target}")
        if a.reason in ("register.passed", "register.rejected"):
            tls, _, status = a.detail.partition("; ")
            w(
                "NOT",
                a.finished,
                f"SIPCC-TCP connection to CallManager {a.target} established (non-secure profile)"
                if plain
                else f"SIPCC-TLS connection to CallManager {a.target} established "
                f"({tls}), certificate found in CTL",
            )
            if a.reason == "register.passed":
                w("NOT", a.finished, f"SIPCC-REGISTER to {a.target} accepted: {status}")
            else:
                w(
                    "ERR",
                    a.finished,
                    f"SIPCC-REGISTER to {a.target} rejected [{a.reason}]: {status}",
                )
        else:
            w(
                "ERR",
                a.finished,
                f"SIPCC-{kind} connection to CallManager {a.target} not "
                f"established [{a.reason}]: {a.detail}",
            )


def _capf_lines(w: _Writer, step: Step) -> None:
    """The CAPF step (section 8): one connect line per attempt, then how it ended."""
    if step.outcome is Outcome.SKIPPED:
        w(
            "NOT",
            step.finished,
            f"SECUREAPP-CAPF: certificate operation not started [{step.reason}]",
        )
        return
    w("NOT", step.started, "SECUREAPP-CAPF: certificate operation pending, contacting CAPF")
    for a in step.attempts:
        host, _, port = a.target.rpartition(":")
        w(
            "INF",
            a.started,
            f"SECUREAPP-Attempting connect to CAPF server addr [{host}], mode [IPv4]",
        )
        if a.reason in ("capf.connect-failed", "capf.timeout"):
            w("ERR", a.finished, f"SECUREAPP-TCP connect() failed, [{host}] [{port}]: {a.detail}")
            continue
        w("DEB", a.finished, "SECUREAPP-SSL session setup Cert Verification - Role is = 4")
        if a.reason == "capf.server-untrusted":
            w("ERR", a.finished, f"SECUREAPP-CAPF: server certificate not trusted: {a.detail}")
            continue
        w("NOT", a.finished, f"SECUREAPP-CAPF: session ended [{a.reason}] {a.detail}".rstrip())
    if step.reason == "capf.installed":
        w("NOT", step.finished, f"SECUREAPP-CAPF: LSC installed: {step.detail}")
    elif step.outcome is not Outcome.OK:
        w("ERR", step.finished, f"SECUREAPP-CAPF: operation failed [{step.reason}]: {step.detail}")


def console_lines(result: BootResult, identity: PhoneIdentity, *, server: str = "") -> list[str]:
    """The boot as console lines, numbered from :data:`FIRST_LINE_NUMBER`."""
    w = _Writer(FIRST_LINE_NUMBER)
    for pid, step in enumerate(result.steps, start=_FIRST_PID):
        if step.name == "register":
            _register_lines(w, step)
            continue
        if step.name == "capf":
            _capf_lines(w, step)
            continue
        w("NOT", step.started, "downd-DDFORK - execing [/usr/sbin/dgetfile][-L620][ ]")
        _fetch_lines(w, step, pid, server)
        if step.fetched_at is None:
            continue
        _tvs_lines(w, step, identity)
        _verdict_lines(w, step)
    for line in result.status_lines:
        w("NOT", result.finished, f"SECUREAPP-Phone status: {line}")
    return w.lines
