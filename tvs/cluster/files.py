"""The files an emulated cluster's TFTP serves, generated and signed the way CUCM does (pure).

Owns which certificates go into the tokenless CTL and the ITL with which roles, who signs them
for each CUCM version (protocol notes section 2), the phone configuration ``SEP<MAC>.cnf.xml``
(TVS members and CallManager group) and its ``.sgn``, and which TFTP names map to which file.
No I/O and no clock: certificates, keys and the timestamp come in as values
(:class:`FileInputs`); :class:`ClusterFiles` caches the bytes until an input changes. The
encoding itself is :mod:`tvs.tlv`.

Signers (High, notes section 2):

============================  ======================  ==========================================
CUCM version                  CTL signer              ITL signer
============================  ======================  ==========================================
before 10.5(2)                publisher CallManager   the TFTP node's CallManager
10.5(2) .. 11.x               publisher CallManager   the TFTP node's CallManager
                              (ITLRecovery is SAST)
12.0 and later                ITLRecovery             ITLRecovery
                              (CallManager is SAST)
============================  ======================  ==========================================

Low confidence, kept as named constants: the header's signer-version element (absent before
CUCM 11, :data:`SIGNER_VERSION_FROM`) and the configuration's other elements. The
configuration's ``deviceSecurityMode`` is the phone's security profile
(:meth:`ClusterConfig.profile_for`; section 7, Med), so the XML is one per profile.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Final
from xml.sax.saxutils import escape

import attrs
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .. import device
from ..certs import Certificate
from ..pki import ClusterPki, Identity
from ..roles import Role
from ..tlv import SIGNER_VERSION_EC, SIGNER_VERSION_RSA, RecordSpec, build_trust_list, sign_file
from .config import ClusterConfig, NodeConfig
from .encconfig import build_encrypted_config, build_stub
from .errors import ClusterError
from .profiles import SecurityProfile

__all__ = [
    "CTL_NAME",
    "ITLRECOVERY_IN_CTL_FROM",
    "ITLRECOVERY_IN_ITL_FROM",
    "ITLRECOVERY_SIGNS_FROM",
    "ITL_NAME",
    "SIGNER_VERSION_FROM",
    "ClusterFiles",
    "FileInputs",
    "NodeEndpoint",
    "build_config_sgn",
    "build_config_xml",
    "build_ctl",
    "build_itl",
    "ctl_records",
    "ctl_signer",
    "endpoints_from_config",
    "itl_records",
    "itl_signer",
]

CTL_NAME: Final = device.CTL_FILE
ITL_NAME: Final = device.ITL_FILE
ITLRECOVERY_IN_CTL_FROM: Final = (10, 5, 2)
"""From CUCM 10.5(2) the tokenless CTL also holds ITLRecovery as SAST (High)."""
ITLRECOVERY_IN_ITL_FROM: Final = (10, 0)
"""From CUCM 10.0 (where ITLRecovery appeared) the ITL also holds ITLRecovery as SAST (Med-High,
section 7; the exact first release is not documented)."""
ITLRECOVERY_SIGNS_FROM: Final = (12, 0)
"""From CUCM 12.0 ITLRecovery signs the CTL and the ITL (High)."""
SIGNER_VERSION_FROM: Final = (11, 0)
"""Files of CUCM 10.5 carry no signer-version element (High); later ones do (Low: from which)."""
MAX_CACHED_CONFIGS: Final = 4096
"""Per-phone ``.sgn`` files kept in memory; the cache is emptied when it grows past this."""


@attrs.frozen
class NodeEndpoint:
    """A node as phones see it: the address they are told and the ports actually bound."""

    name: str
    address: str
    tftp: bool
    tftp_port: int
    tvs_port: int
    sip_port: int
    capf_port: int | None = None
    """None when the node runs no CAPF."""
    sip_tcp_port: int = 5060

    @classmethod
    def from_node(cls, node: NodeConfig) -> NodeEndpoint:
        return cls(
            node.name,
            node.address,
            node.tftp,
            node.tftp_port,
            node.tvs_port,
            node.sip_port,
            node.capf_port if node.capf else None,
            node.sip_tcp_port,
        )

    @property
    def ipv4(self) -> bytes | None:
        """The address as 4 bytes for CTL/ITL records, when it is an IPv4 literal."""
        try:
            ip = ipaddress.ip_address(self.address)
        except ValueError:
            return None
        return ip.packed if ip.version == 4 and not ip.is_unspecified else None


def endpoints_from_config(config: ClusterConfig) -> tuple[NodeEndpoint, ...]:
    """Endpoints with the configured ports (the adapter replaces them with the bound ones)."""
    return tuple(NodeEndpoint.from_node(n) for n in config.nodes)


@attrs.frozen
class FileInputs:
    """Everything the generated files depend on. ``sast_trust`` is Phone-SAST-trust now;
    ``ctl_sast_trust``/``ctl_timestamp`` are what it was at the last CTL update (CUCM rebuilds
    the CTL only on ``utils ctl update CTLFile``, section 7, High; None: the same as now)."""

    config: ClusterConfig
    pki: ClusterPki
    endpoints: tuple[NodeEndpoint, ...]
    sast_trust: tuple[Certificate, ...] = ()
    timestamp: int = 0
    ctl_sast_trust: tuple[Certificate, ...] | None = None
    ctl_timestamp: int | None = None

    def __attrs_post_init__(self) -> None:
        missing = [n.name for n in self.config.nodes if n.name not in self.pki.nodes]
        if missing:
            raise ClusterError(
                f"cluster {self.config.name!r}: node(s) {', '.join(missing)} not in the lab PKI "
                f"(it has {', '.join(self.pki.nodes) or 'none'})"
            )
        if [e.name for e in self.endpoints] != [n.name for n in self.config.nodes]:
            raise ClusterError("endpoints must list the configured nodes in order")

    def endpoint(self, node: str) -> NodeEndpoint:
        for e in self.endpoints:
            if e.name == node:
                return e
        raise ClusterError(f"cluster {self.config.name!r} has no node {node!r}")

    def tftp_node(self, node: str | None = None) -> str:
        """``node`` when it runs TFTP; None means the first TFTP node."""
        if node is None:
            return self.config.tftp_nodes[0].name
        if not self.config.node(node).tftp:
            raise ClusterError(f"node {node!r} does not run TFTP")
        return node


# --- signers ------------------------------------------------------------------------------------


def _at_least(config: ClusterConfig, version: tuple[int, ...]) -> bool:
    return config.version_tuple[: len(version)] >= version


def ctl_signer(inputs: FileInputs) -> Identity:
    """ITLRecovery from 12.0, the publisher's CallManager before."""
    if _at_least(inputs.config, ITLRECOVERY_SIGNS_FROM):
        return inputs.pki.itlrecovery
    return inputs.pki.nodes[inputs.config.nodes[0].name].callmanager


