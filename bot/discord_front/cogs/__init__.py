"""One cog per command family; each module ends in `async def setup(bot)`."""
