"""Talk to the Git hosting provider's REST API (GitHub, GitLab, Gitea).

Two jobs need it: learning which pull requests are open (an authoritative list: a PR
missing from it is closed, so a listing is either complete or an error), and PR feedback
(one comment per PR, found again by a hidden marker and edited in place, plus a
`hoody/preview` commit status). Calls are retried with backoff on transient failures;
every failure is a ProviderError (retryable) whose text never contains the token.

    client = make_client("github", "https://api.github.com", token, "owner/name")
    client.open_pull_requests()            -> [PullRequestInfo, ...]
    client.upsert_comment(7, body)         -> comment id
    client.set_status(sha, "success", "healthy", url)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import requests

from reconciler.core.errors import ConfigError, ProviderError
from reconciler.providers.base import (
    MARKER,
    STATUS_CONTEXT,
    ProviderClient,
    PullRequestInfo,
    Transport,
)
from reconciler.providers.github import GiteaClient, GitHubClient
from reconciler.providers.gitlab import GitLabClient

__all__ = [
    "MARKER",
    "PROVIDERS",
    "STATUS_CONTEXT",
    "GitHubClient",
    "GitLabClient",
    "GiteaClient",
    "ProviderClient",
    "ProviderError",
    "PullRequestInfo",
    "make_client",
]

PROVIDERS = ("github", "gitlab", "gitea")


def _auth_headers(provider: str, token: str) -> dict[str, str]:
    if provider == "github":
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
    if provider == "gitea":
        return {"Authorization": f"token {token}", "Accept": "application/json"}
    return {"PRIVATE-TOKEN": token, "Accept": "application/json"}


def make_client(
    provider: str,
    api_url: str,
    token: str,
    repository: str,
    *,
    session: requests.Session | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    sleep: Callable[[float], object] = time.sleep,
    timeout: float = 10.0,
) -> ProviderClient:
    """A client for one repository. `retries` counts retries after the first attempt.

    Raises ConfigError for an unknown provider or an unusable api_url/token/repository.
    """
    if provider not in PROVIDERS:
        raise ConfigError("provider", f"no API client for {provider!r} ({', '.join(PROVIDERS)})")
    parts = urlsplit(api_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("api_url", f"must be an http(s) URL, got {api_url!r}")
    if not token:
        raise ConfigError("api_token", "is empty")
    http = Transport(
        api_url.strip(),
        _auth_headers(provider, token),
        token,
        session=session,
        retries=retries,
        backoff=backoff,
        sleep=sleep,
        timeout=timeout,
    )
    client: GitHubClient | GitLabClient
    try:
        if provider == "gitlab":
            client = GitLabClient(http, repository)
        elif provider == "gitea":
            client = GiteaClient(http, repository)
        else:
            client = GitHubClient(http, repository)
    except ProviderError as e:
        raise ConfigError("repository", str(e)) from None
    return client
