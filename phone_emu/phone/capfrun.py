"""Carrying out the boot machine's :class:`~phone_emu.phone.values.RunCapf` with the CAPF client.

The default :data:`~phone_emu.phone.driver.CapfRunner`: turns the action into a
:class:`phone_emu.capf_client.CapfClientConfig` (pins = the CAPF records of the phone's CTL/ITL;
null string, the auth string the phone was given, or proof by its LSC, else its MIC, for
``capfAuthMode`` 3/4), runs one session and maps the ending to a result: a new LSC
(:class:`CapfIssued`), a session that ended without one (:class:`CapfEnded`), or no session
(:class:`CapfFailed`). The key is made on the phone side by the client as the server asks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phone_emu.capf_client import (
    CapfClientConfig,
    CapfClientError,
    CapfConnectError,
    CapfHandshakeError,
    CapfTimeout,
    CertType,
    Credential,
    capf_enroll,
)

from .enroll import AUTH_EXISTING_CERT, AUTH_MIC, AUTH_STRING
from .identity import PhoneIdentity
from .values import CapfEnded, CapfFailed, CapfIssued, Result, RunCapf, TransportFailure

if TYPE_CHECKING:
    from .driver import NetworkOptions

__all__ = ["credential_for", "run_capf"]


def credential_for(identity: PhoneIdentity, auth_mode: int) -> Credential | None:
    """The certificate the phone proves itself with: for 3 its LSC, else its MIC; for 4 its
    MIC (only when the phone holds the MIC's key, i.e. has no LSC yet)."""
    if identity.key is None:
        return None
    if auth_mode == AUTH_EXISTING_CERT and identity.lsc is not None:
        return Credential(CertType.LSC, identity.lsc.der, identity.key)
    if auth_mode in (AUTH_EXISTING_CERT, AUTH_MIC) and identity.lsc is None and identity.mic:
        return Credential(CertType.MIC, identity.mic.der, identity.key)
    return None


async def run_capf(action: RunCapf, identity: PhoneIdentity, options: NetworkOptions) -> Result:
    """One CAPF session for the phone; results are stamped 0 (the driver stamps its clock)."""
    cred = credential_for(identity, action.auth_mode)
    config = CapfClientConfig(
        device_name=action.device_name,
        trust=action.pinned,
        password=(action.auth_string or "") if action.auth_mode == AUTH_STRING else "",
        credential=cred,
        sudi=cred if cred is not None and cred.cert_type == CertType.MIC else None,
        current_lsc=identity.lsc,
        connect_timeout=options.capf_timeout,
        timeout=options.capf_timeout,
        legacy_tls=options.tvs.legacy_tls,
        keylog=options.tvs.keylog,
    )
    host, port = action.server.host, action.server.port
    try:
        res = await capf_enroll(host, port, config)
    except CapfConnectError as exc:
        return CapfFailed(TransportFailure.CONNECT, str(exc), 0.0)
    except CapfTimeout as exc:
        return CapfFailed(TransportFailure.TIMEOUT, str(exc), 0.0)
    except CapfHandshakeError as exc:
        return CapfFailed(TransportFailure.HANDSHAKE, str(exc), 0.0)
    except CapfClientError as exc:
        return CapfFailed(TransportFailure.PROTOCOL, str(exc), 0.0)
    detail = f"session {res.session_id}: {res.operation} {res.result} (reason {res.reason})"
    if res.result == "installed" and res.certificate is not None and res.key is not None:
        return CapfIssued(res.certificate, res.key, 0.0, detail)
    why = f"{detail}: {res.why}" if res.why else detail
    return CapfEnded(res.result, res.reason, why, 0.0)
