"""ZVT APDU codec against byte sequences captured from real terminals or given by other implementations' tests.

Sources of the vectors (cited per test):
- Qwello/zvt ``zvt/data/*.blob``: captures between an ECR and a Feig cVEND terminal in an EV charger.
- Portalum/Portalum.Zvt ``src/Portalum.Zvt.UnitTest/*.cs``: the C# library's unit tests.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from hal.drivers import zvt_frames as zf
from hal.payment import MaskedCard, Money, mask_pan

# Qwello/zvt zvt/data/1680728165.675509000_pt_ecr.blob: 04 0F after a pre-authorisation of 25.00 EUR (Feig cVEND).
FEIG_STATUS = bytes.fromhex(
    "040f5a2700040000000025004909780c2255580d040522f0f8559883eeeeee80748702313b37353030373100000b0009751960"
    "29525235350e24058a068c018bf1f14d617374657243617264002a383034303131393236202020202020"
)


def test_bcd_round_trip_and_width() -> None:
    assert zf.bcd_encode(2500, 6) == bytes.fromhex("000000002500")
    assert zf.bcd_decode(bytes.fromhex("000000002500")) == 2500
    assert zf.bcd_encode(978, 2) == b"\x09\x78"
    with pytest.raises(ValueError):
        zf.bcd_encode(1_000_000, 3)
    with pytest.raises(zf.ZvtFrameError):
        zf.bcd_decode(b"\x1a")


def test_amounts_are_minor_units_of_a_decimal() -> None:
    assert zf.encode_amount(Money(Decimal("20.40")).minor_units) == bytes.fromhex("000000002040")
    assert Money.from_minor_units(1295) == Money(Decimal("12.95"), "EUR")
    with pytest.raises(ValueError):
        Money(Decimal("1.005"))  # finer than a cent
    with pytest.raises(ValueError):
        Money(Decimal("1"), "XXX")


@pytest.mark.parametrize(("frame", "control", "length"), [
    # Portalum.Zvt ApduHelperTest: the one-byte length, and FF + two bytes little-endian.
    (bytes.fromhex("040f016c"), b"\x04\x0f", 1),
    (bytes.fromhex("040fff01006c"), b"\x04\x0f", 1),
])
def test_apdu_length_rule(frame: bytes, control: bytes, length: int) -> None:
    apdu = zf.decode_apdu(frame)
    assert apdu.control == control
    assert len(apdu.data) == length


def test_extended_length_is_used_from_255_bytes_little_endian() -> None:
    # Portalum.Zvt ApduHelperTest.GetApduInfo_ExtendedLengthField2: FF 00 01 announces 256 bytes.
    assert zf.Apdu(b"\x06\xd3", bytes(256)).encode()[:5] == bytes.fromhex("06d3ff0001")
    assert zf.Apdu(b"\x06\xd3", bytes(254)).encode()[:3] == bytes.fromhex("06d3fe")
    assert zf.Apdu(b"\x06\xd3", bytes(255)).encode()[:5] == bytes.fromhex("06d3ffff00")
    # Qwello/zvt zvt/data/1680728215.585561000_pt_ecr.blob starts 06 D3 FF 61 04: a 1121-byte text block.
    assert zf.header_length(bytes.fromhex("06d3ff")) == (2, -1)
    with pytest.raises(zf.ZvtFrameError):
        zf.decode_apdu(bytes.fromhex("040f026c"))  # says 2, carries 1


def test_llvar_and_lllvar() -> None:
    # Portalum.Zvt StatusInformationParserTest: 22 F0 F8 = 8 bytes of PAN; 3C F0 F1 F4 = 14 bytes of text.
    assert zf.decode_varlen(bytes.fromhex("f0f8"), 2) == 8
    assert zf.decode_varlen(bytes.fromhex("f0f1f4"), 3) == 14
    assert zf.encode_llvar(b"x" * 14, 3) == bytes.fromhex("f0f1f4") + b"x" * 14
    with pytest.raises(zf.ZvtFrameError):
        zf.decode_varlen(bytes.fromhex("f0fa"), 2)


@pytest.mark.parametrize(("built", "captured"), [
    # Qwello/zvt zvt/data/1681273860.511128000_ecr_pt.blob: Registration, password 123456, config DE, EUR.
    (zf.registration("123456", 978, 0xDE), "060006123456de0978"),
    # Qwello/zvt zvt/data/1680728213.562478000_ecr_pt.blob: Pre-Authorisation Reversal of receipt 231.
    (zf.pre_auth_reversal(231, 978), "0625081940870231490978"),
    # Qwello/zvt zvt/data/1681282621.302434000_ecr_pt.blob: End-of-Day with password 123456.
    (zf.end_of_day("123456"), "065003123456"),
    # Qwello/zvt zvt/data/1680728162.033575000_ecr_pt.blob: Pre-Authorisation of 25.00 EUR, without its TLV
    # container (06 10 ...), so with length 0C instead of 1E.
    (zf.pre_authorisation(2500, 978), "06220c194049097804000000002500"),
    # Qwello/zvt zvt/data/1681455683.221609000_ecr_pt.blob: Partial-Reversal booking 12.95 of receipt 491, without
    # its TLV container (length 0F instead of 21).
    (zf.partial_reversal(491, 1295, 978), "06230f194087049149097804000000001295"),
])
def test_commands_are_byte_exact(built: zf.Apdu, captured: str) -> None:
    assert built.encode().hex() == captured


def test_status_information_of_a_real_terminal() -> None:
    apdu = zf.decode_apdu(FEIG_STATUS)
    assert apdu.control == zf.STATUS_INFORMATION
    info = zf.parse_status_information(apdu.data)
    # The values Qwello/zvt's test_status_information expects for this capture.
    assert (info.result_code, info.amount_minor, info.currency_code) == (0, 2500, 978)
    assert (info.receipt_no, info.trace_no, info.terminal_id) == (231, 975, "52523535")
    assert info.card == MaskedCard(last4="8074", scheme="MasterCard", token=None)
    assert "5598" not in repr(info)  # the BIN the terminal left unmasked does not survive either


def test_status_information_with_tlv_and_original_trace() -> None:
    # Portalum.Zvt StatusInformationParserTest.Parse_ReversalGood1_Successful, a reversal's 04 0F with its TLV
    # container, shortened to the BMPs we read (time, date, expiry, VU number, AID and card name left out).
    body = bytes.fromhex(
        "270004000000000100" "0b000607" "22f0f8eeeeeeeeeeee4771" "2928004869" "37000606" "490978" "870607"
        "0665" "2410070e47454e2e4e522e3a373135363931" "4307a0000000041010"
        "461f" + "41" * 31 + "471f" + "42" * 31 + "1f1001ff" "1f120102"
    )
    info = zf.parse_status_information(body)
    # Portalum.Zvt Parse_ReversalGood1_Successful expects amount 1.00, trace 607 and card ...4771.
    assert (info.amount_minor, info.trace_no, info.original_trace_no, info.receipt_no) == (100, 607, 606, 607)
    assert info.card.last4 == "4771"
    assert [t.tag for t in info.tlv] == [0x24, 0x43, 0x46, 0x47, 0x1F10, 0x1F12]
    assert info.tlv[0].constructed and info.tlv[0].children[0].value == b"GEN.NR.:715691"


def test_tlv_round_trip_with_long_lengths_and_multibyte_tags() -> None:
    items = [zf.Tlv(0x1F16, b"\x01"), zf.Tlv(0x25, children=(zf.Tlv(0x07, b"a" * 200),))]
    encoded = zf.encode_tlv(items)
    assert encoded[:4] == bytes.fromhex("1f160101")
    assert encoded[4:8] == bytes.fromhex("2581cb07")  # 25, length 81 CB (203), then 07 81 C8
    parsed = zf.parse_tlv(encoded)
    assert parsed[1].children[0].value == b"a" * 200
    assert zf.find_tlv(parsed, 0x07) == zf.Tlv(0x07, b"a" * 200)
    with pytest.raises(zf.ZvtFrameError):
        zf.parse_tlv(bytes.fromhex("0705616263"))  # says 5, carries 3


@pytest.mark.parametrize(("code", "kind"), [
    (0x00, "approved"), (0x05, "declined"), (0x64, "declined"), (0x6F, "declined"), (0x83, "declined"),
    (0xB7, "declined"), (0xB8, "declined"), (0x6C, "timeout"), (0x9C, "unavailable"), (0xA3, "unavailable"),
    (0xFF, "unavailable"), (0x2A, "declined"),
])
def test_result_codes_map_to_our_results(code: int, kind: str) -> None:
    assert zf.result_kind(code) == kind


def test_result_texts() -> None:
    # Portalum.Zvt EndOfDayAsync_CommandCompletionReceivedWithAbortReceived2: 06 1E 01 64 = card not readable.
    code, receipt, _ = zf.parse_abort(zf.decode_apdu(bytes.fromhex("061e0164")).data)
    assert (code, receipt, zf.result_text(code)) == (0x64, None, "card not readable")
    assert zf.result_text(0x6C) == "abort via timeout or abort key"
    assert "issuer" in zf.result_text(0x33)


def test_open_pre_authorisation_answer() -> None:
    # Qwello/zvt zvt/data/partial_reversal.blob: 06 1E 04 B8 87 FF FF, "error pre-authorisation", no receipt open.
    code, receipt, _ = zf.parse_abort(zf.decode_apdu(bytes.fromhex("061e04b887ffff")).data)
    assert (code, receipt) == (0xB8, zf.OPEN_PRE_AUTHS_QUERY)
    code, receipt, _ = zf.parse_abort(bytes.fromhex("b8870491"))
    assert (code, receipt) == (0xB8, 491)


def test_intermediate_status_and_print_line() -> None:
    # Qwello/zvt zvt/data/1680728162.647465000_pt_ecr.blob: 04 FF 01 17 ("please wait").
    apdu = zf.decode_apdu(bytes.fromhex("04ff0117"))
    assert zf.parse_intermediate_status(apdu.data) == 0x17
    assert zf.parse_print_line(b"\x00Betrag EUR 25,00  ") == "Betrag EUR 25,00"
    block = zf.tlv_bmp([zf.Tlv(0x25, children=(zf.Tlv(0x07, b"line 1"), zf.Tlv(0x07, b"line 2")))])
    assert zf.parse_print_text_block(block) == ["line 1", "line 2"]


def test_completion_of_a_real_terminal() -> None:
    # Qwello/zvt zvt/data/1680761818.641601000_pt_ecr.blob: 06 0F with status byte 10, terminal id, EUR.
    done = zf.parse_completion(zf.decode_apdu(bytes.fromhex("060f0a19102952523535490978")).data)
    assert done == zf.Completion(result_code=None, status_byte=0x10, terminal_id="52523535", currency_code=978)


@pytest.mark.parametrize("pan", ["4111111111111111", "5598845555548074", "371449635398431"])
def test_a_pan_is_cut_to_its_last_four_digits_masked_or_not(pan: str) -> None:
    for masked in (True, False):
        bmp = zf.pan_to_bmp22(pan, masked=masked)
        assert zf.masked_card_from_bmp22(bmp) == pan[-4:]
    info = zf.parse_status_information(zf.encode_status_information(
        result_code=0, pan_bmp22=zf.pan_to_bmp22(pan, masked=False)))
    assert pan not in repr(info) and pan[:6] not in repr(info)
    assert info.card.last4 == pan[-4:]


def test_mask_pan_refuses_what_is_not_four_digits() -> None:
    assert mask_pan("************4771") == "4771"
    assert mask_pan("****") is None
    assert mask_pan("12") is None
    with pytest.raises(ValueError):
        MaskedCard(last4="12345")


def test_unknown_bmp_is_a_frame_error() -> None:
    with pytest.raises(zf.ZvtFrameError):
        zf.parse_status_information(bytes.fromhex("2700ee01"))
    with pytest.raises(ValueError):
        zf.encode_password("12345")
