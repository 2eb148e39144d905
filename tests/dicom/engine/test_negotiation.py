"""Association negotiation: answers are remembered per proposal, AE titles taken from each RQ."""

from __future__ import annotations

import pytest
from pynetdicom import pdu as pdus
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from dicomhub.dicom.engine import negotiation
from dicomhub.dicom.engine.negotiation import Negotiator, supported_contexts
from dicomhub.dicom.engine.pdu import ProtocolError


def _rq(calling: str, called: str = "DICOMHUB", max_pdu: int = 16384) -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    contexts = []
    for number, sop_class in enumerate([Verification, CTImageStorage, "1.2.3.4.5"]):
        context = build_context(sop_class)
        context.context_id = 2 * number + 1
        contexts.append(context)
    primitive.presentation_context_definition_list = contexts
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = max_pdu
    primitive.user_information = [maximum]
    rq = pdus.A_ASSOCIATE_RQ()
    rq.from_primitive(primitive)
    return bytes(rq.encode())


def _decode_ac(data: bytes) -> A_ASSOCIATE:
    ac = pdus.A_ASSOCIATE_AC()
    ac.decode(data)
    return ac.to_primitive()


def test_answers_are_remembered_and_titles_echoed() -> None:
    negotiator = Negotiator(supported_contexts(), 65536)
    first = negotiator.request(_rq("MODALITY1"))
    second = negotiator.request(_rq("MODALITY2", "OTHERAE"))
    assert len(negotiator._cache) == 1
    assert (second.calling_ae_title, second.called_ae_title) == ("MODALITY2", "OTHERAE")
    assert first.proposed == second.proposed == 3
    assert first.peer_max_pdu == 16384
    answer, accepted = second.accept()
    decoded = _decode_ac(answer)
    assert str(decoded.calling_ae_title).strip() == "MODALITY2"
    assert str(decoded.called_ae_title).strip() == "OTHERAE"
    assert decoded.maximum_length_received == 65536
    results = {
        cx.context_id: cx.result for cx in decoded.presentation_context_definition_results_list
    }
    assert results == {1: 0x00, 3: 0x00, 5: 0x03}
    assert sorted(accepted) == [1, 3]
    assert accepted[3].abstract_syntax == CTImageStorage
    # A copy each: one association changing its contexts does not touch another's.
    accepted.clear()
    assert sorted(first.accept()[1]) == [1, 3]


def test_another_proposal_is_negotiated_afresh() -> None:
    negotiator = Negotiator(supported_contexts(), 65536)
    negotiator.request(_rq("A"))
    other = negotiator.request(_rq("A", max_pdu=32768))
    assert len(negotiator._cache) == 2
    assert other.peer_max_pdu == 32768


@pytest.mark.parametrize(
    "title", [b" " * 16, b"AB\x01" + b" " * 13, b"\xffBC" + b" " * 13, b"A\\B" + b" " * 13]
)
def test_bad_ae_titles_refused_even_when_remembered(title: bytes) -> None:
    negotiator = Negotiator(supported_contexts(), 65536)
    good = _rq("GOOD")
    negotiator.request(good)
    with pytest.raises(ProtocolError, match="AE title"):
        negotiator.request(good[:26] + title + good[42:])


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(negotiation, "CACHE_SIZE", 3)
    negotiator = Negotiator(supported_contexts(), 65536)
    for size in range(4096, 4096 + 10):
        negotiator.request(_rq("A", max_pdu=size))
    assert len(negotiator._cache) == 3


def test_short_request_refused() -> None:
    with pytest.raises(ProtocolError):
        Negotiator(supported_contexts(), 65536).request(_rq("A")[:60])
