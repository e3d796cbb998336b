"""The soak: many tiny jobs through two bot processes on one database, with workers and bots killed.

`python -m tests.soak --jobs 300 --worker-kills 30 --bot-kills 3` (`make soak`) runs it and prints
the counts; tests/bot/test_soak.py runs a reduced size inside `make test`. See `orchestrator`.
"""
