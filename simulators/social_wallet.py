"""A simulator of the state's social wallet (the account paying targeted meal money), over real
HTTP on a local port. It is the contract ``server.canteen.wallet.HttpSocialWallet`` speaks; the
real service's API must be plugged in by whoever holds its contract.

- ``GET  /v1/eligibility?month=YYYY-MM`` -> ``{"month", "students": [{"student_ref", "amount_tiyn"}]}``
- ``GET  /v1/vouchers/{student_ref}`` -> ``{"student_ref", "balance_tiyn"}`` (all months paid in,
  less redemptions)
- ``POST /v1/redemptions`` ``{"redemption_id", "student_ref", "amount_tiyn", "at_ms"}`` -> 201 the
  redemption; the same id again -> 200 the first one (idempotent); the same id with other
  content -> 409 ``conflict``; more than the balance -> 409 ``insufficient``; a child never
  eligible -> 404 ``unknown_student``
- ``GET  /v1/settlements?month=YYYY-MM`` -> ``{"month", "redemptions": [...], "total_tiyn"}``
  (redemptions whose at_ms falls in the month, Asia/Almaty)

Every call needs ``Authorization: Bearer <key>`` (401 ``unauthorized`` otherwise).

``python -m simulators.social_wallet --port 9031 --key K --eligible 2026-11:s1-3a-1:1200000``
"""

from __future__ import annotations

import argparse
import datetime as dt
import hmac
import json
import threading
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ZONE = zoneinfo.ZoneInfo("Asia/Almaty")


def month_of(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, ZONE).strftime("%Y-%m")


class WalletState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.eligible: dict[str, dict[str, int]] = {}  # month -> ref -> tiyn
        self.redemptions: dict[str, dict[str, Any]] = {}  # id -> redemption

    def add_eligible(self, month: str, student_ref: str, amount_tiyn: int) -> None:
        with self.lock:
            self.eligible.setdefault(month, {})[student_ref] = amount_tiyn

    def balance(self, ref: str) -> int | None:
        paid = [m[ref] for m in self.eligible.values() if ref in m]
        if not paid:
            return None
        spent = sum(
            int(r["amount_tiyn"]) for r in self.redemptions.values() if r["student_ref"] == ref
        )
        return sum(paid) - spent

    def redeem(self, raw: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            red: dict[str, Any] = {
                "redemption_id": str(raw["redemption_id"]),
                "student_ref": str(raw["student_ref"]),
                "amount_tiyn": int(raw["amount_tiyn"]),
                "at_ms": int(raw["at_ms"]),
            }
        except (KeyError, TypeError, ValueError):
            return 400, {
                "error": "malformed",
                "message": "redemption_id, student_ref, amount_tiyn, at_ms",
            }
        if red["amount_tiyn"] <= 0:
            return 400, {"error": "bad_amount", "message": "amount_tiyn must be positive"}
        with self.lock:
            old = self.redemptions.get(red["redemption_id"])
            if old is not None:
                same = all(old[k] == red[k] for k in ("student_ref", "amount_tiyn"))
                return (200, old) if same else (409, {"error": "conflict", "message": "id reused"})
            bal = self.balance(red["student_ref"])
            if bal is None:
                return 404, {"error": "unknown_student", "message": "not eligible in any month"}
            if bal < red["amount_tiyn"]:
                return 409, {"error": "insufficient", "message": "voucher balance too low"}
            self.redemptions[red["redemption_id"]] = red
            return 201, red


def make_handler(state: WalletState, key: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            sent = self.headers.get("authorization", "")
            if hmac.compare_digest(sent.encode(), f"Bearer {key}".encode()):
                return True
            self._send(401, {"error": "unauthorized", "message": "bad or missing key"})
            return False

        def do_GET(self) -> None:
            if not self._authorised():
                return
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/v1/eligibility":
                month = q.get("month", "")
                with state.lock:
                    rows = sorted(state.eligible.get(month, {}).items())
                self._send(
                    200,
                    {
                        "month": month,
                        "students": [{"student_ref": r, "amount_tiyn": a} for r, a in rows],
                    },
                )
            elif url.path.startswith("/v1/vouchers/"):
                ref = url.path.removeprefix("/v1/vouchers/")
                with state.lock:
                    bal = state.balance(ref)
                if bal is None:
                    self._send(
                        404, {"error": "unknown_student", "message": "not eligible in any month"}
                    )
                else:
                    self._send(200, {"student_ref": ref, "balance_tiyn": bal})
            elif url.path == "/v1/settlements":
                month = q.get("month", "")
                with state.lock:
                    reds = sorted(
                        (r for r in state.redemptions.values() if month_of(r["at_ms"]) == month),
                        key=lambda r: (r["at_ms"], r["redemption_id"]),
                    )
                self._send(
                    200,
                    {
                        "month": month,
                        "redemptions": reds,
                        "total_tiyn": sum(r["amount_tiyn"] for r in reds),
                    },
                )
            else:
                self._send(404, {"error": "not_found", "message": url.path})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            if urlsplit(self.path).path != "/v1/redemptions":
                self._send(404, {"error": "not_found", "message": self.path})
                return
            length = int(self.headers.get("content-length") or 0)
            try:
                raw = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, {"error": "malformed", "message": "not JSON"})
                return
            status, body = state.redeem(raw if isinstance(raw, dict) else {})
            self._send(status, body)

    return Handler


class SocialWalletSimulator:
    """``with SocialWalletSimulator(key) as wallet: wallet.url ...`` serves on 127.0.0.1."""

    def __init__(self, key: str, port: int = 0) -> None:
        self.key = key
        self.state = WalletState()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(self.state, key))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="social-wallet", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> SocialWalletSimulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m simulators.social_wallet", description=__doc__)
    ap.add_argument("--port", type=int, default=9031)
    ap.add_argument("--key", required=True)
    ap.add_argument("--eligible", action="append", default=[], help="MONTH:STUDENT_REF:TIYN")
    args = ap.parse_args()
    sim = SocialWalletSimulator(args.key, args.port)
    for spec in args.eligible:
        month, ref, amount = spec.split(":")
        sim.state.add_eligible(month, ref, int(amount))
    print(f"social wallet simulator on {sim.url}")
    with sim:
        threading.Event().wait()


if __name__ == "__main__":
    main()
