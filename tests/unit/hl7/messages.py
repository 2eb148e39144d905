"""Realistic HL7 v2 messages as a RIS sends them (ORM^O01 v2.3.1/v2.5, OMI^O23 v2.5.1, ADT^A08).

Segments are written field by field (``segment``) so each field sits at its standard position.
"""

from __future__ import annotations

START, END = b"\x0b", b"\x1c\r"


def segment(name: str, fields: dict[int, str]) -> str:
    """A segment with ``fields`` at their positions (1-based), the others empty."""
    values = [""] * (max(fields) if fields else 0)
    for number, value in fields.items():
        values[number - 1] = value
    return "|".join([name, *values])


def msh(
    message_type: str,
    control_id: str,
    version: str = "2.3.1",
    charset: str = "",
    sent: str = "20240315103000",
) -> str:
    """MSH from the RIS to dicomhub (MSH-1 and MSH-2 written out, as on the wire)."""
    route = ["RIS", "RADIOLOGY", "DICOMHUB", "IMAGING"]
    fields = "|".join(
        [*route, sent, "", message_type, control_id, "P", version, "", "", "AL", "NE", "", charset]
    )
    return "MSH|^~\\&|" + fields.rstrip("|")


PID = segment(
    "PID",
    {
        1: "1",
        3: "12345^^^HOSP&1.2.826.0.1.3680043.2.1&ISO^MR~A-998^^^INSURER^PI",
        5: "DOE^JOHN^Q^JR^DR",
        7: "19800101",
        8: "M",
        11: "1 MAIN ST^^SPRINGFIELD^^12345",
    },
)
PV1 = segment(
    "PV1",
    {1: "1", 2: "O", 3: "RAD^R1^B2", 8: "1234^WELBY^MARCUS^^^DR", 19: "V0001"},
)


def orm(
    order_control: str = "NW",
    *,
    control_id: str = "MSG0001",
    placer: str = "PL1001",
    filler: str = "FL2001",
    modality: str = "CT",
    start: str = "20240320093000",
    obr21: str = "",
    version: str = "2.3.1",
    charset: str = "",
    pid: str = PID,
    order_status: str = "SC",
    zds: bool = True,
) -> str:
    """An IHE RAD-4 style ORM^O01: one order, one requested procedure, one step."""
    segments = [
        msh("ORM^O01", control_id, version, charset),
        pid,
        PV1,
        segment(
            "ORC",
            {
                1: order_control,
                2: placer,
                3: filler,
                5: order_status,
                7: f"1^once^^{start}^^R",
                9: "20240315103000",
                12: "5678^HOUSE^GREGORY^^^DR",
            },
        ),
        segment(
            "OBR",
            {
                1: "1",
                2: placer,
                3: filler,
                4: "CTHEAD^CT HEAD W/O CONTRAST^L^P1^Head routine^L",
                13: "Contrast allergy",
                16: "5678^HOUSE^GREGORY^^^DR",
                18: "ACC1001",
                19: "RP1001",
                20: "SPS1001",
                21: obr21,
                24: modality,
                27: f"1^once^^{start}^^R",
                30: "WALK",
                31: "^Headache since 3 days",
                34: "TECH1&NURSE&JOY",
                44: "CT-HEAD^CT of the head^L",
            },
        ),
    ]
    if zds:
        segments.append("ZDS|1.2.826.0.1.3680043.2.1.5.1001^100^Application^DICOM")
    return "\r".join(segments) + "\r"


def omi(
    order_control: str = "NW",
    *,
    control_id: str = "MSG0100",
    charset: str = "UNICODE UTF-8",
    pid: str | None = None,
    ipc_count: int = 1,
) -> str:
    """An IHE RAD-4 style OMI^O23 (v2.5.1): TQ1 timing and an IPC segment per step."""
    pid = pid or segment(
        "PID",
        {
            1: "1",
            3: "P-778^^^HOSP^MR",
            5: "YAMADA^TARO^^^^^L^A~山田^太郎^^^^^L^I~やまだ^たろう^^^^^L^P",
            7: "19751224",
            8: "M",
        },
    )
    segments = [
        msh("OMI^O23^OMI_O23", control_id, "2.5.1", charset),
        pid,
        segment("PV1", {1: "1", 2: "I", 8: "999^NAKAMURA^KEN"}),
        segment("ORC", {1: order_control, 2: "PL-77", 3: "FL-88", 5: "SC", 12: "1^DOC^A"}),
        segment("TQ1", {1: "1", 7: "202403211415", 9: "S^Stat^HL70078"}),
        segment(
            "OBR",
            {
                1: "1",
                2: "PL-77",
                3: "FL-88",
                4: "MRBRAIN^MR Brain^L",
                16: "1^DOC^A",
                44: "MRBRAIN^MR Brain^L",
            },
        ),
    ]
    for n in range(1, ipc_count + 1):
        segments.append(
            segment(
                "IPC",
                {
                    1: "ACC-77",
                    2: "RP-77",
                    3: "1.2.826.0.1.3680043.2.1.5.77",
                    4: f"SPS-77-{n}",
                    5: "MR^Magnetic Resonance^DCM",
                    6: "T1AX^T1 axial brain^L",
                    7: "MRSTATION1",
                    8: "MR ROOM 1",
                    9: "MR1",
                },
            )
        )
    return "\r".join(segments) + "\r"


def adt_a08(
    *,
    control_id: str = "MSG0200",
    name: str = "DOE^JONATHAN^Q",
    birth_date: str = "",
    sex: str = "",
    charset: str = "",
) -> str:
    """An ADT^A08 (update patient information) for patient 12345 of HOSP."""
    return (
        "\r".join(
            [
                msh("ADT^A08^ADT_A01", control_id, "2.5", charset),
                segment("EVN", {1: "A08", 2: "20240316080000"}),
                segment(
                    "PID",
                    {1: "1", 3: "12345^^^HOSP&1.2.826.0.1.3680043.2.1&ISO^MR", 5: name}
                    | ({7: birth_date} if birth_date else {})
                    | ({8: sex} if sex else {}),
                ),
                segment("PV1", {1: "1", 2: "O"}),
            ]
        )
        + "\r"
    )


def frame(message: str | bytes, encoding: str = "utf-8") -> bytes:
    """The MLLP block of a message."""
    data = message.encode(encoding) if isinstance(message, str) else message
    return START + data + END
