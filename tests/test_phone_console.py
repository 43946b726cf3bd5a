"""``--log-format phone`` console lines: the seed's shape, readable by ``tvs.hexdump``."""

from __future__ import annotations

import re

import pytest
from phone_support import MAC, FakeTvs, cluster_files, config_xml, drive

from phone_emu.phone.boot import BootMachine, BootOptions
from phone_emu.phone.console import console_lines, format_line, openssl_name
from phone_emu.phone.identity import PhoneIdentity
from tvs.hexdump import extract_hex_dumps
from tvs.roles import Role
from tvs.wire import decode_message

SEED_TIME = 1480401239.033132  # Nov 29 06:33:59.033132 (UTC)


def test_line_shape_matches_the_seed():
    line = format_line(3233, "NOT", SEED_TIME, "dgetfile(870)-GETXXTP [GT870]")
    assert line == "3233 NOT Nov 29 06:33:59.033132 dgetfile(870)-GETXXTP [GT870]"


@pytest.fixture(scope="module")
def migration(lab_pki):
    src, dst = lab_pki.clusters["source"], lab_pki.clusters["destination"]
    phone = src.phones[MAC]
    ident = PhoneIdentity.from_lsc(phone.cert, phone.key)
    first = drive(BootMachine(ident, now=SEED_TIME), cluster_files(src))
    tvs = FakeTvs(known=[(dst.itlrecovery.cert, (Role.SAST, Role.TFTP))])
    opts = BootOptions(keep_bytes=True)
    m = BootMachine(ident, first.trust, first.config, now=SEED_TIME, options=opts)
    return ident, drive(m, cluster_files(dst, config_xml()), tvs=tvs), tvs


def test_migration_console_reads_like_the_seed(migration):
    ident, result, _ = migration
    lines = console_lines(result, ident, server="192.168.11.51")
    text = "\n".join(lines)
    assert lines[0].startswith("3232 NOT Nov 29 06:33:59.033132 downd-DDFORK")
    assert (
        f"dgetfile(870)-GETXXTP [GT870][src=CTLSEP{MAC}.tlv][dest=/tmp/CTLFile.tlv]"
        "[serv=192.168.11.51][serv6=][sec=0]" in text
    )
    assert f"[src=ITLSEP{MAC}.tlv][dest=/tmp/ITLFile.tlv]" in text
    assert "[src=ITLFile.tlv][dest=/tmp/ITLFile.tlv]" in text
    assert "SECUREAPP-Attempting connect to TVS server addr [127.0.0.1], mode [IPv4]" in text
    assert "SECUREAPP-SSL session setup Cert Verification - Role is = 21" in text
    assert f"Certificate subject name = {openssl_name(ident.lsc)}" in text
    assert openssl_name(ident.lsc).endswith(f"/CN=CP-8861-SEP{MAC}")
    assert "SECUREAPP-TVS added cert to TVS cache - expires in 24 hours" in text
    assert text.count("SECUREAPP-TL file updated.") == 2
    assert "SECUREAPP-Phone status: Trust List updated" in text
    numbers = [int(line.split()[0]) for line in lines]
    assert numbers == list(range(3232, 3232 + len(lines)))


def test_byte_dumps_round_trip_through_the_trace_reader(migration):
    ident, result, tvs = migration
    text = "\n".join(console_lines(result, ident))
    m = re.search(r"bytes written : (\d+)", text)
    dumps = extract_hex_dumps(text)
    assert len(dumps) == 2 and not any(d.truncated for d in dumps)
    request = decode_message(dumps[0].data)
    assert len(dumps[0].data) == int(m.group(1))
    assert request == tvs.queries[0].request
    response = decode_message(dumps[1].data)
    assert response.certificate is not None


def test_failures_are_logged_with_their_reason(lab_pki):
    src, dst = lab_pki.clusters["source"], lab_pki.clusters["destination"]
    phone = src.phones[MAC]
    ident = PhoneIdentity.from_lsc(phone.cert, phone.key)
    first = drive(BootMachine(ident, now=SEED_TIME), cluster_files(src))
    m = BootMachine(ident, first.trust, first.config, now=SEED_TIME)
    result = drive(m, cluster_files(dst), tvs=FakeTvs())
    text = "\n".join(console_lines(result, ident))
    assert "TVS process response - tvs.status-invalid" in text
    assert "TL file verification failed [tvs.status-invalid]" in text
    assert "Phone status: Trust List update failed" in text
    assert "ERR" in text


def test_non_secure_boot(lab_pki):
    phone = lab_pki.clusters["source"].phones[MAC]
    ident = PhoneIdentity.from_lsc(phone.cert, phone.key)
    result = drive(BootMachine(ident, now=SEED_TIME), {f"SEP{MAC}.cnf.xml": config_xml()})
    text = "\n".join(console_lines(result, ident))
    assert "file not found" in text and "Phone status: No Trust List installed" in text
    assert "Secure registration not attempted [register.non-secure]" in text


def test_trace_reader_reads_the_boot_back(migration):
    """The other side of the contract: ``tvs trace`` sees the seed's sequence in our lines."""
    from tvs.trace import Kind, read_timeline

    ident, result, _ = migration
    timeline = read_timeline("\n".join(console_lines(result, ident)))
    kinds = [e.kind for e in timeline.events]
    assert kinds.count(Kind.TVS_CONNECT) == 1 and kinds.count(Kind.HANDSHAKE) == 1
    connect = next(e for e in timeline.events if e.kind == Kind.TVS_CONNECT)
    assert connect.fields["port"] == 2445
    assert kinds.index(Kind.FILE_REQUEST) < kinds.index(Kind.REQUEST) < kinds.index(Kind.RESPONSE)
    assert kinds.index(Kind.RESPONSE) < kinds.index(Kind.TVS_CACHE) < kinds.index(Kind.TRUST_LIST)
    assert timeline.events[-1].kind == Kind.STATUS
    assert Kind.HANDSHAKE_FAILED not in kinds and Kind.ERROR not in kinds
