"""Routing's configuration (providers and routes in config/channels.yaml), its choice of
providers, its circuits and the rate the dispatchers share (provider_pace)."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update

from adapters.registry import build_provider, check_channels
from dunning.config import load_file
from dunning.config.channels import ChannelsConfig
from dunning.db.engine import create_db_engine
from dunning.db.tables import PACE
from dunning.errors import ConfigError
from dunning.services.dispatch.routing import Circuits, Routing, SharedPace
from dunning.types import Channel
from tests.helpers import invoke

TWILIO = {
    "account_sid": "AC" + "0" * 32,
    "auth_token_env": "ROUTING_TEST_TWILIO_TOKEN",
    "from_number": "+15005550006",
    "url": "http://127.0.0.1:9",
}


def load(tmp_path: Path, data: dict[str, Any]) -> ChannelsConfig:
    path = tmp_path / "config" / "channels.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return load_file(path, ChannelsConfig, tmp_path)


def problems_of(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, data)
    return [str(problem) for problem in caught.value.problems]


def sms(**entry: Any) -> dict[str, Any]:
    return {"channels": {"sms": entry}}


# -- the file's own validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            sms(routes={"CN": ["mock-sms"]}),
            "config/channels.yaml: channels.sms: routes need a `default` entry",
        ),
        (
            sms(adapter="mock-sms", routes={"default": ["mock-sms"]}),
            "config/channels.yaml: channels.sms: give either `adapter`",
        ),
        (sms(), "config/channels.yaml: channels.sms: give either `adapter`"),
        (
            sms(routes={"default": ["mock-sms"]}, options={"url": "http://127.0.0.1:9"}),
            "config/channels.yaml: channels.sms: `options` go with `adapter`",
        ),
        (
            {
                "providers": {"a": {"adapter": "mock-sms"}},
                **sms(routes={"default": ["mock-sms"], "US": ["a", "mock-sms", "a"]}),
            },
            "config/channels.yaml: channels.sms: route 'US' names a provider twice",
        ),
        (
            sms(routes={"default": []}),
            "config/channels.yaml: channels.sms: route 'default' names no provider",
        ),
        (
            {"providers": {"a": {"adapter": "mock-sms", "rate_per_second": 0}}},
            "config/channels.yaml: providers.a.rate_per_second: Input should be greater than 0",
        ),
        (
            {"providers": {"a": {"adapter": "mock-sms", "colour": "red"}}},
            "config/channels.yaml: providers.a.colour:",
        ),
        (
            {"dispatch": {"circuit_open_seconds": -1}},
            "config/channels.yaml: dispatch.circuit_open_seconds:",
        ),
    ],
)
def test_a_bad_route_or_provider_is_refused_naming_its_key(
    tmp_path: Path, data: dict[str, Any], problem: str
) -> None:
    found = problems_of(tmp_path, data)
    assert len(found) == 1, found
    assert found[0].startswith(problem), found


def test_a_route_and_a_provider_name_must_be_names(tmp_path: Path) -> None:
    (found,) = problems_of(tmp_path, sms(routes={"default": ["Mock SMS"]}))
    assert "channels.sms.routes.default" in found
    assert "'Mock SMS' is not a provider or adapter name" in found
    (found,) = problems_of(tmp_path, {"providers": {"Twilio US": {"adapter": "twilio-sms"}}})
    assert "provider name 'Twilio US'" in found


def test_a_channel_adapter_may_not_share_a_providers_name(tmp_path: Path) -> None:
    (found,) = problems_of(
        tmp_path,
        {"providers": {"mock-sms": {"adapter": "mock-sms"}}, **sms(adapter="mock-sms")},
    )
    assert "channels.sms.adapter 'mock-sms' is also a provider's name" in found


def test_routes_and_providers_load(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        {
            "providers": {
                "sms-a": {"adapter": "mock-sms", "options": {"max_batch": 10}},
                "sms-b": {"adapter": "mock-sms", "rate_per_second": 40},
            },
            "channels": {
                "sms": {"routes": {"CN": ["sms-a", "sms-b"], "default": ["sms-b", "mock-sms"]}},
                "push": {"adapter": "mock-push"},
            },
            "dispatch": {"circuit_open_seconds": 5},
        },
    )
    assert config.routes_of(Channel.SMS) == {
        "CN": ("sms-a", "sms-b"),
        "default": ("sms-b", "mock-sms"),
    }
    assert config.routes_of(Channel.PUSH) == {"default": ("mock-push",)}
    assert config.routes_of(Channel.LETTER) == {}
    providers = config.all_providers()
    # A route may name an adapter outright: a provider with its default options.
    assert {name: p.adapter for name, p in providers.items()} == {
        "sms-a": "mock-sms",
        "sms-b": "mock-sms",
        "mock-sms": "mock-sms",
        "mock-push": "mock-push",
    }
    assert providers["mock-sms"].options == {}
    assert config.channel_of_provider() == {
        "sms-a": Channel.SMS,
        "sms-b": Channel.SMS,
        "mock-sms": Channel.SMS,
        "mock-push": Channel.PUSH,
    }
    assert check_channels(config) == []
    routing = Routing.from_config(config, build=lambda name: pytest.fail(name))
    assert routing.rates == {"sms-b": 40.0}
    assert config.dispatch.circuit_open_seconds == 5


# -- the registry's checks (dunning config check) -----------------------------------------------


def test_a_route_naming_an_unknown_name_is_reported_under_its_route(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        {
            "providers": {"sms-a": {"adapter": "mock-sms"}},
            **sms(routes={"default": ["sms-a"], "CN": ["sms-a", "aliyun-cm"]}),
        },
    )
    (problem,) = [str(p) for p in check_channels(config)]
    assert problem.startswith(
        "config/channels.yaml: channels.sms.routes.CN: 'aliyun-cm' is no provider under "
        "`providers`, and as an adapter: no adapter named 'aliyun-cm' is installed"
    )


def test_a_provider_whose_adapter_sends_another_channel_is_reported(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        {
            "providers": {"push-a": {"adapter": "mock-push"}},
            **sms(routes={"default": ["push-a"]}),
        },
    )
    assert [str(p) for p in check_channels(config)] == [
        "config/channels.yaml: providers.push-a.adapter: 'mock-push' sends push, not sms"
    ]
    # Named outright in a route, an adapter of another channel is reported there.
    config = load(tmp_path, sms(routes={"default": ["mock-letter"]}))
    (problem,) = [str(p) for p in check_channels(config)]
    assert problem.startswith("config/channels.yaml: channels.sms.routes.default: 'mock-letter'")
    assert "'mock-letter' sends letter, not sms" in problem


def test_a_providers_bad_option_is_reported_under_the_provider(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        {
            "providers": {"tw": {"adapter": "twilio-sms", "options": {**TWILIO, "timeout": 0}}},
            **sms(routes={"default": ["tw"]}),
        },
    )
    assert [str(p) for p in check_channels(config)] == [
        "config/channels.yaml: providers.tw.options.timeout: Input should be greater than 0"
    ]


def test_a_named_providers_missing_secret_names_the_provider_and_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TWILIO["auth_token_env"], raising=False)
    config = load(
        tmp_path,
        {
            "providers": {"twilio-us": {"adapter": "twilio-sms", "options": TWILIO}},
            **sms(routes={"default": ["mock-sms"], "US": ["twilio-us", "mock-sms"]}),
        },
    )
    with pytest.raises(ConfigError) as caught:
        build_provider("twilio-us", config, tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        "config/channels.yaml: providers.twilio-us.options.auth_token_env: "
        "environment variable ROUTING_TEST_TWILIO_TOKEN is not set"
    ]
    monkeypatch.setenv(TWILIO["auth_token_env"], "a-token")
    assert build_provider("twilio-us", config, tmp_path).name == "twilio-sms"
    with pytest.raises(ConfigError, match=r"providers\.nobody: no provider 'nobody'"):
        build_provider("nobody", config, tmp_path)


def test_config_check_reports_a_route_to_an_unknown_provider(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, repo_dir: Path
) -> None:
    program = tmp_path / "program"
    shutil.copytree(repo_dir / "config", program / "config")
    shutil.copytree(repo_dir / "templates", program / "templates")
    shutil.copy(repo_dir / "dunning.yaml", program / "dunning.yaml")
    channels = program / "config" / "channels.yaml"
    data = yaml.safe_load(channels.read_text())
    data["providers"] = {"sms-a": {"adapter": "mock-sms"}}
    data["channels"]["sms"] = {"routes": {"default": ["sms-a"], "US": ["sms-a", "sms-z"]}}
    channels.write_text(yaml.safe_dump(data))
    result = invoke(capsys, "--project-dir", str(program), "config", "check", "--json")
    assert result.code == 1, result.out
    assert channel_problems(result.json()) == [
        ("channels.sms.routes.US", "'sms-z' is no provider under `providers`")
    ]
    # Fixed, channels.yaml checks clean.
    data["channels"]["sms"]["routes"]["US"] = ["sms-a", "mock-sms"]
    channels.write_text(yaml.safe_dump(data))
    result = invoke(capsys, "--project-dir", str(program), "config", "check", "--json")
    assert channel_problems(result.json() if result.code else {"problems": []}) == []


def channel_problems(answer: dict[str, Any]) -> list[tuple[str, str]]:
    """config/channels.yaml's problems (key, start of the reason) in `config check --json`."""
    return [
        (p["key"], p["reason"][:40])
        for p in answer["problems"]
        if p["file"] == "config/channels.yaml"
    ]


