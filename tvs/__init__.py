"""tvs-lab: the cluster side of Cisco phone security.

Layout (each module's docstring says what it owns):

- ``tvs.names``, ``tvs.roles``, ``tvs.certs``: shared values (names CUCM style, role codes,
  certificates and keys).
- ``tvs.wire``: the TVS message codec (sans-I/O).
- ``tvs.tlv``: the CTL/ITL ``.tlv`` and ``.sgn`` file codec (sans-I/O).
- ``tvs.pki``: the lab PKI recipe and generator.
- ``tvs.store``: CUCM-style trust stores and the TVS certificate cache.
- ``tvs.server``: the Trio TLS TVS server.
- ``tvs.tftp``: TFTP packet codec and transfer state machines, with Trio server and client.
- ``tvs.cluster``: an emulated CUCM cluster (TVS + TFTP + generated signed files).
- ``tvs.trace``: reading CUCM TVS traces and phone console logs.
- ``tvs.cli``: the ``tvs`` command.

``phone_emu`` imports from ``tvs``; ``tvs`` never imports ``phone_emu``.
"""

__version__ = "0.1.0"
