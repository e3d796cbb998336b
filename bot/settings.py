"""Settings from environment variables and `.env`, read once at start-up and passed down.

Every value has a default except the Discord token, which only the Discord front needs. Bad values
are reported all at once, one line each, by `load_settings`.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.images import DEFAULT_MAX_PIXELS

from .guild_settings import PREFIX_LENGTH, RateLimits
from .store.leases import DEFAULT_LEASE_SECONDS, check_heartbeat

__all__ = ["Settings", "ConfigError", "load_settings"]


class ConfigError(Exception):
    """Invalid settings; the message has one line per bad value."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False)

    discord_token: SecretStr | None = None
    # Relative to the working directory. Kept out of repr: a PostgreSQL URL carries a password.
    database_url: str = Field("sqlite+aiosqlite:///dreambot.db", repr=False)
    dream_model: str = "efficientnet-lite0"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int = Field(0, ge=0)  # 0: one per GPU, or one on CPU
    max_batch: int = Field(0, ge=0)  # same-shaped dreams run together; 0: 8 on GPUs, 1 on CPU
    # Torch threads in each local worker; 0: the worker's share of the cores (cores // workers), so
    # the workers never ask for more cores than there are. Results depend on it (README: reproducible).
    threads_per_worker: int = Field(0, ge=0)
    # Where the WORKERS run: processes on this machine, or actors on Ray (0 workers: one per GPU share
    # of the cluster). RAY_ADDRESS: empty starts Ray on this machine, "auto" joins this machine's
    # cluster, "ray://host:port" one through Ray Client. Each actor holds RAY_CPUS_PER_ACTOR CPUs
    # and, on GPUs, RAY_GPUS_PER_ACTOR of one GPU (0.5: two actors share each GPU).
    executor: Literal["local", "ray"] = "local"
    ray_address: str = ""
    ray_cpus_per_actor: float = Field(1.0, gt=0)
    ray_gpus_per_actor: float = Field(1.0, gt=0, le=1)
    # Seconds to reach the Ray cluster (or start Ray here), and again for Ray to place each actor;
    # past either the bot does not start. An actor no node could ever hold is refused at once.
    ray_start_timeout: float = Field(60.0, gt=0, allow_inf_nan=False)
    results_dir: Path = Path("results")
    # Result files older than this many days are deleted (unless featured or in a public web gallery);
    # the job rows stay, and the galleries say "expired". 0 keeps every result forever.
    result_retention_days: float = Field(30.0, ge=0, allow_inf_nan=False)
    command_prefix: str = Field("!", min_length=1, max_length=PREFIX_LENGTH)
    user_burst: int = Field(3, ge=0)
    user_refill_seconds: float = Field(60.0, gt=0)
    guild_jobs_per_hour: int = Field(30, ge=0)
    max_active_jobs: int = Field(2, ge=0)
    # Cap on one job's predicted seconds on the device in use; servers may set a lower one.
    max_job_seconds: float = Field(120.0, gt=0)
    # What the workers get: bf16 on GPUs where a model allows it ("auto"), whether they may download
    # weights a model does not bundle, and the most pixels an input may declare.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    offline: bool = False
    max_input_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1_000_000)
    # The most bytes one input file (a photo or a clip) may have, on every front: checked from its
    # declared size before a download, and again while reading it.
    max_input_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    # Several bot processes on one database: each holds its jobs through a lease it renews every
    # heartbeat; a dead process's jobs are adopted by the others once its leases run out.
    lease_seconds: float = Field(DEFAULT_LEASE_SECONDS, gt=0)
    heartbeat_seconds: float = Field(10.0, gt=0)
    # Discord sharding, for several `dreambot run` processes on one database: SHARD_COUNT shards in
    # all, of which this process runs SHARD_IDS ("0-3", "0,2,5"; default: all of them). Unset, the
    # bot keeps one unsharded gateway connection. (NoDecode: "0-3" is read by _read_shard_ids, not as JSON.)
    shard_count: int | None = Field(None, ge=1)
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None
    # The web gallery (`dreambot web`, `dreambot run --web`) listens here; the loopback default keeps
    # it private until an operator puts it behind a proxy or opens it on purpose. PUBLIC_URL is
    # where people reach it: set, result posts on Discord link to their page.
    web_host: str = Field("127.0.0.1", min_length=1)
    web_port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = None
    # Slow or greedy web clients: a request's head must arrive within WEB_HEADER_TIMEOUT seconds, and
    # at most WEB_MAX_CONNECTIONS are open, WEB_MAX_CONNECTIONS_PER_CLIENT from one address (beyond: 503).
    # TRUSTED_PROXIES: reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For
    # names the client; METRICS_ALLOW: who may read /metrics (default: this machine only).
    web_header_timeout: float = Field(10.0, gt=0)
    web_max_connections: int = Field(512, ge=1)
    web_max_connections_per_client: int = Field(16, ge=1)
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    metrics_allow: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = (
        ip_network("127.0.0.0/8"), ip_network("::1"))

    @field_validator("trusted_proxies", "metrics_allow", mode="before")
    @classmethod
    def _read_networks(cls, value: Any) -> Any:
        return _parse_networks(value) if isinstance(value, str) else value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _read_shard_ids(cls, value: Any) -> Any:
        return _parse_shard_ids(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shard_ids_within_count(self) -> Settings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT, the number of shards across all bot processes")
        if not self.shard_ids or not all(0 <= shard < self.shard_count for shard in self.shard_ids):
            listed = ",".join(map(str, self.shard_ids)) or "nothing"
            raise ValueError(f"SHARD_IDS ({listed}) must name shards 0 to {self.shard_count - 1}, "
                             f"as SHARD_COUNT is {self.shard_count}")
        return self

    @field_validator("device", "executor", mode="before")
    @classmethod
    def _lower_device(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("ray_address")
    @classmethod
    def _ray_address(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "auto") or value.startswith("ray://") or re.fullmatch(r"[\w.-]+:\d+", value):
            return value
        raise ValueError("must be empty (start Ray here), auto, ray://host:port or host:port")

    @field_validator("public_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be the gallery's http(s) address, e.g. https://dreams.example.org")
        return value.strip().rstrip("/")  # pages are joined on as PUBLIC_URL + "/servers/..."

    @field_validator("database_url")
    @classmethod
    def _parsable_url(cls, value: str) -> str:
        try:
            make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL, e.g. sqlite+aiosqlite:///dreambot.db") from None
        return value

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        check_heartbeat(self.heartbeat_seconds, self.lease_seconds)
        return self

    @property
    def runner_options(self) -> dict[str, Any]:
        """Keyword arguments of each worker's `core.runner.JobRunner`, beside its device."""
        return {"precision": self.precision, "allow_download": not self.offline, "max_pixels": self.max_input_pixels}

    @property
    def rate_limits(self) -> RateLimits:
        return RateLimits(
            user_burst=self.user_burst,
            user_refill_seconds=self.user_refill_seconds,
            guild_jobs_per_hour=self.guild_jobs_per_hour,
            max_active_jobs=self.max_active_jobs,
        )


_SHARD_PART = re.compile(r"(\d+)(?:-(\d+))?")


def _parse_shard_ids(text: str) -> tuple[int, ...] | None:
    """Shard numbers from "0-3", "0,2,5" or a mix ("0-1,4"), sorted and without repeats; "" is None (unset)."""
    if not text.strip():
        return None
    shards: set[int] = set()
    for part in text.split(","):
        match = _SHARD_PART.fullmatch(part.strip())
        if match is None:
            raise ValueError("must be shard numbers and ranges, e.g. 0-3 or 0,2,5")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise ValueError(f"the range {first}-{last} runs backwards; write {last}-{first}")
        shards.update(range(first, last + 1))
    return tuple(sorted(shards))


def _parse_networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Addresses and networks from "10.0.0.1, 192.168.0.0/16 ::1" (commas or spaces); "" is none."""
    networks = []
    for part in text.replace(",", " ").split():
        try:
            networks.append(ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an address or a network, e.g. 10.0.0.5 or 10.0.0.0/8") from None
    return tuple(networks)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and `.env`, with `overrides` (field names) on top.

    `_env_file=None` (or a path) chooses the dotenv file, as in pydantic-settings.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(error) for error in exc.errors())) from None


def _describe(error: Any) -> str:
    name = ".".join(str(part) for part in error["loc"]).upper() or "settings"
    ctx = error.get("ctx") or {}
    got = error.get("input")
    kind = error["type"]
    if kind == "literal_error":
        # ctx["expected"] reads "'auto', 'cpu' or 'cuda'"; list them plainly.
        choices = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        what = f"must be one of {choices}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        limit = next(iter(ctx.values()))
        what = f"must be {sign} {limit:g}" if isinstance(limit, (int, float)) else f"must be {sign} {limit}"
    elif kind in ("int_parsing", "int_from_float", "int_type"):
        what = "must be a whole number"
    elif kind in ("float_parsing", "float_type", "finite_number"):
        what = "must be a number"
    elif kind == "string_too_short":
        what = "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx.get('min_length')} characters"
    elif kind == "string_too_long":
        what = f"must be at most {ctx.get('max_length')} characters"
    elif kind == "value_error":
        what = str(ctx.get("error", error["msg"]))
    else:
        what = error["msg"][0].lower() + error["msg"][1:]
    if not error["loc"]:  # a rule across fields: its message names them, and the input holds secrets
        return what
    # Never echo a secret back, even a malformed one; a database URL may carry a password.
    shown = "" if name in ("DISCORD_TOKEN", "DATABASE_URL") or got is None else f" (got {got!r})"
    return f"{name}: {what}{shown}"
