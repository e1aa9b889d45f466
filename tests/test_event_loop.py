"""The gateway's event loop (llmrelay/event_loop.py): a server on a listening socket accepts the connections
waiting on it in bounded batches, stops on close, and backs off instead of spinning when the process is out
of file descriptors. Real sockets throughout."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from llmrelay.event_loop import ACCEPT_BATCH, BatchAcceptServer, GatewayLoop

REPO = Path(__file__).resolve().parent.parent


class Counted(asyncio.Protocol):
    made: list[asyncio.BaseTransport]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def run(coroutine_function) -> object:  # type: ignore[no-untyped-def]
    loop = GatewayLoop()
    try:
        return loop.run_until_complete(coroutine_function())
    finally:
        loop.close()


def test_connections_that_queued_while_the_loop_was_busy_are_accepted_in_batches() -> None:
    waiting = ACCEPT_BATCH * 2 + 44
    made: list[asyncio.BaseTransport] = []

    class Protocol(Counted):
        pass

    Protocol.made = made

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        listener = listening_socket()
        server = await loop.create_server(Protocol, sock=listener, backlog=1024)
        assert isinstance(server, BatchAcceptServer) and server.is_serving()
        # The loop is busy (this coroutine does not yield) while the clients connect: they wait in the kernel.
        clients = [socket.create_connection(listener.getsockname()) for _ in range(waiting)]
        counts = []
        for _ in range(8):
            await asyncio.sleep(0)  # one turn of the loop
            counts.append(len(made))
        server.close()
        await server.wait_closed()
        for client in clients:
            client.close()
        for transport in made:
            transport.close()
        listener.close()
        return counts

    counts = run(main)
    assert counts[-1] == waiting  # all of them within a few turns (uvloop's own server takes one a turn)
    grown = [later - earlier for earlier, later in zip([0, *counts], counts, strict=False) if later > earlier]
    assert grown[0] == ACCEPT_BATCH  # bounded: one turn does not accept everything at once
    assert max(grown) <= ACCEPT_BATCH


def test_a_closed_server_accepts_no_more_and_leaves_the_socket_to_its_owner() -> None:
    made: list[asyncio.BaseTransport] = []

    class Protocol(Counted):
        pass

    Protocol.made = made

    async def main() -> None:
        loop = asyncio.get_running_loop()
        listener = listening_socket()
        server = await loop.create_server(Protocol, sock=listener)
        first = socket.create_connection(listener.getsockname())
        for _ in range(20):
            await asyncio.sleep(0.005)
            if made:
                break
        assert len(made) == 1
        server.close()
        await asyncio.wait_for(server.wait_closed(), 1)
        assert not server.is_serving() and server.sockets == ()
        late = socket.create_connection(listener.getsockname())  # the kernel still completes it: backlog
        await asyncio.sleep(0.05)
        assert len(made) == 1
        assert listener.fileno() >= 0  # not closed: serve.py owns it (the workers share it)
        for sock in (first, late, listener):
            sock.close()
        made[0].close()

    run(main)


def test_other_servers_are_uvloops_own() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        assert not isinstance(server, BatchAcceptServer)
        server.close()
        await server.wait_closed()

    run(main)


OUT_OF_DESCRIPTORS = textwrap.dedent(
    """
    import asyncio, json, os, resource, socket, sys
    from llmrelay.event_loop import GatewayLoop

    made = []

    class Protocol(asyncio.Protocol):
        def connection_made(self, transport):
            made.append(transport)

    async def main():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        server = await asyncio.get_running_loop().create_server(Protocol, sock=listener)
        open_now = len(os.listdir("/proc/self/fd"))
        limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 3, limits[1]))
        print(listener.getsockname()[1], flush=True)
        await asyncio.sleep(0.8)  # the clients connect; only a few fit under the limit
        before = len(made)
        cpu_before = sum(os.times()[:2])
        await asyncio.sleep(0.5)
        cpu = sum(os.times()[:2]) - cpu_before
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)  # descriptors to spare again: the retry takes the rest
        await asyncio.sleep(1.6)
        print(json.dumps({"before": before, "after": len(made), "cpu": cpu}), flush=True)
        server.close()

    loop = GatewayLoop()
    loop.run_until_complete(main())
    """
)


def test_running_out_of_descriptors_backs_off_and_accepts_once_there_are_some() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", OUT_OF_DESCRIPTORS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdout is not None
    port = int(child.stdout.readline())
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    try:
        out, err = child.communicate(timeout=30)
    finally:
        for client in clients:
            client.close()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["before"] < 10  # the limit held some back
    assert result["cpu"] < 0.25  # waiting out the retry delay, not spinning on accept
    assert result["after"] == 10  # every waiting client, once the retry came
    assert "cannot accept connections" in err and "retrying in 1 s" in err


def test_the_gateway_serves_on_this_loop() -> None:
    import uvicorn

    from llmrelay.cli.serve import EVENT_LOOP

    factory = uvicorn.Config("llmrelay.app:create_app", loop=EVENT_LOOP).get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, GatewayLoop)
    finally:
        loop.close()