def itl_signer(inputs: FileInputs, node: str | None = None) -> Identity:
    """ITLRecovery from 12.0, the TFTP node's CallManager before."""
    if _at_least(inputs.config, ITLRECOVERY_SIGNS_FROM):
        return inputs.pki.itlrecovery
    return inputs.pki.nodes[inputs.tftp_node(node)].callmanager


def _signer_version(config: ClusterConfig, signer: Identity) -> tuple[int, int] | None:
    if not _at_least(config, SIGNER_VERSION_FROM):
        return None
    return (
        SIGNER_VERSION_EC
        if isinstance(signer.key, ec.EllipticCurvePrivateKey)
        else (SIGNER_VERSION_RSA)
    )


# --- records ------------------------------------------------------------------------------------


def _callmanager_spec(inputs: FileInputs, node: str, role: Role) -> RecordSpec:
    return RecordSpec(
        role=int(role),
        certificate=inputs.pki.nodes[node].callmanager.cert,
        ip_address=inputs.endpoint(node).ipv4,
    )


def ctl_records(inputs: FileInputs) -> list[RecordSpec]:
    """The tokenless CTL's records (mixed mode): SAST signers, each node's CallManager (CCM+TFTP
    on TFTP nodes, CCM elsewhere), CAPF, then Phone-SAST-trust as SAST."""
    config, pki = inputs.config, inputs.pki
    publisher = config.nodes[0].name
    recovery = RecordSpec(role=int(Role.SAST), certificate=pki.itlrecovery.cert)
    cm_sast = _callmanager_spec(inputs, publisher, Role.SAST)
    if _at_least(config, ITLRECOVERY_SIGNS_FROM):
        sast = [recovery, cm_sast]
    elif _at_least(config, ITLRECOVERY_IN_CTL_FROM):
        sast = [cm_sast, recovery]
    else:
        sast = [cm_sast]
    records = list(sast)
    for n in config.nodes:
        records.append(_callmanager_spec(inputs, n.name, Role.CCM_TFTP if n.tftp else Role.CCM))
    records.append(RecordSpec(role=int(Role.CAPF), certificate=pki.capf.cert))
    present = {r.certificate.der for r in sast}
    trusted = inputs.sast_trust if inputs.ctl_sast_trust is None else inputs.ctl_sast_trust
    for cert in trusted:
        if cert.der not in present:
            present.add(cert.der)
            records.append(RecordSpec(role=int(Role.SAST), certificate=cert))
    return records


