"""phone_emu: emulated Cisco phones (boot sequence, trust lists, TVS client) and the lab runner.

Imports its codecs from ``tvs``; nothing in ``tvs`` imports from here.
"""