# -- choosing providers -------------------------------------------------------------------------


def routing() -> Routing:
    return Routing(
        routes={
            Channel.SMS: {
                "CN": ("aliyun-cn", "sms-b"),
                "US": ("twilio-us",),
                "default": ("sms-b",),
            },
            Channel.PUSH: {"default": ("mock-push",)},
        },
        build=lambda name: pytest.fail(f"nothing is built here ({name})"),
    )


def test_candidates_follow_the_accounts_jurisdiction_else_the_default() -> None:
    r = routing()
    assert r.candidates(Channel.SMS, "CN") == ("aliyun-cn", "sms-b")
    assert r.candidates(Channel.SMS, "US") == ("twilio-us",)
    assert r.candidates(Channel.SMS, "GB") == ("sms-b",)
    assert r.candidates(Channel.SMS, None) == ("sms-b",)
    # Routes are per channel: push has no CN route of its own.
    assert r.candidates(Channel.PUSH, "CN") == ("mock-push",)
    assert r.candidates(Channel.LETTER, "CN") == ()
    assert r.default(Channel.SMS) == "sms-b"
    assert r.default(Channel.LETTER) is None
    assert r.knows("twilio-us") and r.knows("mock-push")
    assert not r.knows("retired-gateway")


def test_one_provider_per_channel_for_an_adapter_factory() -> None:
    built: list[Channel] = []

    def factory(channel: Channel) -> Any:
        built.append(channel)
        return channel

    r = Routing.by_channel(factory)
    assert r.candidates(Channel.SMS, "CN") == ("sms",)
    r.build("letter")
    assert built == [Channel.LETTER]


