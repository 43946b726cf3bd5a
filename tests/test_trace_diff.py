"""`tvs trace diff`: comparing timelines step by step, naming the first divergence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tvs.cli import main
from tvs.trace import Kind, Source, build_timeline, diff_timelines, read_timeline

VECTORS = Path(__file__).parent / "vectors"
TVS_TEXT = (VECTORS / "seed_tvs_trace.txt").read_text()
PHONE_TEXT = (VECTORS / "seed_phone_console.txt").read_text()
HANDSHAKE_TEXT = (VECTORS / "seed_tvs_handshake.txt").read_text()
SEED_TEXTS = [("phone", PHONE_TEXT), ("tvs-3", HANDSHAKE_TEXT), ("tvs", TVS_TEXT)]


def seed(**replace: str) -> list[tuple[str, str]]:
    """The seed excerpts with ``old=new`` text replacements (keys are the texts' names)."""
    out = []
    for name, text in SEED_TEXTS:
        if name in replace:
            old, new = replace[name].split("=>")
            assert old in text
            text = text.replace(old, new, 1)
        out.append((name, text))
    return out


def test_a_timeline_matches_itself() -> None:
    t = build_timeline(SEED_TEXTS)
    d = diff_timelines(t, t)
    assert d.same and d.divergence is None and d.compared == (Source.PHONE, Source.TVS)
    assert d.matched == sum(1 for e in t.events if e.kind.value != "error") - 3


def test_line_breaks_do_not_matter() -> None:
    broken = [(n, t.replace(" 18:01", "\n18:01").replace(" 33", "\n33")) for n, t in SEED_TEXTS]
    assert diff_timelines(build_timeline(SEED_TEXTS), build_timeline(broken)).same


def test_injected_role_divergence_is_named() -> None:
    exp = build_timeline(SEED_TEXTS)
    act = build_timeline(seed(tvs="{role : 3}=>{role : 1}"))
    d = diff_timelines(exp, act)
    assert not d.same and d.divergence is not None
    div = d.divergence
    assert div.source == Source.TVS and div.field == "roles"
    assert div.expected is not None and div.expected.kind == Kind.LOOKUP
    assert div.step == 4  # connection, handshake, request, lookup
    assert div.reason == "lookup roles: expected SAST, TFTP, actual SAST, CCM"


def test_injected_signer_divergence_names_the_request() -> None:
    act = build_timeline(
        seed(tvs="Issuer Name is: CN=stormin-WIN2012-CA=>Issuer Name is: CN=other")
    )
    d = diff_timelines(build_timeline(SEED_TEXTS), act)
    assert d.divergence is not None and d.divergence.field == "issuer"
    assert d.divergence.expected is not None and d.divergence.expected.kind == Kind.REQUEST
    # the same name written another way is not a divergence
    alt = build_timeline(
        seed(
            tvs="CN=ucm11pub.stormin.local;OU=IST;O=Stormin;L=Brisbane;ST=QLD;C=AU=>"
            "C=AU, ST=QLD, L=Brisbane, O=Stormin, OU=IST, CN=ucm11pub.stormin.local"
        )
    )
    assert diff_timelines(build_timeline(SEED_TEXTS), alt).same


def test_first_divergence_is_the_earliest_in_the_expected_timeline() -> None:
    """A phone-side divergence before the TVS answered wins over a later TVS one."""
    act = build_timeline(
        seed(
            phone="[src=CTLSEPB000B4BA0AEE.tlv]=>[src=CTLFile.tlv]",
            tvs="{role : 3}=>{role : 1}",
        )
    )
    d = diff_timelines(build_timeline(SEED_TEXTS), act)
    assert d.divergence is not None and d.divergence.source == Source.PHONE
    assert d.divergence.step == 1 and d.divergence.field == "file"


def test_missing_and_extra_steps() -> None:
    exp = build_timeline(SEED_TEXTS)
    stopped = build_timeline([("tvs", TVS_TEXT[: TVS_TEXT.index("Sending QUERY_CERT_RES")])])
    only_tvs = build_timeline([("tvs", TVS_TEXT)])
    d = diff_timelines(only_tvs, stopped)
    assert d.compared == (Source.TVS,) and d.divergence is not None
    assert d.divergence.actual is None and d.divergence.expected is not None
    assert d.divergence.expected.kind == Kind.RESPONSE
    assert d.divergence.reason.startswith("the actual tvs trace stops; expected next: TVS answers")
    d2 = diff_timelines(stopped, only_tvs)
    assert d2.divergence is not None and d2.divergence.expected is None
    assert "goes on" in d2.divergence.reason
    # phone steps missing: the TVS answer was never cached, a different step comes instead
    no_cache = [
        (n, t.replace("SECUREAPP-TVS added cert to TVS cache - expires in 24 hours", "x"))
        for n, t in SEED_TEXTS
    ]
    d3 = diff_timelines(exp, build_timeline(no_cache))
    assert d3.divergence is not None and d3.divergence.source == Source.PHONE
    assert d3.divergence.reason.startswith("expected tvs-cache")
    assert d3.note == ""


def test_ignore_and_unknown_fields() -> None:
    act = build_timeline(seed(tvs="Serial Number is: 2400=>Serial Number is: 9900"))
    exp = build_timeline(SEED_TEXTS)
    d = diff_timelines(exp, act)
    assert d.divergence is not None and d.divergence.field == "serial"
    assert diff_timelines(exp, act, ignore=["serial"]).same
    # the phone's request carries no bytes, the TVS one is cut short: unknown is not different
    phone_only = read_timeline(PHONE_TEXT)
    d2 = diff_timelines(phone_only, build_timeline(SEED_TEXTS))
    assert d2.same and d2.compared == (Source.PHONE,) and "tvs" in d2.note


def test_nothing_in_common() -> None:
    d = diff_timelines(read_timeline(PHONE_TEXT), read_timeline(TVS_TEXT))
    assert not d.same and d.compared == ()
    assert d.note == "nothing to compare: expected has phone, actual has tvs"


def test_cli_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "real"
    run = tmp_path / "run"
    real.mkdir()
    run.mkdir()
    for name, text in SEED_TEXTS:
        (real / f"{name}.log").write_text(text)
    for name, text in seed(tvs="{role : 3}=>{role : 1}"):
        (run / f"{name}.log").write_text(text)
    assert main(["trace", "diff", str(real), str(real)]) == 0
    assert "no divergence" in capsys.readouterr().out
    assert main(["trace", "diff", str(real), str(run)]) == 1
    out = capsys.readouterr().out
    assert "first divergence: tvs step 4: lookup roles: expected SAST, TFTP" in out
    assert "tvs.log:1]" in out
    assert main(["trace", "diff", str(real), str(run), "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["same"] is False and d["divergence"]["field"] == "roles"
    assert d["divergence"]["expected"]["fields"]["roles"] == [0, 3]
    assert d["divergence"]["actual"]["fields"]["roles"] == [0, 1]
    assert main(["trace", "--json", "diff", str(real), str(run)]) == 1
    assert json.loads(capsys.readouterr().out)["divergence"]["source"] == "tvs"
    assert main(["trace", "diff", str(real / "phone.log"), str(run / "tvs.log")]) == 2
    assert main(["trace", "diff", str(real), str(tmp_path / "nope")]) == 2
    with pytest.raises(SystemExit):
        main(["trace", "diff", str(real)])
