"""`dgpt dashboard`: a read-only web page over a running network, from the same core functions the
CLI uses (`dgpt.status.status_data`, the store's CID-checked reads). One page; its JavaScript asks
`/api/status` every few seconds and redraws: rounds with their state and deadlines, every
submission's verdict, weight and reward, the model lineage, the validation accuracy and losses over
rounds (Plotly, served from the plotly package: nothing is fetched from the internet), each
oracle's stake, earnings and history. Every CID links to `/ipfs/CID`, whose bytes the store checks
against the CID before serving. Errors (an unknown round, an unreachable chain) are one message
on the page, never a stack trace.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, jsonify

from dgpt.chain.protocol import Protocol
from dgpt.errors import DGPTError
from dgpt.status import status_data
from dgpt.store import Store

PAGE = (Path(__file__).parent / "page.html").read_text()


def create_app(protocol: Protocol, store: Store) -> Flask:
    app = Flask(__name__)
    reports: dict = {}  # by CID: the page polls every few seconds, a report never changes

    def snapshot() -> dict:
        try:
            return status_data(protocol, store, reports)
        except DGPTError as exc:
            raise _Unavailable(str(exc)) from None
        except Exception as exc:  # web3 / requests errors: the chain stopped answering
            raise _Unavailable(f"the chain at {protocol.chain.name} does not answer: {type(exc).__name__}") from None

    @app.errorhandler(_Unavailable)
    def unavailable(exc):
        return jsonify({"error": str(exc)}), 503

    @app.get("/")
    @app.get("/round/<int:rid>")
    def page(rid: int | None = None):
        return Response(PAGE, mimetype="text/html")

    @app.get("/api/status")
    def api_status():
        return jsonify(snapshot())

    @app.get("/api/round/<int:rid>")
    def api_round(rid: int):
        data = snapshot()
        if not 1 <= rid <= len(data["rounds"]):
            return jsonify({"error": f"round {rid} does not exist: this deployment has rounds 1 to {len(data['rounds'])}"}), 404
        return jsonify(data["rounds"][rid - 1])

    @app.get("/ipfs/<cid>")
    def content(cid: str):
        try:
            data = store.get_bytes(cid, max_bytes=1 << 30)  # checked against the CID by the store
        except DGPTError as exc:
            return jsonify({"error": str(exc)}), 404
        return Response(data, mimetype="application/octet-stream")

    @app.get("/static/plotly.min.js")
    def plotly_js():
        from plotly.offline import get_plotlyjs

        return Response(get_plotlyjs(), mimetype="application/javascript")

    return app


class _Unavailable(Exception):
    pass


def serve(protocol: Protocol, store: Store, host: str = "127.0.0.1", port: int = 8050):
    """A werkzeug server (one thread: the chain client is not shared across threads); returns it
    without starting it (`serve_forever()`, `shutdown()`)."""
    from werkzeug.serving import make_server

    return make_server(host, port, create_app(protocol, store), threaded=False)


def pump_requests(server) -> None:
    """Answer every request waiting on `server`, without blocking: for a caller that owns the chain
    client on its own thread (the embedded demo)."""
    import select

    while select.select([server.socket], [], [], 0)[0]:
        server.handle_request()
