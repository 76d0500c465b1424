"""HL7 v2 gateway: one MLLP frame in, its ACK out, with Temporal in between.

AA is answered only after OrderService returned (the start or update is durable in
Temporal); a message that parses but cannot be applied now gets AE (unknown order,
refused transition, Temporal unreachable: the sender keeps it and retries); a message
we cannot use gets AR (malformed, unsupported version/type/event, missing segment).
Resends are harmless: starts use the accession as workflow id, events use
"HL7:<sender>:<MSH-10>:<content hash>" as update id (ParsedMessage.message_key), so a
duplicate is acknowledged AA and changes nothing while a different message that reuses
an MSH-10 is applied.

Logs carry message type, control id and accession; patient names and MRNs stay out of INFO.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from datetime import UTC, datetime

from opentelemetry import trace

from radflow.domain.definitions import EventSource
from radflow.domain.hl7.ack import AckCode, AckHeader, build_ack, build_batch
from radflow.domain.hl7.decode import Decoded, EncodingChars, decode, split_batch
from radflow.domain.hl7.grammar import load_tables
from radflow.domain.hl7.limits import Hl7Limits
from radflow.domain.hl7.mapping import CommandKind, Hl7Command, MappingConfig, map_message
from radflow.domain.hl7.parse import ErrorCode, Hl7Error, ParsedMessage, clip, parse_message
from radflow.domain.hl7.validate import validate_commands
from radflow.domain.order import EventKind, OrderState
from radflow.domain.transitions import apply_event
from radflow.gateways.mllp import MllpLimits, serve_mllp
from radflow.infra import metrics
from radflow.infra.tls import server_context
from radflow.infra.attachments import AttachmentStore, attachment_store
from radflow.service.ordering import EventRejected, OrderError, OrderNotFound, OrderService, TemporalUnavailable
from radflow.infra.settings import Settings

log = logging.getLogger("radflow.hl7")
# Messages this large (a long report, a Base64 document) are parsed in a thread: up to ~0.5 s
# of CPU that would otherwise hold up every other connection of the listener. Small ones stay
# on the loop, where a thread hop would cost more than the parse.
_THREAD_ABOVE_CHARS = 64 * 1024
tracer = trace.get_tracer("radflow.hl7")
# The ACK code decided for the message being handled (one message at a time per connection task).
_ack_code: contextvars.ContextVar[str] = contextvars.ContextVar("hl7_ack_code", default="")


class _Nack(Exception):
    def __init__(self, code: AckCode, error: ErrorCode, reason: str, location: str = "") -> None:
        super().__init__(reason)
        self.code, self.error, self.reason, self.location = code, error, reason, location


class Hl7Gateway:
    def __init__(self, service: OrderService, settings: Settings, attachments: AttachmentStore | None = None) -> None:
        self.service = service
        self.settings = settings
        self.attachments = attachments or attachment_store(settings)
        self.config = MappingConfig.from_settings(settings)
        self.limits = Hl7Limits.from_settings(settings)
        load_tables()  # the segment grammar, so the first message does not wait for it

    async def serve(self, host: str | None = None, port: int | None = None) -> asyncio.Server:
        """Start the MLLP listener for this gateway (settings give the defaults)."""
        return await serve_mllp(
            self.handle,
            host if host is not None else self.settings.mllp_host,
            port if port is not None else self.settings.mllp_port,
            limits=mllp_limits(self.settings),
            tls=server_context(self.settings, "mllp"),
        )

    # ------------------------------------------------------------------ frames
    async def handle(self, raw: bytes) -> bytes:
        """Frame payload in, ACK payload out; a batch (or several MSH) gets a batch of ACKs.

        b"" when the one message of the frame asked for no ACK (enhanced mode, MSH-15).
        """
        started = time.perf_counter()
        decoded = decode(raw)
        envelope = split_batch(decoded.text)
        if not envelope.messages:
            ack = self._ack(AckHeader(), AckCode.AR, "empty message", ErrorCode.SEGMENT_SEQUENCE)
            metrics.observe_hl7("unreadable", AckCode.AR.value, started)
            return ack.encode(decoded.codec, errors="replace")
        if len(envelope.messages) > self.limits.max_messages:
            # Refused whole, before any of them is applied: one answer, not thousands of Temporal calls.
            reason = f"frame holds {len(envelope.messages)} messages, more than the limit of {self.limits.max_messages}"
            log.info("hl7 frame rejected: %s", reason)
            ack = self._ack(AckHeader.from_text(envelope.messages[0]), AckCode.AR, reason, ErrorCode.SEGMENT_SEQUENCE)
            metrics.observe_hl7(metrics.hl7_type_of(envelope.messages[0]), AckCode.AR.value, started)
            return ack.encode(decoded.codec, errors="replace")
        answers = [await self._handle_message(text, decoded) for text in envelope.messages]
        acks = [a for a in answers if a]  # enhanced mode: MSH-15 may ask for no commit ACK
        if not envelope.batch and len(answers) == 1 and not acks:
            return b""
        if envelope.batch or len(answers) > 1:
            enc = EncodingChars.from_msh(envelope.header or envelope.messages[0])
            out = build_batch(acks, envelope.header, enc, application=self.settings.hl7_sending_application,
                              facility=self.settings.hl7_sending_facility)
        else:
            out = acks[0]
        return out.encode(decoded.codec, errors="replace")

    async def _handle_message(self, text: str, decoded: Decoded) -> str:
        """One message: its span (the root of the trace through the order workflow) and its metrics."""
        started = time.perf_counter()
        message_type = metrics.hl7_type_of(text)
        _ack_code.set("")
        with tracer.start_as_current_span("hl7 receive", kind=trace.SpanKind.SERVER,
                                          attributes={"hl7.message_type": message_type}) as span:
            ack = await self._answer_message(text, decoded)
            code = _ack_code.get()
            span.set_attribute("hl7.ack_code", code)
        metrics.observe_hl7(message_type, code, started)
        return ack

    async def _answer_message(self, text: str, decoded: Decoded) -> str:
        header = AckHeader.from_text(text)
        try:
            if len(text) > _THREAD_ABOVE_CHARS:
                pm, commands = await asyncio.to_thread(self._interpret, text, decoded)
            else:
                pm, commands = self._interpret(text, decoded)
        except Hl7Error as err:
            log.info("hl7 rejected control=%s: %s", clip(header.control_id) or "-", err.reason)
            return self._ack(header, AckCode.AR, err.reason, err.code, err.location)
        except Exception:
            # Parsing and mapping are pure: what fails here fails the same way on every
            # resend, so AE ("retry") would block the sender's queue forever. AR it, and log
            # the bug with its traceback.
            log.exception("hl7 control=%s: message could not be interpreted", clip(header.control_id) or "-")
            return self._ack(header, AckCode.AR, "message could not be interpreted", ErrorCode.DATA_TYPE)
        if commands and commands[0].kind == CommandKind.UNSUPPORTED:
            cmd = commands[0]
            log.info("hl7 %s rejected control=%s: %s", cmd.label, cmd.control_id, cmd.reason)
            return self._ack(header, AckCode.AR, cmd.reason, ErrorCode(cmd.error_code), cmd.location)
        applied: list[str] = []
        try:
            if len(commands) > 1:
                _number_effects(commands)
                await self._preflight(commands)
            for cmd in commands:
                await self._execute(cmd)
                # Accession or placer number only: an MRN must not reach the INFO log below.
                applied.append(cmd.accession or cmd.placer_number or f"patient change {len(applied) + 1}")
        except _Nack as nack:
            reason = nack.reason
            if applied:
                # Only a failure after the preflight (Temporal lost mid-message) gets here: say
                # what was applied; the resend re-applies nothing twice and completes the rest.
                reason = f"partly applied (orders {', '.join(applied)}), the rest not: {reason}; resend to complete"
            log.info("hl7 %s control=%s: %s %s", pm.label, pm.control_id, nack.code.value, reason)
            return self._ack(header, nack.code, reason, nack.error, nack.location)
        return self._ack(header, AckCode.AA)

    def _interpret(self, text: str, decoded: Decoded) -> tuple[ParsedMessage, list[Hl7Command]]:
        """Parse, map and validate: pure work, O(message size) within the limits."""
        pm = parse_message(text, decoded.codec, self.limits)
        commands = map_message(pm, self.config, decoded.charset)
        if not (commands and commands[0].kind == CommandKind.UNSUPPORTED):
            validate_commands(commands, pm.control_id, self.limits)
        return pm, commands

    def _ack(self, header: AckHeader, code: AckCode, text: str = "", error: ErrorCode | None = None,
             location: str = "") -> str:
        """The ACK text, or "" when the sender's MSH-15 asks for none in this case."""
        _ack_code.set(code.value)
        if not header.wants_ack(code):
            log.debug("hl7 control=%s: no %s sent (MSH-15 %s)", clip(header.control_id) or "-", code.value,
                      header.accept_ack_type)
            return ""
        return build_ack(header, code, text, error, location, application=self.settings.hl7_sending_application,
                         facility=self.settings.hl7_sending_facility)

    # ------------------------------------------------------------------ commands
    async def _execute(self, cmd: Hl7Command) -> None:
        try:
            if cmd.kind == CommandKind.START_ORDER:
                await self._start(cmd)
            elif cmd.kind == CommandKind.ORDER_EVENT:
                await self._order_event(cmd)
            elif cmd.kind == CommandKind.PATIENT_FANOUT:
                await self._patient_fanout(cmd)
        except _Nack:
            raise
        except OrderNotFound as err:
            raise _Nack(AckCode.AE, ErrorCode.UNKNOWN_KEY, str(err), _segment_of(cmd)) from err
        except EventRejected as err:
            raise _Nack(AckCode.AE, ErrorCode.INTERNAL_ERROR, f"not applied: {err}", _segment_of(cmd)) from err
        except TemporalUnavailable as err:
            raise _Nack(AckCode.AE, ErrorCode.INTERNAL_ERROR, "order store unavailable, retry later") from err
        except Exception as err:  # e.g. the client never connected: never AA without Temporal's answer
            log.warning("hl7 %s control=%s failed: %s", cmd.label, cmd.control_id, type(err).__name__)
            raise _Nack(AckCode.AE, ErrorCode.INTERNAL_ERROR, "internal error, retry later") from err

    async def _preflight(self, commands: list[Hl7Command]) -> None:
        """A message with several orders is applied wholly or not at all: before any effect,
        every target order must exist and accept its event (a dry run of the pure
        transition on its current state). Starts and patient fan-outs need no check: a start
        is idempotent and a fan-out skips orders the change does not apply to."""
        now = datetime.now(UTC)
        for n, cmd in enumerate(commands, start=1):
            if cmd.kind != CommandKind.ORDER_EVENT or cmd.event is None:
                continue
            try:
                accession, state = await self._resolve(cmd)
            except OrderNotFound as err:
                raise _Nack(AckCode.AE, ErrorCode.UNKNOWN_KEY, f"nothing applied: order {n} of the message: {err}",
                            _segment_of(cmd)) from err
            except OrderError as err:  # Temporal unavailable, or a query it could not answer
                raise _Nack(AckCode.AE, ErrorCode.INTERNAL_ERROR, "order store unavailable, retry later") from err
            cmd.accession = accession
            where = _segment_of(cmd)
            event = self._for(cmd, accession)
            key = event.message_key or event.control_id
            if key and key in state.seen_control_ids:
                continue  # a resend: applying it again is a no-op
            outcome = apply_event(state.model_copy(deep=True), event, now)
            if not outcome.ok:
                raise _Nack(AckCode.AE, ErrorCode.INTERNAL_ERROR,
                            f"nothing applied: order {n} of the message ({accession}): {outcome.error}", where)

    async def _resolve(self, cmd: Hl7Command) -> tuple[str, OrderState]:
        """The target order's accession and state (accession field first, then the placer number)."""
        if cmd.accession:
            try:
                return cmd.accession, await self.service.get_state(cmd.accession)
            except OrderNotFound:
                if not cmd.placer_number:
                    raise
        accession = await self._by_placer(cmd)
        return accession, await self.service.get_state(accession)

    async def _start(self, cmd: Hl7Command) -> None:
        order = cmd.order
        assert order is not None
        if not order.accession:
            accession = await self.service.allocate_accession(cmd.placer_key)
            order = order.model_copy(update={"accession": accession})
            log.info("hl7 %s control=%s: accession %s allocated", cmd.label, cmd.control_id, accession)
        placer_key = cmd.placer_key if cmd.placer_number else ""
        result = await self.service.start_order(order, EventSource.HL7, cmd.control_id, cmd.repairs, placer_key=placer_key)
        log.info("hl7 %s control=%s accession=%s %s", cmd.label, cmd.control_id, order.accession,
                 "started" if result.created else "already exists (resend)")

    async def _order_event(self, cmd: Hl7Command) -> None:
        assert cmd.event is not None
        if cmd.documents:
            await self._store_documents(cmd)
        accession = cmd.accession or await self._by_placer(cmd)
        try:
            result = await self.service.send_event(accession, self._for(cmd, accession))
        except OrderNotFound:
            # The accession field may hold a filler number that is not the accession;
            # the placer number still finds orders whose accession radflow allocated.
            other = await self._by_placer(cmd) if cmd.accession and cmd.placer_number else ""
            if not other or other == accession:
                raise
            accession = other
            result = await self.service.send_event(accession, self._for(cmd, accession))
        log.info("hl7 %s control=%s accession=%s -> %s%s", cmd.label, cmd.control_id, accession, result.status.value,
                 " (resend)" if result.duplicate else "")

    async def _store_documents(self, cmd: Hl7Command) -> None:
        # Durable before the event reaches Temporal: the workflow only holds their hashes.
        try:
            for data in cmd.documents.values():
                await asyncio.to_thread(self.attachments.put, data)
        except OSError as err:
            log.warning("hl7 %s control=%s: report document not stored: %s", cmd.label, cmd.control_id, type(err).__name__)
            raise _Nack(AckCode.AE, ErrorCode.INTERNAL_ERROR, "report document could not be stored, retry later") from err

    async def _by_placer(self, cmd: Hl7Command) -> str:
        found = await self.service.accession_for_placer(cmd.placer_number, cmd.placer_key) if cmd.placer_number else None
        if not found:
            raise OrderNotFound(f"unknown order (placer {cmd.placer_number or '-'}, accession {cmd.accession or '-'})")
        return found

    @staticmethod
    def _for(cmd: Hl7Command, accession: str):
        event = cmd.event
        assert event is not None
        if event.order is not None and event.order.accession != accession:
            event = event.model_copy(update={"order": event.order.model_copy(update={"accession": accession})})
        return event

    async def _patient_fanout(self, cmd: Hl7Command) -> None:
        """Send the patient event to every open order of the MRN.

        OrderService finds them in its order index (strongly consistent: every order
        acknowledged before this message is found), plus visibility for orders older than
        the index. Every update id is "HL7:<message key>:<accession>", so a resend changes
        nothing. After a merge the reached orders move to the surviving MRN in the index.
        """
        reached = await self._sweep(cmd, set())
        event = cmd.event
        if event is not None and event.kind == EventKind.PATIENT_MERGED and event.patient is not None:
            await self.service.move_patient_orders(cmd.fanout_mrn, event.patient.mrn, sorted(reached))
        log.info("hl7 %s control=%s: %d open order(s) notified", cmd.label, cmd.control_id, len(reached))

    async def _sweep(self, cmd: Hl7Command, done: set[str]) -> set[str]:
        accessions = [a for a in await self.service.open_orders_of_patient(cmd.fanout_mrn) if a not in done]
        results = await asyncio.gather(*(self._notify(cmd, a) for a in accessions), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return done | set(accessions)

    async def _notify(self, cmd: Hl7Command, accession: str) -> None:
        assert cmd.event is not None
        key = cmd.event.message_key
        event = cmd.event.model_copy(update={"control_id": f"{cmd.control_id}:{accession}",
                                             "message_key": f"{key}:{accession}" if key else ""})
        try:
            result = await self.service.send_event(accession, event)
        except (EventRejected, OrderNotFound) as err:
            # A closed order (cancelled, in its retention period) or one already gone:
            # the patient change does not apply to it, which is not the sender's error.
            log.info("hl7 %s control=%s accession=%s not applied: %s", cmd.label, cmd.control_id, accession, err)
            return
        log.info("hl7 %s control=%s accession=%s -> %s%s", cmd.label, cmd.control_id, accession, result.status.value,
                 " (unchanged)" if not result.changed else "")


def mllp_limits(settings: Settings) -> MllpLimits:
    return MllpLimits(
        max_frame=settings.mllp_max_frame,
        max_connections=settings.mllp_max_connections,
        idle_timeout_s=settings.mllp_idle_timeout_s,
        frame_timeout_s=settings.mllp_frame_timeout_s,
        write_timeout_s=settings.mllp_write_timeout_s,
        handshake_timeout_s=settings.mllp_tls_handshake_timeout_s,
    )


def _segment_of(cmd: Hl7Command) -> str:
    """ERR-2 for a command that could not be applied: the segment that names its target."""
    if cmd.kind == CommandKind.PATIENT_FANOUT:
        return "PID"
    if cmd.event is not None and cmd.event.kind == EventKind.REPORT:
        return "OBR"
    return "ORC"


def _number_effects(commands: list[Hl7Command]) -> None:
    """One resend key per effect: two groups of one message for the same order (a P and an F
    report, two PIDs of one MRN) must not look like a resend of each other."""
    for n, cmd in enumerate(commands, start=1):
        if cmd.event is not None and cmd.event.message_key:
            cmd.event = cmd.event.model_copy(update={"message_key": f"{cmd.event.message_key}#{n}"})