def itl_records(inputs: FileInputs, node: str | None = None) -> list[RecordSpec]:
    """The ITL of TFTP node ``node`` (None: the first), by CUCM version (protocol notes section 7,
    TAC 214231 and the 12.x security chapter):

    - before 12.0: the serving node's CallManager as SAST (it signs) and as CCM+TFTP (TFTP in
      nonsecure mode), from 10.0 ITLRecovery as SAST (Med-High), every node's TVS, CAPF;
    - 12.0 and later: ITLRecovery as SAST (it signs), the serving node's CallManager as SAST
      and as CCM+TFTP/TFTP (High), every node's TVS, CAPF.

    Each TFTP node's ITL holds its own CallManager only (Med). Blank with rollback."""
    if inputs.config.rollback_pre80:
        return []
    config, pki = inputs.config, inputs.pki
    serving = inputs.tftp_node(node)
    tftp_role = Role.CCM_TFTP if config.mixed_mode else Role.TFTP
    cm_sast = _callmanager_spec(inputs, serving, Role.SAST)
    cm_tftp = _callmanager_spec(inputs, serving, tftp_role)
    recovery = RecordSpec(role=int(Role.SAST), certificate=pki.itlrecovery.cert)
    if _at_least(config, ITLRECOVERY_SIGNS_FROM):
        records = [recovery, cm_sast, cm_tftp]
    elif _at_least(config, ITLRECOVERY_IN_ITL_FROM):
        records = [cm_sast, cm_tftp, recovery]
    else:
        records = [cm_sast, cm_tftp]
    records += [
        RecordSpec(
            role=int(Role.TVS),
            certificate=pki.nodes[n.name].tvs.cert,
            ip_address=inputs.endpoint(n.name).ipv4,
        )
        for n in config.nodes
    ]
    records.append(RecordSpec(role=int(Role.CAPF), certificate=pki.capf.cert))
    return records


# --- files --------------------------------------------------------------------------------------


def build_ctl(inputs: FileInputs) -> bytes | None:
    """The signed tokenless ``CTLFile.tlv``; None in nonsecure mode (no CTL is served)."""
    if not inputs.config.mixed_mode:
        return None
    signer = ctl_signer(inputs)
    return build_trust_list(
        ctl_records(inputs),
        signer=signer.cert,
        key=signer.key,
        filename=CTL_NAME,
        digest=inputs.config.digest,
        timestamp=inputs.timestamp if inputs.ctl_timestamp is None else inputs.ctl_timestamp,
        signer_version=_signer_version(inputs.config, signer),
    )


