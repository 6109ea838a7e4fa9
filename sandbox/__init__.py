"""Stand-ins for the outside world, for the demo and the tests only: a Slack workspace
(``sandbox.slack``) and planning and logistics systems (``sandbox.systems``).

Installed with the ``demo`` extra; the bot itself never imports this package outside
``alignbot demo``.
"""
