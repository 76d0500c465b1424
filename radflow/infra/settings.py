"""Settings from RADFLOW_* environment variables (pydantic-settings)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from radflow.domain.definitions import ORDER_BASELINE, TASK_QUEUE, gateway_task_queue
from radflow.domain.fhir.config import FhirMappingConfig
from radflow.domain.order import OrderPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RADFLOW_", env_file=".env", extra="ignore")

    # Temporal
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = TASK_QUEUE
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None  # client certificate (mTLS)
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_api_key: str | None = None
    temporal_rpc_timeout_s: float = 10.0  # an inbound message waits at most this for Temporal, then AE

    # --- worker tuning (radflow/worker.py; measured with bench/burst.py, docs/capacity.md) ---
    # Workflow-task polls in flight; a share goes to the shared queue, where every new order's
    # first task waits, the rest to this worker's sticky queue (orders it has cached). The SDK's
    # 5 x 0.2 left one poll for new orders: processing fell behind ingest during bursts. Under
    # load each poll waits its turn at the server's store, so polls bound the processing rate.
    worker_workflow_pollers: int = 32
    worker_nonsticky_poll_ratio: float = 0.5
    worker_activity_pollers: int = 5
    # Orders kept in memory between their workflow tasks (the sticky cache; the SDK's default is
    # 1,000). Each holds ~420 GC-tracked objects (~560 in the sandbox, with its own copy of the
    # workflow module), so the cache sets how long a full garbage collection stops the process
    # (bench/worker_gc.py); an order evicted from it replays its history at its next event.
    worker_max_cached_workflows: int = Field(default=1000, ge=0)
    # Run workflows in Temporal's sandbox (true) or without it (false, the default). The sandbox imports
    # the workflow module afresh for every order and proxies restricted modules at every activation: a
    # third of the worker's CPU per new order (bench/worker_cost.py). Determinism is guarded by the test
    # suite, which runs every workflow and replays every saved history in the sandbox, and by
    # tests/workflows/test_workflow_modules.py (docs/workflow.md "Determinism"). Turn it on while
    # changing workflow code to have restricted calls fail at once in `radflow dev`.
    worker_sandbox: bool = False
    # --- end worker tuning ---
    # The workflow baseline new orders start at (docs/workflow.md "Upgrades"). At the newest, new orders
    # record no patch markers; a worker of an older version cannot replay such an order. Set 0 on the
    # gateways and API while workers of a version before 2026-11-30 may still run, and raise it after.
    order_baseline: int = Field(default=ORDER_BASELINE, ge=0, le=ORDER_BASELINE)

    # Embedded dev stack (`radflow dev`)
    data_dir: Path = Path(".radflow")
    dev_temporal_port: int = 7233
    dev_ui_port: int = 8233

    # MLLP gateway
    mllp_host: str = "0.0.0.0"
    mllp_port: int = 2575
    hl7_sending_application: str = "RADFLOW"
    hl7_sending_facility: str = "RADFLOW"
    # Where an ORM (v2.3/2.4) carries the accession, first non-empty wins (site convention).
    hl7_accession_fields: list[str] = ["OBR-18", "ORC-3", "OBR-3"]
    hl7_default_timezone: str = "UTC"  # HL7 times without an offset are local to the site
    accession_prefix: str = "RF"

    # Report documents (OBX ED: PDF, CDA) outside workflow history, by SHA-256 (radflow/infra/attachments.py).
    # Written by the MLLP gateway, read by the worker's delivery activities: one directory both see.
    attachments_dir: Path | None = None  # default data_dir/attachments

    # Outbound HL7 (report delivery to the EHR); empty = not configured
    ehr_mllp_host: str = ""
    ehr_mllp_port: int = 0
    ehr_mllp_timeout_s: float = 10.0

    # API
    api_host: str = "0.0.0.0"
    api_port: int = 8000
    api_max_body_bytes: int = 1024 * 1024  # larger request bodies: 413 before they are read (docs/limits.md)
    bulk_max_orders: int = 500  # POST /orders/bulk/{action}: a filter matching more is refused (422)
    bulk_concurrency: int = 8  # orders acted on at once by one bulk request
    # --- API security (api/auth.py, api/guard.py, docs/security.md) ---
    # "" = on when a method below is configured (`radflow api` refuses to start without one);
    # "none" = explicitly open (every caller is admin): only for a trusted, closed network.
    api_auth: str = ""
    api_keys: SecretStr = SecretStr("")  # "name:role[+role]:secret,..." (env only, never a flag)
    api_keys_file: Path | None = None  # lines of the same (one entry per line, # comments)
    oidc_issuer: str = ""  # JWTs must carry exactly this `iss`
    oidc_audience: str = ""  # ... and this `aud`
    oidc_jwks_url: str = ""  # the issuer's signing keys (cached; refetched on an unknown kid)
    oidc_roles_claim: str = "roles"  # dotted path to the roles list, e.g. realm_access.roles (Keycloak)
    oidc_jwks_refresh_cooldown_s: float = 30.0  # unknown kids refetch the JWKS at most this often (no fetch floods)
    oidc_algorithms: list[str] = ["RS256", "ES256", "PS256", "EdDSA"]
    api_cors_origins: list[str] = []  # browser origins allowed to call the API; empty = CORS off
    audit_log: Path | None = None  # append-only JSON lines of every PHI read and change; default data_dir/audit.jsonl
    # Reverse proxies (addresses or CIDRs) whose X-Forwarded-For names the client; nobody else's is believed.
    api_trusted_proxies: list[str] = []
    audit_fhir_base_url: str = ""  # AuditEvents (IHE BALP) go here; "" = fhir_base_url; "none" = JSON lines only
    audit_fhir_poll_s: float = 5.0  # the outbox also looks for lines other processes appended this often
    audit_fhir_backoff_max_s: float = 60.0  # retries of an undelivered AuditEvent back off up to this
    retention_purge_interval_s: float = 3600.0  # how often worker and DICOM gateway purge closed orders' PHI (radflow/service/retention.py)
    # --- end API security ---

    # Order policy (deadlines and retries), fixed per order at its start
    no_images_after_hours: float = 4.0
    no_report_after_hours: float = 24.0
    retention_after_close_hours: float = 7 * 24.0
    # Closure policies (docs/workflow.md "Closure"): scheduled, never started this long after
    # its start -> EXPIRED; acquired, no final report this long after acquisition -> UNREPORTED.
    expire_after_days: float = 7.0
    unreported_close_after_days: float = 90.0
    archive_heartbeat_s: float = 60.0  # archive_study reports progress; silent this long = retried
    step_max_attempts: int = 5
    step_initial_interval_s: float = 1.0
    step_max_interval_s: float = 60.0

    log_level: str = "INFO"

    # --- observability (radflow/infra/health.py, radflow/infra/metrics.py, radflow/infra/telemetry.py, docs in deploy/README.md) ---
    # /livez, /readyz, /metrics of `radflow worker|mllp|dicom` (`radflow api` and `radflow dev` serve them on the API).
    health_host: str = "0.0.0.0"
    health_port: int | None = None  # None: the role's default (worker 9461, mllp 9462, dicom 9463); 0 = off
    metrics_refresh_s: float = 30.0  # how often the worker refreshes the order gauges from visibility
    otel_exporter_otlp_endpoint: str = ""  # OTLP/HTTP collector, e.g. http://otel-collector:4318; "" = tracing off
    otel_service_name: str = ""  # default radflow-<role>
    # --- end observability ---

    # --- HL7 / MLLP (domain/hl7/, gateways/mllp.py, gateways/hl7_gateway.py, activities/hl7_delivery.py) ---
    # Where the Scheduled Station AE title comes from, first non-empty wins (IPC-9 in OMI; OBR-21 by site convention).
    hl7_station_ae_fields: list[str] = ["IPC-9", "OBR-21"]
    mllp_max_frame: int = 1024 * 1024  # larger frames are answered AR and skipped
    mllp_max_connections: int = 100  # more are closed as soon as accepted
    mllp_idle_timeout_s: float = 300.0  # no complete frame for this long: the connection is closed
    mllp_frame_timeout_s: float = 30.0  # a frame must arrive whole this long after its start byte (AR, close)
    mllp_write_timeout_s: float = 30.0  # an ACK the peer does not read in time closes the connection
    # Per-message limits (domain/hl7/limits.py, docs/limits.md): over a limit -> AR with the reason.
    hl7_max_segments: int = 5_000
    hl7_max_field_chars: int = 65_536  # any field but OBX-5
    hl7_max_repetitions: int = 1_000  # of one field
    hl7_max_obx: int = 2_000
    hl7_max_report_chars: int = 1_000_000  # all OBX-5 of one message
    hl7_max_report_lines: int = 10_000
    hl7_max_messages: int = 1_000  # in one MLLP frame (batch)
    hl7_max_delimiters: int = 50_000  # | ^ ~ & and escape characters in one message
    ehr_receiving_application: str = "EHR"  # MSH-5/6 of the ORU radflow sends
    ehr_receiving_facility: str = ""
    # --- end HL7 / MLLP ---

    # --- API client, CLI and dev stack (api/, radflow/cli.py, radflow/infra/logs.py) ---
    api_url: str = "http://localhost:8000"  # where `radflow orders ...` finds the API
    api_token: SecretStr = SecretStr("")  # bearer token `radflow orders ...` sends (RADFLOW_API_TOKEN; env only)
    dev_host: str = "127.0.0.1"  # `radflow dev` binds every listener here (not exposed by default)
    log_format: str = "kv"  # "kv" (key=value lines) or "json" (one JSON object per line)
    # --- end API client, CLI and dev stack ---

    # --- FHIR mapping (domain/fhir/, api/routes/fhir.py) ---
    fhir_identifier_base: str = "http://radflow.example/fhir"  # identifier systems: <base>/mrn/<issuer>, <base>/accession...
    fhir_mrn_systems: dict[str, str] = {}  # assigning authority -> identifier system (e.g. "urn:oid:1.2.3")
    fhir_code_systems: dict[str, str] = {}  # HL7 coding system (OBR-4.3) -> FHIR system URI
    dicomweb_base_url: str = "http://localhost:8042/dicom-web"  # Endpoint.address of ImagingStudy
    fhir_report_language: str = "en"
    fhir_search_max: int = 200  # facade searches refuse (too-costly) rather than truncate beyond this

    def fhir_mapping(self) -> FhirMappingConfig:
        return FhirMappingConfig(
            identifier_base=self.fhir_identifier_base,
            mrn_systems=self.fhir_mrn_systems,
            code_systems=self.fhir_code_systems,
            dicomweb_base_url=self.dicomweb_base_url,
            report_language=self.fhir_report_language,
        )
    # --- end FHIR mapping ---

    # --- DICOM gateway: AE, MWL, MPPS (gateways/dicom/, activities/worklist_sync.py) ---
    dicom_ae_title: str = "RADFLOW"
    dicom_host: str = "0.0.0.0"
    dicom_port: int = 11112
    # Limits and timeouts: docs/limits.md "DICOM" says what a peer sees when one is hit.
    dicom_allowed_aets: list[str] = []  # calling AE titles accepted; empty = all (set it in production)
    dicom_max_associations: int = 20  # concurrent associations, all peers (incl. connections not yet associated)
    dicom_max_associations_per_ae: int = 5  # concurrent associations per calling AE title; 0 = no per-AE limit
    dicom_acse_timeout_s: float = 10.0  # ARTIM: a connection must send A-ASSOCIATE-RQ (and answer ACSE) within this
    dicom_network_timeout_s: float = 30.0  # an association idle this long (no PDU at all) is aborted
    dicom_dimse_timeout_s: float = 30.0
    mwl_query_budget_s: float = 10.0  # one C-FIND's matching may take this long, then a failure status; 0 = unbounded
    # Worklist + MPPS read models (gateways/dicom/read_models.py): "" = the SQLite files below (one host);
    # postgresql://user:pass@host/db = one database shared by every gateway and worker (env only: it holds a password).
    read_model_url: SecretStr = SecretStr("")
    read_model_pool_max: int = 10  # connections per process
    mwl_db: Path | None = None  # worklist read model (SQLite, shared by worker and gateway); default data_dir/worklist.db
    mpps_db: Path | None = None  # MPPS instances seen by the gateway; default data_dir/mpps.db
    # Order index (radflow/infra/order_index_store.py), SQLite when read_model_url is "": every process that
    # takes orders or looks them up (mllp, dicom, api, worker) must see the same file (one host).
    order_index_db: Path | None = None  # default data_dir/order_index.db
    mwl_show_started: bool = False  # also list IN_PROGRESS orders (SPS status STARTED)
    mwl_max_results: int = 0  # 0 = no limit
    mwl_timezone: str = ""  # site time zone for SPS start date/time; empty = hl7_default_timezone
    # Consumers mirrored after every applied change (SYNC_ACTIVITIES), fixed per order at its start.
    sync_consumers: list[str] = ["worklist", "fhir"]

    def audit_log_path(self) -> Path:
        return self.audit_log or self.data_dir / "audit.jsonl"

    def attachments_path(self) -> Path:
        return self.attachments_dir or self.data_dir / "attachments"

    def mwl_db_path(self) -> Path:
        return self.mwl_db or self.data_dir / "worklist.db"

    def mpps_db_path(self) -> Path:
        return self.mpps_db or self.data_dir / "mpps.db"

    def order_index_db_path(self) -> Path:
        return self.order_index_db or self.data_dir / "order_index.db"
    # --- end DICOM gateway ---

    # --- DICOM storage: spool, study aggregation, archive (gateways/dicom/storage.py, activities/archive.py) ---
    # The spool is shared by the gateway (writes) and the worker's archive activity (reads,
    # marks forwarded): both processes must run on the same host / see the same directory.
    dicom_spool_dir: Path | None = None  # default data_dir/spool
    dicom_spool_fsync: bool = True  # sync each instance's commit before answering success (off only for benches)
    dicom_spool_file_threshold_bytes: int = 64 * 1024 * 1024  # bigger instances are files, not database blobs
    dicom_stable_age_s: float = 10.0  # quiet period after the last instance before STUDY_STABLE
    dicom_archive_host: str = ""  # empty = no archive: the spool is the store
    dicom_archive_port: int = 104
    dicom_archive_ae_title: str = "ARCHIVE"
    dicom_archive_timeout_s: float = 30.0  # association / DIMSE / network timeouts of the archive SCU
    # Steps run once the study is complete (ACQUISITION_ACTIVITIES), fixed per order at its start.
    acquisition_consumers: list[str] = ["archive"]
    # archive_study runs in `radflow dicom` on its own queue <task_queue>-dicom-<gateway id>: keep the id
    # stable for a gateway and its spool (a StatefulSet name); "" = the id recorded in the spool at its
    # first use, derived then from host name + AE title (gateways/dicom/gateway_identity.py).
    dicom_gateway_id: str = ""
    # The shared-queue worker also registers archive_study on its local spool: only for one-host installs
    # (`radflow dev` sets it) and for draining orders whose images arrived before gateway queues.
    worker_spool_archive: bool = False

    def gateway_id(self) -> str:
        raw = self.dicom_gateway_id or f"{socket.gethostname()}-{self.dicom_ae_title}"
        return re.sub(r"[^a-z0-9.-]+", "-", raw.strip().lower()).strip("-") or "gateway"

    def gateway_task_queue(self) -> str:
        return gateway_task_queue(self.task_queue, self.gateway_id())
    # --- end DICOM storage ---

    # --- FHIR delivery (activities/fhir_client.py, activities/fhir_delivery.py) ---
    fhir_base_url: str = ""  # FHIR R4 base of the EHR / result consumer; empty = not configured (steps say so)
    fhir_token: str = ""  # bearer token sent as Authorization, if the server wants one
    fhir_timeout_s: float = 10.0  # per HTTP request; a timeout is retried by the step policy
    # Consumers each report version is delivered to (REPORT_DELIVERY_ACTIVITIES), fixed per order.
    report_consumers: list[str] = ["hl7", "fhir"]
    # --- end FHIR delivery ---

    # --- TLS (radflow/infra/tls.py, docs/security.md "TLS") ---
    # A listener serves TLS 1.2+ when its CERT and KEY (PEM) are set, plain TCP otherwise (the
    # `radflow dev` default). CLIENT_CA: client certificates presented are verified against it;
    # REQUIRE_CLIENT_CERT: no certificate, no connection (mutual TLS, IHE ATNA secure node).
    tls_min_version: str = "1.2"  # or "1.3"
    tls_key_password: SecretStr = SecretStr("")  # for encrypted private keys (env only, never a flag)
    mllp_tls_cert: Path | None = None
    mllp_tls_key: Path | None = None
    mllp_tls_client_ca: Path | None = None
    mllp_tls_require_client_cert: bool = False
    mllp_tls_handshake_timeout_s: float = 10.0  # a connection must finish its TLS handshake within this
    dicom_tls_cert: Path | None = None
    dicom_tls_key: Path | None = None
    dicom_tls_client_ca: Path | None = None
    dicom_tls_require_client_cert: bool = False
    dicom_tls_handshake_timeout_s: float = 10.0
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None
    api_tls_client_ca: Path | None = None
    api_tls_require_client_cert: bool = False
    # Outbound: TLS when on, or when a CA / client certificate is set; the peer's certificate must
    # chain to the CA (system store when unset) and name the configured host.
    ehr_mllp_tls: bool = False
    ehr_mllp_tls_ca: Path | None = None
    ehr_mllp_tls_cert: Path | None = None  # client certificate, when the EHR wants one
    ehr_mllp_tls_key: Path | None = None
    dicom_archive_tls: bool = False
    dicom_archive_tls_ca: Path | None = None
    dicom_archive_tls_cert: Path | None = None
    dicom_archive_tls_key: Path | None = None
    # --- end TLS ---

    def order_policy(self) -> OrderPolicy:
        return OrderPolicy(
            no_images_after_s=self.no_images_after_hours * 3600,
            no_report_after_s=self.no_report_after_hours * 3600,
            retention_after_close_s=self.retention_after_close_hours * 3600,
            expire_after_s=self.expire_after_days * 86400,
            unreported_close_after_s=self.unreported_close_after_days * 86400,
            archive_heartbeat_s=self.archive_heartbeat_s,
            step_max_attempts=self.step_max_attempts,
            step_initial_interval_s=self.step_initial_interval_s,
            step_max_interval_s=self.step_max_interval_s,
            sync_consumers=list(self.sync_consumers),
            report_consumers=list(self.report_consumers),
            acquisition_consumers=list(self.acquisition_consumers),
        )

    # --- Payload encryption, codec server, PatientID HMAC (radflow/service/codec.py, radflow/service/patient_search.py, api/routes/codec.py) ---
    codec_keys_file: Path | None = None  # lines key-id:base64(32 bytes), owner-only; first encrypts, all decrypt; unset = payloads in clear
    codec_cors_origins: list[str] = []  # Temporal UI origins allowed to call /codec/* from the browser
    search_hmac_key_file: Path | None = None  # base64 key (32+ bytes), owner-only; PatientID = HMAC of the MRN; unset = MRN in clear
    search_clear_mrn: bool = True  # MRN searches also match orders started before the HMAC key (transition window)
    dev_encryption: bool = True  # `radflow dev`: generate both keys into the data dir when the files above are unset
    # --- end payload encryption ---