def build_itl(inputs: FileInputs, node: str | None = None) -> bytes:
    """The signed ``ITLFile.tlv`` of a TFTP node (None: the first); blank with rollback."""
    signer = itl_signer(inputs, node)
    return build_trust_list(
        itl_records(inputs, node),
        signer=signer.cert,
        key=signer.key,
        filename=ITL_NAME,
        digest=inputs.config.digest,
        timestamp=inputs.timestamp,
        signer_version=_signer_version(inputs.config, signer),
    )


def _capf_list(inputs: FileInputs) -> str:
    """``<capfList>``: the CAPF nodes (up to 5, as CUCM) with their bound ports."""
    capfs = [
        f"<capf><phonePort>{e.capf_port}</phonePort>"
        f"<processNodeName>{escape(e.address)}</processNodeName></capf>"
        for e in inputs.endpoints
        if e.capf_port is not None
    ][:5]
    return f"<capfList>{''.join(capfs)}</capfList>\n" if capfs else ""


def build_config_xml(
    inputs: FileInputs, capf_auth_mode: int = 0, profile: SecurityProfile | None = None
) -> bytes:
    """``SEP<MAC>.cnf.xml`` (the same for every phone of one security profile but
    ``capf_auth_mode``, the phone's pending CAPF operation: 0 none, 1 auth string, 2 null
    string, 3 LSC then MIC, 4 MIC): the CallManager group and the TVS members are the
    cluster's nodes, in configured order, with the bound ports; ``capfList`` names the CAPF
    nodes; ``deviceSecurityMode`` is the profile's (None: the cluster's default profile)."""
    config = inputs.config
    profile = profile if profile is not None else config.default_profile
    members = []
    tvs = []
    for i, e in enumerate(inputs.endpoints):
        members.append(
            f'<member priority="{i}"><callManager><name>{escape(e.name)}</name><ports>'
            f"<ethernetPhonePort>2000</ethernetPhonePort><sipPort>{e.sip_tcp_port}</sipPort>"
            f"<securedSipPort>{e.sip_port}</securedSipPort></ports>"
            f"<processNodeName>{escape(e.address)}</processNodeName></callManager></member>"
        )
        tvs.append(
            f'<member priority="{i}"><port>{e.tvs_port}</port>'
            f"<address>{escape(e.address)}</address></member>"
        )
    mode = profile.device_security_mode
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<device>\n"
        "<fullConfig>true</fullConfig>\n"
        "<deviceProtocol>SIP</deviceProtocol>\n"
        f"<devicePool><name>{escape(config.name)}</name><callManagerGroup>"
        f"<name>{escape(config.name)}-CMG</name><tftpDefault>true</tftpDefault>"
        f"<members>{''.join(members)}</members></callManagerGroup></devicePool>\n"
        f"<TVS><members>{''.join(tvs)}</members></TVS>\n"
        f"<deviceSecurityMode>{mode}</deviceSecurityMode>\n"
        f"<capfAuthMode>{int(capf_auth_mode)}</capfAuthMode>\n"
        f"{_capf_list(inputs)}"
        "<loadInformation></loadInformation>\n"
        "</device>\n"
    )
    return text.encode("utf-8")


def build_config_sgn(inputs: FileInputs, mac: str, xml: bytes, node: str | None = None) -> bytes:
    """``SEP<MAC>.cnf.xml.sgn``: ``xml`` signed by the TFTP node's CallManager."""
    signer = inputs.pki.nodes[inputs.tftp_node(node)].callmanager
    return sign_file(
        xml,
        filename=device.config_filename(mac, signed=True),
        signer=signer.cert,
        key=signer.key,
        digest=inputs.config.digest,
        timestamp=inputs.timestamp,
        signer_version=_signer_version(inputs.config, signer),
    )


