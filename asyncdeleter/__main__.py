"""``python -m asyncdeleter``: the command-line tool (needs the ``cli`` extra)."""

from asyncdeleter._cli import main

main()