# -- circuits -----------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_tripped_circuit_stays_open_for_its_time_then_closes() -> None:
    clock = Clock()
    circuits = Circuits(open_seconds=30, monotonic=clock)
    assert not circuits.is_open("sms-a")
    circuits.trip("sms-a")
    assert circuits.is_open("sms-a")
    assert not circuits.is_open("sms-b")
    clock.now += 29.9
    assert circuits.is_open("sms-a")
    clock.now += 0.1
    assert not circuits.is_open("sms-a")  # half a minute on: tried again
    circuits.trip("sms-a")
    clock.now += 1
    circuits.close("sms-a")  # it took something: closed at once
    assert not circuits.is_open("sms-a")


def test_a_circuit_of_zero_seconds_never_opens() -> None:
    circuits = Circuits(open_seconds=0, monotonic=Clock())
    circuits.trip("sms-a")
    assert not circuits.is_open("sms-a")


# -- the rate every dispatcher shares -----------------------------------------------------------


class Waits:
    """A fake asyncio.sleep that records each wait and sleeps none."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def pace(url: str, clock: Callable[[], float], waits: Waits) -> SharedPace:
    return SharedPace(create_db_engine(url), wall=clock, sleep=waits)


def next_free(url: str) -> dict[str, float]:
    engine = create_db_engine(url)
    with engine.connect() as connection:
        found = {
            row[0]: row[1] for row in connection.execute(select(PACE.c.provider, PACE.c.next_free))
        }
    engine.dispose()
    return found


def test_reservations_move_the_providers_next_free_moment_by_n_over_rate(
    database_url: str,
) -> None:
    clock, waits = Clock(1_000.0), Waits()
    one = pace(database_url, clock, waits)
    asyncio.run(one.reserve("sms-a", 4, 40.0))
    assert next_free(database_url) == {"sms-a": pytest.approx(1_000.1)}
    assert waits.waits == []  # nothing reserved before: it goes at once
    asyncio.run(one.reserve("sms-a", 4, 40.0))
    assert next_free(database_url) == {"sms-a": pytest.approx(1_000.2)}
    assert waits.waits == [pytest.approx(0.1)]  # after the first reservation's time
    clock.now = 1_000.15
    asyncio.run(one.reserve("sms-a", 2, 40.0))
    assert waits.waits[-1] == pytest.approx(0.05)
    assert next_free(database_url)["sms-a"] == pytest.approx(1_000.25)
    # Idle for a while: the unused time is not saved up for a burst.
    clock.now = 2_000.0
    asyncio.run(one.reserve("sms-a", 10, 40.0))
    assert len(waits.waits) == 2
    assert next_free(database_url)["sms-a"] == pytest.approx(2_000.25)
    # Another provider keeps its own pace.
    asyncio.run(one.reserve("sms-b", 1, 1.0))
    assert len(waits.waits) == 2
    assert next_free(database_url) == {
        "sms-a": pytest.approx(2_000.25),
        "sms-b": pytest.approx(2_001.0),
    }
    one.engine.dispose()


def test_a_second_dispatcher_waits_for_the_first_ones_reservation(database_url: str) -> None:
    clock = Clock(5_000.0)
    first_waits, second_waits = Waits(), Waits()
    first = pace(database_url, clock, first_waits)
    second = pace(database_url, clock, second_waits)
    asyncio.run(first.reserve("sms-a", 10, 20.0))  # half a second of the account's rate
    asyncio.run(second.reserve("sms-a", 10, 20.0))
    asyncio.run(first.reserve("sms-a", 10, 20.0))
    assert first_waits.waits == [pytest.approx(1.0)]
    assert second_waits.waits == [pytest.approx(0.5)]
    assert next_free(database_url)["sms-a"] == pytest.approx(5_001.5)
    first.engine.dispose()
    second.engine.dispose()


def test_reservations_made_at_the_same_moment_never_share_a_turn(database_url: str) -> None:
    """Eight reservations from four dispatchers at once (threads, each its own engine): each
    gets its own slot of 1/rate, none overlaps another."""
    clock = Clock(7_000.0)
    waits = [Waits() for _ in range(4)]
    paces = [pace(database_url, clock, w) for w in waits]

    async def all_at_once() -> None:
        await asyncio.gather(*(p.reserve("sms-a", 1, 10.0) for p in paces for _ in range(2)))

    asyncio.run(all_at_once())
    taken = sorted(
        [0.0] * (8 - sum(len(w.waits) for w in waits)) + [x for w in waits for x in w.waits]
    )
    assert taken == [pytest.approx(k / 10) for k in range(8)]
    assert next_free(database_url)["sms-a"] == pytest.approx(7_000.8)
    for p in paces:
        p.engine.dispose()


def test_a_turn_is_reserved_from_when_the_lock_was_had_not_from_before_the_wait(
    database_url: str,
) -> None:
    """A dispatcher that waited for provider_pace's lock (another dispatcher was reserving)
    reserves from the moment it got it: a turn reserved from before the wait would already be
    past and go at once, beside the turns of the others that waited too (a burst)."""
    clock, waits = Clock(1_000.0), Waits()
    first = pace(database_url, clock, waits)
    asyncio.run(first.reserve("sms-a", 4, 40.0))  # the row exists; next free at 1000.1
    clock.now = 1_001.0
    holder = create_db_engine(database_url)
    with holder.connect() as connection:
        transaction = connection.begin()
        connection.execute(
            update(PACE).where(PACE.c.provider == "sms-a").values(next_free=PACE.c.next_free)
        )
        second = pace(database_url, clock, waits)
        reserving = threading.Thread(target=asyncio.run, args=(second.reserve("sms-a", 4, 40.0),))
        reserving.start()
        time.sleep(0.3)  # let it reach the lock (not an assertion on time)
        clock.now = 1_006.0  # the lock is held five seconds
        transaction.commit()
    reserving.join(timeout=60)
    assert not reserving.is_alive()
    assert next_free(database_url)["sms-a"] == pytest.approx(1_006.1)
    assert waits.waits == []
    for engine in (first.engine, second.engine, holder):
        engine.dispose()