class ClusterFiles:
    """The cluster's served files, generated on first use and kept until an input changes.

    Not thread-safe; the adapter calls it from one Trio thread. ``generation`` counts rebuilds.
    """

    def __init__(
        self,
        inputs: FileInputs,
        *,
        capf_mode: Callable[[str], int] | None = None,
        encrypted: Callable[[str], bool] | None = None,
        known_certificate: Callable[[str], Certificate | None] | None = None,
    ) -> None:
        if inputs.ctl_sast_trust is None:  # the CTL as of now, until the next ctl_update()
            inputs = attrs.evolve(
                inputs, ctl_sast_trust=inputs.sast_trust, ctl_timestamp=inputs.timestamp
            )
        self._inputs = inputs
        self.generation = 0
        self.capf_mode = capf_mode
        """``SEP<MAC>`` -> that phone's ``capfAuthMode`` (the CAPF database, read per file)."""
        self.encrypted = encrypted
        """``SEP<MAC>`` -> whether the phone gets encrypted configuration (None: its security
        profile's ``tftp_encrypted_config``): its ``.cnf.xml.sgn`` is then the stub and
        ``.cnf.xml.enc.sgn`` the configuration."""
        self.known_certificate = known_certificate
        """``SEP<MAC>`` -> the phone certificate the cluster knows (certHash, encryption)."""
        self._reset()

    def _reset(self) -> None:
        self._ctl: bytes | None = None
        self._ctl_done = False
        self._itl: dict[str, bytes] = {}
        self._xml: dict[tuple[str, int], bytes] = {}
        self._sgn: dict[tuple[str, str, int], bytes] = {}
        self._enc: dict[tuple[str, str, int, bytes], bytes] = {}
        self._stub: dict[tuple[str, str, int, bytes], bytes] = {}

    def _mode(self, mac: str | None) -> int:
        if mac is None or self.capf_mode is None:
            return 0
        return self.capf_mode(device.device_name(mac))

    @property
    def inputs(self) -> FileInputs:
        return self._inputs

    def update(self, **changes: object) -> None:
        """Replace some inputs (``config``, ``endpoints``, ``sast_trust``, ``timestamp``) and drop
        the cached files; the next request regenerates them. The CTL keeps its bytes (an
        import does not rebuild it on CUCM) unless ``config``/``endpoints`` change; even then
        it is rebuilt from the trust it had at the last :meth:`ctl_update`."""
        ctl, ctl_done = self._ctl, self._ctl_done
        self._inputs = attrs.evolve(self._inputs, **changes)  # type: ignore[arg-type]
        self.generation += 1
        self._reset()
        if not {"config", "endpoints", "ctl_sast_trust", "ctl_timestamp"} & set(changes):
            self._ctl, self._ctl_done = ctl, ctl_done

    def ctl_update(self, timestamp: int | None = None) -> None:
        """``utils ctl update CTLFile``: rebuild the CTL from Phone-SAST-trust as it is now."""
        self.update(
            ctl_sast_trust=self._inputs.sast_trust,
            ctl_timestamp=self._inputs.timestamp if timestamp is None else timestamp,
        )

    def ctl(self) -> bytes | None:
        if not self._ctl_done:
            self._ctl, self._ctl_done = build_ctl(self._inputs), True
        return self._ctl

    def itl(self, node: str | None = None) -> bytes:
        key = self._inputs.tftp_node(node)
        if key not in self._itl:
            self._itl[key] = build_itl(self._inputs, key)
        return self._itl[key]

    def profile_for(self, mac: str | None) -> SecurityProfile:
        """The security profile of the phone with ``mac`` (None: the default profile)."""
        config = self._inputs.config
        return config.default_profile if mac is None else config.profile_for(mac)

    def config_xml(self, mac: str | None = None) -> bytes:
        """The configuration of the phone with ``mac`` (one per security profile and pending
        CAPF operation)."""
        profile, mode = self.profile_for(mac), self._mode(mac)
        key = (profile.name, mode)
        if key not in self._xml:
            self._xml[key] = build_config_xml(self._inputs, mode, profile)
        return self._xml[key]

    def is_encrypted(self, mac: str) -> bool:
        """Whether the phone's security profile has ``tftp_encrypted_config`` (section 9);
        ``encrypted``, when given, decides instead."""
        if self.encrypted is not None:
            return self.encrypted(device.device_name(mac))
        return self.profile_for(mac).tftp_encrypted_config

    def _known(self, mac: str) -> Certificate | None:
        if self.known_certificate is None:
            return None
        return self.known_certificate(device.device_name(mac))

    def config_stub(self, mac: str, node: str | None = None) -> bytes:
        """The signed stub ``SEP<MAC>.cnf.xml.sgn`` of an encrypted-configuration phone."""
        mode, known = self._mode(mac), self._known(mac)
        tftp = self._inputs.tftp_node(node)
        key = (tftp, mac.upper(), mode, known.sha256 if known is not None else b"")
        cached = self._stub.get(key)
        if cached is not None:
            return cached
        if len(self._stub) >= MAX_CACHED_CONFIGS:
            self._stub.clear()
        signer = self._inputs.pki.nodes[tftp].callmanager
        capfs = [(e.address, e.capf_port) for e in self._inputs.endpoints if e.capf_port]
        self._stub[key] = stub = build_stub(
            mac,
            known=known,
            signer=signer.cert,
            key=signer.key,
            capf_auth_mode=mode,
            capf_servers=capfs[:5],
            digest=self._inputs.config.digest,
            timestamp=self._inputs.timestamp,
            signer_version=_signer_version(self._inputs.config, signer),
        )
        return stub

    def config_enc(self, mac: str, node: str | None = None) -> bytes | None:
        """``SEP<MAC>.cnf.xml.enc.sgn`` encrypted to the certificate the cluster knows; None
        when the phone's profile is not encrypted, no certificate is known, or it is not RSA
        (key wrapping is RSA only: a lab limitation, the phone says so)."""
        if not self.is_encrypted(mac):
            return None
        known = self._known(mac)
        if known is None or not isinstance(known.public_key, rsa.RSAPublicKey):
            return None
        mode = self._mode(mac)
        tftp = self._inputs.tftp_node(node)
        key = (tftp, mac.upper(), mode, known.sha256)
        if key not in self._enc:
            if len(self._enc) >= MAX_CACHED_CONFIGS:
                self._enc.clear()
            signer = self._inputs.pki.nodes[tftp].callmanager
            self._enc[key] = build_encrypted_config(
                mac,
                self.config_xml(mac),
                known=known,
                signer=signer.cert,
                key=signer.key,
                digest=self._inputs.config.digest,
                timestamp=self._inputs.timestamp,
                signer_version=_signer_version(self._inputs.config, signer),
            )
        return self._enc[key]

    def config_sgn(self, mac: str, node: str | None = None) -> bytes:
        if self.is_encrypted(mac):
            return self.config_stub(mac, node)
        mode = self._mode(mac)
        key = (self._inputs.tftp_node(node), mac.upper(), mode)
        if key not in self._sgn:
            if len(self._sgn) >= MAX_CACHED_CONFIGS:
                self._sgn.clear()
            xml = self.config_xml(mac)
            self._sgn[key] = build_config_sgn(self._inputs, key[1], xml, key[0])
        return self._sgn[key]

    def get(self, name: str, node: str | None = None) -> bytes | None:
        """The bytes served for TFTP ``name`` by ``node`` (None: the first TFTP node), or None."""
        what = device.parse_file_name(name)
        if what is None:
            return None
        kind, mac = what
        if kind == "ctl":
            return self.ctl()
        if kind == "itl":
            return self.itl(node)
        assert mac is not None
        if kind == "enc":
            return self.config_enc(mac, node)
        return self.config_xml(mac) if kind == "xml" else self.config_sgn(mac, node)

    def files_for(self, mac: str, node: str | None = None) -> dict[str, bytes]:
        """What a phone can download, by the names it asks for (no CTL in nonsecure mode)."""
        names = [
            device.ctl_filename(mac),
            device.itl_filename(mac),
            ITL_NAME,
            device.config_filename(mac, signed=False),
            device.config_filename(mac, signed=True),
            device.encrypted_config_filename(mac),
        ]
        out: dict[str, bytes] = {}
        for name in names:
            data = self.get(name, node)
            if data is not None:
                out[name] = data
        return out
