"""The one settings object: environment ``DICOMHUB_*``, then a TOML file, then defaults.

Every field carries a description; ``dicomhub config`` prints the effective configuration with
those descriptions as comments.  Remote application entities ("peers") are declared in the TOML
file as ``[peers.NAME]`` tables, forwarding rules as ``[[forward]]`` tables.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

AE_TITLE_PATTERN = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


class Service(StrEnum):
    """DICOM services a peer may be allowed to use on dicomhub."""

    VERIFICATION = "verification"
    STORAGE = "storage"
    QUERY = "query"
    RETRIEVE = "retrieve"
    WORKLIST = "worklist"
    MPPS = "mpps"
    STORAGE_COMMITMENT = "storage-commitment"
    PRINT = "print"


def validate_ae_title(value: str) -> str:
    """Check a value is a valid AE title (PS3.5 AE VR: 1-16 chars, no backslash/control)."""
    stripped = value.strip()
    if not stripped or not AE_TITLE_PATTERN.match(value):
        raise ValueError(f"invalid AE title {value!r}: 1-16 printable characters, no backslash")
    return stripped


class PeerConfig(BaseModel):
    """A remote application entity dicomhub knows by name."""

    ae_title: str = Field(description="The peer's AE title.")
    host: str = Field(description="Host name or address the peer listens on.")
    port: int = Field(ge=1, le=65535, description="The peer's DICOM port.")
    services: list[Service] = Field(
        default_factory=lambda: list(Service),
        description="Services the peer may use on dicomhub (default: all).",
    )

    @field_validator("ae_title")
    @classmethod
    def _check_ae_title(cls, value: str) -> str:
        return validate_ae_title(value)


class ForwardRule(BaseModel):
    """Send every stored instance that matches the criteria to the destination peers.

    Each criterion is a list of values of which any may match (C-FIND wildcards ``*`` and
    ``?`` allowed); an empty or absent criterion matches anything.  Every criterion given must
    match.  Destinations are peer names: configured ``[peers.NAME]`` or run-time peers in the
    database, so an unknown name is reported when forwarding, not when loading.
    """

    name: str = Field(
        min_length=1, max_length=64, description="Name of the rule (shown in the queue)."
    )
    destinations: list[str] = Field(
        min_length=1, description="Names of the peers that receive the matching instances."
    )
    calling_ae_title: list[str] = Field(
        default_factory=list, description="AE titles of the senders (any of them)."
    )
    called_ae_title: list[str] = Field(
        default_factory=list, description="AE titles the instances were sent to (any of them)."
    )
    modality: list[str] = Field(default_factory=list, description="Modality values (any).")
    sop_class_uid: list[str] = Field(default_factory=list, description="SOP Class UIDs (any).")
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="DICOM keyword -> value matched against the instance's header as a "
        "C-FIND key would be (wildcards, ranges, value lists).",
    )
    commit: bool = Field(
        default=False,
        description="After each batch delivered to a destination, ask it for storage "
        "commitment of those instances (waiting up to commitment_wait seconds for the "
        "report on the association; later reports arrive on the listener).  See "
        "`dicomhub commitments --role scu`.",
    )

    @field_validator("destinations")
    @classmethod
    def _check_destinations(cls, value: list[str]) -> list[str]:
        names = [name.strip() for name in value]
        if any(not name for name in names):
            raise ValueError("a destination must be a peer name")
        return names

    @field_validator("attributes")
    @classmethod
    def _check_attributes(cls, value: dict[str, str]) -> dict[str, str]:
        from pydicom.datadict import dictionary_VR, keyword_dict

        for keyword in value:
            if keyword not in keyword_dict:
                raise ValueError(f"{keyword!r} is not a DICOM keyword")
            if dictionary_VR(keyword) == "SQ":
                raise ValueError(f"{keyword} is a sequence; match one of its items' keys")
        return value


DuplicatePolicy = Literal["reject", "replace"]
WorklistStationFilter = Literal["never", "when_empty", "always"]
WorklistItemStatus = Literal["SCHEDULED", "IN PROGRESS", "COMPLETED", "DISCONTINUED", "CANCELLED"]
_ACTIVE_WORKLIST_STATUSES: tuple[WorklistItemStatus, ...] = ("SCHEDULED", "IN PROGRESS")


class Settings(BaseSettings):
    """Effective dicomhub configuration."""

    model_config = SettingsConfigDict(env_prefix="DICOMHUB_", extra="forbid")

    ae_title: str = Field("DICOMHUB", description="AE title dicomhub answers to.")
    dicom_port: int = Field(11112, ge=0, le=65535, description="TCP port of the DICOM listener.")
    bind: str = Field(
        "127.0.0.1",
        description="Address to listen on. On loopback everything is open; on a network "
        "address only declared peers may connect unless allow_unknown_calling_ae is true.",
    )
    http_port: int = Field(
        8042,
        ge=0,
        le=65535,
        description="TCP port of the HTTP server (REST API, DICOMweb, web UI), on `bind` too.  "
        "On loopback it is open to anyone unless HTTP users or tokens exist "
        "(`dicomhub users`); on a network address `dicomhub serve` refuses to start without "
        "them.",
    )
    http_max_upload: int = Field(
        4 << 30,
        ge=1024,
        description="Largest request body, in bytes, of an upload (STOW-RS, REST upload); a "
        "larger one is refused with 413 and nothing of it is kept.",
    )
    http_base_url: str = Field(
        "",
        description="Public address of the HTTP server as clients reach it (e.g. "
        "https://pacs.example.org), used in the URLs of DICOMweb answers (RetrieveURL, "
        "BulkDataURI); empty: taken from each request's Host header.",
    )
    data_dir: Path = Field(
        Path("./dicomhub-data"), description="Folder for the blob store and the SQLite index."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the index; default: an SQLite file in data_dir. "
        "Use postgresql+psycopg://user@host/db for PostgreSQL.",
    )
    storage_dir: Path | None = Field(
        None, description="Root of the blob store; default: data_dir/storage."
    )
    max_associations: int = Field(
        32, ge=1, description="Maximum number of simultaneous inbound associations."
    )
    max_pdu_size: int = Field(
        262144, ge=0, description="Largest P-DATA PDU dicomhub accepts (bytes, 0 = unlimited)."
    )
    acse_timeout: float = Field(
        30.0, gt=0, description="ARTIM: seconds to wait for association messages."
    )
    dimse_timeout: float = Field(60.0, gt=0, description="Seconds to wait for DIMSE messages.")
    network_timeout: float = Field(
        120.0, gt=0, description="Seconds an idle association is kept open."
    )
    tls_certificate: Path | None = Field(
        None,
        description="PEM certificate (chain) of the DICOM port.  With tls_private_key, the "
        "port speaks DICOM over TLS only (PS3.15 B.1; TLS 1.2 or newer).",
    )
    tls_private_key: Path | None = Field(
        None, description="PEM private key of tls_certificate (without a passphrase)."
    )
    tls_ca_certificates: Path | None = Field(
        None,
        description="PEM bundle of the authorities whose client certificates are accepted; "
        "when set, every peer must present one (mutual TLS).",
    )
    allow_unknown_calling_ae: bool | None = Field(
        None,
        description="Accept calling AE titles that are not declared peers. "
        "Unset: true when bound to loopback, false otherwise.",
    )
    check_called_ae: bool | None = Field(
        None,
        description="Refuse associations whose called AE title is not ae_title. "
        "Unset: false when bound to loopback, true otherwise.",
    )
    check_peer_host: bool = Field(
        False,
        description="Also require a declared peer to connect from its declared host.",
    )
    duplicate_policy: DuplicatePolicy = Field(
        "reject",
        description="What to do with a SOP instance UID already stored with other content: "
        "'reject' (failure status, the stored copy is kept) or 'replace' (the new copy "
        "replaces the old one; logged and recorded in the change log).",
    )
    engine: Literal["asyncio", "pynetdicom"] = Field(
        "asyncio",
        description="DICOM network engine: dicomhub's own 'asyncio' engine, or 'pynetdicom'.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="DICOM listener processes sharing the port (asyncio engine; a new association "
        "goes to the worker serving the fewest); "
        "max_associations applies to each.",
    )
    case_insensitive_pn: bool = Field(
        True, description="Match person names (PN) without regard to case in C-FIND."
    )
    worklist_filter_by_calling_ae: WorklistStationFilter = Field(
        "when_empty",
        description="Modality Worklist: which items a calling AE sees.  'when_empty': a "
        "query that does not match on ScheduledStationAETitle (absent, empty or '*') returns "
        "only items scheduled for the calling AE title (one of the item's "
        "ScheduledStationAETitle values) or for no station; 'always': that restriction "
        "applies to every query, on top of the query's own keys; 'never': the query's keys "
        "alone decide (true and false mean 'when_empty' and 'never').",
    )
    worklist_statuses: list[WorklistItemStatus] = Field(
        default_factory=lambda: list(_ACTIVE_WORKLIST_STATUSES),
        description="Modality Worklist: statuses of the items a query returns (SCHEDULED, "
        "IN PROGRESS, COMPLETED, DISCONTINUED, CANCELLED).",
    )
    log_level: str = Field("INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR.")
    peers: dict[str, PeerConfig] = Field(
        default_factory=dict, description="Remote AEs, declared as [peers.NAME] tables."
    )
    forward: list[ForwardRule] = Field(
        default_factory=list,
        description="Forwarding rules, declared as [[forward]] tables: each stored instance "
        "that matches a rule is queued in the database and sent to the rule's peers.",
    )
    forward_max_attempts: int = Field(
        10,
        ge=1,
        description="Attempts to send an instance to a peer before it is moved to the failed "
        "state (see `dicomhub queue`).",
    )
    forward_retry_initial: float = Field(
        5.0, gt=0, description="Seconds before the first retry; doubled at every attempt."
    )
    forward_retry_max: float = Field(
        600.0, gt=0, description="Longest wait, in seconds, between two attempts."
    )
    forward_batch_size: int = Field(
        100,
        ge=1,
        description="Queue items taken at once; each destination gets one association per batch.",
    )
    forward_poll_interval: float = Field(
        1.0,
        gt=0,
        description="Seconds between two looks at the queue when it is idle (the queue is "
        "shared by every dicomhub process on the database).",
    )
    forward_lease: float = Field(
        300.0,
        gt=0,
        description="Seconds a process keeps the queue items it took before another process "
        "may take them (the process renews it while sending; after a crash the items are "
        "sent again once it expires).",
    )
    forward_keep_done: float = Field(
        604800.0,
        ge=0,
        description="Seconds a delivered queue item is kept for `dicomhub queue list` before "
        "the forwarder removes it (default: 7 days; 0: keep until `dicomhub queue drop`).",
    )
    mpps_forward: list[str] = Field(
        default_factory=list,
        description="Peers (names) every accepted MPPS N-CREATE and N-SET is forwarded to, "
        "in order, through the durable forwarding queue (a RIS, for example).",
    )
    commitment_policy: Literal["verified", "forwarded"] = Field(
        "verified",
        description="What a storage commitment promises: 'verified' (indexed, blob present, "
        "SHA-256 computed again and equal to the one recorded at storage) or 'forwarded' "
        "(verified and also delivered to commitment_forward_destinations forwarding peers).",
    )
    commitment_forward_destinations: int = Field(
        1, ge=1, description="With commitment_policy = 'forwarded': deliveries required."
    )
    commitment_forward_wait: float = Field(
        3600.0,
        gt=0,
        description="With commitment_policy = 'forwarded': seconds to wait for the deliveries "
        "before reporting the instance as failed.",
    )
    commitment_report_attempts: int = Field(
        10, ge=1, description="Attempts to deliver a storage commitment report before giving up."
    )
    commitment_retry_initial: float = Field(
        5.0, gt=0, description="Seconds before the first retry of a report; doubled each time."
    )
    commitment_retry_max: float = Field(
        300.0, gt=0, description="Longest wait, in seconds, between two report attempts."
    )
    commitment_wait: float = Field(
        10.0,
        ge=0,
        description="As storage commitment SCU: seconds to keep the association open for the "
        "report after the N-ACTION response (later reports arrive on dicomhub's listener).",
    )
    commitment_timeout: float = Field(
        86400.0,
        gt=0,
        description="As storage commitment SCU: seconds after which a request without a "
        "report is marked timed_out.",
    )
    mpps_strict: bool = Field(
        True,
        description="Check MPPS N-CREATE and N-SET against every requirement of PS3.4 Table "
        "F.7.2-1.  When false, absent Type 2 attributes (required, may be empty) are let "
        "through and a DISCONTINUED step may have no Performed Series Sequence item; Type 1 "
        "attributes, status rules and attributes N-SET may not change are checked either way.",
    )

    print_printer_name: str = Field(
        "DICOMHUB",
        max_length=64,
        description="Printer Name (2110,0030) the Printer SOP instance reports to print SCUs.",
    )
    print_manufacturer: str = Field(
        "dicomhub", max_length=64, description="Manufacturer the Printer SOP instance reports."
    )
    print_model_name: str = Field(
        "dicomhub print-to-archive",
        max_length=64,
        description="Manufacturer's Model Name the Printer SOP instance reports.",
    )
    print_serial_number: str = Field(
        "", max_length=64, description="Device Serial Number the Printer SOP instance reports."
    )
    print_to_archive: bool = Field(
        True,
        description="Compose every printed film and store it as a Secondary Capture image "
        "(and a PNG in data_dir/print).",
    )
    print_film_dpi: int = Field(
        100, ge=25, le=600, description="Resolution, in dots per inch, of archived films."
    )
    print_study_rule: Literal["images", "session"] = Field(
        "images",
        description="Study of an archived film: 'images' (the printed images' study when "
        "dicomhub holds them, else a print study) or 'session' (always a print study per "
        "calling AE and day).",
    )
    print_relay: dict[str, str] = Field(
        default_factory=dict,
        description="Print relay: called AE title of dicomhub -> name of a peer that is a real "
        "DICOM printer.  Films printed to that AE title are also printed on the peer (after "
        "print-to-archive); the modality's print fails when the printer refuses or is down.",
    )
    print_max_copies: int = Field(
        99,
        ge=1,
        le=9999,
        description="Largest Number Of Copies a Basic Film Session may ask for (more: 0x0106).",
    )

    hl7_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="TCP port of the HL7 v2 listener (MLLP) that turns orders (ORM^O01, "
        "OMI^O23) and patient updates (ADT^A08) into worklist items; unset: no listener.  "
        "It binds to `bind` like the DICOM port.",
    )
    hl7_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) that may send HL7 messages.  Empty: any "
        "when bound to loopback, none otherwise (HL7 has no authentication of its own).",
    )
    hl7_station_ae_titles: dict[str, str] = Field(
        default_factory=dict,
        description="Modality -> ScheduledStationAETitle for HL7 orders that name no station "
        'in IPC-9 or OBR-21, e.g. { CT = "CT1", MR = "MR1" }.',
    )
    hl7_default_station_ae_title: str = Field(
        "",
        description="ScheduledStationAETitle of HL7 orders that name no station and whose "
        "modality is not in hl7_station_ae_titles (empty: left empty).",
    )
    hl7_default_character_set: str = Field(
        "UNICODE UTF-8",
        description="Character set of HL7 messages whose MSH-18 is empty (HL7 table 0211 "
        "name: ASCII, 8859/1 ... 8859/9, UNICODE UTF-8, GB 18030-2000).",
    )
    hl7_max_message_size: int = Field(
        1048576,
        ge=1024,
        description="Largest HL7 message accepted, in bytes; a larger one closes the connection.",
    )
    hl7_idle_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds an HL7 connection may stay silent (or take to send one message) "
        "before it is closed.",
    )

    @field_validator("ae_title")
    @classmethod
    def _check_ae_title(cls, value: str) -> str:
        return validate_ae_title(value)

    @field_validator("hl7_allowed_hosts")
    @classmethod
    def _check_hl7_hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            try:
                ipaddress.ip_network(host.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"{host!r} is not an IP address or network") from exc
        return [host.strip() for host in value]

    @field_validator("hl7_station_ae_titles")
    @classmethod
    def _check_hl7_stations(cls, value: dict[str, str]) -> dict[str, str]:
        return {modality.strip().upper(): validate_ae_title(ae) for modality, ae in value.items()}

    @field_validator("hl7_default_station_ae_title")
    @classmethod
    def _check_hl7_default_station(cls, value: str) -> str:
        return validate_ae_title(value) if value.strip() else ""

    @field_validator("hl7_default_character_set")
    @classmethod
    def _check_hl7_character_set(cls, value: str) -> str:
        from dicomhub.hl7.mapping import CHARACTER_SETS

        name = value.strip().upper()
        if name not in CHARACTER_SETS:
            raise ValueError(f"{value!r} is not one of {', '.join(CHARACTER_SETS)}")
        return name

    @field_validator("worklist_filter_by_calling_ae", mode="before")
    @classmethod
    def _check_station_filter(cls, value: Any) -> Any:
        words = {"true": "when_empty", "yes": "when_empty", "on": "when_empty", "1": "when_empty"}
        words |= {"false": "never", "no": "never", "off": "never", "0": "never"}
        if isinstance(value, bool):
            return "when_empty" if value else "never"
        if isinstance(value, str):
            return words.get(value.strip().lower(), value.strip().lower())
        return value

    @field_validator("worklist_statuses", mode="before")
    @classmethod
    def _check_worklist_statuses(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            value = list(dict.fromkeys(str(v).strip().upper() for v in value if str(v).strip()))
            if not value:
                raise ValueError("worklist_statuses needs at least one status")
        return value

    @field_validator("forward")
    @classmethod
    def _check_rule_names(cls, value: list[ForwardRule]) -> list[ForwardRule]:
        names = [rule.name for rule in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"forwarding rule names must be unique: {', '.join(repeated)}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first, then the TOML file (passed as init values), then defaults.
        return (env_settings, init_settings)

    # Derived values -----------------------------------------------------------------------

    @property
    def is_loopback(self) -> bool:
        """True when the DICOM listener is bound to a loopback address."""
        if self.bind in {"localhost", ""}:
            return self.bind == "localhost"
        try:
            return ipaddress.ip_address(self.bind).is_loopback
        except ValueError:
            return False

    @property
    def effective_allow_unknown_calling_ae(self) -> bool:
        """Whether undeclared calling AEs are accepted."""
        if self.allow_unknown_calling_ae is None:
            return self.is_loopback
        return self.allow_unknown_calling_ae

    @property
    def effective_check_called_ae(self) -> bool:
        """Whether the called AE title must equal ``ae_title``."""
        if self.check_called_ae is None:
            return not self.is_loopback
        return self.check_called_ae

    @property
    def effective_database_url(self) -> str:
        """The index URL, defaulting to an SQLite file inside the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'index.sqlite').absolute()}"

    @property
    def effective_storage_dir(self) -> Path:
        """Root folder of the blob store."""
        return (self.storage_dir or self.data_dir / "storage").absolute()


