"""A stand-in for the Kubernetes API's TokenReview, which Vault's Kubernetes auth calls.

    review = TokenReviewFake()
    review.register(jwt, namespace="syncbus", service_account="syncbus-credentials",
                    audiences=["vault"])
    async with serve_app(review.app()) as url:    # Vault's kubernetes auth: kubernetes_host=url
        ...
    review.reviews                                  # what Vault asked, in order

It answers `POST /apis/authentication.k8s.io/v1/tokenreviews` as the API server does: 201
with the `TokenReview` echoed and a `status` saying whether the token is authenticated, as
which service account (`system:serviceaccount:<namespace>:<name>`, uid, groups) and for which
of the requested audiences. A token it does not know, or one whose audiences do not meet the
review's `spec.audiences`, is `authenticated: false` with the API server's kind of error. The
caller must send a bearer token (the reviewer's, or the reviewed token itself, as Vault does
when it has no reviewer JWT of its own); without one it answers 401 like the API server.

Tokens are opaque here: tests mint the JWT (Vault parses it, and checks its signature only
when given the issuer's keys) and register it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_VERSION = "authentication.k8s.io/v1"
REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


@dataclass(frozen=True)
class ServiceAccount:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@dataclass(frozen=True)
class Review:
    """One review Vault asked for (the token itself is not kept)."""

    known: bool
    audiences: tuple[str, ...]
    authenticated: bool


@dataclass
class TokenReviewFake:
    tokens: dict[str, ServiceAccount] = field(default_factory=dict)
    reviews: list[Review] = field(default_factory=list)

    def register(
        self,
        token: str,
        *,
        namespace: str,
        service_account: str,
        audiences: list[str] | None = None,
        uid: str | None = None,
    ) -> ServiceAccount:
        account = ServiceAccount(
            namespace,
            service_account,
            uid or str(uuid.uuid4()),
            tuple(audiences or ["https://kubernetes.default.svc"]),
        )
        self.tokens[token] = account
        return account

    def revoke(self, token: str) -> None:
        """The service account (or its token) is gone: reviews say unauthenticated."""
        self.tokens.pop(token, None)

    def app(self) -> Starlette:
        return Starlette(routes=[Route(REVIEW_PATH, self._review, methods=["POST"])])

    async def _review(self, request: Request) -> JSONResponse:
        if not request.headers.get("authorization", "").lower().startswith("bearer "):
            return _status_error(401, "Unauthorized", "Unauthorized")
        try:
            body = await request.json()
        except ValueError:
            return _status_error(400, "BadRequest", "the request body is not JSON")
        spec = body.get("spec") if isinstance(body, dict) else None
        token = spec.get("token") if isinstance(spec, dict) else None
        if not isinstance(token, str) or not token:
            return _status_error(422, "Invalid", "spec.token: Required value")
        wanted = spec.get("audiences") if isinstance(spec, dict) else None
        wanted = [str(a) for a in wanted] if isinstance(wanted, list) else []
        account = self.tokens.get(token)
        status: dict[str, Any]
        if account is None:
            status = {"authenticated": False, "error": "invalid bearer token"}
        else:
            granted = [a for a in account.audiences if not wanted or a in wanted]
            if not granted:
                status = {
                    "authenticated": False,
                    "error": f"token audiences {list(account.audiences)} is invalid for the "
                    f"target audiences {wanted}",
                }
            else:
                status = {
                    "authenticated": True,
                    "user": {
                        "username": account.username,
                        "uid": account.uid,
                        "groups": [
                            "system:serviceaccounts",
                            f"system:serviceaccounts:{account.namespace}",
                            "system:authenticated",
                        ],
                    },
                    "audiences": granted,
                }
        self.reviews.append(
            Review(account is not None, tuple(wanted), bool(status["authenticated"]))
        )
        answer = {
            "kind": "TokenReview",
            "apiVersion": API_VERSION,
            "metadata": {"creationTimestamp": None},
            "spec": {"audiences": wanted} if wanted else {},  # the token is not echoed back
            "status": status,
        }
        return JSONResponse(answer, status_code=201)


def _status_error(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        },
        status_code=code,
    )
