"""Which gateway shard a guild belongs to: the one rule every part of the bot uses for sharding.

With SHARD_COUNT set, several `dreambot run` processes split Discord's shards between them
(SHARD_IDS). A guild's messages, interactions and buttons arrive only at the process holding its
shard, so that process is also the one to take the guild's unfinished jobs back after a restart.
"""

from __future__ import annotations

__all__ = ["shard_of"]


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard Discord routes a guild's events through, out of `shard_count`.

    Discord's rule is `(guild_id >> 22) % shard_count`: the bits from 22 up are the guild's
    creation time. Events outside any guild (DMs, `guild_id` None) always come on shard 0.
    """
    assert shard_count >= 1, "a sharded bot has at least one shard; check SHARD_COUNT"
    return 0 if guild_id is None else (guild_id >> 22) % shard_count