class ConfigError(Exception):
    """The configuration file could not be read or is invalid."""


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings from environment, ``config_file`` (or ``DICOMHUB_CONFIG``), defaults.

    ``overrides`` are applied like TOML values (below the environment); tests use them.
    """
    path = config_file or os.environ.get("DICOMHUB_CONFIG")
    values: dict[str, Any] = {}
    if path:
        try:
            with Path(path).open("rb") as handle:
                values = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
    values.update(overrides)
    try:
        return Settings(**values)
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc


def render_settings(settings: Settings) -> str:
    """Render the effective configuration as commented TOML."""
    lines = ["# dicomhub effective configuration (environment > config file > defaults)", ""]
    for name, field in Settings.model_fields.items():
        if name in {"peers", "forward"}:
            continue
        value = getattr(settings, name)
        lines.append(f"# {field.description}")
        if value is None:
            lines.append(f"# {name} = (unset)")
        elif name == "database_url":
            lines.append(f"{name} = {_toml_value(_hide_password(value))}")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
        lines.append("")
    lines.append(f"# database in use: {_hide_password(settings.effective_database_url)}")
    lines.append(f"# storage root in use: {settings.effective_storage_dir}")
    lines.append(
        f"# unknown calling AEs accepted: {settings.effective_allow_unknown_calling_ae}; "
        f"called AE checked: {settings.effective_check_called_ae}"
    )
    lines.append("")
    for peer_name, peer in settings.peers.items():
        lines.append(f"[peers.{peer_name}]")
        lines.append(f"ae_title = {_toml_value(peer.ae_title)}")
        lines.append(f"host = {_toml_value(peer.host)}")
        lines.append(f"port = {peer.port}")
        lines.append(f"services = {_toml_value([str(s) for s in peer.services])}")
        lines.append("")
    for rule in settings.forward:
        lines.append("[[forward]]")
        for name in ForwardRule.model_fields:
            value = getattr(rule, name)
            if value or name in {"name", "destinations"}:
                lines.append(f"{name} = {_toml_value(value)}")
            else:
                lines.append(f"# {name} = {_toml_value(value)}  (any)")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }" if value else "{}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _hide_password(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
