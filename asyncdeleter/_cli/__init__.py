"""The ``asyncdeleter`` command (optional extra ``cli``: click and rich).

Imported only by the console script, never by the library, so ``import asyncdeleter``
stays cheap and needs neither dependency.
"""

from asyncdeleter._cli.main import main

__all__ = ["main"]
