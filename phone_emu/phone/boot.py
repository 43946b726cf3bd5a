"""The phone's boot sequence as a sans-I/O state machine: actions out, results (and time) in.

Owns the order of the boot (CTL, ITL with its fallback name, configuration (with the
encrypted ``.enc.sgn`` behind a stub, notes section 9), CAPF when the configuration asks for
it (section 8), secure SIP registration), the trust decisions for each file (first use, held
signer with an allowed role, cached TVS answer, TVS query with failover), the reason codes and
the phone status lines. The values it exchanges and produces (actions, results,
:class:`BootResult`) live in ``values.py`` and are re-exported here. Performs no I/O: the
driver (``driver.py``) carries out each :data:`Action` and hands back a result stamped with
the time it finished.

    machine = BootMachine(identity, trust, config, now=clock())
    action = machine.start()
    while not isinstance(action, BootDone):
        action = machine.send(perform(action))
    result = action.result
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric import rsa

from tvs import device
from tvs.certs import Certificate, CertificateError
from tvs.roles import role_names
from tvs.tlv import SignerInfo, TlvError, TrustFile, parse_signed_file
from tvs.wire import (
    Message,
    QueryCertRequest,
    QueryCertResponse,
    Status,
    WireError,
    encode_message,
)

from .config import CallManager, CapfServer, ConfigError, PhoneConfig, TvsMember, parse_config
from .encconfig import (
    EC_LIMITATION,
    EncryptedStub,
    OpenFailure,
    cert_hash,
    open_encrypted,
    parse_stub,
)
from .enroll import capf_pins, ended_reason, failure_reason, skip_reason
from .identity import PhoneIdentity
from .trust import (
    SIGNING_ROLES,
    FileKind,
    TrustListCache,
    TrustState,
    TvsCacheEntry,
    signer_matches,
    verify_signed,
)
from .values import (
    _EXPECTS,
    FIRST_REQUEST_ID,
    MAX_TRUST_LIST_SIZE,
    Action,
    Attempt,
    BootDone,
    BootOptions,
    BootResult,
    BootState,
    CapfEnded,
    CapfFailed,
    CapfIssued,
    ConnectSip,
    Fetched,
    FetchFailed,
    FetchFile,
    FileFetched,
    FileMissing,
    Outcome,
    QueryTvs,
    Result,
    RunCapf,
    SipConnected,
    SipFailed,
    SipRejected,
    Step,
    TransportFailure,
    TvsAnswered,
    TvsFailed,
)

__all__ = [
    "FIRST_REQUEST_ID",
    "MAX_TRUST_LIST_SIZE",
    "Action",
    "Attempt",
    "BootDone",
    "BootMachine",
    "BootOptions",
    "BootResult",
    "BootState",
    "CapfEnded",
    "CapfFailed",
    "CapfIssued",
    "ConnectSip",
    "FetchFailed",
    "FetchFile",
    "FileFetched",
    "FileMissing",
    "Outcome",
    "QueryTvs",
    "Result",
    "RunCapf",
    "SipConnected",
    "SipFailed",
    "SipRejected",
    "Step",
    "TransportFailure",
    "TvsAnswered",
    "TvsFailed",
]


@attrs.frozen
class _Verdict:
    outcome: Outcome
    reason: str
    detail: str = ""
    source: str | None = None
    attempts: tuple[Attempt, ...] = ()


_Gen = Generator[Action, Result, Any]


class BootMachine:
    """One boot of one phone. ``start()`` then ``send(result)`` until a :class:`BootDone`."""

    def __init__(
        self,
        identity: PhoneIdentity,
        trust: TrustState | None = None,
        config: PhoneConfig | None = None,
        *,
        now: float,
        options: BootOptions | None = None,
        lists: TrustListCache | None = None,
    ) -> None:
        self.identity = identity
        self.trust = trust if trust is not None else TrustState()
        self.config = config
        self.now = now
        self.options = options or BootOptions()
        self._lists = lists if lists is not None else TrustListCache(max_entries=4)
        self._gen: _Gen = self._run()
        self._pending: Action | None = None
        self._done: BootDone | None = None
        self._request_id = FIRST_REQUEST_ID
        self._queries = 0
        self._capf_wanted: tuple[int, tuple[CapfServer, ...], str] | None = None
        self._capf_ran = False
        self._new_identity = False
        self._fetched: list[Fetched] = []  # files delivered since the last step ended

    def start(self) -> Action | BootDone:
        if self._pending is not None or self._done is not None:
            raise RuntimeError("boot already started")
        return self._advance(None)

    def send(self, result: Result) -> Action | BootDone:
        if self._pending is None:
            raise RuntimeError("no action is waiting for a result")
        if not isinstance(result, _EXPECTS[type(self._pending)]):
            raise TypeError(f"{type(result).__name__} does not answer {self._pending!r}")
        self.now = max(self.now, result.now)
        return self._advance(result)

    def _advance(self, value: Result | None) -> Action | BootDone:
        try:
            action = self._gen.send(value)  # type: ignore[arg-type]
        except StopIteration as stop:
            self._pending = None
            self._done = BootDone(stop.value)
            return self._done
        self._pending = action
        return action

    # --- the sequence --------------------------------------------------------------------
    def _run(self) -> Generator[Action, Result, BootResult]:
        started = self.now
        self.trust = self.trust.purged(self.now)
        ctl = yield from self._trust_list_step(FileKind.CTL, (self.identity.ctl_filename,))
        itl = yield from self._trust_list_step(FileKind.ITL, self.identity.itl_filenames)
        cfg = yield from self._config_step()
        capf: tuple[Step, ...] = ()
        if self._capf_wanted is not None:
            capf_step = yield from self._capf_step(*self._capf_wanted)
            capf = (capf_step,)
            if capf_step.reason == "capf.installed" and cfg.outcome is not Outcome.OK:
                # the encrypted configuration, now for the certificate CAPF just installed
                cfg = yield from self._config_step()
        reg = yield from self._register_step()
        steps = (ctl, itl, cfg, *capf, reg)
        outcomes = {s.outcome for s in steps}
        if Outcome.ERROR in outcomes:
            state = BootState.ERROR
        elif Outcome.REJECTED in outcomes:
            state = BootState.REJECTED
        elif reg.outcome is Outcome.OK:
            state = BootState.REGISTERED
        else:
            state = BootState.CONFIGURED
        return BootResult(
            device_name=self.identity.device_name,
            state=state,
            steps=steps,
            status_lines=_status_lines(ctl, itl, self.trust),
            started=started,
            finished=self.now,
            trust=self.trust,
            config=self.config,
            tvs_queries=self._queries,
            identity=self.identity if self._new_identity else None,
        )

    def _step(self, name: str, started: float, v: _Verdict, **kw: Any) -> Step:
        fetched, self._fetched = tuple(self._fetched), []
        return Step(
            fetched=fetched,
            name=name,
            outcome=v.outcome,
            reason=v.reason,
            detail=v.detail,
            source=v.source,
            attempts=v.attempts,
            started=started,
            finished=self.now,
            **kw,
        )

    def _fetch(
        self, kind: FileKind, names: tuple[str, ...]
    ) -> Generator[Action, Result, tuple[bytes | None, tuple[str, ...], _Verdict | None]]:
        """Ask for each name in turn; (data, names tried, failure verdict or None)."""
        tried: list[str] = []
        k = kind.value
        for name in names:
            tried.append(name)
            res = yield FetchFile(name, kind)
            if isinstance(res, FileFetched):
                self._fetched.append(Fetched(name, res.transport, res.fallback))
                return res.data, tuple(tried), None
            if isinstance(res, FetchFailed):  # a file too large is refused, not unreachable
                outcome = Outcome.REJECTED if res.failure == "too-large" else Outcome.ERROR
                return None, tuple(tried), _Verdict(outcome, f"{k}.{res.failure}", res.detail)
        outcome = Outcome.ERROR if kind is FileKind.CONFIG else Outcome.ABSENT
        return None, tuple(tried), _Verdict(outcome, f"{k}.not-found", " and ".join(tried))

    def _trust_list_step(
        self, kind: FileKind, names: tuple[str, ...]
    ) -> Generator[Action, Result, Step]:
        k = kind.value
        started = self.now
        data, tried, failed = yield from self._fetch(kind, names)
        if data is None:
            assert failed is not None
            return self._step(k, started, failed, files=tried)
        fetched = {"files": tried, "fetched_at": self.now, "size": len(data)}
        held = self.trust.held(kind)
        if held is not None and held.sha256 == hashlib.sha256(data).digest():
            v = _Verdict(Outcome.OK, f"{k}.unchanged", source="unchanged")
            return self._step(k, started, v, signer=held.signer.name, **fetched)
        if len(data) > self.options.max_trust_list:
            detail = f"{len(data)} bytes, over the phone's {self.options.max_trust_list}"
            v = _Verdict(Outcome.REJECTED, f"{k}.too-large", detail)
            return self._step(k, started, v, **fetched)
        try:
            tl = self._lists.get(data)
        except TlvError as exc:
            return self._step(
                k, started, _Verdict(Outcome.REJECTED, f"{k}.malformed", str(exc)), **fetched
            )
        if self.trust.first_use(kind):
            self.trust = self.trust.with_list(kind, tl)
            v = _Verdict(Outcome.OK, f"{k}.installed", "no trust list held", source="first-use")
            return self._step(k, started, v, signer=tl.signer.name, **fetched)
        v = yield from self._authenticate(kind, tl.file, tl.verifies_with)
        if v.outcome is Outcome.OK:
            self.trust = self.trust.with_list(kind, tl)
            v = attrs.evolve(v, reason=f"{k}.updated" if held is not None else f"{k}.installed")
        return self._step(k, started, v, signer=tl.signer.name, **fetched)

    def _config_step(self) -> Generator[Action, Result, Step]:
        started = self.now
        signed = self.trust.has_trust_list
        name = self.identity.config_filename(signed=signed)
        data, tried, failed = yield from self._fetch(FileKind.CONFIG, (name,))
        if data is None:
            assert failed is not None
            return self._step("config", started, failed, files=tried)
        fetched = {"files": tried, "fetched_at": self.now, "size": len(data)}
        digest = hashlib.sha256(data).digest()
        if self.config is not None and self.config.sha256 == digest:
            self._want_capf(self.config, "the configuration (unchanged) asks for it")
            v = _Verdict(Outcome.OK, "config.unchanged", source="unchanged")
            return self._step("config", started, v, **fetched)
        payload = data
        verdict = _Verdict(Outcome.OK, "config.applied", source="unsigned")
        signer: str | None = None
        if signed:
            try:
                sgn = parse_signed_file(data)
            except TlvError as exc:
                v = _Verdict(Outcome.REJECTED, "config.malformed", str(exc))
                return self._step("config", started, v, **fetched)
            signer = sgn.header.signer.name
            verdict = yield from self._authenticate(FileKind.CONFIG, sgn, _sgn_verifier(sgn))
            if verdict.outcome is not Outcome.OK:
                return self._step("config", started, verdict, signer=signer, **fetched)
            payload = sgn.payload
            try:
                stub = parse_stub(payload)
            except ConfigError as exc:
                v = _Verdict(Outcome.REJECTED, "config.rejected", str(exc))
                return self._step("config", started, v, signer=signer, **fetched)
            if stub is not None:
                opened = yield from self._encrypted_config(stub, name)
                fetched["files"] = (*tried, device.encrypted_config_filename(self.identity.mac))
                if isinstance(opened, _Verdict):
                    return self._step("config", started, opened, signer=signer, **fetched)
                payload = opened
        try:
            config = parse_config(payload)
        except ConfigError as exc:
            v = _Verdict(Outcome.REJECTED, "config.rejected", str(exc), attempts=verdict.attempts)
            return self._step("config", started, v, signer=signer, **fetched)
        self.config = attrs.evolve(config, sha256=digest)
        self._want_capf(self.config, "the configuration asks for it")
        v = attrs.evolve(verdict, reason="config.applied")
        return self._step("config", started, v, signer=signer, **fetched)

    # --- encrypted configuration and CAPF ------------------------------------------------
    def _want_capf(self, config: PhoneConfig, why: str) -> None:
        """Remember to run CAPF after the configuration step (once per boot)."""
        if config.capf_auth_mode and not self._capf_ran:
            self._capf_wanted = (config.capf_auth_mode, config.capf_servers, why)

    def _encrypted_config(
        self, stub: EncryptedStub, signed_name: str
    ) -> Generator[Action, Result, bytes | _Verdict]:
        """The stub said ``encrConfig``: check certHash, fetch, verify and open the .enc.sgn."""
        cert = self.identity.lsc or self.identity.mic
        mine = cert_hash(cert)
        if not stub.cert_hash or stub.cert_hash != mine:
            self._want_capf(stub.config, "config.cert-unknown")
            known = stub.cert_hash or "empty (the cluster knows no certificate of this phone)"
            detail = f"certHash {known}, the phone's certificate is {mine or 'none'}"
            if cert is not None and not isinstance(cert.public_key, rsa.RSAPublicKey):
                detail += f"; this phone's key is EC ({EC_LIMITATION})"
            return _Verdict(Outcome.REJECTED, "config.cert-unknown", detail)
        if cert is not None and not isinstance(cert.public_key, rsa.RSAPublicKey):
            return _Verdict(Outcome.REJECTED, "config.ec-unsupported", EC_LIMITATION)
        enc_name = device.encrypted_config_filename(self.identity.mac)
        data, _, failed = yield from self._fetch(FileKind.CONFIG, (enc_name,))
        if data is None:
            assert failed is not None
            return failed
        try:
            f = parse_signed_file(data)
        except TlvError as exc:
            return _Verdict(Outcome.REJECTED, "config.malformed", f"{enc_name}: {exc}")
        verdict = yield from self._authenticate(FileKind.CONFIG, f, _sgn_verifier(f))
        if verdict.outcome is not Outcome.OK:
            return verdict
        opened = open_encrypted(f, self.identity)
        if isinstance(opened, OpenFailure):
            if opened.reason == "config.decrypt-failed":
                self._want_capf(stub.config, opened.reason)
            return _Verdict(Outcome.REJECTED, opened.reason, opened.detail)
        return opened

    def _capf_step(
        self, auth_mode: int, servers: tuple[CapfServer, ...], why: str
    ) -> Generator[Action, Result, Step]:
        """Up to ``capf_attempts`` sessions, ``capf_interval`` apart, each failing over the
        ``capfList``; a new LSC replaces the phone's from then on (TVS, SIP)."""
        started = self.now
        self._capf_wanted, self._capf_ran = None, True
        opts = self.options
        skip = "capf.disabled" if not opts.capf else skip_reason(auth_mode, opts.capf_auth_string)
        if skip is not None:
            v = _Verdict(Outcome.SKIPPED, skip, f"capfAuthMode {auth_mode} ({why})")
            return self._step("capf", started, v)
        if not servers:
            v = _Verdict(Outcome.REJECTED, "capf.no-server", "the configuration has no capfList")
            return self._step("capf", started, v)
        pins = capf_pins(self.trust)
        if not pins:
            v = _Verdict(
                Outcome.REJECTED, "capf.server-untrusted", "no CAPF record in the CTL or ITL"
            )
            return self._step("capf", started, v)
        attempts: list[Attempt] = []
        last = _Verdict(Outcome.ERROR, "capf.unreachable", "no CAPF server answered")
        for n in range(max(1, opts.capf_attempts)):
            delay = opts.capf_interval if n else 0.0
            for server in servers:
                t0 = self.now
                res = yield RunCapf(
                    server,
                    self.identity.name,
                    auth_mode,
                    pins,
                    auth_string=opts.capf_auth_string if auth_mode == 1 else None,
                    delay=delay,
                )
                delay = 0.0
                target = str(server)
                if isinstance(res, CapfIssued):
                    self.identity = attrs.evolve(self.identity, lsc=res.certificate, key=res.key)
                    self._new_identity = True
                    detail = f"new LSC {res.certificate.subject}"
                    attempts.append(Attempt(target, "capf.installed", t0, self.now, res.detail))
                    v = _Verdict(Outcome.OK, "capf.installed", detail, attempts=tuple(attempts))
                    return self._step("capf", started, v)
                if isinstance(res, CapfEnded):
                    reason = ended_reason(res.result, res.reason)
                    attempts.append(Attempt(target, reason, t0, self.now, res.detail))
                    if res.result != "refused":
                        v = _Verdict(Outcome.OK, reason, res.detail, attempts=tuple(attempts))
                        return self._step("capf", started, v)
                    last = _Verdict(Outcome.REJECTED, reason, res.detail)
                    if reason == "capf.unknown-device":  # asking again changes nothing
                        return self._step(
                            "capf", started, attrs.evolve(last, attempts=tuple(attempts))
                        )
                    break  # the server answered: the next attempt, not the next server
                assert isinstance(res, CapfFailed)
                reason = failure_reason(res.failure)
                attempts.append(Attempt(target, reason, t0, self.now, res.detail))
                outcome = Outcome.REJECTED if reason == "capf.server-untrusted" else Outcome.ERROR
                last = _Verdict(outcome, reason, res.detail)
        return self._step("capf", started, attrs.evolve(last, attempts=tuple(attempts)))

    def _register_step(self) -> Generator[Action, Result, Step]:
        started = self.now
        if not self.options.register:
            v = _Verdict(Outcome.SKIPPED, "register.skipped", "--no-register: handshake not tried")
            return self._step("register", started, v)
        secure = self.config.secure_sip if self.config is not None else None
        if secure is None and self.trust.ctl is None:
            v = _Verdict(Outcome.SKIPPED, "register.non-secure", "no CTL: no secure registration")
            return self._step("register", started, v)
        if secure and self.trust.ctl is None:  # a secure profile, but nothing to check CUCM with
            v = _Verdict(
                Outcome.SKIPPED, "register.non-secure", "secure profile but no CTL: not registered"
            )
            return self._step("register", started, v)
        cms: tuple[CallManager, ...] = self.config.callmanagers if self.config else ()
        if not cms:
            v = _Verdict(Outcome.REJECTED, "register.no-callmanager", "no CallManager group")
            return self._step("register", started, v)
        tls = secure is not False  # mode 1: SIP over TCP to sipPort
        pins = self.trust.sip_pins() if tls else ()
        attempts: list[Attempt] = []
        for cm in cms:
            t0 = self.now
            port = cm.secure_sip_port if tls else cm.sip_port
            res = yield ConnectSip(cm.host, port, pins, secure=tls)
            target = f"{cm.host}:{port}"
            if isinstance(res, SipConnected):
                attempts.append(Attempt(target, "register.passed", t0, self.now, res.detail))
                v = _Verdict(Outcome.OK, "register.passed", target, attempts=tuple(attempts))
                return self._step("register", started, v)
            if isinstance(res, SipRejected):  # the registrar said no: the next one would too
                attempts.append(Attempt(target, "register.rejected", t0, self.now, res.detail))
                v = _Verdict(
                    Outcome.REJECTED, "register.rejected", res.status, attempts=tuple(attempts)
                )
                return self._step("register", started, v)
            assert isinstance(res, SipFailed)
            reason = f"register.{res.failure.value}"
            attempts.append(Attempt(target, reason, t0, self.now, res.detail))
            if res.failure is TransportFailure.HANDSHAKE:
                v = _Verdict(Outcome.REJECTED, reason, res.detail, attempts=tuple(attempts))
                return self._step("register", started, v)
        v = _Verdict(
            Outcome.ERROR,
            "register.unreachable",
            "no CallManager answered",
            attempts=tuple(attempts),
        )
        return self._step("register", started, v)

    # --- trust decisions -------------------------------------------------------------------
    def _authenticate(
        self, kind: FileKind, f: TrustFile, verify: Callable[[Certificate], bool]
    ) -> Generator[Action, Result, _Verdict]:
        """Held signer, else cached TVS answer, else a TVS query with failover."""
        k = kind.value
        signer = f.header.signer
        known = self.trust.known_signers(kind, signer)
        for source, cert in known:
            if verify(cert):
                return _Verdict(Outcome.OK, f"{k}.verified", source=source)
        if known:
            source, cert = known[0]
            return _Verdict(
                Outcome.REJECTED,
                f"{k}.signature-bad",
                f"signature does not verify with the {source} record {cert.subject}",
            )
        cached = self.trust.cached_answer(signer, self.now)
        if cached is not None:
            return _judge(kind, verify, cached, "tvs-cache", ())
        members = self.config.tvs_members if self.config else ()
        who = f"signer {signer.name} (serial {signer.serial.hex().upper()}, issuer {signer.issuer})"
        if not members:
            return _Verdict(
                Outcome.REJECTED,
                f"{k}.signer-unknown",
                f"{who} is not in the trust lists and no TVS is configured",
            )
        request = QueryCertRequest.for_signer(
            self.identity.device_name, signer, request_id=self._request_id
        )
        self._request_id += 1
        return (yield from self._query_tvs(kind, verify, signer, request, members))

    def _query_tvs(
        self,
        kind: FileKind,
        verify: Callable[[Certificate], bool],
        signer: SignerInfo,
        request: QueryCertRequest,
        members: tuple[TvsMember, ...],
    ) -> Generator[Action, Result, _Verdict]:
        """Ask each TVS member in turn (the next one after a connect failure or timeout) and
        judge the first answer; the request's bytes are encoded once, here, and sent as is."""
        req_bytes = encode_message(request, query_tags=self.options.query_tags)
        pins = self.trust.tvs_pins()
        attempts: list[Attempt] = []
        keep = self.options.keep_bytes
        for member in members:
            t0 = self.now
            self._queries += 1
            res = yield QueryTvs(member, request, req_bytes, pins)
            base = Attempt(
                target=str(member),
                reason="",
                started=t0,
                finished=self.now,
                request_len=len(req_bytes),
                request=req_bytes if keep else None,
            )
            if isinstance(res, TvsFailed):
                reason = f"tvs.{res.failure.value}"
                attempts.append(attrs.evolve(base, reason=reason, detail=res.detail))
                if res.failure in (TransportFailure.CONNECT, TransportFailure.TIMEOUT):
                    continue
                outcome = (
                    Outcome.REJECTED if res.failure is TransportFailure.HANDSHAKE else Outcome.ERROR
                )
                return _Verdict(outcome, reason, res.detail, attempts=tuple(attempts))
            assert isinstance(res, TvsAnswered)
            resp = res.response
            try:
                resp_bytes = encode_message(resp)
            except WireError:  # a value the codec cannot write (a fake driver's): no size
                resp_bytes = b""
            verdict, entry = self._answer(signer, resp)
            attempt = attrs.evolve(
                base,
                reason=verdict.reason,
                detail="; ".join(x for x in (res.detail, verdict.detail) if x),
                response_len=len(resp_bytes),
                response=resp_bytes if keep else None,
            )
            if entry is not None:
                attempt = attrs.evolve(
                    attempt, roles=entry.roles, ttl=round(entry.expires_at - self.now)
                )
                self.trust = self.trust.with_answer(entry, self.now)
            attempts.append(attempt)
            if entry is None:
                return attrs.evolve(verdict, attempts=tuple(attempts))
            return _judge(kind, verify, entry, "tvs", tuple(attempts))
        return _Verdict(
            Outcome.ERROR, "tvs.unreachable", "no TVS member answered", attempts=tuple(attempts)
        )

    def _answer(self, signer: Any, resp: Message) -> tuple[_Verdict, TvsCacheEntry | None]:
        if not isinstance(resp, QueryCertResponse):
            return _Verdict(
                Outcome.ERROR,
                "tvs.protocol-error",
                f"answer is a {type(resp).__name__}, not QUERY_CERT_RES",
            ), None
        if resp.status != Status.VALID:
            return _Verdict(
                Outcome.REJECTED, "tvs.status-invalid", f"TVS answered status {int(resp.status)}"
            ), None
        if resp.certificate is None:
            return _Verdict(
                Outcome.ERROR, "tvs.protocol-error", "valid answer without a certificate"
            ), None
        try:
            cert = self._lists.certificate(resp.certificate)
        except CertificateError as exc:
            return _Verdict(Outcome.ERROR, "tvs.protocol-error", str(exc)), None
        if not signer_matches(signer, cert.serial, cert.issuer):
            return _Verdict(
                Outcome.REJECTED,
                "tvs.certificate-mismatch",
                f"TVS returned {cert.subject} (serial {cert.serial_hex}), not the file's signer",
            ), None
        ttl = resp.ttl if resp.ttl is not None else self.options.default_ttl
        entry = TvsCacheEntry(certificate=cert, roles=tuple(resp.roles), expires_at=self.now + ttl)
        return _Verdict(Outcome.OK, "tvs.valid", source="tvs"), entry


