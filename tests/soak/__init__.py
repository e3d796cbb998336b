"""The soak: many tiny jobs through two bot processes on one database, with workers and bots killed.

`python -m tests.soak --jobs 1000 --worker-kills 100 --bot-kills 10` (`make soak`) runs it and prints
the counts; tests/bot/test_soak.py runs a reduced size inside `make test`. See `orchestrator`.
`python -m tests.soak.load` (`make load`, also part of `make soak`) is the load test: one bot
process, many users, measured; tests/bot/test_load.py runs a reduced size. See `load`.
"""
