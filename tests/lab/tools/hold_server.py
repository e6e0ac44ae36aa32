#!/usr/bin/env python3
"""Accepts TCP connections on ADDR PORT and keeps them open, answering each line it receives."""
import asyncio
import sys


async def handle(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main(addr, port):
    server = await asyncio.start_server(handle, addr, int(port), backlog=4096)
    async with server:
        await server.serve_forever()


asyncio.run(main(sys.argv[1], sys.argv[2]))