def _sgn_verifier(f: TrustFile) -> Callable[[Certificate], bool]:
    return lambda cert: verify_signed(f, cert)


def _judge(
    kind: FileKind,
    verify: Callable[[Certificate], bool],
    entry: TvsCacheEntry,
    source: str,
    attempts: tuple[Attempt, ...],
) -> _Verdict:
    """A TVS-vouched certificate: the signature must verify, a role must allow signing."""
    k = kind.value
    cert = entry.certificate
    if not verify(cert):
        return _Verdict(
            Outcome.REJECTED,
            f"{k}.signature-bad",
            f"signature does not verify with the TVS-vouched {cert.subject}",
            source=source,
            attempts=attempts,
        )
    allowed = SIGNING_ROLES[kind]
    if not allowed.intersection(entry.roles):
        return _Verdict(
            Outcome.REJECTED,
            f"{k}.role-not-allowed",
            f"TVS roles {role_names(entry.roles)} do not include {sorted(role_names(allowed))}",
            source=source,
            attempts=attempts,
        )
    return _Verdict(Outcome.OK, f"{k}.verified", source=source, attempts=attempts)


def _status_lines(ctl: Step, itl: Step, trust: TrustState) -> tuple[str, ...]:
    """The phone's status messages (protocol notes section 3) for the trust-list steps."""
    lines: list[str] = []
    installed = {s.name for s in (ctl, itl) if s.reason.endswith(".installed")}
    if installed == {"ctl", "itl"}:
        lines.append("CTL and ITL installed")
    elif "ctl" in installed:
        lines.append("CTL Installed")
    elif "itl" in installed:
        lines.append("ITL installed")
    if any(s.reason.endswith(".updated") for s in (ctl, itl)):
        lines.append("Trust List updated")
    if ctl.outcome is Outcome.REJECTED and ctl.reason in (
        "ctl.malformed",
        "ctl.signature-bad",
        "ctl.too-large",
    ):
        lines.append("CTL update failed")
    if any(s.outcome in (Outcome.REJECTED, Outcome.ERROR) for s in (ctl, itl)):
        lines.append("Trust List update failed")
    if not trust.has_trust_list:
        lines.append("No Trust List installed")
    return tuple(lines)
