"""The HL7 v2 listener: MLLP over TCP, orders and patient updates into the worklist.

Each connection carries one message at a time: the message is read (MLLP block: VT, message,
FS CR), decoded, mapped (``mapping``), applied to the worklist in a worker thread (the
database is blocking) and only then acknowledged.  The answer is an ACK with the original
MSH-10 in MSA-2: MSA-1 AA when applied, AE (application error) or AR (reject) with the reason
in MSA-3 and an ERR segment otherwise.  One log line per message.

Only peers in ``hl7_allowed_hosts`` may connect (any peer when the list is empty and the
listener is bound to loopback).  Bounded: a message larger than ``hl7_max_message_size`` or
bytes that are not MLLP close the connection, and so does a connection silent for
``hl7_idle_timeout`` seconds.  Several
dicomhub processes may run listeners on the same port (SO_REUSEPORT): the worklist is in the
shared database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import ipaddress
import logging
import threading
from typing import Any

import hl7
from hl7.mllp import HL7StreamReader, HL7StreamWriter, start_hl7_server
from hl7.mllp.streams import CARRIAGE_RETURN, END_BLOCK, START_BLOCK

from dicomhub.errors import DicomhubError
from dicomhub.hl7.mapping import (
    CHARACTER_SETS,
    AckCode,
    Action,
    HL7Error,
    MappingOptions,
    OrderUpdate,
    PatientUpdate,
    ReceivedMessage,
    decode,
    map_message,
    read_header,
)
from dicomhub.index.worklist import WorklistRepository
from dicomhub.runtime import Runtime

LOG = logging.getLogger("dicomhub.hl7")
SOURCE = "hl7"
"""The ``source`` of worklist items created from HL7 orders."""

ERROR_NAMES = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "207": "Application internal error",
}
"""HL7 table 0357 (message error condition codes) used in ERR segments."""

_FALLBACK_HEADER = "MSH|^~\\&|||||||||P|2.5"
_LEADING_BYTES = b"\r\n"
"""Bytes some senders put between two blocks; skipped (a few) before a start block."""


class _Close(Exception):
    """The connection is to be closed; the text says why."""


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def acknowledgement(
    request: Any | None, code: AckCode, text: str = "", error_code: str = ""
) -> str:
    """The ACK of ``request`` (a python-hl7 message, None when it could not be parsed).

    Its MSH swaps the request's sender and receiver and keeps its separators, processing ID,
    version and character set; MSA-2 is the request's MSH-10.  A NAK carries ``text`` in MSA-3
    and an ERR segment with ``error_code`` (HL7 table 0357): ERR-3 and ERR-8 from v2.5 on,
    ERR-1 before.
    """
    if request is None:
        request = hl7.parse(_FALLBACK_HEADER)
    msh = request.segment("MSH")

    def raw(number: int) -> str:
        return str(msh[number]) if number < len(msh) else ""

    component, subcomponent = request.separators[3], request.separators[4]
    event = ""
    with contextlib.suppress(IndexError, TypeError):
        event = str(msh.extract_field(1, 9, 1, 2)).strip()
    version = raw(12) or "2.5"
    now = datetime.datetime.now().astimezone().strftime("%Y%m%d%H%M%S%z")
    header = [
        "MSH",
        raw(1) or "|",
        raw(2) or "^~\\&",
        raw(5),
        raw(6),
        raw(3),
        raw(4),
        now,
        "",
        f"ACK{component}{event}{component}ACK" if event else "ACK",
        hl7.generate_message_control_id(),
        raw(11) or "P",
        version,
        "",
        "",
        "",
        "",
        "",
        raw(18),
    ]
    while header[-1] == "":
        header.pop()
    segments = [header, ["MSA", str(code), raw(10), request.escape(text[:200])]]
    if code is not AckCode.ACCEPT and error_code:
        name = ERROR_NAMES.get(error_code, "")
        if _version(version) >= (2, 5):
            segments.append(
                [
                    "ERR",
                    "",
                    "",
                    component.join([error_code, name, "HL70357"]),
                    "E",
                    "",
                    "",
                    "",
                    request.escape(text),
                ]
            )
        else:
            coded = subcomponent.join([error_code, name, "HL70357"])
            segments.append(["ERR", component * 3 + coded])
    message = request.create_message(
        [request.create_segment([request.create_field([v]) for v in s]) for s in segments]
    )
    return str(message)


class HL7Listener:
    """MLLP listener running its own event loop in a thread (``start`` / ``stop``)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        port: int | None = None,
        worklist: WorklistRepository | None = None,
        reuse_port: bool = False,
    ) -> None:
        settings = runtime.settings
        self.settings = settings
        self.bind = settings.bind
        self.requested_port = settings.hl7_port if port is None else port
        if self.requested_port is None:
            raise ValueError("no HL7 port: set hl7_port")
        self.worklist = worklist if worklist is not None else WorklistRepository(runtime.db)
        self.options = MappingOptions.from_settings(settings)
        self.max_message_size = settings.hl7_max_message_size
        self.idle_timeout = settings.hl7_idle_timeout
        self.reuse_port = reuse_port
        self.allowed_networks = [
            ipaddress.ip_network(host, strict=False) for host in settings.hl7_allowed_hosts
        ]
        self.allow_any = not self.allowed_networks and settings.is_loopback
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="dicomhub-hl7"
        )
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._port = 0

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._port

    def start(self) -> None:
        """Bind and serve in a background thread; raise OSError if the port is taken."""
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="dicomhub-hl7", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(timeout=30)
        except BaseException:
            self._stop_loop()
            raise
        LOG.info("HL7 listener (MLLP) on %s:%d", self.bind, self.port)
        if not self.allow_any and not self.allowed_networks:
            LOG.warning(
                "HL7 listener on a network address without hl7_allowed_hosts: "
                "every connection is refused"
            )

    async def _listen(self) -> None:
        self._server = await start_hl7_server(
            self._on_connection,
            self.bind,
            self.requested_port,
            limit=self.max_message_size,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Stop listening and close the open connections (a message being applied is
        finished first; its sender gets no answer and sends it again)."""
        if self._thread is None:
            self.executor.shutdown(wait=False)
            if not self.loop.is_closed():
                self.loop.close()
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.wait(list(self._connections), timeout=5)
            if self._server is not None:
                await self._server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
        except (TimeoutError, concurrent.futures.TimeoutError):
            LOG.warning("HL7 listener did not stop within 10 s")
        self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.executor.shutdown(wait=True, cancel_futures=True)
        if not self.loop.is_running():
            self.loop.close()

    # One connection -----------------------------------------------------------------------

    async def _on_connection(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = _peer(writer)
        try:
            if not self._allowed(writer):
                raise _Close("the address is not in hl7_allowed_hosts")
            while True:
                raw = await self._read_message(reader)
                if raw is None:
                    break
                answer = await self._handle(raw, peer)
                writer.writeblock(answer)
                await asyncio.wait_for(writer.drain(), self.idle_timeout)
        except _Close as exc:
            LOG.warning("HL7 connection from %s closed: %s", peer, exc)
        except (ConnectionError, TimeoutError) as exc:
            LOG.info("HL7 connection from %s lost: %s", peer, exc or type(exc).__name__)
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _allowed(self, writer: HL7StreamWriter) -> bool:
        if self.allow_any:
            return True
        address = writer.get_extra_info("peername")
        try:
            ip = ipaddress.ip_address(address[0])
        except (TypeError, IndexError, ValueError):
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.allowed_networks)

    async def _read_message(self, reader: HL7StreamReader) -> bytes | None:
        """The next MLLP block's content; None when the peer closed between messages."""
        skipped = 0
        while True:
            try:
                byte = await asyncio.wait_for(reader.readexactly(1), self.idle_timeout)
            except asyncio.IncompleteReadError:
                return None
            except TimeoutError as exc:
                raise _Close(f"idle for {self.idle_timeout:g} s") from exc
            if byte == START_BLOCK:
                break
            if byte in _LEADING_BYTES and skipped < 16:
                skipped += 1
                continue
            raise _Close(f"not MLLP: byte 0x{byte[0]:02x} where a message must begin")
        try:
            block: bytes = await asyncio.wait_for(
                reader.readuntil(END_BLOCK + CARRIAGE_RETURN), self.idle_timeout
            )
        except asyncio.LimitOverrunError as exc:
            raise _Close(f"message larger than {self.max_message_size} bytes") from exc
        except asyncio.IncompleteReadError as exc:
            raise _Close("connection closed in the middle of a message") from exc
        except TimeoutError as exc:
            raise _Close(f"message not complete after {self.idle_timeout:g} s") from exc
        return block[: -len(END_BLOCK + CARRIAGE_RETURN)]

    async def _handle(self, raw: bytes, peer: str) -> bytes:
        """Apply one message; the encoded acknowledgement."""
        request: Any | None = None
        received: ReceivedMessage | None = None
        outcome = ""
        try:
            request = read_header(raw)
            received = decode(
                raw, request, default_character_set=self.options.default_character_set
            )
            request = received.message
            mapped = map_message(received, self.options)
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(self.executor, self._apply, mapped)
            code, text, error_code = AckCode.ACCEPT, "", ""
        except HL7Error as exc:
            code, text, error_code = exc.ack_code, exc.message, exc.error_code
        except DicomhubError as exc:
            code, text, error_code = AckCode.ERROR, exc.message, "207"
        except Exception:
            LOG.exception("HL7 message from %s could not be applied", peer)
            code, text, error_code = AckCode.ERROR, "internal error; not applied", "207"
        kind = received.message_type if received else _header_type(request)
        control_id = received.control_id if received else _header_field(request, 10)
        LOG.log(
            logging.INFO if code is AckCode.ACCEPT else logging.WARNING,
            "HL7 %s %s from %s: %s -> %s",
            kind or "?",
            control_id or "?",
            peer,
            outcome or text,
            code,
        )
        answer = acknowledgement(request, code, text, error_code)
        codec = CHARACTER_SETS[received.character_set][0] if received else "latin_1"
        return answer.encode(codec, errors="replace")

    def _apply(self, mapped: list[OrderUpdate] | PatientUpdate) -> str:
        """Apply the changes to the worklist (in a worker thread); what was done."""
        if isinstance(mapped, PatientUpdate):
            count = self.worklist.update_patient(
                mapped.patient_id, mapped.issuer_of_patient_id, mapped.changes
            )
            issuer = f" ({mapped.issuer_of_patient_id})" if mapped.issuer_of_patient_id else ""
            return f"patient {mapped.patient_id}{issuer}: {count} item(s) updated"
        done = []
        for order in mapped:
            if order.action is Action.CANCEL:
                count = self.worklist.cancel_order(order.order_key)
                done.append(f"order {order.order_key} {order.order_control}: {count} cancelled")
            else:
                item_id = self.worklist.upsert_order(order.order_key, order.dataset, source=SOURCE)
                done.append(f"order {order.order_key} {order.order_control}: item {item_id}")
        return "; ".join(done)


def _peer(writer: HL7StreamWriter) -> str:
    address = writer.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "?")


def _header_field(request: Any | None, number: int) -> str:
    if request is None:
        return ""
    try:
        return str(request.segment("MSH").extract_field(1, number)).strip()
    except (KeyError, IndexError, TypeError):
        return ""


def _header_type(request: Any | None) -> str:
    if request is None:
        return ""
    try:
        msh = request.segment("MSH")
        code = str(msh.extract_field(1, 9, 1, 1)).strip()
        event = str(msh.extract_field(1, 9, 1, 2)).strip()
    except (KeyError, IndexError, TypeError):
        return ""
    return f"{code}^{event}" if event else code
