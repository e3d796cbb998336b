"""A server's settings (bot.guild_settings): their names, the values each takes, and how an admin's
words become a value or one line saying what the setting takes."""

from __future__ import annotations

from dataclasses import fields

import pytest

from bot.guild_settings import (
    PREFIX_LENGTH,
    SETTINGS,
    GuildSettings,
    RateLimits,
    SettingError,
    parse_setting,
    setting_names,
)


def _refusal(name: str, text: str) -> str:
    with pytest.raises(SettingError) as info:
        parse_setting(name, text)
    message = str(info.value)
    assert "\n" not in message and len(message) < 150, message
    return message


def test_every_setting_names_a_stored_field_and_says_what_it_does():
    stored = {f.name for f in fields(GuildSettings)}
    assert setting_names() == tuple(SETTINGS)
    for name, setting in SETTINGS.items():
        assert setting.name == name and setting.field in stored, name
        assert setting.help and "\n" not in setting.help, name
        if setting.kind in ("whole", "seconds"):
            assert setting.low < setting.high, name
    assert len({s.field for s in SETTINGS.values()}) == len(SETTINGS)  # no two settings write one field


def test_a_server_s_settings_start_unset_and_each_rate_limit_can_be_overridden():
    fresh = GuildSettings("g")
    for f in fields(GuildSettings):
        if f.name != "guild_id":
            assert getattr(fresh, f.name) in (None, (), False), f.name  # unset: the bot's default applies
    fields_set = {s.field for s in SETTINGS.values()}
    assert {f.name for f in fields(RateLimits)} <= fields_set


@pytest.mark.parametrize(("name", "text", "value"), [
    ("user_burst", "5", 5), ("user_burst", "0", 0), ("user_burst", "1000", 1000), ("guild_jobs_per_hour", " 30 ", 30),
    ("user_refill_seconds", "1.5", 1.5), ("user_refill_seconds", "86400", 86400.0), ("max_job_seconds", "90", 90.0),
    ("like_threshold", "0", 0),
])
def test_numbers_in_range_are_taken(name, text, value):
    parsed = parse_setting(name, text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("user_burst", "1001", "user_burst is a whole number from 0 to 1000, got '1001'"),
    ("user_burst", "-1", "user_burst is a whole number from 0 to 1000, got '-1'"),
    ("user_burst", "2.5", "user_burst is a whole number from 0 to 1000, got '2.5'"),
    ("max_active_jobs", "lots", "max_active_jobs is a whole number from 0 to 1000, got 'lots'"),
    ("user_refill_seconds", "0.5", "user_refill_seconds is a number of seconds from 1 to 86400, got '0.5'"),
    ("max_job_seconds", "nan", "max_job_seconds is a number of seconds from 1 to 86400, got 'nan'"),
    ("max_job_seconds", "inf", "max_job_seconds is a number of seconds from 1 to 86400, got 'inf'"),
    ("guild_jobs_per_hour", "", "guild_jobs_per_hour is a whole number from 0 to 100000, got ''"),
])
def test_numbers_out_of_range_or_not_numbers_are_one_line_with_the_range(name, text, expected):
    assert _refusal(name, text) == expected


@pytest.mark.parametrize(("text", "value"), [("on", True), ("YES", True), ("1", True), ("off", False), (" no ", False), ("false", False)])
def test_switches_take_on_and_off_words(text, value):
    assert parse_setting("public_gallery", text) is value and parse_setting("public_names", text) is value


def test_a_switch_refuses_other_words():
    assert _refusal("public_gallery", "maybe") == "public_gallery is on or off, got 'maybe'"


def test_a_prefix_is_short_and_has_no_spaces():
    assert parse_setting("prefix", "?") == "?"
    assert parse_setting("prefix", "x" * PREFIX_LENGTH) == "x" * PREFIX_LENGTH
    for bad in ("", "x" * (PREFIX_LENGTH + 1), "a b", "!\t", "\n"):
        assert _refusal("prefix", bad).startswith(f"a prefix is 1 to {PREFIX_LENGTH} characters without spaces, got ")


def test_roles_and_channels_come_back_as_typed_for_discord_to_look_up():
    assert parse_setting("exempt_role", "@Moderators") == "@Moderators"
    assert parse_setting("gallery_channel", "<#123>") == "<#123>"


@pytest.mark.parametrize("name", ["prefix", "user_burst", "max_job_seconds", "public_names"])
def test_an_admin_s_hostile_text_is_quoted_short(name):
    message = _refusal(name, "@everyone\n" * 1000)
    assert "@everyone\n" not in message

