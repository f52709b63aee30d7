"""Holds idle HTTP/1.1 keep-alive connections open, for bench/run's idle group.

Usage: idle_conns.py HOST PORT PATH COUNT STATUS_FILE

Opens COUNT connections (at most 200 connecting at once, so that no listen backlog overflows), sends
one `GET PATH` on each and reads the whole answer (Content-Length or chunked), then keeps every
connection open and silent. STATUS_FILE is rewritten (atomically) twice a second with a JSON object:
opened, failed (no connection or no complete 2xx answer), alive (not closed by the server since),
ready (every connection was tried), open_s (seconds the opening took). Runs until SIGTERM or SIGINT,
then closes everything. Standard library only.
"""

import asyncio
import json
import os
import signal
import sys
import time

HOST, PORT, PATH, COUNT, STATUS = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
PARALLEL = 200
REQUEST = (
    f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nUser-Agent: rampart-bench-idle\r\n"
    "Accept: */*\r\n\r\n"
).encode()


class State:
    def __init__(self):
        self.opened = 0
        self.failed = 0
        self.alive = 0
        self.ready = False
        self.open_s = None
        self.writers = []
        self.errors = {}


async def read_answer(reader):
    """Reads one response; returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def hold(state, sem):
    async with sem:
        try:
            reader, writer = await asyncio.open_connection(HOST, PORT)
            writer.write(REQUEST)
            await writer.drain()
            status = await asyncio.wait_for(read_answer(reader), 30)
            if not 200 <= status < 300:
                raise RuntimeError(f"status {status}")
        except Exception as e:  # counted and reported, never fatal
            state.failed += 1
            key = type(e).__name__ + (f": {e}" if isinstance(e, RuntimeError) else "")
            state.errors[key] = state.errors.get(key, 0) + 1
            return
        state.opened += 1
        state.alive += 1
        state.writers.append(writer)
    # Idle from here; a read returns only when the server closes the connection.
    try:
        await reader.read(1)
    except Exception:
        pass
    state.alive -= 1


def write_status(state):
    tmp = STATUS + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"opened": state.opened, "failed": state.failed, "alive": state.alive,
                   "ready": state.ready, "open_s": state.open_s, "errors": state.errors}, f)
    os.replace(tmp, STATUS)


async def main():
    state = State()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sem = asyncio.Semaphore(PARALLEL)
    t0 = time.monotonic()
    tasks = [asyncio.create_task(hold(state, sem)) for _ in range(COUNT)]

    async def opening():
        # Every connection has been tried once `opened + failed` reaches COUNT.
        while state.opened + state.failed < COUNT:
            await asyncio.sleep(0.05)
        state.open_s = round(time.monotonic() - t0, 2)
        state.ready = True

    async def reporting():
        while True:
            write_status(state)
            await asyncio.sleep(0.5)

    opener = asyncio.create_task(opening())
    reporter = asyncio.create_task(reporting())
    await stop.wait()
    write_status(state)
    for t in (opener, reporter, *tasks):
        t.cancel()
    for w in state.writers:
        w.close()
    await asyncio.gather(opener, reporter, *tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
