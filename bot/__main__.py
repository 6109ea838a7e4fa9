"""``python -m bot``: the ``alignbot`` command (how ``alignbot run`` starts its children)."""

from bot.cli import app

app(prog_name="alignbot")
