# syntax=docker/dockerfile:1
# tvs-lab: one image for every service of docker-compose.yml (clusters, PKI, phone fleet).
#
#   docker build -t tvs-lab .
#   docker run --rm tvs-lab tvs --help
#
# The image holds the `tvs` and `phone-emu` commands and no keys: the lab PKI is generated
# at run time into the /lab volume (`tvs certs generate --out /lab/pki`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY tvs ./tvs
COPY phone_emu ./phone_emu
RUN pip install . && rm -rf /src

# `tvs-lab-shard CMD... --shard auto ...` runs CMD with `--shard I/N`: N from PHONE_SHARDS, I
# from SHARD when set, else from this replica's container name (<project>-<service>-<I>, which
# Docker's embedded DNS gives back for the container's own address), so that
# `docker compose up --scale phones=N` boots N disjoint slices of one fleet.
COPY --chmod=755 <<'EOF' /usr/local/bin/tvs-lab-shard
#!/usr/bin/env python3
import os
import re
import socket
import sys


def replica_index() -> int | None:
    if os.environ.get("SHARD"):
        return int(os.environ["SHARD"])
    name = os.environ.get("SHARD_NAME", "")
    if not name:
        try:
            name = socket.gethostbyaddr(socket.gethostbyname(socket.gethostname()))[0]
        except OSError:
            return None
    m = re.search(r"[-_](\d+)$", name.split(".")[0])
    return int(m.group(1)) if m else None


def main() -> int:
    args = sys.argv[1:]
    if not args:
        print("usage: tvs-lab-shard COMMAND [ARGS...] --shard auto", file=sys.stderr)
        return 2
    total = int(os.environ.get("PHONE_SHARDS", "1"))
    index = replica_index()
    if index is None:
        print("tvs-lab-shard: replica number unknown; using shard 1", file=sys.stderr)
        index = 1
    if not 1 <= index <= total:
        print(
            f"tvs-lab-shard: replica {index} but PHONE_SHARDS={total}: "
            "set PHONE_SHARDS to the --scale count",
            file=sys.stderr,
        )
        return 2
    args = [f"{index}/{total}" if a == "auto" and i and args[i - 1] == "--shard" else a
            for i, a in enumerate(args)]
    os.execvp(args[0], args)
    return 2


sys.exit(main())
EOF

RUN useradd --create-home --uid 1000 lab && mkdir /lab && chown lab:lab /lab
USER lab
WORKDIR /lab
VOLUME ["/lab"]
# TFTP (udp), TVS, secure SIP; the destination cluster of docker-compose.yml adds 1000
EXPOSE 6969/udp 2445/tcp 5061/tcp 6970/tcp 7969/udp 3445/tcp 6061/tcp 7970/tcp
CMD ["tvs", "--help"]
