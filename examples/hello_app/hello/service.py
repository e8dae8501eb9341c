"""The web side: an HTTP handler that answers JSON or XML, and an asyncio batch greeter."""

from __future__ import annotations

import asyncio
import email.utils
import http.server
import json
import logging
import urllib.parse
import xml.dom.minidom

from hello.greetings import UnknownLanguage, greet

log = logging.getLogger("hello.service")


def greeting_xml(name: str, text: str) -> str:
    document = xml.dom.minidom.Document()
    root = document.appendChild(document.createElement("greeting"))
    root.setAttribute("name", name)
    root.appendChild(document.createTextNode(text))
    return document.toxml()


async def greet_many(names: list[str], language: str = "en") -> list[str]:
    """Greet everyone concurrently (as a real service would call out to other services)."""

    async def one(name: str) -> str:
        await asyncio.sleep(0)
        return greet(name, language)

    return list(await asyncio.gather(*(one(n) for n in names)))


class GreetingHandler(http.server.BaseHTTPRequestHandler):
    """``GET /greet?name=Ada&lang=fr`` (JSON), or ``/greet.xml?...`` (XML)."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        name = query.get("name", "World")
        try:
            text = greet(name, query.get("lang", "en"))
        except UnknownLanguage as exc:
            self.send_error(400, str(exc))
            return
        if url.path == "/greet.xml":
            body, kind = greeting_xml(name, text).encode(), "application/xml"
        else:
            body, kind = json.dumps({"greeting": text}).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Last-Modified", email.utils.formatdate(usegmt=True))
        self.end_headers()
        self.wfile.write(body)
        log.info("greeted %s", name)
